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
#include <atomic>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/sim/worker_threads.hpp"

RAILCC_NAMESPACE_BEGIN

struct QpChoiceOptions {
  /// QP numbers tried per flow: 0 .. candidates - 1. With c candidates a flow that needs
  /// one particular up-link among u finds it with probability 1 - (1 - 1/u)^c: 0.63 for
  /// 64 tries at u = 64 up-links, 0.98 for 256. A flow that needs one path is the last
  /// of a full step, which the repair round revisits. Measured on colossus at 100,000
  /// GPUs, 1 GiB all-reduce (links left carrying two flows of a step; railcc-sim's wall
  /// time on 2 cores): 64 tries, 0 rounds 146,920 (3.0 s); 1 round 141,960 (3.5 s); 4
  /// rounds 141,766 (4.3 s); 256 tries, 8 rounds 74,396 (5.2 s). The simulated time is
  /// the same for all of them: the links left shared are in steps of small pieces.
  std::uint32_t candidates = 64;
  /// Repair rounds after the greedy pass.
  int repair_rounds = 1;
  /// Threads that choose steps side by side (choose_qps_of_steps), each with its own
  /// chooser: 0 for the machine's hardware threads, at most 4 (a chooser keeps 17 bytes
  /// per link: 240 MB at 1,000,000 GPUs; worker_threads). A step's choice does not depend
  /// on the others', so the QPs are the same for any count.
  unsigned threads = 0;
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
    load_.assign(fabric.link_count(), LinkLoad{});
    touched_flag_.assign(fabric.link_count(), 0);
    stride_ = 2 * static_cast<std::size_t>(fabric.tiers()) + 2;
    // Looked up at both ends of every route weighed: once here instead.
    for (NodeIndex e = 0; e < fabric.endpoint_count(); ++e) {
      if (network_ports(fabric, e) <= 1) continue;
      if (several_ports_.empty()) several_ports_.assign(fabric.endpoint_count(), 0);
      several_ports_[e] = 1;
    }
    links_down_ = std::any_of(fabric.links().begin(), fabric.links().end(),
                              [](const FabricLink& l) { return !l.alive(); });
  }

  /// Chooses the QP of each flow of one step (flows that run at once), in place.
  QpChoiceStats choose(std::span<FlowSpec* const> step) {
    QpChoiceStats stats;
    // The flows with a choice, with their current path's switch links.
    std::vector<StepFlow>& flows = flows_;
    flows.clear();
    paths_.clear();
    for (FlowSpec* f : step) {
      if (f->src == f->dst || f->size == Bytes{} || f->src >= fabric_.endpoint_count() ||
          f->dst >= fabric_.endpoint_count() || over_nvlink(fabric_, f->src, f->dst))
        continue;
      switch_links(*f, f->qp, candidate_);
      if (candidate_.empty()) continue;  // one leaf: a single path
      flows.push_back({f, static_cast<double>(f->size.count()), 0});
      paths_.resize(paths_.size() + stride_);
      store(flows.size() - 1, candidate_);
    }
    stats.flows = flows.size();
    if (flows.empty()) return stats;
    std::vector<std::uint32_t> original(flows.size());
    for (std::size_t i = 0; i < flows.size(); ++i) original[i] = flows[i].spec->qp;

    // Blind hashing, for the record.
    for (std::size_t i = 0; i < flows.size(); ++i) add(path(i), flows[i].bytes);
    stats.worst_before = worst(stats.shared_before);
    for (std::size_t i = 0; i < flows.size(); ++i) add(path(i), -flows[i].bytes);

    // 1. Greedy, largest first (ties in the flows' order, so the result is deterministic).
    std::vector<std::size_t> order(flows.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::vector<NodeIndex> leaf(flows.size());
    for (std::size_t i = 0; i < flows.size(); ++i) leaf[i] = fabric_.link(path(i)[0]).from;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (flows[a].bytes != flows[b].bytes) return flows[a].bytes > flows[b].bytes;
      return leaf[a] < leaf[b];
    });
    for (std::size_t i : order) {
      const StepFlow& f = flows[i];
      place(f.spec, f.bytes, f.spec->qp, path(i));
      store(i, candidate_);
      add(path(i), f.bytes);
    }
    // 2. Repair: flows on shared links look again, against everyone else's paths.
    for (int round = 0; round < options_.repair_rounds; ++round) {
      bool moved = false;
      for (std::size_t i : order) {
        const StepFlow& f = flows[i];
        if (!on_shared_link(path(i))) continue;
        add(path(i), -f.bytes);
        const double before = bottleneck(path(i), f.bytes);
        const std::uint32_t old_qp = f.spec->qp;
        place(f.spec, f.bytes, old_qp, path(i));
        if (bottleneck(candidate_, f.bytes) < before) {
          moved = true;
          store(i, candidate_);
        } else {
          f.spec->qp = old_qp;
        }
        add(path(i), f.bytes);
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
      add(path(i), -flows[i].bytes);
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
    chosen_links(route_, out);
  }
  void chosen_links(const std::vector<ResourceIndex>& route, std::vector<LinkIndex>& out) const {
    out.clear();
    for (ResourceIndex r : route) {
      const FabricLink& l = fabric_.link(r);
      const bool from_switch = fabric_.kind(l.from) == FabricNodeKind::network_switch;
      const bool to_switch = fabric_.kind(l.to) == FabricNodeKind::network_switch;
      if ((from_switch && to_switch) || (to_switch && several_ports(l.from)) ||
          (from_switch && several_ports(l.to)))
        out.push_back(r);
    }
  }
  /// Flow i's chosen links (its slot of paths_).
  [[nodiscard]] std::span<const LinkIndex> path(std::size_t i) const {
    return {paths_.data() + i * stride_, flows_[i].length};
  }
  /// Copies `links` into flow i's slot.
  void store(std::size_t i, const std::vector<LinkIndex>& links) {
    if (links.size() > stride_)
      throw std::logic_error("QP choice: a path of " + std::to_string(links.size()) +
                             " links between switches on a fabric of " +
                             std::to_string(fabric_.tiers()) + " tiers");
    std::copy(links.begin(), links.end(),
              paths_.begin() + static_cast<std::ptrdiff_t>(i * stride_));
    flows_[i].length = static_cast<std::uint32_t>(links.size());
  }
  void add(std::span<const LinkIndex> path, double bytes) {
    for (LinkIndex l : path) {
      if (!touched_flag_[l]) {
        touched_flag_[l] = 1;
        touched_.push_back(l);
      }
      load_[l].bytes += bytes;
      load_[l].flows += bytes > 0 ? 1 : -1;
    }
  }
  /// The busiest link of `path` once a flow of `bytes` is added: bytes over capacity.
  double bottleneck(std::span<const LinkIndex> path, double bytes) const {
    double worst = 0;
    for (LinkIndex l : path)
      worst = std::max(worst,
                       (load_[l].bytes + bytes) / fabric_.link(l).usable().in_bytes_per_second());
    return worst;
  }
  bool on_shared_link(std::span<const LinkIndex> path) const {
    return std::any_of(path.begin(), path.end(), [&](LinkIndex l) { return load_[l].flows > 1; });
  }
  /// Tries the candidates; leaves the best QP in `spec` and its path in `candidate_`. A
  /// candidate is given up at the first link on its way that already carries flows of
  /// the step and would then be as loaded as the best path's busiest link: it cannot
  /// beat that path, and the rest of its route is not worth finding (at 1,000,000 GPUs
  /// most candidates stop a hop or two above their leaf). Where links are down, ECMP may
  /// back out of a branch, so only the first link above the leaf, which it leaves by
  /// whatever the branch, is a bound (a branch may still take another way: the choice
  /// is then a good one, not always the best).
  /// The path of QP `known_qp` is `known` already (the flow's path as it stands): that
  /// candidate is not routed again. Routed, it would be the same path; where a link of it
  /// is refused, it is a path that could not win.
  void place(FlowSpec* spec, double bytes, std::uint32_t known_qp,
             std::span<const LinkIndex> known) {
    double best = -1;
    std::uint32_t best_qp = spec->qp;
    for (std::uint32_t qp = 0; qp < options_.candidates; ++qp) {
      if (qp == known_qp) {
        trial_.assign(known.begin(), known.end());
        if (weigh(qp, bytes, best, best_qp)) break;
        continue;
      }
      bool leaf_up_seen = false;
      const auto keep = [&](LinkIndex l) {
        if (best < 0) return true;
        if (links_down_) {
          const FabricLink& k = fabric_.link(l);
          if (leaf_up_seen || !k.up || fabric_.kind(k.from) != FabricNodeKind::network_switch ||
              fabric_.tier(k.from) != 1)
            return true;
          leaf_up_seen = true;
        }
        const LinkLoad& load = load_[l];
        return load.flows == 0 ||
               (load.bytes + bytes) / fabric_.link(l).usable().in_bytes_per_second() < best;
      };
      route_.clear();
      PathInfo info;
      if (!router_.route_while(FlowKey{spec->src, spec->dst, qp}, route_, keep, info)) continue;
      chosen_links(route_, trial_);
      if (weigh(qp, bytes, best, best_qp)) break;
    }
    spec->qp = best_qp;
  }
  /// Weighs the candidate in trial_ (QP qp) against the best so far, taking it if it is
  /// less loaded; true when it is free (no flow of the step on it yet): the search ends.
  bool weigh(std::uint32_t qp, double bytes, double& best, std::uint32_t& best_qp) {
    const bool free =
        std::all_of(trial_.begin(), trial_.end(), [&](LinkIndex l) { return load_[l].flows == 0; });
    const double cost = bottleneck(trial_, bytes);
    if (best < 0 || cost < best) {
      best = cost;
      best_qp = qp;
      candidate_.swap(trial_);
    }
    return free;
  }
  /// Whether an endpoint has several network ports (then its port is a choice).
  [[nodiscard]] bool several_ports(NodeIndex n) const {
    return n < several_ports_.size() && several_ports_[n] != 0;
  }
  /// The busiest touched link's bytes over capacity, and how many links carry 2+ flows.
  double worst(std::size_t& shared) const {
    double w = 0;
    shared = 0;
    for (LinkIndex l : touched_) {
      if (load_[l].flows > 1) ++shared;
      if (load_[l].flows > 0)
        w = std::max(w, load_[l].bytes / fabric_.link(l).usable().in_bytes_per_second());
    }
    return w;
  }

  const Fabric& fabric_;
  Router router_;
  QpChoiceOptions options_;
  /// Per link: the bytes of the step's placed flows and how many they are (side by side:
  /// a candidate's walk reads both, and at scale each read is a cache miss).
  struct LinkLoad {
    double bytes = 0;
    std::int32_t flows = 0;
  };
  std::vector<LinkLoad> load_;
  std::vector<LinkIndex> touched_;  // links the step's flows crossed, once each
  std::vector<std::uint8_t> touched_flag_;
  std::vector<std::uint8_t> several_ports_;  // per endpoint; empty where none has
  bool links_down_ = false;  // a route may back out of a branch (place() says why it matters)
  std::vector<ResourceIndex> route_;
  std::vector<LinkIndex> candidate_;  // place(): the best path so far; choose(): a flow's path
  std::vector<LinkIndex> trial_;      // place(): the candidate being weighed
  /// choose(): the flows with a choice; their chosen links in paths_, flow i's in slot i
  /// of stride_ links (up and down every tier between switches, and a port at each end):
  /// one buffer, where a vector per flow was 800,000 allocations a step at 1,000,000 GPUs.
  struct StepFlow {
    FlowSpec* spec;
    double bytes;
    std::uint32_t length;  // links in its slot
  };
  std::vector<StepFlow> flows_;
  std::vector<LinkIndex> paths_;
  std::size_t stride_ = 0;
};

/// Chooses the QPs of many steps, each a set of flows that run at once, on
/// `options.threads` threads (worker_threads.hpp), one chooser each; the stats in the
/// steps' order.
inline std::vector<QpChoiceStats> choose_qps_of_steps(
    const Fabric& fabric, RoutingOptions routing, QpChoiceOptions options,
    const std::vector<std::vector<FlowSpec*>>& steps) {
  std::vector<QpChoiceStats> stats(steps.size());
  if (steps.empty()) return stats;
  // Steps are handed out in order as threads come free; each step's choice is its own,
  // so which thread takes it changes nothing. The first failure, by step, is rethrown.
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> failed(steps.size());
  run_on_threads(worker_threads(steps.size(), options.threads), [&](unsigned) {
    std::optional<QpPathChooser> chooser;
    for (std::size_t i = next++; i < steps.size(); i = next++) {
      try {
        if (!chooser) chooser.emplace(fabric, routing, options);
        stats[i] = chooser->choose(steps[i]);
      } catch (...) {
        failed[i] = std::current_exception();
      }
    }
  });
  for (const std::exception_ptr& e : failed)
    if (e) std::rethrow_exception(e);
  return stats;
}

RAILCC_NAMESPACE_END
