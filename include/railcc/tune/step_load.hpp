// railcc/tune/step_load.hpp: how much longer than its bytes at the NIC rate a step between
// hosts takes on a fabric, measured by routing the step's flows as the fabric does.
//
// The alpha-beta model (cost_model.hpp) charges a step's bytes at the GPU's NIC rate. With
// ECMP the flows of a step hash onto up-links independently, some links carry two or more
// of them, and the step lasts as long as its busiest link needs (the flow engine shares a
// link max-min fairly: docs/simulator.md). On a dual-plane NIC one QP takes one port, half
// the NIC. Spraying pools the paths, and QPs chosen by the scheduler (qp_paths.hpp) spread
// the flows. So the model asks the fabric: every flow of the step gets the same bytes,
// split over the connection's QPs as the simulated backend splits them (chosen by
// QpPathChooser where the schedule chooses them), routed by the fabric's own Router and
// hash; the busiest link's or pool's seconds for its bytes, over one flow's at the NIC
// rate, is the step's slowdown. No flow engine runs: it costs a route per flow.
//
// A step is a pattern of partners: the model needs one per level of mixed radix, one per
// halving step of Rabenseifner and one for a ring's hop between hosts; where a flat
// level's partners are a host-level pattern's (the usual case: the GPUs of a host are the
// first digits), the two share one measurement. Past `max_flows` connections
// (`max_chosen_flows` where QPs are chosen) a step is measured on its first sources'
// (whole leaves, in rank order): the busiest of more links is no less busy, so there the
// slowdown is a lower estimate.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "railcc/coll/phases.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"
#include "railcc/schedule/qp_paths.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/tune/cost_model.hpp"

RAILCC_NAMESPACE_BEGIN

/// How the network carries a step's flows: what the simulated backend is configured with.
struct StepRouting {
  RoutingOptions routing;
  std::uint32_t qps = 1;    ///< QPs per connection between hosts (SimBackendConfig)
  bool choose_qps = false;  ///< the scheduler chooses each QP's path (ECMP only)
  /// Connections measured per step, at most: past it, the first sources' (a lower
  /// estimate). Where QPs are chosen the chooser weighs up to 64 paths per flow, so fewer:
  /// on llama3 (24,576 GPUs, two QPs per connection) 16,384 took 4.9 s, more than the
  /// 1 GiB all-reduce they price; 2,048 take no time railcc-sim's wall clock shows.
  std::size_t max_flows = 16384;
  std::size_t max_chosen_flows = 2048;
};

/// Routes steps' flows and reports their busiest link; reused across steps (its load
/// array is one entry per link of the fabric).
class StepLoadMeter {
 public:
  StepLoadMeter(const Fabric& fabric, StepRouting routing)
      : fabric_(fabric), routing_(routing), router_(fabric, routing.routing) {
    if (routing_.qps == 0) throw InputError("step load: QPs per connection must be at least 1");
    if (routing_.choose_qps && routing_.routing.mode != RoutingMode::ecmp) {
      throw InputError("step load: QPs are chosen for ECMP only; spraying has no hash to steer");
    }
    if (routing_.choose_qps) {
      QpChoiceOptions choice;
      choice.qps_per_connection = routing_.qps;
      chooser_.emplace(fabric, routing_.routing, choice);
    }
  }

  /// The slowdown of a step in which every (source, destination) pair sends the same
  /// bytes at once, against `nic_Bps` (a GPU's NIC, all its ports): the busiest resource's
  /// seconds over one flow's at that rate. Pairs inside one host (NVLink) are left out;
  /// 1 when no pair crosses hosts.
  double slowdown(std::span<const std::pair<NodeIndex, NodeIndex>> pairs, double nic_Bps) {
    if (!(nic_Bps > 0)) throw InputError("step load: the NIC rate must be positive");
    // Whole bytes per QP, so that every piece is the same as posted (where QPs are
    // chosen, the chooser may then share a connection's bytes unequally).
    const std::size_t flow_bytes = std::size_t{1} << 20;
    const std::size_t piece = flow_bytes / routing_.qps;
    specs_.clear();
    const std::size_t most = chooser_ ? routing_.max_chosen_flows : routing_.max_flows;
    for (const auto& [src, dst] : pairs) {
      if (specs_.size() / routing_.qps >= most) break;
      if (src == dst || fabric_.host(src) == fabric_.host(dst) || over_nvlink(fabric_, src, dst))
        continue;
      for (std::uint32_t i = 0; i < routing_.qps; ++i)
        specs_.push_back(FlowSpec{src, dst, Bytes::of(piece), i, {}});
    }
    if (specs_.empty()) return 1.0;
    if (chooser_) {
      pointers_.clear();
      for (FlowSpec& f : specs_) pointers_.push_back(&f);
      chooser_->choose(pointers_);
    }
    double worst = 0;
    for (const FlowSpec& f : specs_) {
      route_.clear();
      (void)router_.route(FlowKey{f.src, f.dst, f.qp}, route_);
      for (ResourceIndex r : route_) {
        if (r >= load_.size()) load_.resize(std::max<std::size_t>(r + 1, fabric_.link_count()), 0);
        if (load_[r] == 0) touched_.push_back(r);
        load_[r] += static_cast<double>(f.size.count()) / router_.capacity(r);
        worst = std::max(worst, load_[r]);
      }
    }
    for (ResourceIndex r : touched_) load_[r] = 0;
    touched_.clear();
    return std::max(1.0, worst * nic_Bps / static_cast<double>(piece * routing_.qps));
  }

