// railcc/sim/step_schedule.hpp: a schedule of flows in steps, evaluated once per distinct
// step, for collectives over 100k+ GPUs.
//
// The flow graph (flow_graph.hpp) is exact but costs one object per message, and ranks
// that drift out of lockstep cost one rate solve per distinct event time. A collective
// over p ranks is, in its analysis, a sequence of steps: a ring all-reduce is 2(p - 1)
// steps of the same shape. A StepSchedule keeps that structure:
//  - every item (a flow or a local task) is placed in the step after the last of its
//    dependencies (its ASAP level; a local task that takes no time, such as the finish of
//    a sum, completes in the step of its last dependency instead of adding an empty
//    step);
//  - an algorithm may post one step of a run of identical steps and say how many more
//    follow (`repeat`), instead of posting them all, and may post one unit of a pipeline
//    and say how many more units follow (`repeat_block`);
//  - `evaluate` simulates each distinct step once (by content) on the fabric with the
//    flow engine and multiplies; in the hosts' domain, once per distinct host content.
//    A pipeline's units are then simulated overlapping, one host per distinct content
//    (expanded_pipeline_end).
// Domains. Given the fabric, items fall into two domains that share no link: the network
// (flows between hosts, through the NICs) and the hosts (flows over NVLink and NVSwitch,
// and local tasks). The network is bulk-synchronous: its step starts when its previous
// step has completed (a barrier: the alpha-beta model of docs/facts.md section 4) and
// when the steps of the hosts it depends on have. Hosts share no link with each other
// either, so each keeps its own clock: its step starts when its own previous step has
// completed and when the network steps it depends on have. So the NVLink phases of a
// pipelined hierarchical all-reduce run under the network phase, as on hardware, instead
// of every step waiting for the slower of the two, and a host that has its result early
// (outside a Rabenseifner fold) goes on without the others. A step that mixes both
// domains in one posting (a ring crossing hosts) keeps one barrier over both, and a run
// of such steps is simulated on its own, each hop waiting for the one before it, as a
// ring pass runs (chained_run in evaluate). Without a fabric there is one domain: a
// global barrier per step.
// Where every flow of a step takes as long as every other (lockstep algorithms on a
// symmetric fabric) this is the flow graph's time exactly; docs/collectives.md ("Steps
// mode") says where it is not, and by how much.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"
#include "railcc/sim/engine.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// A run of consecutive steps with the same content, as evaluated.
struct StepRun {
  std::uint64_t first_step = 0;  ///< 1-based
  std::uint64_t steps = 0;
  Picoseconds step_time;     ///< each (the slower domain's)
  std::size_t flows = 0;     ///< network or NVLink flows per step
  std::size_t tasks = 0;     ///< local tasks per step
  double bytes = 0;          ///< per step
  Picoseconds start;         ///< when the run's first step starts (its earlier domain)
  std::uint8_t domains = 1;  ///< bit 0: network flows, bit 1: host flows and tasks
};

struct StepResult {
  Picoseconds makespan;
  std::uint64_t steps = 0;          ///< levels of the schedule
  std::size_t items = 0;            ///< flows and tasks posted (repeated ones once)
  std::size_t evaluations = 0;      ///< distinct steps simulated (per domain)
  std::size_t flows_evaluated = 0;  ///< flows over those simulations
  std::size_t rate_solves = 0;      ///< summed over the simulations
  std::size_t flows_solved = 0;     ///< flows over those rate solves (the main cost)
  double bytes_sent = 0;            ///< over all steps and pipeline units, repeats included
  std::vector<StepRun> runs;
};

class StepSchedule {
 public:
  using Index = std::uint32_t;
  static constexpr std::uint8_t network_domain = 0;
  static constexpr std::uint8_t host_domain = 1;

  /// One domain: every step is a global barrier.
  StepSchedule() = default;
  /// Two domains, network and hosts, told apart on `fabric` (which must outlive this).
  explicit StepSchedule(const Fabric& fabric) : fabric_(&fabric) {}

  /// Adds a flow or a local task (src == dst) in the step after its last dependency (a
  /// task that takes no time: in the step of its last dependency).
  Index add(const FlowSpec& spec, std::span<const Index> deps) {
    if (items_.size() >= 0xfffffffeu) throw InputError("step schedule: too many items");
    const bool free = spec.src == spec.dst && spec.delay == Picoseconds{};
    std::uint32_t level = 1;
    Index latest = none;
    std::array<std::uint32_t, 2> need{0, 0};
    const std::uint8_t domain = domain_of(spec);
    bool foreign = false;
    for (Index d : deps) {
      if (d >= items_.size())
        throw InputError("step schedule: dependency on item " + std::to_string(d) +
                         ", not posted yet");
      const std::uint32_t dep_end = end_level(d);
      level = std::max(level, dep_end + (free ? 0 : 1));
      latest = latest == none ? d : std::max(latest, d);
      const Item& dep = items_[d];
      if (dep.free) {
        // A task that takes no time stands for its own dependencies.
        need[0] = std::max(need[0], dep.need[0]);
        need[1] = std::max(need[1], dep.need[1]);
        foreign = foreign || dep.foreign_need || (dep.need[1] > 0 && !same_host(dep.spec, spec));
      } else {
        need[dep.domain] = std::max(need[dep.domain], dep_end);
        foreign = foreign || (dep.domain == host_domain && !same_host(dep.spec, spec));
      }
    }
    items_.push_back({spec, level, 0, latest, need, domain, free, foreign});
    levels_ = std::max<std::uint64_t>(levels_, level);
    return static_cast<Index>(items_.size() - 1);
  }

  /// Items [first, size()) are one step that `more` further steps of the same content
  /// follow: each occupies its level and the `more` after it, and what depends on it
  /// waits for the last. The items must not depend on each other.
  void repeat(Index first, std::uint32_t more) {
    if (first > items_.size()) throw InputError("step schedule: repeat from a missing item");
    if (!blocks_.empty() && first < blocks_.back().end)
      throw InputError("step schedule: a repeated step inside a repeated pipeline unit");
    for (std::size_t i = first; i < items_.size(); ++i) {
      Item& it = items_[i];
      if (it.latest_dep != none && it.latest_dep >= first) {
        throw InputError("step schedule: a repeated step's items depend on each other");
      }
      if (static_cast<std::uint64_t>(it.repeats) + more > 0xffffffffu)
        throw InputError("step schedule: too many repeats");
      it.repeats += more;
      levels_ = std::max<std::uint64_t>(levels_, end_level(static_cast<Index>(i)));
    }
  }

  /// Items [first, size()) are one unit of a pipeline (one chunk through every stage)
  /// that `more` further units of the same content follow, each a stage behind the one
  /// before: the units overlap, and a unit enters each domain when the unit before has
  /// left it: each stage (a stretch of the unit's steps in one domain) takes the units
  /// one after another, and stages of different units overlap (expanded_pipeline_end).
  /// Past the unit's last step every domain waits for the whole pipeline, and what
  /// depends on any of its items waits for that.
  /// `network_in_flight` units may be in a network stage at once (the unit waits for the
  /// one that many before it to leave the stage): their steps then share the links, so a
  /// unit also enters no sooner than the unit before it entered plus the time the
  /// stage's steps keep their busiest links busy; one unit's start-ups and path latency
  /// run under the others' bytes (expanded_pipeline_end).
  void repeat_block(Index first, std::uint32_t more, std::uint32_t network_in_flight = 1) {
    if (first >= items_.size())
      throw InputError("step schedule: a repeated pipeline unit needs at least one item");
    if (!blocks_.empty() && first < blocks_.back().end)
      throw InputError("step schedule: repeated pipeline units overlap");
    if (network_in_flight == 0)
      throw InputError("step schedule: a pipeline needs at least one unit in flight");
    if (more == 0) return;
    std::uint32_t lowest = 0xffffffffu, last = 0;
    for (Index i = first; i < items_.size(); ++i) {
      lowest = std::min(lowest, items_[i].level);
      last = std::max(last, end_level(i));
    }
    blocks_.push_back(
        {first, static_cast<Index>(items_.size()), more, lowest, last, network_in_flight});
  }

  [[nodiscard]] std::size_t size() const { return items_.size(); }
  [[nodiscard]] std::uint64_t steps() const { return levels_; }
  /// The last step an item occupies (for an item of a pipeline unit, the unit's last).
  [[nodiscard]] std::uint32_t end_level(Index i) const {
    if (!blocks_.empty() && i >= blocks_.front().first) {
      const auto it = std::upper_bound(blocks_.begin(), blocks_.end(), i,
                                       [](Index x, const Block& k) { return x < k.first; });
      if (it != blocks_.begin() && i < std::prev(it)->end) return std::prev(it)->last_level;
    }
    return items_[i].level + items_[i].repeats;
  }
  /// At most this many flows and tasks in the graph of a pipeline's units (see
  /// expanded_pipeline_end); past it fewer units are simulated and the rest extrapolated,
  /// and past 8 units' worth the pipeline's bounds stand in.
  void set_pipeline_expansion_flows(std::size_t flows) { pipeline_expansion_flows_ = flows; }
  /// The network flows that start in each step, one list per step, as mutable specs:
  /// what a schedule pass that spreads a step's flows over paths rewrites (their QPs). A
  /// repeated step is one list; its repeats have its content. Call it before evaluate();
  /// the pointers live until the next add().
  [[nodiscard]] std::vector<std::vector<FlowSpec*>> network_steps() {
    std::vector<std::vector<FlowSpec*>> by_level(levels_ + 1);
    for (Index i = 0; i < items_.size(); ++i) {
      Item& it = items_[i];
      if (it.domain == network_domain && !it.free && it.spec.src != it.spec.dst)
        by_level[it.level].push_back(&it.spec);
    }
    std::erase_if(by_level, [](const std::vector<FlowSpec*>& step) { return step.empty(); });
    return by_level;
  }
  /// The domain an item runs in (network_domain or host_domain).
  [[nodiscard]] std::uint8_t domain(Index i) const { return items_[i].domain; }

