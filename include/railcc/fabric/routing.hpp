// railcc/fabric/routing.hpp: which links a flow uses.
//
// Up/down routing on a tiered Clos: a flow leaves its GPU through a NIC port, climbs to
// the lowest tier where its source and destination share a block, and descends. Inside
// one host, GPUs talk over the NVSwitch.
//
//  - ECMP: at every switch with a choice, the next hop is `hash % choices` over the live
//    candidates, hash = fmix64(seed ^ fmix64(src << 32 | dst) ^ fmix64(qp + golden) ^
//    fmix64(switch + 1)) with fmix64 MurmurHash3's 64-bit finalizer. The QP number plays
//    the UDP source port of RoCEv2, so more QPs per connection mean more entropy (as
//    Llama 3's 16 QPs do). The switch term gives each switch its own hash, as real
//    switches seed theirs to avoid polarization. Collisions happen as they do on real
//    switches: n flows on n paths leave about 1 - 1/e of the paths busy.
//  - Spraying (Spectrum-X adaptive routing, Ultra Ethernet packet spraying): a flow's
//    packets spread over every equal-cost path. railcc models it exactly for a Clos by
//    pooling: at each tier the flow uses the pool of all live links between the switches
//    it has spread over and the next tier, with the pool's total capacity. That is ideal
//    per-packet load balancing (degraded links get proportionally less).
//  - Pinned: the caller names the links (the scheduler steers flows this way).
//  - Into or out of an NVSwitch: a flow whose source or destination is a host's NVSwitch
//    (NVLS: the switch reads the GPUs' data to reduce it, and multicasts) uses the one
//    NVLink between that switch and the GPU.
// Failed links (health 0) are avoided: the route search backtracks, as converged routing
// would withdraw the routes through them. A flow left without a path is an InputError
// naming it.
//
// A route is a list of *resources*: link ids [0, link_count) and pool ids above them.
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
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

enum class RoutingMode : std::uint8_t { ecmp, spray };

struct RoutingOptions {
  RoutingMode mode = RoutingMode::ecmp;
  std::uint64_t seed = 0;
};

/// A flow as the network sees it: source and destination endpoints and the QP (the
/// entropy of its 5-tuple).
struct FlowKey {
  NodeIndex src = no_node;
  NodeIndex dst = no_node;
  std::uint32_t qp = 0;
};

using ResourceIndex = std::uint32_t;

/// What a route costs besides bandwidth.
struct PathInfo {
  Picoseconds link_latency;       ///< sum over the links
  std::uint32_t switch_hops = 0;  ///< network switches crossed
  bool nvlink = false;            ///< stayed inside the host
};

