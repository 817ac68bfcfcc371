// railcc/schedule/qp_paths.hpp: path-aware flow keys. Choosing each connection's QP so
// that the flows of a step land on different links under the fabric's ECMP hash.
//
// ECMP hashes a flow's 5-tuple at every switch, and RoCEv2 derives the UDP source port,
// the tuple's only free field, from the QP. Hashed blindly, n flows on n equal paths
// leave about 1/e of the paths idle and put two or more flows on others (routing.hpp).
// In a bulk-synchronous step the step then takes as long as its most loaded link.
// Meta's Llama 3 cluster answered with 16 QPs per connection (more entropy) and hashing
// on the QP. railcc can do better: it knows every flow of a step before the step starts,
// and it knows the hash, so it can pick, per flow, a QP whose path is free. This is
// application-level path assignment, which in a Clos comes close to per-packet spraying.
//
// The chooser works one step at a time (the flows that run at once):
//  1. greedy: flows in order, largest first; each tries `candidates` QP numbers and takes
//     the first whose path has no load yet on its switch links, else the one whose
//     busiest link would be least loaded (load over capacity, the step's bottleneck);
//  2. repair: a flow on a link that carries more than one of the step's flows tries its
//     candidates again against everyone else's paths, moving where its busiest link gets
//     less loaded, for a few rounds or until nothing moves.
// A GPU's NIC link is the same for every QP and is left out of the choice, unless the GPU
// has several ports (HPN's dual plane: the hash picks the plane), where a connection
// striped over two QPs gets one on each. Flows inside a host (NVLink) or under one leaf
// of a one-port GPU have one path and keep their QP. The result is a function of the
// flows and the hash's seed only, so every rank that knows the step computes the same QPs.
//
// Where the hash is not railcc's (a real switch's hash and seed are not known), the
// chooser's QPs are no better than any; striping a connection over k QPs
// (SimBackendConfig::qps_per_connection, k from qp_striping.hpp) is the fallback.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"
#include "railcc/sim/flow_graph.hpp"

RAILCC_NAMESPACE_BEGIN

struct QpChoiceOptions {
  /// QP numbers tried per flow: 0 .. candidates - 1. With c candidates a flow that needs
  /// one particular up-link among u finds it with probability 1 - (1 - 1/u)^c: 0.63 for
  /// 64 tries at u = 64 up-links, 0.98 for 256. A flow that needs one path is the last
  /// of a full step, which the repair round revisits. Measured on colossus at 100,000
  /// GPUs, 1 GiB all-reduce (links left carrying two flows of a step; railcc-sim's wall
  /// time): 64 tries, 0 rounds 175,103 (7.4 s); 1 round 166,480 (8.9 s); 4 rounds
  /// 165,845 (14.5 s); 256 tries, 8 rounds 104,347 (17 s). The simulated time is the
  /// same for all of them: the links left shared are in steps of small pieces.
  std::uint32_t candidates = 64;
  /// Repair rounds after the greedy pass.
  int repair_rounds = 1;
};

/// What a step's QP choice achieved: its busiest switch link, before and after.
struct QpChoiceStats {
  std::size_t flows = 0;          ///< flows with a choice (they cross a switch above their leaf)
  std::size_t moved = 0;          ///< flows whose QP changed
  double worst_before = 0;        ///< seconds the busiest switch link needs for its bytes, blindly
  double worst_after = 0;         ///< the same with the chosen QPs
  std::size_t shared_before = 0;  ///< switch links carrying more than one flow, blindly
  std::size_t shared_after = 0;   ///< the same with the chosen QPs
};

class QpPathChooser {
 public:
  QpPathChooser(const Fabric& fabric, RoutingOptions routing, QpChoiceOptions options = {})
      : fabric_(fabric), router_(fabric, routing), options_(options) {
    if (routing.mode != RoutingMode::ecmp) {
      throw InputError(
          "QP choice: the fabric sprays packets over every path; there is no hash "
          "to steer (choose QPs for ECMP routing only)");
    }
    if (options_.candidates == 0) throw InputError("QP choice: candidates must be at least 1");
    load_.assign(fabric.link_count(), 0.0);
    flows_on_.assign(fabric.link_count(), 0);
    touched_flag_.assign(fabric.link_count(), 0);
  }