  /// Simulates each distinct step once and adds up the steps' times.
  [[nodiscard]] StepResult evaluate(const Fabric& fabric, const SimConfig& config) const;

 private:
  static constexpr Index none = 0xffffffffu;
  struct Item {
    FlowSpec spec;
    std::uint32_t level;
    std::uint32_t repeats;
    Index latest_dep;  ///< to refuse repeating items that depend on each other
    /// Per domain, the last step of the dependencies in it (0: none): the item starts
    /// when those steps have completed.
    std::array<std::uint32_t, 2> need;
    std::uint8_t domain;
    bool free;  ///< a task that takes no time
    /// A dependency in the hosts' domain in another host (or, through a task that takes
    /// no time, one in another host or with such a dependency itself): a host item with
    /// one waits for its `need` step to complete in every host; otherwise its own
    /// host's clock holds it. (No algorithm makes one; a plan may.)
    bool foreign_need;
  };
  struct Block {
    Index first, end;
    std::uint32_t more;
    std::uint32_t first_level;  ///< the unit's first step
    std::uint32_t last_level;   ///< the unit's last step
    std::uint32_t in_flight;    ///< units at once in a network stage (repeat_block)
  };

  /// A stage of a pipeline unit in one domain: consecutive steps, their time, and when
  /// they start and end in the first unit.
  struct Stage {
    std::uint32_t first_level, last_level;
    std::int64_t time, start, end;
    std::int64_t busy;  ///< of `time`, how long its busiest links carry bytes
  };

  /// A run of a pipeline unit's steps with one content, as the first unit ran it: when
  /// each domain started it and how long each of its steps took there, the domains the
  /// unit has items in (bit d), whether one barrier spans both domains, and how long of
  /// each network step its busiest links carry bytes.
  struct UnitRange {
    std::uint32_t first_level, count;
    std::array<std::int64_t, 2> start, step;
    std::uint8_t domains;
    bool joint;
    std::int64_t busy;
  };

  /// A flow that stands in for one network step of a pipeline unit in the units' graph
  /// (expanded_pipeline_end): between the ends of the unit's first network flow, a path
  /// the fabric has, out of a NIC that nothing else in that graph uses, sized to keep the
  /// path's slowest link busy as long as the step kept its busiest links busy. Units in
  /// flight at once so share that link as their steps' flows share their NICs.
  struct NetworkStandIn {
    FlowSpec base;  ///< its ends and QP
    /// The links the unit's first flow took, which every stand-in is pinned to: a QP of
    /// its own must not move it to another NIC port or path, where it would not share.
    std::vector<LinkIndex> path;
    double bytes_per_ps = 0;  ///< the path's rate, alone on it
    std::int64_t fixed = 0;   ///< its start-up and path latency
    [[nodiscard]] bool found() const { return bytes_per_ps > 0; }
    /// The stand-in of a step that kept its links busy for `busy` picoseconds.
    [[nodiscard]] FlowSpec flow(std::int64_t busy) const {
      FlowSpec f = base;
      f.size = Bytes::of(static_cast<std::uint64_t>(
          std::llround(static_cast<double>(std::max<std::int64_t>(0, busy)) * bytes_per_ps)));
      return f;
    }
    /// What a step of `step` picoseconds, `busy` of them carrying bytes, takes beyond its
    /// stand-in alone: the rest of its start-ups and path latency.
    [[nodiscard]] Picoseconds rest(std::int64_t step, std::int64_t busy) const {
      return Picoseconds::ps(std::max<std::int64_t>(0, step - busy - fixed));
    }
  };

  /// The stand-in of pipeline unit `block`'s network steps, from two flows simulated
  /// alone on its path (one empty, one of 1 MiB); not found() where the unit has no
  /// network flow.
  NetworkStandIn network_stand_in(const Block& block, const Fabric& fabric, const SimConfig& config,
                                  StepResult& result) const {
    NetworkStandIn s;
    Index first = block.end;
    for (Index i = block.first; i < block.end && first == block.end; ++i) {
      const Item& it = items_[i];
      if (!it.free && it.domain == network_domain && it.spec.src != it.spec.dst) first = i;
    }
    if (first == block.end) return s;
    s.base = {items_[first].spec.src, items_[first].spec.dst, Bytes{}, items_[first].spec.qp, {}};
    // Its path: the links a one-byte flow between its ends takes.
    {
      SimConfig with_links = config;
      with_links.link_statistics = true;
      FlowGraph one;
      FlowSpec b = s.base;
      b.size = Bytes::of(1);
      one.add(b);
      const SimResult routed = simulate(fabric, one, with_links);
      ++result.evaluations;
      ++result.flows_evaluated;
      NodeIndex at = s.base.src;
      while (at != s.base.dst) {
        LinkIndex next = no_link_index;
        for (LinkIndex l = 0; l < fabric.link_count() && next == no_link_index; ++l)
          if (routed.link_bytes[l] > 0 && fabric.link(l).from == at) next = l;
        if (next == no_link_index || s.path.size() >= fabric.link_count()) return NetworkStandIn{};
        s.path.push_back(next);
        at = fabric.link(next).to;
      }
    }
    constexpr std::uint64_t probe = std::uint64_t{1} << 20;
    std::array<std::int64_t, 2> took{};
    for (std::size_t j = 0; j < 2; ++j) {
      FlowGraph g;
      FlowSpec f = s.base;
      f.size = Bytes::of(j == 0 ? 0 : probe);
      g.add_pinned(f, s.path);
      const SimResult r = simulate(fabric, g, config);
      ++result.evaluations;
      ++result.flows_evaluated;
      result.rate_solves += r.rate_solves;
      result.flows_solved += r.flows_solved;
      took[j] = r.makespan.count();
    }
    if (took[1] <= took[0]) return s;
    s.fixed = took[0];
    s.bytes_per_ps = static_cast<double>(probe) / static_cast<double>(took[1] - took[0]);
    return s;
  }

