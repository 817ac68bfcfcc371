// railcc/sim/rate_state.hpp: the active flows' max-min fair rates, kept up to date as
// flows start and finish.
//
// A re-solve costs what changes, not the whole active set. Progressive filling (max_min.hpp)
// raises every unfrozen flow with the water level and freezes the flows of each resource
// that fills. Compare the filling of the new active set with the last one: a resource
// none of whose flows behaves differently (joins, leaves, or freezes at another level)
// fills exactly as before, so its flows freeze as before. Only resources that differ
// have to be filled again:
//  - the resources of flows that started or finished differ from level 0;
//  - a flow that freezes at another level than before, or passes its old level unfrozen
//    because its old bottleneck differs now, makes every resource it crosses differ from
//    that level on.
// The local re-solve runs the filling over those resources only, in level order: each
// is brought up to date when it starts to differ (its flows frozen so far at their rates,
// the others rising), and a flow there that still behaves as before gets an event at its
// old rate, when it freezes again if its old bottleneck still does not differ. Its cost
// grows with the resources that differ and the flows on them; flows elsewhere keep their
// rates untouched (an all-gather over 8,192 GPUs re-solved 22M flows in 6,627 solves
// when every flow at or above a departing flow's rate was re-solved).
//
// Batches whose new flows are half the active set or more (a step's flows starting
// together), and SimConfig::exact_rate_solves, solve every active flow (MaxMinSolver):
// the reference the local re-solve is tested against
// (tests/test_engine_differential.cpp). A flow's remaining bytes are brought up to date
// only when its rate changes: between changes it moves linearly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/sim/max_min.hpp"
#include "railcc/sim/route_table.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

class RateState {
 public:
  /// `class_of[r]`: the link class of resource r, whose throughput the timeline records.
  RateState(const RouteTable& routes, std::size_t flows, std::vector<std::uint8_t> class_of,
            std::size_t classes)
      : routes_(routes),
        remaining_(flows, 0.0),
        rate_(flows, 0.0),
        since_(flows, 0),
        bottleneck_(flows, none),
        active_at_(flows, none),
        first_on_(routes.resource_count() + 1, 0),
        flows_on_(routes.resource_count(), 0),
        on_(routes.entry_count()),
        owner_(routes.entry_count()),
        slot_(routes.entry_count()),
        class_of_(std::move(class_of)),
        class_load_(classes, 0.0),
        state_(flows, untouched),
        new_rate_(flows, 0.0),
        differs_(routes.resource_count(), 0),
        room_(routes.resource_count(), 0.0),
        rising_(routes.resource_count(), 0) {
    if (flows >= flow_event || routes.resource_count() >= flow_event)
      throw InputError("simulation: more than 2^31 flows or resources in one simulation");
    // Room in each resource's list of active flows for every flow that ever crosses it.
    for (FlowId f = 0; f < flows; ++f) {
      const std::uint32_t e0 = routes_.first_entry(f);
      const auto path = routes_.path(f);
      for (std::size_t i = 0; i < path.size(); ++i) {
        ++first_on_[path[i] + 1];
        owner_[e0 + i] = f;
      }
    }
    for (std::size_t r = 0; r < flows_on_.size(); ++r) first_on_[r + 1] += first_on_[r];
  }

  /// Flow f starts sending `bytes` at `now` (it gets a rate at the next resolve()).
  void start(FlowId f, std::int64_t now, double bytes) {
    remaining_[f] = bytes;
    rate_[f] = 0;
    since_[f] = now;
    bottleneck_[f] = none;
    fresh_.push_back(f);
    active_at_[f] = static_cast<std::uint32_t>(active_.size());
    active_.push_back(f);
    const std::uint32_t e0 = routes_.first_entry(f);
    const auto path = routes_.path(f);
    for (std::size_t i = 0; i < path.size(); ++i) {
      const ResourceIndex r = path[i];
      const auto e = static_cast<std::uint32_t>(e0 + i);
      slot_[e] = flows_on_[r];
      on_[first_on_[r] + flows_on_[r]++] = e;
      seeds_.push_back(r);
    }
  }

  /// Flow f's last byte has left: it frees its share. Every byte crossed every resource
  /// of its path (the finish time was rounded up): `bytes` go to `resource_bytes`.
  void finish(FlowId f, double bytes, std::span<double> resource_bytes) {
    const std::uint32_t e0 = routes_.first_entry(f);
    const auto path = routes_.path(f);
    for (std::size_t i = 0; i < path.size(); ++i) {
      const ResourceIndex r = path[i];
      resource_bytes[r] += bytes;
      // Out of r's list: the last entry takes its slot.
      const std::uint32_t at = slot_[e0 + i];
      const std::uint32_t moved = on_[first_on_[r] + --flows_on_[r]];
      on_[first_on_[r] + at] = moved;
      slot_[moved] = at;
      seeds_.push_back(r);
      class_load_[class_of_[r]] -= rate_[f];
    }
    remaining_[f] = 0;
    rate_[f] = 0;
    const std::uint32_t at = active_at_[f];
    active_[at] = active_.back();
    active_at_[active_[at]] = at;
    active_.pop_back();
    active_at_[f] = none;
  }