  /// Chooses the QP of each flow of one step (flows that run at once), in place.
  QpChoiceStats choose(std::span<FlowSpec* const> step) {
    QpChoiceStats stats;
    // The flows with a choice, with their current path's switch links.
    struct Flow {
      FlowSpec* spec;
      double bytes;
      std::vector<LinkIndex> path;  // switch links only (NIC links left out)
    };
    std::vector<Flow> flows;
    for (FlowSpec* f : step) {
      if (f->src == f->dst || f->size == Bytes{} || f->src >= fabric_.endpoint_count() ||
          f->dst >= fabric_.endpoint_count() || over_nvlink(fabric_, f->src, f->dst))
        continue;
      Flow flow{f, static_cast<double>(f->size.count()), {}};
      switch_links(*f, f->qp, flow.path);
      if (flow.path.empty()) continue;  // one leaf: a single path
      flows.push_back(std::move(flow));
    }
    stats.flows = flows.size();
    if (flows.empty()) return stats;
    std::vector<std::uint32_t> original(flows.size());
    for (std::size_t i = 0; i < flows.size(); ++i) original[i] = flows[i].spec->qp;

    // Blind hashing, for the record.
    for (const Flow& f : flows) add(f.path, f.bytes);
    stats.worst_before = worst(stats.shared_before);
    for (const Flow& f : flows) add(f.path, -f.bytes);

    // 1. Greedy, largest first (ties in the flows' order, so the result is deterministic).
    std::vector<std::size_t> order(flows.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return flows[a].bytes > flows[b].bytes; });
    for (std::size_t i : order) {
      Flow& f = flows[i];
      place(f.spec, f.bytes, f.path);
      add(f.path, f.bytes);
    }
    // 2. Repair: flows on shared links look again, against everyone else's paths.
    for (int round = 0; round < options_.repair_rounds; ++round) {
      bool moved = false;
      for (std::size_t i : order) {
        Flow& f = flows[i];
        if (!on_shared_link(f.path)) continue;
        add(f.path, -f.bytes);
        const double before = bottleneck(f.path, f.bytes);
        const std::uint32_t old_qp = f.spec->qp;
        std::vector<LinkIndex> old_path = f.path;
        place(f.spec, f.bytes, f.path);
        if (bottleneck(f.path, f.bytes) < before) {
          moved = true;
        } else {
          f.spec->qp = old_qp;
          f.path = std::move(old_path);
        }
        add(f.path, f.bytes);
      }
      if (!moved) break;
    }
    stats.worst_after = worst(stats.shared_after);
    // Never worse than hashing blindly: where the choice left the busiest link busier,
    // the flows keep their QPs.
    if (stats.worst_after > stats.worst_before) {
      for (std::size_t i = 0; i < flows.size(); ++i) flows[i].spec->qp = original[i];
      stats.worst_after = stats.worst_before;
      stats.shared_after = stats.shared_before;
    }
    for (std::size_t i = 0; i < flows.size(); ++i) {
      if (flows[i].spec->qp != original[i]) ++stats.moved;
      add(flows[i].path, -flows[i].bytes);
    }
    for (LinkIndex l : touched_) touched_flag_[l] = 0;
    touched_.clear();
    return stats;
  }

 private:
  /// The links of the flow's ECMP path with QP `qp` that the QP chooses: between
  /// switches, and a NIC's port where its GPU has several (a dual-plane fabric's hash
  /// picks the plane, so the port).
  void switch_links(const FlowSpec& f, std::uint32_t qp, std::vector<LinkIndex>& out) {
    route_.clear();
    router_.route(FlowKey{f.src, f.dst, qp}, route_);
    out.clear();
    for (ResourceIndex r : route_) {
      const FabricLink& l = fabric_.link(r);
      const bool from_switch = fabric_.kind(l.from) == FabricNodeKind::network_switch;
      const bool to_switch = fabric_.kind(l.to) == FabricNodeKind::network_switch;
      if ((from_switch && to_switch) || (to_switch && network_ports(fabric_, l.from) > 1) ||
          (from_switch && network_ports(fabric_, l.to) > 1))
        out.push_back(r);
    }
  }
  void add(const std::vector<LinkIndex>& path, double bytes) {
    for (LinkIndex l : path) {
      if (!touched_flag_[l]) {
        touched_flag_[l] = 1;
        touched_.push_back(l);
      }
      load_[l] += bytes;
      flows_on_[l] += bytes > 0 ? 1 : -1;
    }
  }
  /// The busiest link of `path` once a flow of `bytes` is added: bytes over capacity.
  double bottleneck(const std::vector<LinkIndex>& path, double bytes) const {
    double worst = 0;
    for (LinkIndex l : path)
      worst = std::max(worst, (load_[l] + bytes) / fabric_.link(l).usable().in_bytes_per_second());
    return worst;
  }
  bool on_shared_link(const std::vector<LinkIndex>& path) const {
    return std::any_of(path.begin(), path.end(), [&](LinkIndex l) { return flows_on_[l] > 1; });
  }
  /// Tries the candidates; leaves the best QP in `spec` and its path in `path`. A
  /// candidate whose first link above the leaf is already as loaded as the best path's
  /// busiest link cannot beat it and is not routed (the first link is a few hashes).
  void place(FlowSpec* spec, double bytes, std::vector<LinkIndex>& path) {
    double best = -1;
    std::uint32_t best_qp = spec->qp;
    for (std::uint32_t qp = 0; qp < options_.candidates; ++qp) {
      const LinkIndex first = router_.ecmp_first_up_link(FlowKey{spec->src, spec->dst, qp});
      if (best >= 0 && first != no_link_index &&
          (load_[first] + bytes) / fabric_.link(first).usable().in_bytes_per_second() >= best)
        continue;
      switch_links(*spec, qp, candidate_);
      const bool free = std::all_of(candidate_.begin(), candidate_.end(),
                                    [&](LinkIndex l) { return flows_on_[l] == 0; });
      const double cost = bottleneck(candidate_, bytes);
      if (best < 0 || cost < best) {
        best = cost;
        best_qp = qp;
        path = candidate_;
      }
      if (free) break;
    }
    spec->qp = best_qp;
  }
  /// The busiest touched link's bytes over capacity, and how many links carry 2+ flows.
  double worst(std::size_t& shared) const {
    double w = 0;
    shared = 0;
    for (LinkIndex l : touched_) {
      if (flows_on_[l] > 1) ++shared;
      if (flows_on_[l] > 0)
        w = std::max(w, load_[l] / fabric_.link(l).usable().in_bytes_per_second());
    }
    return w;
  }

  const Fabric& fabric_;
  Router router_;
  QpChoiceOptions options_;
  std::vector<double> load_;        // per link: bytes of the step's placed flows
  std::vector<int> flows_on_;       // per link: how many of them
  std::vector<LinkIndex> touched_;  // links the step's flows crossed, once each
  std::vector<std::uint8_t> touched_flag_;
  std::vector<ResourceIndex> route_;
  std::vector<LinkIndex> candidate_;
};

RAILCC_NAMESPACE_END