  /// When the last unit of pipeline k ends, from every unit's steps in one flow graph
  /// (the model of steps mode, units overlapping), or -1 where that graph would be too
  /// large. The graph holds, for each unit and each of its runs of steps:
  ///  - in the network: a unit enters a stage when the unit `in_flight` before it has
  ///    left it. With one in flight (a stage takes the units one after another, and
  ///    nothing of another unit shares its links), one task as long as the run's steps
  ///    took the first unit. With more, the units in a stage share its links, each step's
  ///    bytes with the others' at max-min rates, while its start-ups and path latency run
  ///    under their bytes: each step is a stand-in flow that keeps a link busy as long as
  ///    the step kept its busiest links busy (NetworkStandIn), then a task for the rest of
  ///    the step's time. Every stand-in takes the same path, so the units' steps share it
  ///    as the units' flows share their NICs;
  ///  - in the hosts: one host of each distinct content over the unit (a class of hosts,
  ///    which run the unit alike), each with its own chain of steps (hosts share no
  ///    link): a step's flows, then a barrier. Here stages of different units share links
  ///    (a chunk's reduce-scatter and an earlier chunk's all-gather over the same
  ///    NVLinks), which is what the flow engine resolves;
  ///  - a run's steps start after the domain's previous steps of the same unit (in the
  ///    hosts, the class's), after the steps of the other domain its items depend on,
  ///    and, for a stage's first run, after the unit before has left that stage (in the
  ///    hosts, the class's part of it).
  /// Past `pipeline_expansion_flows` the graph holds fewer units, and the last of the
  /// `more` ends are extrapolated from the period between the last two halves of them:
  /// by then the pipeline is in its steady state.
  template <class Mul>
  std::int64_t expanded_pipeline_end(std::size_t k, const std::vector<UnitRange>& ranges,
                                     const Fabric& fabric, const SimConfig& config,
                                     StepResult& result, const Mul& checked_mul) const {
    const Block& block = blocks_[k];
    if (ranges.empty()) return -1;
    // The run holding `level`, or ranges.size() (the unit has no timed item there).
    const auto range_of = [&](std::uint32_t level) {
      const auto it =
          std::upper_bound(ranges.begin(), ranges.end(), level,
                           [](std::uint32_t l, const UnitRange& r) { return l < r.first_level; });
      if (it == ranges.begin() || level - std::prev(it)->first_level >= std::prev(it)->count)
        return ranges.size();
      return static_cast<std::size_t>(std::prev(it) - ranges.begin());
    };
    // Whether run r continues domain d's stage from run r - 1.
    const auto continues = [&](std::size_t r, std::uint8_t d) {
      return r > 0 && (ranges[r - 1].domains >> d & 1u) != 0 &&
             (ranges[r].domains >> d & 1u) != 0 &&
             ranges[r - 1].first_level + ranges[r - 1].count == ranges[r].first_level;
    };
    // One host of each distinct content: its flows and timed tasks, in posting order.
    std::vector<Index> timed;  // the unit's items in the hosts' domain that take time
    for (Index i = block.first; i < block.end; ++i)
      if (!items_[i].free && items_[i].domain == host_domain) timed.push_back(i);
    bool outside = false;
    auto hosts = distinct_hosts(
        fabric, timed.size(),
        [&](std::size_t j) -> const FlowSpec& { return items_[timed[j]].spec; },
        [&](std::size_t j) {
          const Item& it = items_[timed[j]];
          return std::uint64_t{it.level - block.first_level} << 32 | it.repeats;
        },
        outside);
    if (outside) return -1;
    for (auto& list : hosts)
      for (auto& j : list) j = timed[j];
    // Per run and host class (the hosts of one content over the whole unit, which also
    // run it at the same times): the representative's items active in the run (an item
    // spans its level and its repeats; a run's content is the same over its steps).
    const std::size_t classes = hosts.size();
    std::vector<std::vector<std::vector<Index>>> active(ranges.size(),
                                                        std::vector<std::vector<Index>>(classes));
    std::size_t per_unit = 0;  // graph entries per unit
    for (std::size_t x = 0; x < classes; ++x) {
      for (Index i : hosts[x]) {
        const Item& it = items_[i];
        const std::size_t first = range_of(it.level);
        if (first == ranges.size()) return -1;  // cannot happen: items have runs
        for (std::size_t r = first;
             r < ranges.size() && ranges[r].first_level <= it.level + it.repeats; ++r) {
          active[r][x].push_back(i);
          per_unit += ranges[r].count;
        }
      }
    }
    for (const UnitRange& r : ranges) per_unit += (3 + std::size_t{r.count}) * (classes + 3);
    // Per run and domain: the runs of the same unit, in either domain, that its new items
    // wait for.
    const auto slot = [](std::size_t r, std::uint8_t d) { return 2 * r + d; };
    std::vector<std::vector<std::size_t>> needs(2 * ranges.size());
    for (Index i = block.first; i < block.end; ++i) {
      const Item& it = items_[i];
      if (it.free) continue;
      const std::size_t r = range_of(it.level);
      // Cannot happen: a run starts where an item does.
      if (r == ranges.size() || ranges[r].first_level != it.level) return -1;
      for (std::uint8_t dd = 0; dd < 2; ++dd) {
        if (it.need[dd] < block.first_level) continue;  // before the unit: in `start`
        const std::size_t j = range_of(it.need[dd]);
        // Waits for a step of the other domain that holds no item of the unit.
        if (j == ranges.size() || (ranges[j].domains >> dd & 1u) == 0) return -1;
        auto& list = needs[slot(r, it.domain)];
        if (std::find(list.begin(), list.end(), slot(j, dd)) == list.end())
          list.push_back(slot(j, dd));
      }
    }
    const NodeIndex anchor =
        hosts.empty() ? items_[block.first].spec.src : items_[hosts.front().front()].spec.src;
    const std::uint32_t in_flight = block.in_flight;
    NetworkStandIn stand_in;
    // Per run, the QP its stand-ins take: one per peer the stand-in's GPU sends to in the
    // run. Units at steps with one peer queue on one connection, as their flows do;
    // units at steps with different peers share the NIC.
    std::vector<std::uint32_t> run_qp(ranges.size(), 0);
    if (in_flight > 1) {
      stand_in = network_stand_in(block, fabric, config, result);
      if (!stand_in.found()) return -1;
      for (Index i = block.first; i < block.end; ++i) {
        const Item& it = items_[i];
        if (it.free || it.domain != network_domain || it.spec.src != stand_in.base.src) continue;
        const std::size_t r = range_of(it.level);
        if (r < ranges.size() && run_qp[r] == 0)
          run_qp[r] = static_cast<std::uint32_t>(fmix64(std::uint64_t{it.spec.dst} + 1)) | 1u;
      }
    }
    std::int64_t origin = Picoseconds::max().count();
    for (const UnitRange& r : ranges) {
      for (std::uint8_t d = 0; d < 2; ++d)
        if (r.domains >> d & 1u) origin = std::min(origin, r.start[d]);
    }
    // The end of the first `units` units, from the origin.
    const auto simulate_units = [&](std::uint64_t units) {
      FlowGraph g;
      constexpr FlowId no_flow = ~FlowId{0};
      const std::size_t slots = 2 * ranges.size();
      // Per slot: this unit's end of the run (in the hosts' domain: of every class with
      // items in it), and the last unit's. Per slot and class in the hosts' domain: the
      // class's latest end as of that run (no_flow: nothing yet in this unit).
      std::vector<FlowId> done(slots, 0), previous(slots, 0);
      std::vector<FlowId> class_done(slots * classes, no_flow), class_previous;
      // The network's done of the last `in_flight` units (unit u's in slot u mod
      // in_flight).
      std::vector<std::vector<FlowId>> network_history(in_flight > 1 ? in_flight : 0);
      const auto at = [&](std::size_t slot, std::size_t x) { return slot * classes + x; };
      for (std::uint64_t u = 0; u < units; ++u) {
        FlowId network_last = 0;  // this unit's latest network run
        bool network_seen = false;
        std::vector<FlowId> class_last(classes, no_flow);  // per class, its latest end
        std::fill(class_done.begin(), class_done.end(), no_flow);
        for (std::size_t r = 0; r < ranges.size(); ++r) {
          const UnitRange& run = ranges[r];
          // The stage's last run, for the next unit to wait for: a stage takes the units
          // one after another.
          const auto stage_end = [&](std::uint8_t d) {
            std::size_t e = r;
            while (e + 1 < ranges.size() && continues(e + 1, d)) ++e;
            return slot(e, d);
          };
          // The first unit starts no earlier than it did in the sweep (which also holds
          // what the unit waits for before it).
          const auto not_before = [&](FlowId start, std::uint8_t d) {
            if (u != 0) return;
            const FlowId t = g.add(local_task(anchor, Picoseconds::ps(run.start[d] - origin)));
            g.depends_on(start, t);
          };
          // What a run waits for in the other domain (and, in the network, in its own).
          const auto wait_needs = [&](FlowId start, std::uint8_t d, std::size_t x) {
            for (std::size_t j : needs[slot(r, d)]) {
              const bool host_slot = j % 2 == host_domain;
              if (host_slot && d == host_domain) {
                if (class_done[at(j, x)] != no_flow) g.depends_on(start, class_done[at(j, x)]);
              } else {
                g.depends_on(start, done[j]);
              }
            }
          };
          if (run.joint) {
            // One barrier over both domains: the run as the sweep timed it.
            const FlowId start = g.add(local_task(anchor, {}));
            if (network_seen) g.depends_on(start, network_last);
            for (std::size_t x = 0; x < classes; ++x)
              if (class_last[x] != no_flow) g.depends_on(start, class_last[x]);
            for (std::uint8_t d = 0; d < 2; ++d) {
              if ((run.domains >> d & 1u) == 0) continue;
              for (std::size_t j : needs[slot(r, d)]) g.depends_on(start, done[j]);
              if (u > 0 && !continues(r, d)) g.depends_on(start, previous[stage_end(d)]);
              not_before(start, d);
            }
            const FlowId t = g.add(local_task(
                anchor, Picoseconds::ps(run.step[0] * static_cast<std::int64_t>(run.count))));
            g.depends_on(t, start);
            done[slot(r, network_domain)] = done[slot(r, host_domain)] = t;
            network_last = t;
            network_seen = true;
            for (std::size_t x = 0; x < classes; ++x)
              class_last[x] = class_done[at(slot(r, host_domain), x)] = t;
            continue;
          }
          if (run.domains >> network_domain & 1u) {
            const FlowId start = g.add(local_task(anchor, {}));
            if (network_seen) g.depends_on(start, network_last);
            wait_needs(start, network_domain, 0);
            const bool enters = !continues(r, network_domain);
            if (u > 0 && enters && in_flight == 1)
              g.depends_on(start, previous[stage_end(network_domain)]);
            if (u >= in_flight && enters && in_flight > 1)
              g.depends_on(start, network_history[u % in_flight][stage_end(network_domain)]);
            not_before(start, network_domain);
            if (in_flight > 1) {
              // Each step: its stand-in flow, then the rest of its time.
              FlowId end = start;
              FlowSpec flow = stand_in.flow(run.busy);
              flow.qp = run_qp[r];
              const Picoseconds rest = stand_in.rest(run.step[0], run.busy);
              for (std::uint32_t c = 0; c < run.count; ++c) {
                const FlowId f = g.add_pinned(flow, stand_in.path);
                g.depends_on(f, end);
                end = g.add(local_task(anchor, rest));
                g.depends_on(end, f);
              }
              done[slot(r, network_domain)] = network_last = end;
            } else {
              const FlowId end = g.add(local_task(
                  anchor, Picoseconds::ps(run.step[0] * static_cast<std::int64_t>(run.count))));
              g.depends_on(end, start);
              done[slot(r, network_domain)] = network_last = end;
            }
            network_seen = true;
          }
          if (run.domains >> host_domain & 1u) {
            // Each class of hosts on its own (hosts share no link): its steps' flows, each
            // step ending when they are delivered; the run ends when every class's has.
            const FlowId joined = g.add(local_task(anchor, {}));
            for (std::size_t x = 0; x < classes; ++x) {
              if (active[r][x].empty()) {
                class_done[at(slot(r, host_domain), x)] = class_last[x];
                continue;
              }
              const FlowId start = g.add(local_task(anchor, {}));
              if (class_last[x] != no_flow) g.depends_on(start, class_last[x]);
              wait_needs(start, host_domain, x);
              if (u > 0 && !continues(r, host_domain)) {
                const FlowId before = class_previous[at(stage_end(host_domain), x)];
                if (before != no_flow) g.depends_on(start, before);
              }
              not_before(start, host_domain);
              FlowId end = start;
              for (std::uint32_t c = 0; c < run.count; ++c) {
                const FlowId barrier = g.add(local_task(anchor, {}));
                g.depends_on(barrier, end);
                for (Index i : active[r][x]) {
                  const FlowId f = g.add(items_[i].spec);
                  g.depends_on(f, end);
                  g.depends_on(barrier, f);
                }
                end = barrier;
              }
              class_last[x] = class_done[at(slot(r, host_domain), x)] = end;
              g.depends_on(joined, end);
            }
            done[slot(r, host_domain)] = joined;
          }
        }
        previous = done;
        class_previous = class_done;
        if (in_flight > 1) network_history[u % in_flight] = done;
      }
      const SimResult out = simulate(fabric, g, config);
      ++result.evaluations;
      result.flows_evaluated += g.size();
      result.rate_solves += out.rate_solves;
      result.flows_solved += out.flows_solved;
      return out.makespan.count();
    };
    const std::uint64_t units = std::uint64_t{block.more} + 1;
    if (units * per_unit <= pipeline_expansion_flows_) return origin + simulate_units(units);
    const std::uint64_t fit = pipeline_expansion_flows_ / per_unit;
    if (fit < 8) return -1;
    const std::int64_t whole = simulate_units(fit), half = simulate_units(fit / 2);
    const double period = static_cast<double>(whole - half) / static_cast<double>(fit - fit / 2);
    return origin + whole +
           checked_mul(static_cast<std::int64_t>(std::llround(period)), units - fit);
  }

