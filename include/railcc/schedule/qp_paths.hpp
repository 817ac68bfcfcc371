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
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
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
  /// QPs per connection: flows of a step with the same ends and the same original QP
  /// divided by this are one connection striped over QPs (the simulated backend numbers a
  /// transfer's QPs qp * k + i). Above 1, the chooser also shares each connection's bytes
  /// among its QPs (see QpPathChooser::share); 1 leaves every flow's bytes as they are.
  std::uint32_t qps_per_connection = 1;
  /// Sharing's visits per striped connection, on average (a work list: every connection
  /// once, then those on links a visit changed).
  int share_rounds = 8;
  /// Threads that choose steps side by side (choose_qps_of_steps), each with its own
  /// chooser: 0 for the machine's hardware threads, at most 4 (a chooser keeps 17 bytes
  /// per link: 240 MB at 1,000,000 GPUs; worker_threads). A step's choice does not depend
  /// on the others', so the QPs are the same for any count.
  unsigned threads = 0;
};

/// What a step's QP choice achieved: its busiest switch link, before and after.
struct QpChoiceStats {
  std::size_t flows = 0;          ///< flows with a choice (they cross a switch above their leaf)
  std::size_t moved = 0;          ///< flows whose QP or bytes changed
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
    posted_.resize(flows.size());
    for (std::size_t i = 0; i < flows.size(); ++i) {
      original[i] = flows[i].spec->qp;
      posted_[i] = flows[i].spec->size;
    }

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
    group_connections(original);
    for (std::size_t i : order) {
      const StepFlow& f = flows[i];
      const std::uint32_t c = connection_of_.empty() ? no_connection : connection_of_[i];
      place(f.spec, f.bytes, f.spec->qp, path(i),
            c == no_connection ? no_link : connection_root_[c]);
      store(i, candidate_);
      add(path(i), f.bytes);
      if (c != no_connection) connection_root_[c] = join(path(i), connection_root_[c]);
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
    // 3. Share each striped connection's bytes among its QPs.
    share();
    stats.worst_after = worst(stats.shared_after);
    // Never worse than hashing blindly: where the choice left the busiest link busier,
    // the flows keep their QPs and their bytes.
    if (stats.worst_after > stats.worst_before) {
      for (std::size_t i = 0; i < flows.size(); ++i) {
        flows[i].spec->qp = original[i];
        flows[i].spec->size = posted_[i];
      }
      stats.worst_after = stats.worst_before;
      stats.shared_after = stats.shared_before;
    }
    for (std::size_t i = 0; i < flows.size(); ++i) {
      if (flows[i].spec->qp != original[i] || flows[i].spec->size != posted_[i]) ++stats.moved;
      add(path(i), -flows[i].bytes);
    }
    for (LinkIndex l : touched_) {
      touched_flag_[l] = 0;
      if (!component_.empty()) component_[l] = l;
    }
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
  /// `sibling_links`: a link of the component that the flow's connection's QPs placed so
  /// far have joined (no_link: none, or no preference). Of candidates equally loaded, one
  /// with a link outside that component wins (see join()); one that only ties the best
  /// is then worth finding, so the search gives up only at a link that would be busier.
  void place(FlowSpec* spec, double bytes, std::uint32_t known_qp, std::span<const LinkIndex> known,
             LinkIndex sibling_links = no_link) {
    Best best{-1, spec->qp, false, sibling_links};
    for (std::uint32_t qp = 0; qp < options_.candidates; ++qp) {
      if (qp == known_qp) {
        trial_.assign(known.begin(), known.end());
        if (weigh(qp, bytes, best)) break;
        continue;
      }
      bool leaf_up_seen = false;
      const bool tie_may_win = sibling_links != no_link && !best.joins;
      const auto keep = [&](LinkIndex l) {
        if (best.cost < 0) return true;
        if (links_down_) {
          const FabricLink& k = fabric_.link(l);
          if (leaf_up_seen || !k.up || fabric_.kind(k.from) != FabricNodeKind::network_switch ||
              fabric_.tier(k.from) != 1)
            return true;
          leaf_up_seen = true;
        }
        const LinkLoad& load = load_[l];
        if (load.flows == 0) return true;
        const double cost = (load.bytes + bytes) / fabric_.link(l).usable().in_bytes_per_second();
        return tie_may_win ? !(cost > best.cost * (1 + tie)) : cost < best.cost;
      };
      route_.clear();
      PathInfo info;
      if (!router_.route_while(FlowKey{spec->src, spec->dst, qp}, route_, keep, info)) continue;
      chosen_links(route_, trial_);
      if (weigh(qp, bytes, best)) break;
    }
    spec->qp = best.qp;
  }
  /// Costs this close (relative) are a tie: sums of equal pieces over equal capacities.
  static constexpr double tie = 1e-9;
  struct Best {
    double cost;              ///< busiest link of the best path with the flow (-1: none yet)
    std::uint32_t qp;         ///< its QP
    bool joins;               ///< it has a link outside the siblings' component
    LinkIndex sibling_links;  ///< place()'s argument
  };
  /// Weighs the candidate in trial_ (QP qp) against the best so far, taking it if it is
  /// less loaded, or as loaded and it joins where the best does not; true when it is free
  /// (no flow of the step on it yet): the search ends.
  bool weigh(std::uint32_t qp, double bytes, Best& best) {
    const bool free =
        std::all_of(trial_.begin(), trial_.end(), [&](LinkIndex l) { return load_[l].flows == 0; });
    const double cost = bottleneck(trial_, bytes);
    const bool joins = best.sibling_links != no_link && joins_another(trial_, best.sibling_links);
    const bool better = best.cost < 0 || cost < best.cost * (1 - tie) ||
                        (!(cost > best.cost * (1 + tie)) && joins && !best.joins);
    if (better) {
      best = {cost, qp, joins, best.sibling_links};
      candidate_.swap(trial_);
    }
    return free;
  }
  /// Connections striped over QPs join the links their QPs cross: sharing (below) moves
  /// bytes between the QPs of one connection, so it can level two links only where a
  /// chain of connections joins them. Placed blindly, the QPs of a few connections can
  /// all land on the same few links: on llama3 with a rack switch's up-link down, three
  /// connections each put one half on link X and the other on link Y, both carrying three
  /// halves, and no connection on X or Y had a QP elsewhere to move bytes to (1.5 flows per
  /// link where 16/15 was possible). So, of equally loaded candidates, the greedy takes
  /// one that joins another component (union-find over links, one step at a time).
  [[nodiscard]] LinkIndex root(LinkIndex l) {
    while (component_[l] != l) {
      component_[l] = component_[component_[l]];
      l = component_[l];
    }
    return l;
  }
  /// Joins the links of `path` and the component of `other` (no_link: none); its root.
  LinkIndex join(std::span<const LinkIndex> path, LinkIndex other) {
    LinkIndex r = other == no_link ? root(path.front()) : root(other);
    for (LinkIndex l : path) {
      const LinkIndex x = root(l);
      if (x != r) component_[x] = r;
    }
    return r;
  }
  /// Whether `path` has a link outside the component of `sibling_links`.
  [[nodiscard]] bool joins_another(std::span<const LinkIndex> path, LinkIndex sibling_links) {
    const LinkIndex r = root(sibling_links);
    return std::any_of(path.begin(), path.end(), [&](LinkIndex l) { return root(l) != r; });
  }
  /// Groups the flows into connections: the same ends and the same original QP divided
  /// by options_.qps_per_connection (the backend numbers a transfer's QPs qp * k + i).
  /// Connections of one flow are left out. Fills order_, connections_ and connection_of_.
  void group_connections(const std::vector<std::uint32_t>& original_qp) {
    connections_.clear();
    connection_of_.clear();
    const std::uint32_t k = options_.qps_per_connection;
    if (k <= 1 || flows_.size() < 2) return;
    if (component_.empty()) {
      component_.resize(fabric_.link_count());
      for (LinkIndex l = 0; l < component_.size(); ++l) component_[l] = l;
    }
    order_.resize(flows_.size());
    for (std::uint32_t i = 0; i < order_.size(); ++i) order_[i] = i;
    const auto connection = [&](std::uint32_t i) {
      const FlowSpec& f = *flows_[i].spec;
      return std::tuple(f.src, f.dst, original_qp[i] / k);
    };
    std::sort(order_.begin(), order_.end(), [&](std::uint32_t a, std::uint32_t b) {
      return std::tuple(connection(a), a) < std::tuple(connection(b), b);
    });
    const auto same = [&](std::uint32_t a, std::uint32_t b) {
      return connection(a) == connection(b);
    };
    connection_of_.assign(flows_.size(), no_connection);
    for (std::size_t i = 0; i < order_.size();) {
      std::size_t j = i + 1;
      while (j < order_.size() && same(order_[i], order_[j])) ++j;
      if (j - i >= 2) {
        for (std::size_t m = i; m < j; ++m)
          connection_of_[order_[m]] = static_cast<std::uint32_t>(connections_.size());
        connections_.push_back({static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(j)});
      }
      i = j;
    }
    connection_root_.assign(connections_.size(), no_link);
  }
  /// 3. Sharing. The QPs of a connection carry equal parts of its bytes as posted; where
  /// their paths are loaded unequally, the connection's step ends with its busiest part.
  /// A rack switch that lost one of its 16 up-links still sends 16 connections, 32
  /// halves, over 15 links: two links carry three halves, 1.5 flows, where the capacity
  /// left allows 16/15. Moving bytes from a connection's QP on a busy link to its QP on a
  /// less busy one levels them, and connections that share links pass the levelling on,
  /// as water finds its level through connected vessels (join() keeps the vessels
  /// connected).
  /// Each connection in turn (its QPs' bytes taken off the links): its bytes are shared
  /// so that every QP's path rises to one level lambda, the lowest at which the paths
  /// take all of them (a QP whose path is above lambda already gets nothing), carried a
  /// little past it (over_relaxation); connections on links that changed are visited
  /// again (level_connections). Whole bytes; every QP keeps its path. An over-relaxed
  /// visit may overshoot, so the result is kept only where the step's busiest link fell
  /// (min_share_gain), and choose() never leaves a step worse than blind hashing.
  /// Only where cables are down. On llama3 as built, sharing lowered no step's busiest
  /// link but those crossing the 1:7 tier (by up to 9%, steps of a few hundred
  /// nanoseconds), the collective's time by 0.01%, and tripled the simulation's cost:
  /// unequal parts end at different times, and each distinct end is a rate solve.
  void share() {
    if (connections_.empty() || !links_down_) return;
    std::size_t unused = 0;
    const double before = worst(unused);
    level_connections();
    if (!(worst(unused) < before * (1 - min_share_gain))) {
      // The step's busiest link is (about) where it was: the parts go back as posted.
      for (const auto& [first, end] : connections_)
        as_posted({order_.data() + first, end - first}, std::numeric_limits<double>::infinity());
      return;
    }
    // The parts as posted again wherever they keep every link at or under the step's
    // busiest after sharing: fewer distinct ends for the flow engine.
    const double ceiling = worst(unused) * (1 + tie);
    for (const auto& [first, end] : connections_)
      as_posted({order_.data() + first, end - first}, ceiling);
  }
  /// Levels connections from a work list: every striped connection once, then again each
  /// connection on a link whose load a levelling changed, so a change passes along a
  /// chain of links in one pass where rounds over every connection took a round per link
  /// (a rack switch short of an up-link: 8 rounds left the busiest link 3% over 16/15 of a
  /// flow; enough reach it within 1%). At most share_rounds visits per connection on
  /// average; the order is the connections', so the result is the same on every rank.
  void level_connections() {
    const std::size_t n = connections_.size();
    // Which connections cross each link: a slot per link the step touched, then lists.
    if (link_slot_.empty()) link_slot_.assign(fabric_.link_count(), no_slot);
    slot_start_.assign(touched_.size() + 1, 0);
    for (std::size_t t = 0; t < touched_.size(); ++t)
      link_slot_[touched_[t]] = static_cast<std::uint32_t>(t);
    const auto links_of = [&](std::size_t c, auto&& visit) {
      for (std::uint32_t m = connections_[c].first; m < connections_[c].second; ++m)
        for (LinkIndex l : path(order_[m])) visit(link_slot_[l]);
    };
    for (std::size_t c = 0; c < n; ++c) links_of(c, [&](std::uint32_t t) { ++slot_start_[t + 1]; });
    for (std::size_t t = 0; t < touched_.size(); ++t) slot_start_[t + 1] += slot_start_[t];
    on_link_.resize(slot_start_.back());
    fill_.assign(slot_start_.begin(), slot_start_.end() - 1);
    for (std::size_t c = 0; c < n; ++c)
      links_of(c, [&](std::uint32_t t) { on_link_[fill_[t]++] = static_cast<std::uint32_t>(c); });
    // The work list, first in first out; a connection is on it at most once.
    queued_.assign(n, 1);
    queue_.resize(n);
    for (std::size_t c = 0; c < n; ++c) queue_[c] = static_cast<std::uint32_t>(c);
    std::size_t head = 0;
    std::size_t budget = n * static_cast<std::size_t>(std::max(0, options_.share_rounds));
    while (head < queue_.size() && budget > 0) {
      const std::uint32_t c = queue_[head++];
      queued_[c] = 0;
      --budget;
      if (!level_connection({order_.data() + connections_[c].first,
                             connections_[c].second - connections_[c].first}))
        continue;
      links_of(c, [&](std::uint32_t t) {
        for (std::uint32_t k = slot_start_[t]; k < slot_start_[t + 1]; ++k) {
          const std::uint32_t other = on_link_[k];
          if (other == c || queued_[other]) continue;
          queued_[other] = 1;
          queue_.push_back(other);
        }
      });
      // Keep the list's storage from growing without bound: drop what was taken.
      if (head > n && head * 2 > queue_.size()) {
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head));
        head = 0;
      }
    }
    for (LinkIndex l : touched_) link_slot_[l] = no_slot;
  }
  /// Gives a connection's QPs their parts as posted where no link of their paths would
  /// pass `ceiling` (seconds).
  void as_posted(std::span<const std::uint32_t> members, double ceiling) {
    if (std::all_of(members.begin(), members.end(),
                    [&](std::uint32_t i) { return flows_[i].spec->size == posted_[i]; }))
      return;
    for (std::uint32_t i : members) shift(path(i), -flows_[i].bytes);
    const bool fits = std::all_of(members.begin(), members.end(), [&](std::uint32_t i) {
      return bottleneck(path(i), static_cast<double>(posted_[i].count())) <= ceiling;
    });
    for (std::uint32_t i : members) {
      if (fits) {
        flows_[i].spec->size = posted_[i];
        flows_[i].bytes = static_cast<double>(posted_[i].count());
      }
      shift(path(i), flows_[i].bytes);
    }
  }
  /// Shares one connection's bytes among its QPs (flows `members`); true when a QP's
  /// bytes changed by more than a millionth of the connection's.
  bool level_connection(std::span<const std::uint32_t> members) {
    double hottest = 0, coolest = std::numeric_limits<double>::infinity();
    std::uint64_t total = 0;
    for (std::uint32_t i : members) {
      const double b = bottleneck(path(i), 0);
      hottest = std::max(hottest, b);
      coolest = std::min(coolest, b);
      total += flows_[i].spec->size.count();
    }
    if (hottest - coolest <= hottest * 1e-9) return false;  // level already
    for (std::uint32_t i : members) shift(path(i), -flows_[i].bytes);
    const double bytes = static_cast<double>(total);
    // What QP i's path takes before one of its links passes `level` of its capacity.
    const auto room = [&](std::uint32_t i, double level) {
      double x = bytes;
      for (LinkIndex l : path(i))
        x = std::min(x, level * fabric_.link(l).usable().in_bytes_per_second() - load_[l].bytes);
      return std::max(0.0, x);
    };
    double low = 0, high = 0;  // at `high` every path takes all the bytes
    for (std::uint32_t i : members) high = std::max(high, bottleneck(path(i), bytes));
    for (int step = 0; step < 64 && high - low > high * 1e-7; ++step) {
      const double mid = (low + high) / 2;
      double taken = 0;
      for (std::uint32_t i : members) taken += room(i, mid);
      (taken >= bytes ? high : low) = mid;
    }
    double rooms = 0;
    for (std::uint32_t i : members) rooms += room(i, high);
    // Whole bytes in proportion to each path's room; what rounding leaves to the roomiest.
    std::uint64_t given = 0;
    std::uint32_t roomiest = members.front();
    double most = -1;
    bool moved = false;
    // Each QP's part at the level, carried past it by over_relaxation (never below 0),
    // then scaled back to the connection's bytes.
    double scaled = 0;
    for (std::uint32_t i : members) {
      const double target = bytes * room(i, high) / rooms;
      const double y =
          std::max(0.0, flows_[i].bytes + over_relaxation * (target - flows_[i].bytes));
      wanted_.push_back(y);
      scaled += y;
    }
    for (std::size_t n = 0; n < members.size(); ++n) {
      const double r = wanted_[n];
      const auto part = std::min(total - given, static_cast<std::uint64_t>(bytes * r / scaled));
      if (r > most) {
        most = r;
        roomiest = members[n];
      }
      sizes_.push_back(part);
      given += part;
    }
    wanted_.clear();
    std::size_t n = 0;
    for (std::uint32_t i : members) {
      const std::uint64_t part = sizes_[n++] + (i == roomiest ? total - given : 0);
      const double before = flows_[i].bytes;
      moved = moved || std::abs(static_cast<double>(part) - before) > bytes * 1e-6;
      flows_[i].bytes = static_cast<double>(part);
      flows_[i].spec->size = Bytes::of(part);
      shift(path(i), flows_[i].bytes);
    }
    sizes_.clear();
    return moved;
  }
  /// Levelling a connection moves its parts this far past its own level (successive
  /// over-relaxation): a change then travels along a chain of links in fewer visits than
  /// diffusion takes. Measured on llama3 with 1% of cables down (1 GiB all-reduce, QPs
  /// chosen): 1.0 6,867 us, 1.3 6,821, 1.5 6,808, 1.7 6,798; at 1.9 it overshoots (a rack
  /// switch one up-link short ends busier than at 1.0).
  static constexpr double over_relaxation = 1.5;
  /// Sharing stays only where it lowers the step's busiest link by this much: unequal
  /// parts cost the flow engine a solve per distinct end (share() has the figures).
  static constexpr double min_share_gain = 0.01;
  /// Adds bytes to a path's links without counting a flow (sharing moves bytes, not flows).
  void shift(std::span<const LinkIndex> path, double bytes) {
    for (LinkIndex l : path) load_[l].bytes += bytes;
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
  /// Connections striped over QPs (group_connections): flows in connection order, each
  /// connection's [first, end) in it, each flow's connection, and per connection a link
  /// of the component its placed QPs joined; a connection's new sizes (share()).
  static constexpr std::uint32_t no_connection = 0xffffffffu;
  static constexpr LinkIndex no_link = no_link_index;
  std::vector<std::uint32_t> order_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> connections_;
  std::vector<std::uint32_t> connection_of_;
  std::vector<LinkIndex> connection_root_;
  std::vector<LinkIndex> component_;  // union-find over links (join()); empty until needed
  std::vector<std::uint64_t> sizes_;
  std::vector<double> wanted_;
  std::vector<Bytes> posted_;  // choose(): each flow's bytes as it came
  /// level_connections(): per link a slot (no_slot: none), the connections on each slot's
  /// link (on_link_ from slot_start_[t] to slot_start_[t + 1]), and the work list.
  static constexpr std::uint32_t no_slot = 0xffffffffu;
  std::vector<std::uint32_t> link_slot_;
  std::vector<std::uint32_t> slot_start_;
  std::vector<std::uint32_t> on_link_;
  std::vector<std::uint32_t> fill_;
  std::vector<std::uint32_t> queue_;
  std::vector<std::uint8_t> queued_;
};

