// railcc/sim/step_schedule.hpp: a bulk-synchronous schedule of flows, evaluated once per
// distinct step, for collectives over 100k+ GPUs.
//
// The flow graph (flow_graph.hpp) is exact but costs one object per message, and ranks
// that drift out of lockstep cost one rate solve per distinct event time. A collective
// over p ranks is, in its analysis, a sequence of steps: a ring all-reduce is 2(p - 1)
// steps of the same shape. A StepSchedule keeps that structure:
//  - every item (a flow or a local task) is placed in the step after the last of its
//    dependencies (its ASAP level; a local task that takes no time, such as the finish of
//    a sum, completes in the step of its last dependency instead of adding an empty
//    step), and a step starts when the one before it has
//    completed everywhere (a global barrier: the alpha-beta model of docs/facts.md
//    section 4);
//  - an algorithm may post one step of a run of identical steps and say how many more
//    follow (`repeat`), instead of posting them all;
//  - `evaluate` simulates each distinct step once (by content) on the fabric with the
//    flow engine and multiplies.
// Where every flow of a step takes as long as every other (lockstep algorithms on a
// symmetric fabric) this is the flow graph's time exactly; where they differ (a ring
// whose hops mix NVLink and network) the barrier makes each step as slow as its slowest
// flow. docs/simulator.md compares the two.
#pragma once

#include <algorithm>
#include <cstdint>
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
  Picoseconds step_time;  ///< each
  std::size_t flows = 0;  ///< network or NVLink flows per step
  std::size_t tasks = 0;  ///< local tasks per step
  double bytes = 0;       ///< per step
};

struct StepResult {
  Picoseconds makespan;
  std::uint64_t steps = 0;          ///< levels of the schedule
  std::size_t items = 0;            ///< flows and tasks posted (repeated ones once)
  std::size_t evaluations = 0;      ///< distinct steps simulated
  std::size_t flows_evaluated = 0;  ///< flows over those simulations
  std::size_t rate_solves = 0;      ///< summed over the simulations
  double bytes_sent = 0;            ///< over all steps, repeats included
  std::vector<StepRun> runs;
};

class StepSchedule {
 public:
  using Index = std::uint32_t;

  /// Adds a flow or a local task (src == dst) in the step after its last dependency (a
  /// task that takes no time: in the step of its last dependency).
  Index add(const FlowSpec& spec, std::span<const Index> deps) {
    if (items_.size() >= 0xfffffffeu) throw InputError("step schedule: too many items");
    const bool free = spec.src == spec.dst && spec.delay == Picoseconds{};
    std::uint32_t level = 1;
    Index latest = none;
    for (Index d : deps) {
      if (d >= items_.size())
        throw InputError("step schedule: dependency on item " + std::to_string(d) +
                         ", not posted yet");
      level = std::max(level, end_level(d) + (free ? 0 : 1));
      latest = latest == none ? d : std::max(latest, d);
    }
    items_.push_back({spec, level, 0, latest});
    levels_ = std::max<std::uint64_t>(levels_, level);
    return static_cast<Index>(items_.size() - 1);
  }

  /// Items [first, size()) are one step that `more` further steps of the same content
  /// follow: each occupies its level and the `more` after it, and what depends on it
  /// waits for the last. The items must not depend on each other.
  void repeat(Index first, std::uint32_t more) {
    if (first > items_.size()) throw InputError("step schedule: repeat from a missing item");
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

  [[nodiscard]] std::size_t size() const { return items_.size(); }
  [[nodiscard]] std::uint64_t steps() const { return levels_; }
  /// The last step an item occupies.
  [[nodiscard]] std::uint32_t end_level(Index i) const {
    return items_[i].level + items_[i].repeats;
  }

  /// Simulates each distinct step once and adds up the steps' times.
  [[nodiscard]] StepResult evaluate(const Fabric& fabric, const SimConfig& config) const {
    StepResult result;
    result.items = items_.size();
    result.steps = levels_;
    // Segments: consecutive items that occupy the same steps.
    struct Segment {
      std::uint32_t first_level, last_level;
      Index begin, end;
    };
    std::vector<Segment> segments;
    for (Index i = 0; i < items_.size(); ++i) {
      const Item& it = items_[i];
      const std::uint32_t last = end_level(i);
      if (!segments.empty() && segments.back().end == i &&
          segments.back().first_level == it.level && segments.back().last_level == last) {
        segments.back().end = i + 1;
      } else {
        segments.push_back({it.level, last, i, i + 1});
      }
    }
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
    };
    std::unordered_map<std::uint64_t, Cached> cache;
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
      if (active.empty()) continue;  // cannot happen: levels are dense
      // The step's content in posting order, and its hash.
      std::vector<std::uint32_t> order(active);
      std::sort(order.begin(), order.end());
      FlowGraph step;
      std::uint64_t h = 0x9e3779b97f4a7c15ULL;
      std::size_t tasks = 0;
      double bytes = 0;
      for (auto s : order) {
        for (Index i = segments[s].begin; i < segments[s].end; ++i) {
          const FlowSpec& f = items_[i].spec;
          // A task that takes no time changes neither the step's time nor its content:
          // leaving it out lets the step it completes in match its repeats in the cache.
          if (f.src == f.dst && f.delay == Picoseconds{}) continue;
          step.add(f);
          h = fmix64(h ^ (std::uint64_t{f.src} << 32 | f.dst));
          h = fmix64(h ^ static_cast<std::uint64_t>(f.size.count()));
          h = fmix64(h ^ (std::uint64_t{f.qp} << 32) ^ static_cast<std::uint64_t>(f.delay.count()));
          if (f.src == f.dst) ++tasks;
          bytes += static_cast<double>(f.size.count());
        }
      }
      auto [it, inserted] = cache.try_emplace(h);
      if (inserted || it->second.flows + it->second.tasks != step.size() ||
          it->second.bytes != bytes) {
        const SimResult r = simulate(fabric, step, config);
        ++result.evaluations;
        result.flows_evaluated += step.size() - tasks;
        result.rate_solves += r.rate_solves;
        it->second = {r.makespan, step.size() - tasks, tasks, bytes};
      }
      const std::uint64_t count = next - level;
      const Cached& c = it->second;
      const std::int64_t room = Picoseconds::max().count() - result.makespan.count();
      if (c.time.count() > 0 && count > static_cast<std::uint64_t>(room / c.time.count())) {
        throw InputError("simulation: " + std::to_string(count) + " steps of " +
                         std::to_string(c.time.in_us()) +
                         " us would end more than 106 days into the simulation, past what "
                         "integer picoseconds hold: a link is too slow for this size");
      }
      result.makespan += c.time * static_cast<std::int64_t>(count);
      result.bytes_sent += c.bytes * static_cast<double>(count);
      if (!result.runs.empty() && result.runs.back().step_time == c.time &&
          result.runs.back().first_step + result.runs.back().steps == level &&
          result.runs.back().flows == c.flows && result.runs.back().bytes == c.bytes) {
        result.runs.back().steps += count;
      } else {
        result.runs.push_back({level, count, c.time, c.flows, c.tasks, c.bytes});
      }
    }
    return result;
  }

 private:
  static constexpr Index none = 0xffffffffu;
  struct Item {
    FlowSpec spec;
    std::uint32_t level;
    std::uint32_t repeats;
    Index latest_dep;  ///< to refuse repeating items that depend on each other
  };
  std::vector<Item> items_;
  std::uint64_t levels_ = 0;
};

RAILCC_NAMESPACE_END