  /// When the last unit of pipeline k ends: from the units' graph, or where that is too
  /// large the later of two bounds.
  ///  - Stages: every stage takes the units one after another, so the last unit ends
  ///    `more` times the longest stage after the first unit did (a network stage that
  ///    holds several units at once: its time shared among them, never less than its busy
  ///    time, stage_period).
  ///  - Domains: each works `more` periods past the first unit's work in it. A domain ends
  ///    when the first unit reaches it, plus its stages' time in one unit, plus `more`
  ///    periods, plus what follows its last stage in one unit. A domain of one stage so
  ///    ends one unit plus `more` periods after the unit's start; a domain of several,
  ///    whose stages of different units overlap, does not count the other domain's time
  ///    between its stages again.
  /// Where the network bounds the pipeline the bounds are the per-operation schedule's
  /// time within 2%; where the NVLink phases do, they leave out the fill and drain and
  /// how the stages that share NVLinks overlap, up to 43% slow (docs/collectives.md, "Steps
  /// mode").
  template <class Mul>
  std::int64_t pipeline_end(std::size_t k, const std::array<std::vector<Stage>, 2>& stages,
                            const std::vector<UnitRange>& ranges, const Fabric& fabric,
                            const SimConfig& config, StepResult& result,
                            const Mul& checked_mul) const {
    const std::int64_t expanded =
        expanded_pipeline_end(k, ranges, fabric, config, result, checked_mul);
    if (expanded >= 0) return expanded;
    // Each stage handles the units one after another: the last unit leaves the longest
    // stage `more` of its times after the first did.
    std::int64_t last = 0, longest = 0;
    for (std::uint8_t d = 0; d < 2; ++d) {
      for (const Stage& st : stages[d]) {
        last = std::max(last, st.end);
        longest = std::max(longest, stage_period(k, d, st));
      }
    }
    const auto period = block_periods(k, stages, fabric, config, result);
    std::int64_t end = last + checked_mul(longest, blocks_[k].more);
    for (std::uint8_t d = 0; d < 2; ++d) {
      const auto& list = stages[d];
      if (list.empty()) continue;
      std::int64_t busy = 0;
      for (const Stage& st : list) busy += st.time;
      end = std::max(end, list.front().start + busy + checked_mul(period[d], blocks_[k].more) +
                              (last - list.back().end));
    }
    return end;
  }

  /// What a node is to a flow inside its host, independent of which host: its kind, its
  /// local rank, and the rate, latency and health of its NVLink. Two hosts whose flows
  /// have the same codes in the same order take the same time.
  static std::uint64_t host_node_code(const Fabric& fabric, NodeIndex n) {
    std::uint64_t code =
        std::uint64_t{static_cast<std::uint8_t>(fabric.kind(n))} << 16 | fabric.local_rank(n);
    const LinkIndex l =
        fabric.kind(n) == FabricNodeKind::endpoint ? nvlink_of(fabric, n) : no_link_index;
    if (l != no_link_index) {
      const FabricLink& k = fabric.link(l);
      code = fmix64(code ^ fmix64(std::bit_cast<std::uint64_t>(k.usable().in_bytes_per_second())));
      code = fmix64(code ^ static_cast<std::uint64_t>(k.latency.count()) ^
                    (k.alive() ? 0x5bd1e995ULL : 0));
    }
    return code;
  }

  /// `code` with one entry of a host's content folded in: its ends as host_node_code sees
  /// them (`src_code`, `dst_code`), its size, QP and delay. Hosts whose entries fold to
  /// the same code in the same order take the same time.
  static std::uint64_t with_entry(std::uint64_t code, std::uint64_t src_code,
                                  std::uint64_t dst_code, const FlowSpec& f) {
    code = fmix64(code ^ src_code);
    code = fmix64(code ^ (dst_code << 1));
    code = fmix64(code ^ static_cast<std::uint64_t>(f.size.count()));
    return fmix64(code ^ (std::uint64_t{f.qp} << 32) ^ static_cast<std::uint64_t>(f.delay.count()));
  }

  /// Entries 0..n-1 (flows or tasks, `spec(j)`, each inside one host) grouped by host,
  /// in order within each; one host's entries per distinct content (the node codes,
  /// sizes, QPs and delays of its entries in order, and `extra(j)`), in host order. A
  /// content whose code matches another's but not its entry count and bytes (a hash
  /// collision) is kept apart. Empty, with `outside` set, when an entry names a node the
  /// fabric does not have or crosses hosts.
  template <class SpecOf, class ExtraOf>
  static std::vector<std::vector<std::uint32_t>> distinct_hosts(const Fabric& fabric, std::size_t n,
                                                                const SpecOf& spec,
                                                                const ExtraOf& extra,
                                                                bool& outside) {
    outside = false;
    std::vector<std::uint64_t> by_host;
    by_host.reserve(n);
    for (std::size_t j = 0; j < n; ++j) {
      const FlowSpec& f = spec(j);
      if (f.src >= fabric.node_count() || f.dst >= fabric.node_count() ||
          fabric.host(f.src) != fabric.host(f.dst)) {
        outside = true;
        return {};
      }
      by_host.push_back(std::uint64_t{fabric.host(f.src)} << 32 | j);
    }
    std::sort(by_host.begin(), by_host.end());
    struct Seen {
      std::size_t entries;
      double bytes;
    };
    std::unordered_map<std::uint64_t, Seen> seen;
    std::vector<std::vector<std::uint32_t>> hosts;
    for (std::size_t a = 0; a < by_host.size();) {
      std::size_t b = a;
      std::uint64_t code = 0x243f6a8885a308d3ULL;
      double bytes = 0;
      for (; b < by_host.size() && by_host[b] >> 32 == by_host[a] >> 32; ++b) {
        const auto j = static_cast<std::uint32_t>(by_host[b] & 0xffffffffu);
        const FlowSpec& f = spec(j);
        code = with_entry(code, host_node_code(fabric, f.src), host_node_code(fabric, f.dst), f);
        code = fmix64(code ^ extra(j));
        bytes += static_cast<double>(f.size.count());
      }
      const auto [it, inserted] = seen.try_emplace(code, Seen{b - a, bytes});
      if (inserted || it->second.entries != b - a || it->second.bytes != bytes) {
        auto& list = hosts.emplace_back();
        for (std::size_t c = a; c < b; ++c)
          list.push_back(static_cast<std::uint32_t>(by_host[c] & 0xffffffffu));
      }
      a = b;
    }
    return hosts;
  }

  /// How long the flows and tasks of `graph`, all ready at zero, take in domain `d`. The
  /// host domain's hosts share no link (each has its own NVLinks and NVSwitch), so its
  /// time is the slowest host's: hosts whose content is the same (the same flows between
  /// the same local GPUs, over NVLinks of the same rates and latencies, in the same
  /// order) are simulated once. A million-GPU step simulates one host of 8 GPUs, not
  /// 125,000. The network domain is simulated whole.
  static SimResult simulate_domain(std::uint8_t d, const Fabric& fabric, const FlowGraph& graph,
                                   const SimConfig& config) {
    if (d != host_domain) return simulate(fabric, graph, config);
    bool outside = false;
    const auto hosts = distinct_hosts(
        fabric, graph.size(),
        [&](std::size_t f) -> const FlowSpec& { return graph.flow(static_cast<FlowId>(f)); },
        [](std::size_t) { return std::uint64_t{0}; }, outside);
    // A node the fabric does not have, or a flow between hosts: the whole graph's
    // simulation names the error.
    if (outside) return simulate(fabric, graph, config);
    SimResult out;
    for (const auto& list : hosts) {
      FlowGraph host;
      for (std::uint32_t f : list) host.add(graph.flow(f));
      const SimResult r = simulate(fabric, host, config);
      out.makespan = std::max(out.makespan, r.makespan);
      out.rate_solves += r.rate_solves;
      out.flows_solved += r.flows_solved;
    }
    return out;
  }

