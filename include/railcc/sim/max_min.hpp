// railcc/sim/max_min.hpp: max-min fair rates by progressive filling.
//
// Every flow crosses a set of resources (links or pools) with capacities. Max-min
// fairness raises all rates together until some resource is full, freezes the flows on
// it, and goes on with the rest (Bertsekas & Gallager, Data Networks, 6.5.2). railcc does
// it exactly and in O((R + F h) log R) for F flows of h resources each: a heap holds each
// resource's fair share (remaining capacity / unfrozen flows), the smallest share is the
// next water level, and freezing a flow updates only the resources it crosses. Shares
// never decrease as the water rises, so each resource is settled once.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
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
             std::span<const std::uint32_t> flow_resources, Capacity capacity, std::span<double> rates) {
    const std::size_t flows = flow_offsets.size() - 1;
    // Resource -> flows (CSR), only for resources in use.
    touched_.clear();
    if (count_.size() < resource_count) {
      count_.resize(resource_count, 0);
      remaining_.resize(resource_count, 0);
      first_.resize(resource_count + 1, 0);
    }
    for (std::uint32_t r : flow_resources) {
      if (count_[r]++ == 0) touched_.push_back(r);
    }
    // Prefix sums over touched resources, stored at first_[r].
    std::uint32_t total = 0;
    for (std::uint32_t r : touched_) {
      first_[r] = total;
      total += count_[r];
    }
    members_.resize(total);
    fill_.assign(touched_.size(), 0);
    slot_.resize(resource_count);
    for (std::size_t i = 0; i < touched_.size(); ++i) slot_[touched_[i]] = static_cast<std::uint32_t>(i);
    for (std::uint32_t f = 0; f < flows; ++f) {
      for (std::uint32_t i = flow_offsets[f]; i < flow_offsets[f + 1]; ++i) {
        const std::uint32_t r = flow_resources[i];
        members_[first_[r] + fill_[slot_[r]]++] = f;
      }
    }
    frozen_.assign(flows, 0);
    for (std::uint32_t f = 0; f < flows; ++f) {
      rates[f] = 0;
      if (flow_offsets[f] == flow_offsets[f + 1]) frozen_[f] = 1;
    }
    using Entry = std::pair<double, std::uint32_t>;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
    for (std::uint32_t r : touched_) {
      remaining_[r] = capacity(r);
      heap.emplace(remaining_[r] / count_[r], r);
    }
    while (!heap.empty()) {
      const auto [share, r] = heap.top();
      heap.pop();
      if (count_[r] == 0) continue;
      const double current = remaining_[r] / count_[r];
      if (current != share) continue;  // stale: a newer entry carries the right share
      const double level = current < 0 ? 0 : current;
      for (std::uint32_t i = first_[r]; i < first_[r] + fill_[slot_[r]]; ++i) {
        const std::uint32_t f = members_[i];
        if (frozen_[f]) continue;
        frozen_[f] = 1;
        rates[f] = level;
        for (std::uint32_t j = flow_offsets[f]; j < flow_offsets[f + 1]; ++j) {
          const std::uint32_t q = flow_resources[j];
          remaining_[q] -= level;
          if (--count_[q] > 0 && q != r) heap.emplace(remaining_[q] / count_[q], q);
        }
      }
    }
    for (std::uint32_t r : touched_) count_[r] = 0;
  }

 private:
  std::vector<std::uint32_t> count_;
  std::vector<double> remaining_;
  std::vector<std::uint32_t> first_;
  std::vector<std::uint32_t> slot_;
  std::vector<std::uint32_t> fill_;
  std::vector<std::uint32_t> members_;
  std::vector<std::uint32_t> touched_;
  std::vector<std::uint8_t> frozen_;
};

RAILCC_NAMESPACE_END