 private:
  const Fabric& fabric_;
  StepRouting routing_;
  Router router_;
  std::optional<QpPathChooser> chooser_;
  std::vector<FlowSpec> specs_;
  std::vector<FlowSpec*> pointers_;
  std::vector<ResourceIndex> route_;
  std::vector<double> load_;  // seconds of bytes per resource, this step
  std::vector<ResourceIndex> touched_;
};

namespace detail::tune {

/// Mixed radix's ring step at a level (`stride` ranks apart, groups of `f`): position j
/// sends to the next position of its group, as ring_reduce_scatter_phase does.
inline void ring_level_pairs(std::size_t q, std::size_t stride, std::size_t f,
                             std::vector<std::pair<NodeIndex, NodeIndex>>& out) {
  out.clear();
  for (std::size_t j = 0; j < q; ++j) {
    const std::size_t digit = (j / stride) % f;
    const std::size_t next = digit + 1 == f ? j - digit * stride : j + stride;
    out.emplace_back(static_cast<NodeIndex>(j), static_cast<NodeIndex>(next));
  }
}

/// Recursive halving's step at distance `d` among the first `pow2` ranks: j and j xor d.
inline void halving_pairs(std::size_t pow2, std::size_t d,
                          std::vector<std::pair<NodeIndex, NodeIndex>>& out) {
  out.clear();
  for (std::size_t j = 0; j < pow2; ++j)
    out.emplace_back(static_cast<NodeIndex>(j), static_cast<NodeIndex>(j ^ d));
}

}  // namespace detail::tune

/// The slowdowns of the model's steps between hosts on `fabric` routed as `routing` says,
/// for the model's ranks on the fabric's first endpoints (what SimBackend does by
/// default). A step that is the same pattern of partners for a flat algorithm and for the
/// one across hosts (ranks `stride` apart = hosts stride / GPUs per host apart, every
/// rail) is measured once.
inline StepSlowdowns measure_step_slowdowns(const Fabric& fabric, const CostModel& model,
                                            const StepRouting& routing) {
  StepSlowdowns out;
  if (model.hosts <= 1 || !(model.nic_Bps > 0)) return out;
  StepLoadMeter meter(fabric, routing);
  std::vector<std::pair<NodeIndex, NodeIndex>> pairs;
  // Measured patterns: (0 ring level / 1 halving, stride or distance in ranks, group size).
  std::map<std::tuple<int, std::size_t, std::size_t>, double> seen;
  const std::size_t q = model.ranks;
  const std::size_t G = model.per_host;
  auto ring_level = [&](std::size_t stride, std::size_t f) {
    const auto key = std::make_tuple(0, stride, f);
    if (auto it = seen.find(key); it != seen.end()) return it->second;
    detail::tune::ring_level_pairs(q, stride, f, pairs);
    return seen[key] = meter.slowdown(pairs, model.nic_Bps);
  };
  auto halving = [&](std::size_t pow2, std::size_t d) {
    const auto key = std::make_tuple(1, d, pow2);
    if (auto it = seen.find(key); it != seen.end()) return it->second;
    detail::tune::halving_pairs(pow2, d, pairs);
    return seen[key] = meter.slowdown(pairs, model.nic_Bps);
  };
  // Flat mixed radix: a level inside hosts is NVLink (as CostModel::predict decides).
  {
    std::size_t stride = 1;
    for (std::size_t f : mixed_radix_factors(q)) {
      out.mixed_radix.push_back(G % (stride * f) == 0 ? 1.0 : ring_level(stride, f));
      stride *= f;
    }
  }
  std::size_t pow2 = 1;
  while (pow2 * 2 <= q) pow2 *= 2;
  for (std::size_t d = pow2 / 2; d >= 1; d /= 2)
    out.rabenseifner.push_back(d < G ? 1.0 : halving(pow2, d));
  // Across hosts: the same patterns on host positions, every rail at once (whole hosts
  // only; the algorithms across hosts need them).
  if (q == model.hosts * G) {
    std::size_t stride = 1;
    for (std::size_t f : mixed_radix_factors(model.hosts)) {
      out.hosts_mixed_radix.push_back(ring_level(stride * G, f));
      stride *= f;
    }
    std::size_t hosts_pow2 = 1;
    while (hosts_pow2 * 2 <= model.hosts) hosts_pow2 *= 2;
    for (std::size_t d = hosts_pow2 / 2; d >= 1; d /= 2)
      out.hosts_rabenseifner.push_back(halving(hosts_pow2 * G, d * G));
    // A ring's hop between hosts: every GPU to the same rail of the next host.
    pairs.clear();
    for (std::size_t j = 0; j < q; ++j)
      pairs.emplace_back(static_cast<NodeIndex>(j), static_cast<NodeIndex>((j + G) % q));
    out.ring = meter.slowdown(pairs, model.nic_Bps);
  }
  return out;
}

RAILCC_NAMESPACE_END