  /// How often a stage of pipeline k can take a unit: its time, or in a network stage
  /// that holds several units at once (Block::in_flight), its time shared among them but
  /// never less than its busy time.
  [[nodiscard]] std::int64_t stage_period(std::size_t k, std::uint8_t d, const Stage& st) const {
    const std::int64_t n = blocks_[k].in_flight;
    if (d != network_domain || n <= 1) return st.time;
    return std::max(st.busy, (st.time + n - 1) / n);
  }

  /// A pipeline unit's period in each domain: how long the domain takes per unit once
  /// units overlap. A domain with one stage takes that stage's time (a unit's stage waits
  /// for the previous unit's). A domain with several runs them side by side, stages of
  /// different units sharing its links (both ways: NVLS's reduce-scatter loads
  /// GPU-to-switch links, its multicast switch-to-GPU links): the period is the longest
  /// stage alone, or all the stages' flows at once plus the longest stage's latency (its
  /// time alone less its flows at once), whichever is longer. A flow repeated r times
  /// counts r + 1 times its bytes.
  std::array<std::int64_t, 2> block_periods(std::size_t k,
                                            const std::array<std::vector<Stage>, 2>& stages,
                                            const Fabric& fabric, const SimConfig& config,
                                            StepResult& result) const {
    auto at_once = [&](std::uint8_t d, std::uint32_t first_level, std::uint32_t last_level) {
      FlowGraph g;
      for (Index i = blocks_[k].first; i < blocks_[k].end; ++i) {
        const Item& it = items_[i];
        if (it.free || it.spec.src == it.spec.dst || it.domain != d) continue;
        if (it.level < first_level || it.level > last_level) continue;
        FlowSpec f = it.spec;
        f.size = f.size * (std::uint64_t{it.repeats} + 1);
        g.add(f);
      }
      if (g.size() == 0) return std::int64_t{0};
      const SimResult r = simulate_domain(d, fabric, g, config);
      ++result.evaluations;
      result.flows_evaluated += g.size();
      result.rate_solves += r.rate_solves;
      result.flows_solved += r.flows_solved;
      return r.makespan.count();
    };
    std::array<std::int64_t, 2> period{0, 0};
    for (std::uint8_t d = 0; d < 2; ++d) {
      std::int64_t longest = 0, latency = 0;
      for (const Stage& st : stages[d]) {
        longest = std::max(longest, stage_period(k, d, st));
        if (stages[d].size() > 1)
          latency = std::max(latency, st.time - at_once(d, st.first_level, st.last_level));
      }
      std::int64_t t = longest;
      if (stages[d].size() > 1) t = std::max(t, at_once(d, 0, 0xffffffffu) + latency);
      period[d] = t;
    }
    return period;
  }

  /// Whether two items' sources sit in one host (without a fabric there is one domain,
  /// and the question does not arise). A node off the fabric or in the network is in
  /// no host.
  [[nodiscard]] bool same_host(const FlowSpec& a, const FlowSpec& b) const {
    if (fabric_ == nullptr) return true;
    const std::size_t n = fabric_->node_count();
    const auto in_host = [&](NodeIndex x) {
      return x < n && fabric_->kind(x) != FabricNodeKind::network_switch;
    };
    return in_host(a.src) && in_host(b.src) && fabric_->host(a.src) == fabric_->host(b.src);
  }

  [[nodiscard]] std::uint8_t domain_of(const FlowSpec& s) const {
    if (fabric_ == nullptr) return network_domain;
    if (s.src == s.dst) return host_domain;
    const auto is_switch = [&](NodeIndex n) {
      return n < fabric_->node_count() && fabric_->kind(n) == FabricNodeKind::nvswitch;
    };
    if (is_switch(s.src) || is_switch(s.dst)) return host_domain;
    return over_nvlink(*fabric_, s.src, s.dst) ? host_domain : network_domain;
  }

  /// Items in fixed blocks: a million-rank schedule holds tens of millions of them, which
  /// a vector would copy each time it grows and a deque allocates a few at a time.
  class ItemStore {
   public:
    [[nodiscard]] std::size_t size() const { return size_; }
    Item& operator[](std::size_t i) { return blocks_[i >> shift][i & mask]; }
    const Item& operator[](std::size_t i) const { return blocks_[i >> shift][i & mask]; }
    void push_back(const Item& item) {
      if ((size_ & mask) == 0) blocks_.push_back(std::make_unique<Item[]>(mask + 1));
      blocks_[size_ >> shift][size_ & mask] = item;
      ++size_;
    }

   private:
    static constexpr unsigned shift = 16;  // 65,536 items (3.7 MB) a block
    static constexpr std::size_t mask = (std::size_t{1} << shift) - 1;
    std::vector<std::unique_ptr<Item[]>> blocks_;
    std::size_t size_ = 0;
  };

  const Fabric* fabric_ = nullptr;
  ItemStore items_;
  std::vector<Block> blocks_;
  std::uint64_t levels_ = 0;
  std::size_t pipeline_expansion_flows_ = std::size_t{1} << 21;
  /// The fewest steps of a ring pass simulated to extrapolate the rest from: with fewer,
  /// the channels have not yet drifted into their steady state (16, 32 and 64 hosts of 8
  /// GPUs, 8 channels, 64 MiB and 1 GiB, against the whole pass: 10 steps up to 7.9%
  /// off, 32 steps up to 4.3%, 64 steps within 1.6%).
  static constexpr std::uint64_t ring_window_steps = 64;
  /// Transfers a ring connection holds at once (NCCL_STEPS, as the ring passes of
  /// coll/phases.hpp post them): the last this many flows into a GPU stand for every write
  /// into it, which the pass after waits for.
  static constexpr std::uint64_t ring_pass_slots = 8;
};