/// MurmurHash3's 64-bit finalizer: a documented, seedable mix with full avalanche.
constexpr std::uint64_t fmix64(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

/// No link (what nvlink_of returns for an endpoint without NVLink).
inline constexpr LinkIndex no_link_index = 0xffffffffu;

/// The NVLink joining endpoint `e` to its host's NVSwitch (no_link_index when none).
inline LinkIndex nvlink_of(const Fabric& f, NodeIndex e) {
  for (LinkIndex l : f.up_links(e)) {
    if (f.kind(f.link(l).to) == FabricNodeKind::nvswitch) return l;
  }
  return no_link_index;
}

/// Network ports of endpoint `e`: its links up to switches (2 on a dual-plane NIC).
inline std::size_t network_ports(const Fabric& f, NodeIndex e) {
  if (f.kind(e) != FabricNodeKind::endpoint) return 0;
  std::size_t n = 0;
  for (LinkIndex l : f.up_links(e))
    n += f.kind(f.link(l).to) == FabricNodeKind::network_switch ? 1 : 0;
  return n;
}

/// Whether the router sends a flow between endpoints `src` and `dst` over NVLink (the same
/// host, both NVLinks alive) instead of through the NICs.
inline bool over_nvlink(const Fabric& f, NodeIndex src, NodeIndex dst) {
  if (src >= f.endpoint_count() || dst >= f.endpoint_count() || f.host(src) != f.host(dst))
    return false;
  const LinkIndex a = nvlink_of(f, src);
  const LinkIndex b = nvlink_of(f, dst);
  return a != no_link_index && b != no_link_index && f.link(a).alive() && f.link(b).alive();
}

class Router {
 public:
  Router(const Fabric& fabric, RoutingOptions options) : f_(fabric), opt_(options) {
    if (!f_.finalized()) throw InputError("router: the fabric is not finalized");
  }

  [[nodiscard]] const Fabric& fabric() const { return f_; }
  [[nodiscard]] const RoutingOptions& options() const { return opt_; }
  [[nodiscard]] std::size_t resource_count() const {
    return f_.link_count() + pool_capacity_.size();
  }
  [[nodiscard]] bool is_pool(ResourceIndex r) const { return r >= f_.link_count(); }
  /// Usable capacity of a link or pool, in bytes per second.
  [[nodiscard]] double capacity(ResourceIndex r) const {
    return is_pool(r) ? pool_capacity_[r - f_.link_count()]
                      : f_.link(r).usable().in_bytes_per_second();
  }
  /// Links of a pool.
  [[nodiscard]] std::span<const LinkIndex> pool_links(ResourceIndex r) const {
    const auto p = r - f_.link_count();
    return {pool_links_.data() + pool_offsets_[p], pool_links_.data() + pool_offsets_[p + 1]};
  }

  /// Appends the flow's resources to `out`. Throws InputError when no live path exists.
  PathInfo route(const FlowKey& key, std::vector<ResourceIndex>& out) {
    PathInfo info;
    route_while(
        key, out, [](LinkIndex) { return true; }, info);
    return info;
  }

  /// route(), abandoned at the first link `keep(link)` refuses as ECMP takes it (network
  /// links, the NIC ports included, in path order): then false, and `out` as it was. A
  /// schedule pass that tries many QPs for a flow gives up on a candidate as soon as it
  /// meets a link loaded past the best path found, instead of routing it to the end.
  /// Where links are down, ECMP backs out of a branch with no live path, so a refused
  /// link might not have been on the route: callers that need the exact answer keep
  /// every link there. NVLink routes and spraying call `keep` on nothing.
  template <class Keep>
  bool route_while(const FlowKey& key, std::vector<ResourceIndex>& out, Keep&& keep,
                   PathInfo& info) {
    info = PathInfo{};
    const bool from_switch = is_nvswitch(key.src);
    const bool to_switch = is_nvswitch(key.dst);
    if (from_switch || to_switch) {
      info = nvswitch_route(key, from_switch, to_switch, out);
      return true;
    }
    check_endpoint(key.src, key);
    check_endpoint(key.dst, key);
    if (key.src == key.dst)
      throw InputError("flow " + name(key) + " goes from an endpoint to itself");
    // Inside a host: over the NVSwitch when both GPUs reach it.
    if (over_nvlink(f_, key.src, key.dst)) {
      const LinkIndex a = nvlink_of(key.src);
      const LinkIndex b = nvlink_of(key.dst);
      out.push_back(a);
      out.push_back(Fabric::reverse(b));
      info.link_latency = f_.link(a).latency + f_.link(b).latency;
      info.nvlink = true;
      return true;
    }
    const FlowHash h = hash_of(key);
    int best = 0;
    const auto chosen = port_pair(key, h, best);
    const NodeIndex src_leaf = f_.link(chosen.first).to;
    const NodeIndex dst_leaf = f_.link(chosen.second).to;
    const std::size_t start = out.size();
    Walk walk = Walk::found;
    if (opt_.mode == RoutingMode::spray) {
      out.push_back(chosen.first);
      walk = spray(src_leaf, dst_leaf, best, out) ? Walk::found : Walk::dead_end;
    } else if (!keep(chosen.first)) {
      walk = Walk::abandoned;
    } else {
      out.push_back(chosen.first);
      walk = ecmp_up(h, src_leaf, dst_leaf, out, keep);
      if (walk == Walk::found && !keep(Fabric::reverse(chosen.second))) walk = Walk::abandoned;
    }
    if (walk == Walk::abandoned) {
      out.resize(start);
      return false;
    }
    if (walk == Walk::dead_end) {
      out.resize(start);
      throw InputError("flow " + name(key) + " has no live path between " + f_.describe(src_leaf) +
                       " and " + f_.describe(dst_leaf));
    }
    out.push_back(Fabric::reverse(chosen.second));
    for (std::size_t i = start; i < out.size(); ++i) {
      const ResourceIndex r = out[i];
      if (!is_pool(r)) {
        info.link_latency += f_.link(r).latency;
      } else {
        info.link_latency += f_.link(pool_links(r).front()).latency;
      }
    }
    info.switch_hops = static_cast<std::uint32_t>(out.size() - start - 1);
    return true;
  }

  /// Checks a caller-chosen path (consecutive live links from src to dst) and appends it.
  PathInfo pinned(const FlowKey& key, std::span<const LinkIndex> links,
                  std::vector<ResourceIndex>& out) {
    check_endpoint(key.src, key);
    check_endpoint(key.dst, key);
    if (links.empty()) throw InputError("flow " + name(key) + ": pinned path is empty");
    PathInfo info;
    NodeIndex at = key.src;
    // Its start-up is NVLink's only when it never leaves the NVLink domain: a path over
    // NVLink to another GPU and out of that GPU's NIC (PXN) starts as an RDMA message.
    bool only_nvlink = true;
    for (LinkIndex l : links) {
      if (l >= f_.link_count())
        throw InputError("flow " + name(key) + ": pinned link " + std::to_string(l) +
                         " does not exist");
      const auto& k = f_.link(l);
      if (k.from != at) {
        throw InputError("flow " + name(key) + ": pinned link " + std::to_string(l) +
                         " starts at " + f_.describe(k.from) + ", not at " + f_.describe(at));
      }
      if (!k.alive())
        throw InputError("flow " + name(key) + ": pinned link " + std::to_string(l) + " is down");
      info.link_latency += k.latency;
      if (f_.kind(k.to) == FabricNodeKind::network_switch) ++info.switch_hops;
      only_nvlink = only_nvlink && (f_.kind(k.to) == FabricNodeKind::nvswitch ||
                                    f_.kind(k.from) == FabricNodeKind::nvswitch);
      at = k.to;
      out.push_back(l);
    }
    info.nvlink = only_nvlink;
    // A link used twice would be charged twice for bytes that cross it once: a path that
    // loops is a mistake in whatever chose it.
    scratch_links_.assign(links.begin(), links.end());
    std::sort(scratch_links_.begin(), scratch_links_.end());
    const auto twice = std::adjacent_find(scratch_links_.begin(), scratch_links_.end());
    if (twice != scratch_links_.end()) {
      throw InputError("flow " + name(key) + ": pinned path crosses link " +
                       std::to_string(*twice) + " twice");
    }
    if (at != key.dst)
      throw InputError("flow " + name(key) + ": pinned path ends at " + f_.describe(at));
    return info;
  }

 private:
  static constexpr LinkIndex no_link = no_link_index;

  struct FlowHash;
  /// The NIC ports a flow leaves and enters by: among the live pairs in one plane whose
  /// leaves share a block at the lowest tier (`tier`, 1: the same leaf), the hash's pick.
  std::pair<LinkIndex, LinkIndex> port_pair(const FlowKey& key, const FlowHash& h, int& tier) {
    auto& pairs = port_pairs_;  // kept across calls: the last endpoints' candidates
    // The candidates depend on the endpoints only (the fabric's health is fixed while a
    // router lives): a pass that tries many QPs for one flow finds them once.
    if (key.src == pairs_src_ && key.dst == pairs_dst_) {
      tier = pairs_tier_;
      return pairs[h.at(0xfeedu) % pairs.size()];
    }
    pairs_src_ = pairs_dst_ = no_node;
    pairs.clear();
    int best = 1 << 30;
    for (LinkIndex ls : f_.up_links(key.src)) {
      const auto& sl = f_.link(ls);
      if (f_.kind(sl.to) != FabricNodeKind::network_switch || !sl.alive()) continue;
      for (LinkIndex ld : f_.up_links(key.dst)) {
        const auto& dl = f_.link(ld);
        if (f_.kind(dl.to) != FabricNodeKind::network_switch || !dl.alive()) continue;
        if (f_.plane_of(sl.to) != f_.plane_of(dl.to)) continue;
        const int t = meeting_tier(f_, sl.to, dl.to);
        if (t < best) {
          best = t;
          pairs.clear();
        }
        if (t == best) pairs.emplace_back(ls, ld);
      }
    }
    if (pairs.empty() || best > f_.tiers()) {
      throw InputError("flow " + name(key) +
                       " has no live path: no NIC ports of the two endpoints "
                       "reach a common switch");
    }
    tier = best;
    pairs_src_ = key.src;
    pairs_dst_ = key.dst;
    pairs_tier_ = best;
    return pairs[h.at(0xfeedu) % pairs.size()];
  }

  std::string name(const FlowKey& k) const {
    return std::to_string(k.src) + " -> " + std::to_string(k.dst) + " (qp " + std::to_string(k.qp) +
           ")";
  }
  void check_endpoint(NodeIndex e, const FlowKey& key) const {
    if (e >= f_.endpoint_count()) {
      throw InputError("flow " + name(key) + " names endpoint " + std::to_string(e) +
                       ", but the fabric has " + std::to_string(f_.endpoint_count()));
    }
  }
  bool is_nvswitch(NodeIndex n) const {
    return n < f_.node_count() && f_.kind(n) == FabricNodeKind::nvswitch;
  }
  /// Between a GPU and its host's NVSwitch: the NVLink joining them.
  PathInfo nvswitch_route(const FlowKey& key, bool from_switch, bool to_switch,
                          std::vector<ResourceIndex>& out) const {
    if (from_switch && to_switch)
      throw InputError("flow " + name(key) + " goes from an NVSwitch to an NVSwitch");
    const NodeIndex gpu = from_switch ? key.dst : key.src;
    const NodeIndex sw = from_switch ? key.src : key.dst;
    check_endpoint(gpu, key);
    const LinkIndex l = nvlink_of(gpu);
    if (l == no_link || f_.link(l).to != sw) {
      throw InputError("flow " + name(key) + ": " + f_.describe(gpu) + " has no NVLink to the " +
                       f_.describe(sw));
    }
    if (!f_.link(l).alive())
      throw InputError("flow " + name(key) + ": the NVLink of " + f_.describe(gpu) + " is down");
    out.push_back(from_switch ? Fabric::reverse(l) : l);
    PathInfo info;
    info.link_latency = f_.link(l).latency;
    info.nvlink = true;
    return info;
  }
  LinkIndex nvlink_of(NodeIndex e) const { return railcc::nvlink_of(f_, e); }
  /// A flow's ECMP hash at a switch (`salt`): its key's part is mixed once per flow, the
  /// switch's at every hop.
  struct FlowHash {
    std::uint64_t key_part;
    [[nodiscard]] std::uint64_t at(std::uint64_t salt) const {
      return fmix64(key_part ^ fmix64(salt + 1));
    }
  };
  [[nodiscard]] FlowHash hash_of(const FlowKey& k) const {
    return {opt_.seed ^ fmix64((std::uint64_t{k.src} << 32) | k.dst) ^
            fmix64(std::uint64_t{k.qp} + 0x9e3779b97f4a7c15ULL)};
  }
  /// True when switch s (tier t) reaches dst_leaf going down only.
  bool covers(NodeIndex s, NodeIndex dst_leaf) const {
    const int t = f_.tier(s);
    if (t == 1) return s == dst_leaf;
    return f_.plane_of(s) == f_.plane_of(dst_leaf) &&
           f_.ancestor(f_.block_of(dst_leaf), t) == f_.block_of(s);
  }

  /// Where an ECMP walk ended: at the destination leaf, in a branch with no live path
  /// (backed out of), or refused by the caller's `keep`.
  enum class Walk : std::uint8_t { found, dead_end, abandoned };

  template <class Keep>
  Walk ecmp_up(const FlowHash& h, NodeIndex s, NodeIndex dst_leaf, std::vector<ResourceIndex>& out,
               Keep& keep) {
    if (covers(s, dst_leaf)) return ecmp_down(h, s, dst_leaf, out, keep);
    const auto ups = f_.up_links(s);
    if (ups.empty()) return Walk::dead_end;
    const std::size_t first = h.at(s) % ups.size();
    for (std::size_t i = 0; i < ups.size(); ++i) {
      const LinkIndex l = ups[(first + i) % ups.size()];
      if (!f_.link(l).alive()) continue;
      if (!keep(l)) return Walk::abandoned;
      out.push_back(l);
      const Walk w = ecmp_up(h, f_.link(l).to, dst_leaf, out, keep);
      if (w != Walk::dead_end) return w;
      out.pop_back();
    }
    return Walk::dead_end;
  }

  template <class Keep>
  Walk ecmp_down(const FlowHash& h, NodeIndex s, NodeIndex dst_leaf,
                 std::vector<ResourceIndex>& out, Keep& keep) {
    if (s == dst_leaf) return Walk::found;
    if (f_.tier(s) == 1) return Walk::dead_end;
    // The down-links towards dst_leaf are the contiguous run whose child holds dst_leaf's
    // block one tier down, in its plane (down_links() is sorted that way); at tier 2 the
    // child must be dst_leaf itself. The hash picks where to start among them.
    const auto downs = f_.down_links(s);
    const auto keys = f_.down_link_keys(s);
    const int child_tier = f_.tier(s) - 1;
    const std::uint64_t target =
        std::uint64_t{f_.ancestor(f_.block_of(dst_leaf), child_tier)} << 32 | f_.plane_of(dst_leaf);
    const auto key_lo = std::lower_bound(keys.begin(), keys.end(), target);
    // The run is short (the links from s to one child block): walk it rather than search.
    auto key_hi = key_lo;
    while (key_hi != keys.end() && *key_hi == target) ++key_hi;
    const std::size_t candidates = static_cast<std::size_t>(key_hi - key_lo);
    if (candidates == 0) return Walk::dead_end;
    const auto lo = downs.begin() + (key_lo - keys.begin());
    const std::size_t first = h.at(s) % candidates;
    for (std::size_t i = 0; i < candidates; ++i) {
      const LinkIndex l = lo[static_cast<std::ptrdiff_t>((first + i) % candidates)];
      if (!f_.link(l).alive() || (child_tier == 1 && f_.link(l).to != dst_leaf)) continue;
      if (!keep(l)) return Walk::abandoned;
      out.push_back(l);
      const Walk w = ecmp_down(h, f_.link(l).to, dst_leaf, out, keep);
      if (w != Walk::dead_end) return w;
      out.pop_back();
    }
    return Walk::dead_end;
  }

  // ---- spraying -------------------------------------------------------------------------
  bool spray(NodeIndex src_leaf, NodeIndex dst_leaf, int top, std::vector<ResourceIndex>& out) {
    if (top == 1) return true;  // same leaf: NIC link up, NIC link down
    const std::uint32_t plane = f_.plane_of(src_leaf);
    for (int t = 1; t < top; ++t) {
      // Up from the set at tier t: the source leaf, then (its ancestor block, plane).
      const std::uint64_t key = t == 1 ? set_key(0, src_leaf, 0)
                                       : set_key(0, f_.ancestor(f_.block_of(src_leaf), t), plane);
      const ResourceIndex r = pool(key, [&](std::vector<LinkIndex>& links) {
        for_set(src_leaf, t, plane, [&](NodeIndex s) {
          for (LinkIndex l : f_.up_links(s)) links.push_back(l);
        });
      });
      if (r == no_link) return false;
      out.push_back(r);
    }
    for (int t = top - 1; t >= 1; --t) {
      // Down into the set at tier t that holds dst_leaf, from the tier above.
      const std::uint64_t key = t == 1 ? set_key(1, dst_leaf, 0)
                                       : set_key(1, f_.ancestor(f_.block_of(dst_leaf), t), plane);
      const ResourceIndex r = pool(key, [&](std::vector<LinkIndex>& links) {
        for_set(dst_leaf, t, plane, [&](NodeIndex s) {
          for (LinkIndex l : f_.up_links(s)) links.push_back(Fabric::reverse(l));
        });
      });
      if (r == no_link) return false;
      out.push_back(r);
    }
    return true;
  }

  static std::uint64_t set_key(std::uint64_t down, std::uint64_t id, std::uint64_t plane) {
    return (down << 63) | (plane << 40) | id;
  }

  /// Calls fn for every switch of the set at tier t above `leaf` (the leaf itself at t = 1).
  template <class Fn>
  void for_set(NodeIndex leaf, int t, std::uint32_t plane, Fn fn) const {
    if (t == 1) {
      fn(leaf);
      return;
    }
    for (NodeIndex s : f_.block_members(f_.ancestor(f_.block_of(leaf), t))) {
      if (f_.plane_of(s) == plane) fn(s);
    }
  }

  template <class Fill>
  ResourceIndex pool(std::uint64_t key, Fill fill) {
    auto it = pool_index_.find(key);
    if (it != pool_index_.end()) return it->second;
    std::vector<LinkIndex> links;
    fill(links);
    double cap = 0;
    std::vector<LinkIndex> live;
    for (LinkIndex l : links) {
      if (f_.link(l).alive()) {
        live.push_back(l);
        cap += f_.link(l).usable().in_bytes_per_second();
      }
    }
    ResourceIndex id = no_link;
    if (!live.empty()) {
      id = static_cast<ResourceIndex>(f_.link_count() + pool_capacity_.size());
      pool_capacity_.push_back(cap);
      if (pool_offsets_.empty()) pool_offsets_.push_back(0);
      pool_links_.insert(pool_links_.end(), live.begin(), live.end());
      pool_offsets_.push_back(static_cast<std::uint32_t>(pool_links_.size()));
    }
    pool_index_.emplace(key, id);
    return id;
  }

  const Fabric& f_;
  RoutingOptions opt_;
  std::vector<std::pair<LinkIndex, LinkIndex>> port_pairs_;
  NodeIndex pairs_src_ = no_node, pairs_dst_ = no_node;  // whose candidates port_pairs_ holds
  int pairs_tier_ = 0;
  std::vector<LinkIndex> scratch_links_;  // pinned(): the path, sorted
  std::unordered_map<std::uint64_t, ResourceIndex> pool_index_;
  std::vector<double> pool_capacity_;
  std::vector<std::uint32_t> pool_offsets_;
  std::vector<LinkIndex> pool_links_;
};

RAILCC_NAMESPACE_END