  [[nodiscard]] std::size_t active_count() const { return active_.size(); }
  /// Bytes per second crossing each link class now.
  [[nodiscard]] std::span<const double> class_load() const { return class_load_; }

  /// Nothing to re-solve at this time; with no flow left active, the class loads are
  /// reset (no rounding residue).
  void idle(bool emptied) {
    seeds_.clear();
    fresh_.clear();
    if (emptied && active_.empty()) std::fill(class_load_.begin(), class_load_.end(), 0.0);
  }

  /// Re-solves the rates that can change at `now` (all of them when `exact`). For each
  /// flow whose rate changed, `on_new_finish(f, picoseconds from now)` schedules
  /// its finish. Returns how many flows were solved.
  template <class OnNewFinish>
  std::size_t resolve(std::int64_t now, bool exact, const FlowGraph& graph,
                      OnNewFinish&& on_new_finish) {
    const bool all = exact || 2 * fresh_.size() >= active_.size();
    if (all) {
      solve_all();
    } else {
      solve_local();
    }
    seeds_.clear();
    fresh_.clear();
    for (FlowId f : solved_) {
      const double x = new_rate_[f];
      state_[f] = untouched;
      if (x == rate_[f]) continue;  // its finish event still holds
      if (!(x > 0)) {
        throw InputError("simulation: flow " + std::to_string(f) +
                         " got no bandwidth (a link on its path has none)");
      }
      progress(f, now);
      for (ResourceIndex r : routes_.path(f)) class_load_[class_of_[r]] += x - rate_[f];
      rate_[f] = x;
      const double ps = std::ceil(remaining_[f] / rate_[f] * 1e12 - 1e-6);
      if (!(ps < static_cast<double>(Picoseconds::max().count() - now))) {
        // Integer picoseconds hold 106 days; a flow that ends later has a link on its path
        // far too slow for its size (or degraded to almost nothing).
        throw InputError("simulation: flow " + std::to_string(f) + " (" +
                         std::to_string(graph.flow(f).size.count()) + " bytes at " +
                         std::to_string(rate_[f]) +
                         " B/s) would end more than 106 days into the simulation, past what "
                         "integer picoseconds hold: a link on its path is too slow for this size");
      }
      on_new_finish(f, static_cast<std::int64_t>(std::max(0.0, ps)));
    }
    return solved_.size();
  }

 private:
  static constexpr std::uint32_t none = 0xffffffffu;
  // A flow during a local re-solve.
  static constexpr std::uint8_t untouched = 0;  // not looked at: keeps its rate
  static constexpr std::uint8_t pending = 1;    // as before so far; an event at its old rate
  static constexpr std::uint8_t rising = 2;     // differs from before, not frozen yet
  static constexpr std::uint8_t frozen = 3;     // has its new rate
  // Queue keys: resources before flow events at one level.
  static constexpr std::uint32_t flow_event = 0x80000000u;
  /// Relative distance within which two rates are one level: a few ulps.
  static constexpr double same_level = 1e-14;

  /// Every active flow, by progressive filling.
  void solve_all() {
    solved_.assign(active_.begin(), active_.end());
    solve_offsets_.assign(1, 0);
    solve_resources_.clear();
    for (FlowId f : solved_) {
      const auto path = routes_.path(f);
      solve_resources_.insert(solve_resources_.end(), path.begin(), path.end());
      solve_offsets_.push_back(static_cast<std::uint32_t>(solve_resources_.size()));
    }
    solve_rates_.assign(solved_.size(), 0.0);
    solver_.solve(
        routes_.resource_count(), solve_offsets_, solve_resources_,
        [&](std::uint32_t r) { return routes_.capacity(r); }, solve_rates_);
    const auto filled_by = solver_.bottlenecks();
    for (std::size_t i = 0; i < solved_.size(); ++i) {
      new_rate_[solved_[i]] = solve_rates_[i];
      bottleneck_[solved_[i]] = filled_by[i];
    }
  }

  /// Only the resources that differ from the last solve (see the top).
  void solve_local() {
    solved_.clear();
    changed_.clear();
    queue_.clear();
    level_floor_ = 0;
    for (FlowId f : fresh_) touch(f, rising);
    for (ResourceIndex r : seeds_) differ(r, 0.0);
    const std::greater<> later;
    while (!queue_.empty()) {
      std::pop_heap(queue_.begin(), queue_.end(), later);
      const auto [level, key] = queue_.back();
      queue_.pop_back();
      level_floor_ = std::max(level_floor_, level);
      if (key & flow_event) {
        const FlowId g = key & ~flow_event;
        if (state_[g] != pending) continue;
        // Its old level: it freezes there again if its old bottleneck fills as before.
        const ResourceIndex b = bottleneck_[g];
        if (b != none && !differs_[b]) {
          freeze(g, rate_[g], b);
        } else {
          state_[g] = rising;
          for (ResourceIndex q : routes_.path(g)) differ(q, level);
        }
        continue;
      }
      const ResourceIndex r = key;
      if (rising_[r] == 0) continue;
      const double share = room_[r] / rising_[r];
      // Shares only grow as the level rises: an entry below its resource's share is stale.
      if (share > level) {
        push(share, r);
        continue;
      }
      const double fill = share < 0 ? 0 : share;
      const std::uint32_t begin = first_on_[r];
      for (std::uint32_t i = begin; i < begin + flows_on_[r] && rising_[r] > 0; ++i) {
        const FlowId g = owner_[on_[i]];
        if (state_[g] == pending || state_[g] == rising) freeze(g, fill, r);
      }
    }
    for (ResourceIndex r : changed_) differs_[r] = 0;
  }