inline StepResult StepSchedule::evaluate(const Fabric& fabric, const SimConfig& simulation) const {
  // Only times are wanted from the steps' simulations.
  SimConfig config = simulation;
  config.link_statistics = false;
  StepResult result;
  result.items = items_.size();
  result.steps = levels_;
  // Segments: consecutive items that occupy the same steps (and the same pipeline unit).
  struct Segment {
    std::uint32_t first_level, last_level;
    Index begin, end;
    std::uint8_t domains;  ///< bit d: has items in domain d
    std::uint32_t block;   ///< index into blocks_, or none
  };
  std::vector<Segment> segments;
  std::size_t next_block = 0;
  for (Index i = 0; i < items_.size(); ++i) {
    const Item& it = items_[i];
    const std::uint32_t last = it.level + it.repeats;
    while (next_block < blocks_.size() && blocks_[next_block].end <= i) ++next_block;
    const std::uint32_t block = next_block < blocks_.size() && blocks_[next_block].first <= i
                                    ? static_cast<std::uint32_t>(next_block)
                                    : none;
    const auto bit = static_cast<std::uint8_t>(it.free ? 0 : 1u << it.domain);
    if (!segments.empty() && segments.back().end == i && segments.back().first_level == it.level &&
        segments.back().last_level == last && segments.back().block == block) {
      segments.back().end = i + 1;
      segments.back().domains |= bit;
    } else {
      segments.push_back({it.level, last, i, i + 1, bit, block});
    }
  }
  // Per pipeline unit and domain: its stages, the stretches of consecutive steps it has
  // items in (a stage's steps wait for each other).
  std::vector<std::array<std::vector<Stage>, 2>> stages(blocks_.size());
  std::vector<std::vector<UnitRange>> unit_ranges(blocks_.size());
  // Sweep the levels: between consecutive boundaries the active segments, hence the
  // step's content, stay the same.
  struct Boundary {
    std::uint64_t level;
    std::uint32_t segment;
    bool opens;
  };
  std::vector<Boundary> bounds;
  bounds.reserve(segments.size() * 2);
  for (std::uint32_t s = 0; s < segments.size(); ++s) {
    // Tasks that take no time change no step (see below): a segment of only those would
    // cut a run of identical steps in two (a ring's reduce-scatter at its finishes).
    if (segments[s].domains == 0) continue;
    bounds.push_back({segments[s].first_level, s, true});
    bounds.push_back({std::uint64_t{segments[s].last_level} + 1, s, false});
  }
  std::sort(bounds.begin(), bounds.end(),
            [](const Boundary& a, const Boundary& b) { return a.level < b.level; });
  std::vector<std::uint32_t> active;                     // segment ids, unordered
  std::vector<std::uint32_t> where(segments.size(), 0);  // position in `active`
  struct Cached {
    Picoseconds time;
    std::size_t flows, tasks;
    double bytes;
    std::int64_t busy = 0;  ///< a network step: first byte sent to last (SimResult)
  };
  std::unordered_map<std::uint64_t, Cached> cache;
  // Per range of levels with one content: when each domain started it and how long each
  // of its steps took, so a dependency on any step can be looked up.
  // `start` is the earliest start in the domain (in the hosts' domain, of any host),
  // `step` the longest step, `end` when the range's last step has completed everywhere.
  struct Range {
    std::uint64_t first_level, count;
    std::array<std::int64_t, 2> start, step, end;
    std::int64_t busy;  ///< of a network step, how long its busiest links carry bytes
  };
  std::vector<Range> ranges;
  std::array<std::int64_t, 2> clock{0, 0};  // when each domain's last step completed
  auto finish_of = [&](std::uint8_t d, std::uint32_t level) -> std::int64_t {
    // The range holding `level` (levels are dense and ranges sorted by first level).
    auto it = std::upper_bound(ranges.begin(), ranges.end(), std::uint64_t{level},
                               [](std::uint64_t l, const Range& r) { return l < r.first_level; });
    if (it == ranges.begin()) return 0;
    --it;
    const std::uint64_t done = std::min(std::uint64_t{level} - it->first_level + 1, it->count);
    return it->end[d] - it->step[d] * static_cast<std::int64_t>(it->count - done);
  };
  // The hosts' domain keeps a clock per host: hosts share no link, so a host's step
  // starts when that host's previous step has completed (and what its items wait for in
  // the network has), not when every host's has. (Rabenseifner over a host count that
  // is not a power of two: the host that folded into a partner starts its all-gather a
  // step after the others, which do not wait for it.) A pipeline's end, which every
  // domain waits for, raises them all at once (`host_floor`).
  // Hosts numbered densely; the last slot takes the items that name a node the fabric
  // does not have or cross hosts, simulated together so the flow engine names the error.
  std::vector<std::uint32_t> slot_of(fabric.node_count(), 0);
  std::uint32_t off_fabric = 0;
  {
    std::unordered_map<std::uint32_t, std::uint32_t> dense;
    for (NodeIndex n = 0; n < fabric.node_count(); ++n) {
      if (fabric.kind(n) != FabricNodeKind::endpoint && fabric.kind(n) != FabricNodeKind::nvswitch)
        continue;
      slot_of[n] =
          dense.try_emplace(fabric.host(n), static_cast<std::uint32_t>(dense.size())).first->second;
    }
    off_fabric = static_cast<std::uint32_t>(dense.size());
    for (NodeIndex n = 0; n < fabric.node_count(); ++n) {
      if (fabric.kind(n) != FabricNodeKind::endpoint && fabric.kind(n) != FabricNodeKind::nvswitch)
        slot_of[n] = off_fabric;
    }
  }
  const auto host_of = [&](const FlowSpec& f) {
    if (f.src >= fabric.node_count() || f.dst >= fabric.node_count()) return off_fabric;
    const std::uint32_t h = slot_of[f.src];
    return h == slot_of[f.dst] ? h : off_fabric;
  };
  const std::size_t host_slots = std::size_t{off_fabric} + 1;
  std::vector<std::int64_t> host_clock(host_slots, 0);
  std::int64_t host_floor = 0;
  struct HostStep {
    std::uint64_t code = 0;  ///< the host's content in this step (host_node_code, sizes...)
    std::size_t entries = 0;
    double bytes = 0;
    std::int64_t ready = 0;     ///< when the host may start the step
    std::uint64_t stamp = 0;    ///< the step this is for (1-based level)
    std::uint32_t graph = 0;    ///< the new content it has (index into `fresh`), or none
    bool builds_graph = false;  ///< its items make that content's graph
    std::int64_t each = 0;      ///< how long its step takes
  };
  std::vector<HostStep> host_at(host_slots);
  std::vector<std::uint32_t> touched;  // hosts with items in the step
  std::vector<Index> host_items;       // the step's timed items in the hosts' domain
  constexpr std::uint64_t unknown = ~std::uint64_t{0};
  std::vector<std::uint64_t> node_code(fabric.node_count(), unknown);  // host_node_code
  const auto code_of = [&](NodeIndex n) {
    if (n >= fabric.node_count()) return std::uint64_t{n};
    if (node_code[n] == unknown) node_code[n] = host_node_code(fabric, n);
    return node_code[n];
  };
  const auto overflow = [](std::uint64_t count, Picoseconds each) {
    return InputError("simulation: " + std::to_string(count) + " steps of " +
                      std::to_string(each.in_us()) +
                      " us would end more than 106 days into the simulation, past what "
                      "integer picoseconds hold: a link is too slow for this size");
  };
  // A product is refused past a quarter of what picoseconds hold, so the few sums of
  // products that make a domain's clock (a start plus steps, plus a pipeline's periods)
  // stay in range.
  const auto checked_mul = [&](std::int64_t each, std::uint64_t count) {
    if (each > 0 && count > static_cast<std::uint64_t>(Picoseconds::max().count() / 4 / each))
      throw overflow(count, Picoseconds::ps(each));
    return each * static_cast<std::int64_t>(count);
  };
  // A run of `count` identical steps that mix NVLink and network hops is a ring pass
  // crossing hosts (only ring passes repeat steps): in each step the flow out of a node
  // forwards what the flow into it (on the same connection, its QP) delivered the step
  // before. The barrier would make every step as slow as its slowest hop, start-up
  // included; on hardware (and in the per-operation schedule) a chain of hops pays each
  // hop its own time, a connection starts its next transfer while the last one's
  // start-up and path latency run, and channels drift apart and share NVLinks less than
  // all at once. So where `count` steps of the step's flows fit the expansion budget
  // (pipeline_expansion_flows_), the run is simulated as the per-operation schedule
  // runs it: each flow waits only for the flow into its source one step before. Where
  // at least ring_window_steps of them fit, those are simulated and the rest
  // extrapolated from their period (below). Otherwise it takes the longer of
  //  - the slowest chain: `count` consecutive hops around a ring, each as long as it took
  //    with the whole step's flows at once;
  //  - the busiest connection: `count` transfers back to back (each as long as it keeps
  //    the connection busy: its time with no start-ups or switch hops, less its cables'
  //    latency) plus one whole hop;
  // bounds that time hops with every channel at once (docs/collectives.md, "Steps mode").
  // time -1 where the step is not that shape (a task, a node sending twice on one QP, a
  // hop that leads nowhere): the barrier stands.
  struct Chained {
    std::int64_t time = -1;
    bool simulated = false;  ///< the run's own flows were simulated (not the bounds)
  };
  // A ring pass's flows in posting order, and who feeds whom: flow next[k] forwards what
  // flow k delivered, and prev[k] delivered what k forwards. Empty where the step is not
  // that shape.
  struct Ring {
    std::vector<Index> flows;
    std::vector<std::uint32_t> next, prev;
  };
  const auto ring_of = [&](const std::vector<std::uint32_t>& order) -> Ring {
    Ring r;
    for (auto sg : order) {
      for (Index i = segments[sg].begin; i < segments[sg].end; ++i) {
        const Item& it = items_[i];
        if (it.free) continue;
        if (it.spec.src == it.spec.dst) return {};
        r.flows.push_back(i);
      }
    }
    const std::size_t n = r.flows.size();
    std::unordered_map<std::uint64_t, std::uint32_t> out_of;  // (src, qp) -> flow
    for (std::uint32_t k = 0; k < n; ++k) {
      const FlowSpec& f = items_[r.flows[k]].spec;
      if (!out_of.try_emplace(std::uint64_t{f.src} << 32 | f.qp, k).second) return {};
    }
    r.next.resize(n);
    for (std::uint32_t k = 0; k < n; ++k) {
      const FlowSpec& f = items_[r.flows[k]].spec;
      const auto it = out_of.find(std::uint64_t{f.dst} << 32 | f.qp);
      if (it == out_of.end()) return {};
      r.next[k] = it->second;
    }
    // `next` must be a permutation (each flow feeds exactly one): every ring closes.
    constexpr std::uint32_t unfed = 0xffffffffu;
    r.prev.assign(n, unfed);
    for (std::uint32_t k = 0; k < n; ++k) {
      if (r.prev[r.next[k]] != unfed) return {};
      r.prev[r.next[k]] = k;
    }
    return r;
  };
  // The first `steps` steps of a ring pass, or of two consecutive passes over the same
  // connections (`before`, `before_steps` of it, then `ring`: a ring all-reduce's
  // all-gather after its reduce-scatter), simulated as the per-operation schedule runs
  // them: each flow waits for the flow into its source one step before, and the second
  // pass's first flows wait for every write of the first pass into their source and
  // their destination. When each step has completed (its last flow delivered), and when
  // its flows were delivered on average. Empty where the two passes are not over the
  // same connections with the same sizes.
  struct Window {
    std::vector<std::int64_t> last;
    std::vector<double> mean;
  };
  const auto simulate_passes = [&](const Ring* before, std::uint64_t before_steps, const Ring& ring,
                                   std::uint64_t steps) -> Window {
    const std::size_t n = ring.flows.size();
    if (before != nullptr) {
      if (before->flows.size() != n) return {};
      std::unordered_map<std::uint64_t, std::uint32_t> out_of;  // (src, qp) -> flow
      for (std::uint32_t k = 0; k < n; ++k) {
        const FlowSpec& f = items_[before->flows[k]].spec;
        out_of.emplace(std::uint64_t{f.src} << 32 | f.qp, k);
      }
      for (std::uint32_t k = 0; k < n; ++k) {
        const FlowSpec& f = items_[ring.flows[k]].spec;
        const auto it = out_of.find(std::uint64_t{f.src} << 32 | f.qp);
        if (it == out_of.end()) return {};
        const FlowSpec& g = items_[before->flows[it->second]].spec;
        if (g.dst != f.dst || g.size != f.size || g.delay != f.delay) return {};
      }
    }
    // The first pass's flows into each GPU, of every channel. Its last ring_pass_slots
    // steps of them stand for every write into the GPU.
    std::unordered_multimap<NodeIndex, std::uint32_t> into;
    if (before != nullptr) {
      for (std::uint32_t k = 0; k < n; ++k) into.emplace(items_[before->flows[k]].spec.dst, k);
    }
    const std::uint64_t first = before != nullptr ? before_steps : 0, total = first + steps;
    FlowGraph w;
    for (std::uint64_t j = 0; j < total; ++j) {
      const Ring& at = j < first ? *before : ring;
      for (std::uint32_t k = 0; k < n; ++k) {
        const FlowId id = w.add(items_[at.flows[k]].spec);
        if (j == 0) continue;
        if (j == first) {
          const FlowSpec& f = items_[at.flows[k]].spec;
          for (const NodeIndex end : {f.src, f.dst}) {
            for (auto x = into.find(end); x != into.end() && x->first == end; ++x) {
              for (std::uint64_t back = 0; back < std::min(first, ring_pass_slots); ++back)
                w.depends_on(id, static_cast<FlowId>((first - 1 - back) * n + x->second));
            }
          }
        } else {
          w.depends_on(id, static_cast<FlowId>((j - 1) * n + at.prev[k]));
        }
      }
    }
    const SimResult r = simulate(fabric, w, config);
    ++result.evaluations;
    result.flows_evaluated += w.size();
    result.rate_solves += r.rate_solves;
    result.flows_solved += r.flows_solved;
    Window out{std::vector<std::int64_t>(total, 0), std::vector<double>(total, 0.0)};
    for (FlowId f = 0; f < w.size(); ++f) {
      out.last[f / n] = std::max(out.last[f / n], r.flows[f].delivered.count());
      out.mean[f / n] += static_cast<double>(r.flows[f].delivered.count()) / static_cast<double>(n);
    }
    return out;
  };
  const auto chained_run = [&](const Ring& ring, std::uint64_t count) -> Chained {
    if (ring.flows.empty()) return {};
    const std::vector<Index>& flows = ring.flows;
    const std::vector<std::uint32_t>& next = ring.next;
    const std::size_t n = flows.size();
    if (count * n <= pipeline_expansion_flows_)
      return {simulate_passes(nullptr, 0, ring, count).last.back(), true};
    const std::uint64_t fit = pipeline_expansion_flows_ / n;
    // Each hop's time with the step's flows at once; and how long each keeps its
    // connection busy: the same with no start-ups or switch hops, less its cables'
    // latency (what an empty message takes so).
    FlowGraph g, empty;
    for (Index i : flows) {
      g.add(items_[i].spec);
      FlowSpec e = items_[i].spec;
      e.size = Bytes{};
      empty.add(e);
    }
    SimConfig bare = config;
    bare.message_overhead = bare.nvlink_message_overhead = bare.nvls_message_overhead =
        bare.switch_hop = Picoseconds{};
    const SimResult with = simulate(fabric, g, config);
    const SimResult without = simulate(fabric, g, bare);
    const SimResult cables = simulate(fabric, empty, bare);
    result.evaluations += 3;
    result.flows_evaluated += 3 * flows.size();
    result.rate_solves += with.rate_solves + without.rate_solves + cables.rate_solves;
    result.flows_solved += with.flows_solved + without.flows_solved + cables.flows_solved;
    std::int64_t busiest = 0;
    for (std::uint32_t k = 0; k < flows.size(); ++k) {
      const std::int64_t busy = std::max<std::int64_t>(
          0, (without.flows[k].delivered - cables.flows[k].delivered).count());
      busiest = std::max(busiest, checked_mul(busy, count - 1) + with.flows[k].delivered.count());
    }
    // The chains: in each cycle of `next` the longest `count` consecutive hops, whole
    // turns plus the longest window of the rest.
    std::vector<std::uint8_t> seen(flows.size(), 0);
    std::int64_t slowest = 0;
    std::vector<std::int64_t> cycle;
    for (std::uint32_t k = 0; k < flows.size(); ++k) {
      if (seen[k] != 0) continue;
      cycle.clear();
      std::uint32_t at = k;
      while (seen[at] == 0) {
        seen[at] = 1;
        cycle.push_back(with.flows[at].delivered.count());
        at = next[at];
      }
      const std::uint64_t length = cycle.size();
      std::int64_t turn = 0;
      for (const std::int64_t d : cycle) turn += d;
      const std::uint64_t rest = count % length;
      std::int64_t window = 0;
      for (std::uint64_t j = 0; j < rest; ++j) window += cycle[j];
      std::int64_t best = window;
      for (std::uint64_t j = 1; j < length && rest > 0; ++j) {
        window += cycle[(j + rest - 1) % length] - cycle[j - 1];
        best = std::max(best, window);
      }
      slowest = std::max(slowest, checked_mul(turn, count / length) + best);
    }
    if (fit >= ring_window_steps) {
      // The period: how far apart the steps of the window's middle half are delivered,
      // on average over their flows. Its first steps fill the ring, its last run with
      // nothing behind them on the links, and the slowest flow of a step drifts further
      // behind for a while before it catches up. Never less than the busiest connection
      // allows.
      const Window done = simulate_passes(nullptr, 0, ring, fit);
      const std::uint64_t from = fit / 4, to = fit - fit / 4;
      const double period = (done.mean[to] - done.mean[from]) / static_cast<double>(to - from);
      const std::int64_t run =
          done.last.back() +
          checked_mul(static_cast<std::int64_t>(std::llround(period)), count - fit);
      return {std::max(run, busiest), true};
    }
    return {std::max(slowest, busiest), false};
  };
  // The last ring pass crossing hosts (a mixed run that chained_run could time): its
  // ring, steps, the level after it, and when it started and ended.
  struct LastPass {
    Ring ring;
    std::uint64_t count = 0, next_level = 0;
    std::int64_t start = 0, end = 0;
  };
  LastPass last_pass;
  FlowGraph network_step;
  std::unordered_map<std::uint64_t, Cached> host_cache;       // one host's content: its time
  std::unordered_map<std::uint64_t, std::uint32_t> fresh_of;  // a step's new contents
  std::size_t b = 0;
  while (b < bounds.size()) {
    const std::uint64_t level = bounds[b].level;
    for (; b < bounds.size() && bounds[b].level == level; ++b) {
      const auto s = bounds[b].segment;
      if (bounds[b].opens) {
        where[s] = static_cast<std::uint32_t>(active.size());
        active.push_back(s);
      } else {
        const auto last = active.back();
        active[where[s]] = last;
        where[last] = where[s];
        active.pop_back();
      }
    }
    if (b == bounds.size()) break;
    const std::uint64_t next = bounds[b].level;
    const std::uint64_t count = next - level;
    if (active.empty()) continue;  // cannot happen: levels are dense
    // The network's step (its flows in posting order and their hash) and when it may
    // start: after its previous step and the steps its new items depend on. The hosts'
    // items are gathered here and taken host by host below.
    std::vector<std::uint32_t> order(active);
    std::sort(order.begin(), order.end());
    std::uint64_t network_code = 0x9e3779b97f4a7c15ULL;
    std::array<std::size_t, 2> entries{0, 0}, tasks{0, 0};
    std::array<double, 2> bytes{0, 0};
    std::int64_t network_start = clock[network_domain];
    bool mixed = false;
    network_step = FlowGraph{};
    host_items.clear();
    for (auto s : order) {
      const Segment& seg = segments[s];
      mixed = mixed || seg.domains == 3;
      const bool opens = seg.first_level == level;
      for (Index i = seg.begin; i < seg.end; ++i) {
        const Item& it = items_[i];
        // A task that takes no time changes neither the step's time nor its content:
        // leaving it out lets the step it completes in match its repeats in the cache.
        if (it.free) continue;
        const FlowSpec& f = it.spec;
        const std::uint8_t d = it.domain;
        ++entries[d];
        if (f.src == f.dst) ++tasks[d];
        bytes[d] += static_cast<double>(f.size.count());
        if (d == host_domain) {
          host_items.push_back(i);
          continue;
        }
        if (opens) {
          for (std::uint8_t dd = 0; dd < 2; ++dd) {
            if (it.need[dd] > 0)
              network_start = std::max(network_start, finish_of(dd, it.need[dd]));
          }
        }
        network_step.add(f);
        network_code = fmix64(network_code ^ (std::uint64_t{f.src} << 32 | f.dst));
        network_code = fmix64(network_code ^ static_cast<std::uint64_t>(f.size.count()));
        network_code = fmix64(network_code ^ (std::uint64_t{f.qp} << 32) ^
                              static_cast<std::uint64_t>(f.delay.count()));
      }
    }
    std::array<Cached, 2> c{};
    if (entries[network_domain] > 0) {
      auto [it, inserted] = cache.try_emplace(fmix64(network_code));
      const std::size_t n = network_step.size();
      if (inserted || it->second.flows + it->second.tasks != n ||
          it->second.bytes != bytes[network_domain]) {
        const SimResult r = simulate(fabric, network_step, config);
        ++result.evaluations;
        result.flows_evaluated += n - tasks[network_domain];
        result.rate_solves += r.rate_solves;
        result.flows_solved += r.flows_solved;
        it->second = {r.makespan, n - tasks[network_domain], tasks[network_domain],
                      bytes[network_domain],
                      std::max<std::int64_t>(0, (r.last_byte_sent - r.first_byte_sent).count())};
      }
      c[network_domain] = it->second;
    }
    // The hosts' domain, host by host: each host's content (its items in posting order,
    // told apart from other hosts' only by what host_node_code sees) and when it may
    // start, from its own clock and what its new items wait for in the network (and in
    // other hosts, which no algorithm does but a plan may).
    std::int64_t host_start = Picoseconds::max().count(), host_end = clock[host_domain],
                 host_step = 0;
    if (entries[host_domain] > 0) {
      touched.clear();
      const std::uint64_t stamp = level;
      for (Index i : host_items) {
        const Item& it = items_[i];
        const FlowSpec& f = it.spec;
        const std::uint32_t hs = host_of(f);
        HostStep& at = host_at[hs];
        if (at.stamp != stamp) {
          at = {0x243f6a8885a308d3ULL,
                0,
                0,
                std::max(host_clock[hs], host_floor),
                stamp,
                none,
                false,
                0};
          touched.push_back(hs);
        }
        at.code = with_entry(at.code, code_of(f.src), code_of(f.dst), f);
        ++at.entries;
        at.bytes += static_cast<double>(f.size.count());
        if (it.level == level) {
          if (it.need[network_domain] > 0)
            at.ready = std::max(at.ready, finish_of(network_domain, it.need[network_domain]));
          if (it.foreign_need)
            at.ready = std::max(at.ready, finish_of(host_domain, it.need[host_domain]));
        }
      }
      // Contents not simulated yet: one host of each, in a graph of its own. A content is
      // its code, entry count and bytes (a code shared by two contents is a collision:
      // they are kept apart, the later one not cached).
      struct Fresh {
        std::uint64_t key;
        std::size_t entries;
        double bytes;
        FlowGraph graph;
        std::int64_t time = 0;
      };
      std::vector<Fresh> fresh;
      fresh_of.clear();  // key -> index into `fresh`
      for (std::uint32_t hs : touched) {
        HostStep& at = host_at[hs];
        const std::uint64_t key = fmix64(at.code ^ 0x5851f42d4c957f2dULL);
        const auto found = host_cache.find(key);
        if (found != host_cache.end() && found->second.flows + found->second.tasks == at.entries &&
            found->second.bytes == at.bytes) {
          at.each = found->second.time.count();
          continue;
        }
        const auto [same, added] =
            fresh_of.try_emplace(key, static_cast<std::uint32_t>(fresh.size()));
        if (!added && fresh[same->second].entries == at.entries &&
            fresh[same->second].bytes == at.bytes) {
          at.graph = same->second;
          continue;
        }
        at.graph = static_cast<std::uint32_t>(fresh.size());
        at.builds_graph = true;
        fresh.push_back({key, at.entries, at.bytes, FlowGraph{}});
      }
      if (!fresh.empty()) {
        for (Index i : host_items) {
          const HostStep& at = host_at[host_of(items_[i].spec)];
          if (at.builds_graph) fresh[at.graph].graph.add(items_[i].spec);
        }
        ++result.evaluations;
        result.flows_evaluated += entries[host_domain] - tasks[host_domain];
      }
      for (Fresh& x : fresh) {
        const SimResult r = simulate(fabric, x.graph, config);
        result.rate_solves += r.rate_solves;
        result.flows_solved += r.flows_solved;
        x.time = r.makespan.count();
        std::size_t own_tasks = 0;
        for (FlowId f = 0; f < x.graph.size(); ++f)
          own_tasks += x.graph.flow(f).src == x.graph.flow(f).dst ? 1 : 0;
        const Cached entry{r.makespan, x.entries - own_tasks, own_tasks, x.bytes};
        host_cache.try_emplace(x.key, entry);
      }
      for (std::uint32_t hs : touched) {
        HostStep& at = host_at[hs];
        if (at.graph != none) at.each = fresh[at.graph].time;
        host_start = std::min(host_start, at.ready);
        host_step = std::max(host_step, at.each);
        host_clock[hs] = at.ready + checked_mul(at.each, count);
        host_end = std::max(host_end, host_clock[hs]);
      }
      c[host_domain] = {Picoseconds::ps(host_step), entries[host_domain] - tasks[host_domain],
                        tasks[host_domain], bytes[host_domain]};
    }
    const bool both = entries[0] > 0 && entries[1] > 0;
    Range range{level,
                count,
                {network_start, entries[1] > 0 ? host_start : clock[1]},
                {c[0].time.count(), host_step},
                {network_start + checked_mul(c[0].time.count(), count), host_end},
                c[0].busy};
    if (both && mixed) {
      // A step mixing both domains in one segment: one barrier over both; a run of such
      // steps (a ring pass crossing hosts) timed along its chains of hops where it can be.
      std::int64_t t = network_start;
      for (std::uint32_t hs : touched) t = std::max(t, host_at[hs].ready);
      const std::int64_t each = std::max(range.step[0], range.step[1]);
      std::int64_t run = checked_mul(each, count);
      Ring ring = count > 1 ? ring_of(order) : Ring{};
      bool merged = false;
      if (!ring.flows.empty() && last_pass.next_level == level && last_pass.end == t &&
          (last_pass.count + count) * ring.flows.size() <= pipeline_expansion_flows_) {
        // Right after another pass over the same connections, with nothing else between
        // them: the two are simulated together, so that this one's first hops start
        // while the other's last ones run, as in the per-operation schedule.
        const Window both_passes = simulate_passes(&last_pass.ring, last_pass.count, ring, count);
        if (!both_passes.last.empty()) {
          run = std::max<std::int64_t>(0, last_pass.start + both_passes.last.back() - t);
          merged = true;
        }
      }
      if (!merged) {
        const Chained chained = chained_run(ring, count);
        if (chained.simulated) {
          run = chained.time;
        } else if (chained.time >= 0) {
          run = std::min(run, chained.time);
        }
      }
      const std::int64_t end = t + run;
      const std::int64_t per_step = run / static_cast<std::int64_t>(count);
      if (!ring.flows.empty()) last_pass = {std::move(ring), count, next, t, end};
      range.start = {t, t};
      range.step = {per_step, per_step};
      range.busy = per_step;  // a chain of hops, each waiting for the one before
      range.end = {end, end};
      for (std::uint32_t hs : touched) host_clock[hs] = end;
    }
    if (last_pass.next_level != next) last_pass.next_level = 0;  // this range was no pass
    for (std::uint8_t d = 0; d < 2; ++d) {
      if (entries[d] == 0) {
        // Idle in this range: a lookup of it (none should happen) sees its clock.
        range.start[d] = range.end[d] = clock[d];
        range.step[d] = 0;
        continue;
      }
      clock[d] = std::max(clock[d], range.end[d]);
    }
    ranges.push_back(range);
    // A pipeline unit's stages: in each domain, the stretches of steps it has items in.
    for (std::size_t k = 0; k < blocks_.size(); ++k) {
      if (blocks_[k].first_level > level || blocks_[k].last_level < level) continue;
      std::uint8_t here = 0;
      for (auto s : order) {
        if (segments[s].block == k) here |= segments[s].domains;
      }
      if (here != 0) {
        unit_ranges[k].push_back({static_cast<std::uint32_t>(level),
                                  static_cast<std::uint32_t>(count), range.start, range.step, here,
                                  both && mixed, range.busy});
      }
      for (std::uint8_t d = 0; d < 2; ++d) {
        if ((here >> d & 1u) == 0) continue;
        auto& list = stages[k][d];
        if (list.empty() || list.back().last_level + 1 != level)
          list.push_back({static_cast<std::uint32_t>(level), 0, 0, range.start[d], 0, 0});
        list.back().last_level = static_cast<std::uint32_t>(next - 1);
        list.back().time += checked_mul(range.step[d], count);
        list.back().busy += checked_mul(d == network_domain ? range.busy : range.step[d], count);
        list.back().end = clock[d];
      }
    }
    const double step_bytes = bytes[0] + bytes[1];
    result.bytes_sent += step_bytes * static_cast<double>(count);
    const Picoseconds each = Picoseconds::ps(std::max(range.step[0], range.step[1]));
    const std::size_t flows = c[0].flows + c[1].flows;
    const std::size_t step_tasks = c[0].tasks + c[1].tasks;
    const Picoseconds run_start = Picoseconds::ps(both ? std::min(range.start[0], range.start[1])
                                                       : range.start[entries[0] > 0 ? 0 : 1]);
    const auto domains =
        static_cast<std::uint8_t>((entries[0] > 0 ? 1 : 0) | (entries[1] > 0 ? 2 : 0));
    if (!result.runs.empty() && result.runs.back().step_time == each &&
        result.runs.back().domains == domains &&
        result.runs.back().first_step + result.runs.back().steps == level &&
        result.runs.back().flows == flows && result.runs.back().bytes == step_bytes &&
        result.runs.back().start + each * static_cast<std::int64_t>(result.runs.back().steps) ==
            run_start) {
      result.runs.back().steps += count;
    } else {
      result.runs.push_back(
          {level, count, each, flows, step_tasks, step_bytes, run_start, domains});
    }
    for (std::size_t k = 0; k < blocks_.size(); ++k) {
      // Past a unit's last step: the `more` units after it, one period each.
      if (blocks_[k].last_level < level || blocks_[k].last_level >= next) continue;
      const std::int64_t t = std::max(
          {clock[0], clock[1],
           pipeline_end(k, stages[k], unit_ranges[k], fabric, config, result, checked_mul)});
      clock = {t, t};
      host_floor = t;
      double unit_bytes = 0;
      for (Index i = blocks_[k].first; i < blocks_[k].end; ++i) {
        if (!items_[i].free && items_[i].spec.src != items_[i].spec.dst)
          unit_bytes += static_cast<double>(items_[i].spec.size.count()) *
                        (1.0 + static_cast<double>(items_[i].repeats));
      }
      result.bytes_sent += unit_bytes * static_cast<double>(blocks_[k].more);
    }
  }
  result.makespan = Picoseconds::ps(std::max(clock[0], clock[1]));
  return result;
}

RAILCC_NAMESPACE_END
