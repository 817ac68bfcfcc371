// railcc/sim/rate_state.hpp: the active flows' max-min fair rates, kept up to date as
// flows start and finish.
//
// A re-solve costs what it re-solves, not the whole active set: flows frozen below
// `keep_below` in the last solution keep their rates. Departures only free capacity at
// levels at or above the departed flows' rates, and a new flow cannot fill any resource
// on its path below capacity / flows-on-it, so nothing below both can change. The others
// are re-solved against the capacity the kept flows leave (SimConfig::exact_rate_solves
// re-solves everything, the reference this is tested against). A flow's remaining bytes
// are brought up to date only when its rate changes: between changes it moves linearly.
//
// The argument holds in exact arithmetic; rates are doubles. Two flows whose fair shares
// are mathematically equal (the same bottleneck's share) can be computed an ulp apart, and
// a strict comparison against the departing flow's rate would keep the lower one at a
// stale rate for the rest of its life. So the bound is lowered by `same_level`, a relative
// margin far above rounding error and far below any real difference between levels:
// re-solving a few more flows is always correct (any lower set of the last solution may be
// kept), keeping one too many is not.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
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
        load_(routes.resource_count(), 0.0),
        flows_on_(routes.resource_count(), 0),
        class_of_(std::move(class_of)),
        class_load_(classes, 0.0) {}

  /// Flow f starts sending `bytes` at `now` (it gets a rate at the next resolve()).
  void start(FlowId f, std::int64_t now, double bytes) {
    remaining_[f] = bytes;
    rate_[f] = 0;
    since_[f] = now;
    fresh_.push_back(f);
    ++active_count_;
    for (ResourceIndex r : routes_.path(f))
      keep_below_ = std::min(keep_below_, below(routes_.capacity(r) / ++flows_on_[r]));
  }

  /// Flow f's last byte has left: it frees its share. Every byte crossed every resource
  /// of its path (the finish time was rounded up): `bytes` go to `resource_bytes`.
  void finish(FlowId f, double bytes, std::span<double> resource_bytes) {
    for (ResourceIndex r : routes_.path(f)) {
      resource_bytes[r] += bytes;
      --flows_on_[r];
    }
    remaining_[f] = 0;
    keep_below_ = std::min(keep_below_, below(rate_[f]));
    by_rate_.erase({rate_[f], f});
    add_load(f, -rate_[f]);
    --active_count_;
  }

  [[nodiscard]] std::size_t active_count() const { return active_count_; }
  /// Bytes per second crossing each link class now.
  [[nodiscard]] std::span<const double> class_load() const { return class_load_; }

  /// Nothing to re-solve at this time; with no flow left active, the class loads are
  /// reset (no rounding residue).
  void idle(bool emptied) {
    keep_below_ = inf;
    if (emptied) std::fill(class_load_.begin(), class_load_.end(), 0.0);
  }

  /// Re-solves the rates that can change at `now` (all of them when `exact`). For each
  /// flow whose rate changed, `on_new_finish(f, picoseconds from now)` schedules
  /// its finish. Returns how many flows were solved.
  template <class OnNewFinish>
  std::size_t resolve(std::int64_t now, bool exact, const FlowGraph& graph,
                      OnNewFinish&& on_new_finish) {
    if (exact) keep_below_ = 0;
    solve_set_.assign(fresh_.begin(), fresh_.end());
    fresh_.clear();
    for (auto it = by_rate_.lower_bound({keep_below_, 0}); it != by_rate_.end(); ++it)
      solve_set_.push_back(it->second);
    keep_below_ = inf;
    solve_offsets_.assign(1, 0);
    solve_resources_.clear();
    for (FlowId f : solve_set_) {
      if (rate_[f] > 0) add_load(f, -rate_[f]);
      const auto path = routes_.path(f);
      solve_resources_.insert(solve_resources_.end(), path.begin(), path.end());
      solve_offsets_.push_back(static_cast<std::uint32_t>(solve_resources_.size()));
    }
    solve_rates_.assign(solve_set_.size(), 0.0);
    solver_.solve(
        routes_.resource_count(), solve_offsets_, solve_resources_,
        [&](std::uint32_t r) {
          return exact ? routes_.capacity(r) : routes_.capacity(r) - load_[r];
        },
        solve_rates_);
    for (std::size_t i = 0; i < solve_set_.size(); ++i) {
      const FlowId f = solve_set_[i];
      const double x = solve_rates_[i];
      add_load(f, x);
      if (x == rate_[f]) continue;  // its finish event still holds
      if (!(x > 0)) {
        throw InputError("simulation: flow " + std::to_string(f) +
                         " got no bandwidth (a link on its path has none)");
      }
      progress(f, now);
      if (rate_[f] > 0) by_rate_.erase({rate_[f], f});
      rate_[f] = x;
      by_rate_.insert({x, f});
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
    return solve_set_.size();
  }

 private:
  static constexpr double inf = std::numeric_limits<double>::infinity();
  /// Rates within this relative distance are treated as one level (see the top).
  static constexpr double same_level = 1e-9;
  static double below(double level) { return level * (1 - same_level); }

  void progress(FlowId f, std::int64_t now) {
    remaining_[f] =
        std::max(0.0, remaining_[f] - rate_[f] * static_cast<double>(now - since_[f]) * 1e-12);
    since_[f] = now;
  }
  void add_load(FlowId f, double x) {
    for (ResourceIndex r : routes_.path(f)) {
      load_[r] += x;
      class_load_[class_of_[r]] += x;
    }
  }

  const RouteTable& routes_;
  std::vector<double> remaining_;
  std::vector<double> rate_;
  std::vector<std::int64_t> since_;
  std::size_t active_count_ = 0;
  std::vector<double> load_;  // each resource's load from the active flows' current rates
  std::vector<std::uint32_t> flows_on_;
  std::set<std::pair<double, FlowId>> by_rate_;  // the active flows by rate
  std::vector<FlowId> fresh_;                    // started, no rate yet
  double keep_below_ = inf;
  std::vector<std::uint8_t> class_of_;
  std::vector<double> class_load_;
  MaxMinSolver solver_;
  std::vector<FlowId> solve_set_;
  std::vector<std::uint32_t> solve_offsets_;
  std::vector<std::uint32_t> solve_resources_;
  std::vector<double> solve_rates_;
};

RAILCC_NAMESPACE_END