  void touch(FlowId f, std::uint8_t state) {
    state_[f] = state;
    solved_.push_back(f);
  }
  void push(double level, std::uint32_t key) {
    queue_.emplace_back(level, key);
    std::push_heap(queue_.begin(), queue_.end(), std::greater<>{});
  }

  /// Resource r differs from the last solve from `level` on: its room is what its capacity
  /// less the flows frozen below `level` leaves the flows still rising.
  void differ(ResourceIndex r, double level) {
    if (differs_[r]) return;
    // The water level only rises. A flow frozen at a share a few ulps under the level
    // popped (room / rising, rounded) must not lower it: a resource that began to differ
    // earlier counted every flow below the level of then as frozen as before, and one
    // counted so here as rising again would rise past that resource's room unchecked.
    level = std::max(level, level_floor_);
    differs_[r] = 1;
    changed_.push_back(r);
    double room = routes_.capacity(r);
    std::uint32_t up = 0;
    const std::uint32_t begin = first_on_[r];
    for (std::uint32_t i = begin; i < begin + flows_on_[r]; ++i) {
      const FlowId g = owner_[on_[i]];
      switch (state_[g]) {
        case frozen: room -= new_rate_[g]; break;
        case pending:
        case rising: ++up; break;
        default:
          if (rate_[g] < level) {
            room -= rate_[g];  // froze below `level`, as before
          } else {
            touch(g, pending);
            push(rate_[g], g | flow_event);
            ++up;
          }
      }
    }
    room_[r] = room;
    rising_[r] = up;
    if (up > 0) push(room / up, r);
  }

  /// Flow g freezes at `level`, filled by resource `by`.
  void freeze(FlowId g, double level, ResourceIndex by) {
    // A level that rounding alone separates from its old rate is its old rate: a flow
    // treated as differing costs work, never correctness, but rounding would make almost
    // every flow differ.
    const bool same = state_[g] == pending && std::fabs(level - rate_[g]) <= same_level * rate_[g];
    if (same) level = rate_[g];
    const bool differs = !same;
    state_[g] = frozen;
    new_rate_[g] = level;
    bottleneck_[g] = by;
    for (ResourceIndex q : routes_.path(g)) {
      if (!differs_[q]) continue;
      room_[q] -= level;
      --rising_[q];
    }
    // Resources that counted on its old rate now see it at another.
    if (differs) {
      for (ResourceIndex q : routes_.path(g)) differ(q, level);
    }
  }

  void progress(FlowId f, std::int64_t now) {
    remaining_[f] =
        std::max(0.0, remaining_[f] - rate_[f] * static_cast<double>(now - since_[f]) * 1e-12);
    since_[f] = now;
  }

  const RouteTable& routes_;
  std::vector<double> remaining_;
  std::vector<double> rate_;
  std::vector<std::int64_t> since_;
  std::vector<ResourceIndex> bottleneck_;  // the resource that froze it at its rate
  double level_floor_ = 0;                 // solve_local(): the highest level popped so far
  std::vector<FlowId> active_;             // the active flows, in no order
  std::vector<std::uint32_t> active_at_;   // flow -> its index in active_
  // Each resource's active flows: path entries on_[first_on_[r], first_on_[r] + flows_on_[r]),
  // entry e belonging to flow owner_[e] and sitting at slot_[e] of its resource's list.
  std::vector<std::uint32_t> first_on_;
  std::vector<std::uint32_t> flows_on_;
  std::vector<std::uint32_t> on_;
  std::vector<FlowId> owner_;
  std::vector<std::uint32_t> slot_;
  std::vector<FlowId> fresh_;         // started, no rate yet
  std::vector<ResourceIndex> seeds_;  // crossed by a flow that started or finished
  std::vector<std::uint8_t> class_of_;
  std::vector<double> class_load_;
  // A solve's work: the flows it looked at and their new rates.
  std::vector<FlowId> solved_;
  std::vector<std::uint8_t> state_;
  std::vector<double> new_rate_;
  // The local re-solve's resources that differ, their room and rising flows, the queue.
  std::vector<std::uint8_t> differs_;
  std::vector<ResourceIndex> changed_;
  std::vector<double> room_;
  std::vector<std::uint32_t> rising_;
  std::vector<std::pair<double, std::uint32_t>> queue_;
  // The full solve's input.
  MaxMinSolver solver_;
  std::vector<std::uint32_t> solve_offsets_;
  std::vector<std::uint32_t> solve_resources_;
  std::vector<double> solve_rates_;
};

RAILCC_NAMESPACE_END
