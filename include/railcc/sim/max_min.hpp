// railcc/sim/max_min.hpp: max-min fair rates by progressive filling.
//
// Every flow crosses a set of resources (links or pools) with capacities. Max-min
// fairness raises all rates together until some resource is full, freezes the flows on
// it, and goes on with the rest (Bertsekas & Gallager, Data Networks, 6.5.2). railcc does
// it exactly: each resource's fair share (remaining capacity / unfrozen flows) is
// known, the smallest is the next water level, and freezing a flow updates only the
// resources it crosses. Shares never decrease as the water rises (a flow frozen at level
// x leaves (c - x) / (n - 1) >= c / n behind), so shares are refreshed lazily: the
// starting shares are sorted once, and an entry found below its resource's current share
// goes into a heap at the current value, merged with the sorted ones.
// Cost: O(F h) updates, a sort of R shares, and O(refreshes log R) heap work, for F flows
// of h hops over R resources.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

class MaxMinSolver {
 public:
  /// `flow_offsets` (size F+1) and `flow_resources` describe each flow's resources;
  /// `capacity(r)` gives resource r's capacity. Resource ids must be < resource_count.
  /// Writes each flow's rate into `rates` (size F). A flow with no resource gets 0.
  template <class Capacity>
  void solve(std::size_t resource_count, std::span<const std::uint32_t> flow_offsets,
             std::span<const std::uint32_t> flow_resources, Capacity capacity,
             std::span<double> rates) {
    solve_above(resource_count, flow_offsets, flow_resources, capacity, rates, 0.0);
  }

  /// The same, given that every flow whose rate in `rates` is below `keep_below` is known
  /// to keep it (see engine.hpp for when that holds): those flows only take their share
  /// of capacity, and the water filling runs over the others. keep_below = 0 solves all.
  template <class Capacity>
  void solve_above(std::size_t resource_count, std::span<const std::uint32_t> flow_offsets,
                   std::span<const std::uint32_t> flow_resources, Capacity capacity,
                   std::span<double> rates, double keep_below) {
    const std::size_t flows = flow_offsets.size() - 1;
    if (count_.size() < resource_count) {
      count_.resize(resource_count, 0);
      remaining_.resize(resource_count, 0);
      first_.resize(resource_count + 1, 0);
      seen_.resize(resource_count, 0);
    }
    // Capacity left by the kept flows, on every resource anyone uses.
    touched_.clear();
    all_.clear();
    frozen_.assign(flows, 0);
    bottleneck_.assign(flows, no_bottleneck);
    for (std::uint32_t f = 0; f < flows; ++f) {
      const bool kept = rates[f] < keep_below;
      frozen_[f] = kept ? 1 : 0;
      for (std::uint32_t i = flow_offsets[f]; i < flow_offsets[f + 1]; ++i) {
        const std::uint32_t r = flow_resources[i];
        if (!seen_[r]) {
          seen_[r] = 1;
          all_.push_back(r);
          remaining_[r] = capacity(r);
        }
        if (kept) {
          remaining_[r] -= rates[f];
        } else if (count_[r]++ == 0) {
          touched_.push_back(r);
        }
      }
    }
    for (std::uint32_t r : all_) seen_[r] = 0;
    // Prefix sums over touched resources, stored at first_[r].
    std::uint32_t total = 0;
    for (std::uint32_t r : touched_) {
      first_[r] = total;
      total += count_[r];
    }
    members_.resize(total);
    fill_.assign(touched_.size(), 0);
    slot_.resize(resource_count);
    for (std::size_t i = 0; i < touched_.size(); ++i)
      slot_[touched_[i]] = static_cast<std::uint32_t>(i);
    for (std::uint32_t f = 0; f < flows; ++f) {
      if (frozen_[f]) continue;
      rates[f] = 0;
      if (flow_offsets[f] == flow_offsets[f + 1]) frozen_[f] = 1;
      for (std::uint32_t i = flow_offsets[f]; i < flow_offsets[f + 1]; ++i) {
        const std::uint32_t r = flow_resources[i];
        members_[first_[r] + fill_[slot_[r]]++] = f;
      }
    }
    // Resources in order of their starting share, and a heap of those whose share rose
    // since: the next water level is the smaller of the two fronts. Sorting is one
    // cache-friendly pass where a heap of every resource paid a scattered pop each.
    sorted_.clear();
    sorted_.reserve(touched_.size());
    for (std::uint32_t r : touched_) sorted_.emplace_back(remaining_[r] / count_[r], r);
    std::sort(sorted_.begin(), sorted_.end());
    heap_.clear();
    const std::greater<> later;
    std::size_t next = 0;
    while (next < sorted_.size() || !heap_.empty()) {
      Entry entry;
      if (heap_.empty() || (next < sorted_.size() && sorted_[next] < heap_.front())) {
        entry = sorted_[next++];
      } else {
        std::pop_heap(heap_.begin(), heap_.end(), later);
        entry = heap_.back();
        heap_.pop_back();
      }
      const auto [share, r] = entry;
      if (count_[r] == 0) continue;
      const double current = remaining_[r] / count_[r];
      // Shares only grow, so an entry is never above the truth: when it is below, put the
      // resource back at its current share instead of having pushed every update.
      if (current > share) {
        heap_.emplace_back(current, r);
        std::push_heap(heap_.begin(), heap_.end(), later);
        continue;
      }
      const double level = current < 0 ? 0 : current;
      for (std::uint32_t i = first_[r]; i < first_[r] + fill_[slot_[r]]; ++i) {
        const std::uint32_t f = members_[i];
        if (frozen_[f]) continue;
        frozen_[f] = 1;
        rates[f] = level;
        bottleneck_[f] = r;
        for (std::uint32_t j = flow_offsets[f]; j < flow_offsets[f + 1]; ++j) {
          const std::uint32_t q = flow_resources[j];
          remaining_[q] -= level;
          --count_[q];
        }
      }
    }
    for (std::uint32_t r : touched_) count_[r] = 0;
    solved_ = touched_.size();
  }

  static constexpr std::uint32_t no_bottleneck = 0xffffffffu;
  /// Per flow of the last solve: the resource that filled and froze it (no_bottleneck for
  /// a flow it kept or one with no resource).
  [[nodiscard]] std::span<const std::uint32_t> bottlenecks() const { return bottleneck_; }

  /// Resources the last solve filled (a measure of its work).
  [[nodiscard]] std::size_t last_solved_resources() const { return solved_; }

 private:
  std::vector<std::uint32_t> count_;
  std::vector<double> remaining_;
  std::vector<std::uint32_t> first_;
  std::vector<std::uint32_t> slot_;
  std::vector<std::uint32_t> fill_;
  std::vector<std::uint32_t> members_;
  std::vector<std::uint32_t> touched_;
  std::vector<std::uint8_t> frozen_;
  std::vector<std::uint32_t> bottleneck_;
  std::vector<std::uint8_t> seen_;
  std::vector<std::uint32_t> all_;
  using Entry = std::pair<double, std::uint32_t>;  // (share, resource)
  std::vector<Entry> sorted_;
  std::vector<Entry> heap_;
  std::size_t solved_ = 0;
};

RAILCC_NAMESPACE_END