/// Chooses the QPs of many steps, each a set of flows that run at once, on
/// `options.threads` threads (worker_threads.hpp), one chooser each; the stats in the
/// steps' order.
inline std::vector<QpChoiceStats> choose_qps_of_steps(
    const Fabric& fabric, RoutingOptions routing, QpChoiceOptions options,
    const std::vector<std::vector<FlowSpec*>>& steps) {
  std::vector<QpChoiceStats> stats(steps.size());
  if (steps.empty()) return stats;
  // A step whose flows are those of an earlier one (the same ends, bytes and QPs, in the
  // same order) gets that step's choice, which depends on the flows only: an all-gather
  // repeats its reduce-scatter's steps, so at 1,000,000 GPUs half the steps are chosen
  // once. Steps are fingerprinted, then compared flow by flow.
  const auto same_flow = [](const FlowSpec* a, const FlowSpec* b) {
    return a->src == b->src && a->dst == b->dst && a->size == b->size && a->qp == b->qp &&
           a->delay == b->delay;
  };
  std::vector<std::uint64_t> print(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    std::uint64_t h = steps[i].size();
    for (const FlowSpec* f : steps[i])
      h = (h ^ (std::uint64_t{f->src} << 32 ^ f->dst ^ f->size.count() * 31 ^ f->qp)) *
          0x9e3779b97f4a7c15ull;
    print[i] = h;
  }
  std::vector<std::size_t> first_like(steps.size());
  std::vector<std::size_t> distinct;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    first_like[i] = i;
    for (std::size_t j : distinct) {
      if (print[j] != print[i] || steps[j].size() != steps[i].size()) continue;
      if (std::equal(steps[i].begin(), steps[i].end(), steps[j].begin(), same_flow)) {
        first_like[i] = j;
        break;
      }
    }
    if (first_like[i] == i) distinct.push_back(i);
  }
  // Distinct steps are handed out in order as threads come free; each step's choice is
  // its own, so which thread takes it changes nothing. The first failure, by step, is
  // rethrown.
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> failed(steps.size());
  run_on_threads(worker_threads(distinct.size(), options.threads), [&](unsigned) {
    std::optional<QpPathChooser> chooser;
    for (std::size_t d = next++; d < distinct.size(); d = next++) {
      const std::size_t i = distinct[d];
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
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const std::size_t j = first_like[i];
    if (j == i) continue;
    stats[i] = stats[j];
    for (std::size_t k = 0; k < steps[i].size(); ++k) {
      steps[i][k]->qp = steps[j][k]->qp;
      steps[i][k]->size = steps[j][k]->size;
    }
  }
  return stats;
}

RAILCC_NAMESPACE_END
