// railcc/fabric/fabric.hpp: the network between GPUs, as a graph of nodes and directed links.
//
// Nodes are endpoints (GPUs; endpoint i is node i, the rank's GPU), one NVSwitch per host
// (the NVLink domain), and network switches in tiers (1 = leaf/ToR, 2 = spine, 3 = core,
// ...). Cables are added once and become two directed links with adjacent ids (l and
// l ^ 1), so a link's reverse costs nothing to find. Every link joins adjacent tiers: an
// endpoint to a tier-1 switch (its NIC port), a tier-t switch to a tier-t+1 switch, or an
// endpoint to its host's NVSwitch. The fabric stores per node a few integers and per link
// 32 bytes; nothing is indexed by pairs of endpoints.
//
// `finalize()` sorts each node's links into up and down lists and computes the *blocks*
// that up/down routing needs: switches of one tier with the same set of reachable
// endpoints form a block, and in a tiered Clos every block has exactly one parent block
// (the tier above reaches it only as a whole). A fabric without that property is refused
// with a message naming the switch, as is an endpoint with no link or a link between
// non-adjacent tiers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

using NodeIndex = std::uint32_t;
using LinkIndex = std::uint32_t;
using BlockIndex = std::uint32_t;
inline constexpr NodeIndex no_node = 0xffffffffu;

/// The fraction of the NVLink rate NVLS (in-switch reduction and multicast) reaches, as
/// NCCL's cost model has it for sm90 (nvlsEfficiency, src/graph/tuning.cc;
/// docs/facts.md section 2) [pub].
inline constexpr double nccl_nvls_efficiency = 0.85;
inline constexpr BlockIndex no_block = 0xffffffffu;

/// The range of a link's rate railcc simulates. Below 1 Mb/s no fabric carries
/// collectives (1 GiB would take 2.4 hours), and the floor keeps the transfer times of
/// railcc-sim's sizes well inside the 106 days integer picoseconds hold; above 1 Pb/s is
/// 600 times the fastest port announced (1.6 Tb/s): a unit mistake, not hardware.
inline constexpr Bandwidth min_link_bandwidth = Bandwidth::mbps(1);
inline constexpr Bandwidth max_link_bandwidth = Bandwidth::gbps(1e6);
/// The most GPUs a fabric may have: four times the 1M-GPU plan railcc is built for, and a
/// bound that keeps every per-GPU array of the simulator inside a few hundred MB.
inline constexpr std::uint64_t max_fabric_endpoints = 4'000'000;

enum class FabricNodeKind : std::uint8_t { endpoint, nvswitch, network_switch };

/// One direction of a cable.
struct FabricLink {
  NodeIndex from = no_node;
  NodeIndex to = no_node;
  Bandwidth capacity;
  Picoseconds latency;  ///< propagation and serialization start-up on this link
  float health = 1.0f;  ///< 1 up, 0 down, in between: degraded to that fraction
  std::uint8_t level =
      0;            ///< tier of the upper end (0: NVLink, 1: NIC to leaf, 2: leaf to spine, ...)
  bool up = false;  ///< towards the higher tier (endpoint -> NVSwitch counts as up)

  [[nodiscard]] Bandwidth usable() const { return capacity * static_cast<double>(health); }
  [[nodiscard]] bool alive() const { return health > 0.0f; }
};

class Fabric {
 public:
  /// Endpoints come first: endpoint (rank) r is node r.
  NodeIndex add_endpoint(std::uint32_t host, std::uint16_t local_rank, std::uint16_t rail) {
    if (kind_.size() != endpoint_count_) {
      throw InputError("fabric: endpoints must be added before switches");
    }
    if (endpoint_count_ >= max_fabric_endpoints) {
      throw InputError("fabric: more than " + std::to_string(max_fabric_endpoints) +
                       " GPUs is more than railcc simulates");
    }
    ++endpoint_count_;
    return push(FabricNodeKind::endpoint, 0, host, local_rank, rail);
  }
  NodeIndex add_nvswitch(std::uint32_t host) {
    return push(FabricNodeKind::nvswitch, 0, host, 0, 0);
  }
  /// A network switch at `tier` (1 = leaf).
  NodeIndex add_switch(std::uint8_t tier) {
    if (tier < 1) throw InputError("fabric: switch tiers start at 1 (leaf)");
    max_tier_ = std::max(max_tier_, tier);
    return push(FabricNodeKind::network_switch, tier, 0, 0, 0);
  }

  /// A cable between `lower` and `upper` (one tier apart). Returns the id of the upward
  /// link; the downward one is that id ^ 1.
  LinkIndex connect(NodeIndex lower, NodeIndex upper, Bandwidth capacity, Picoseconds latency) {
    check_node(lower);
    check_node(upper);
    if (!(capacity > Bandwidth{})) {
      throw InputError("fabric: link " + describe(lower) + " - " + describe(upper) +
                       " has no bandwidth");
    }
    if (!(capacity >= min_link_bandwidth && capacity <= max_link_bandwidth)) {
      throw InputError("fabric: link " + describe(lower) + " - " + describe(upper) + " has " +
                       std::to_string(capacity.in_gbps()) +
                       " Gb/s, outside the 1 Mb/s to 1 Pb/s railcc simulates");
    }
    if (latency < Picoseconds{}) {
      throw InputError("fabric: link " + describe(lower) + " - " + describe(upper) +
                       " has a negative latency");
    }
    std::uint8_t level = 0;
    if (kind_[upper] == FabricNodeKind::nvswitch) {
      if (kind_[lower] != FabricNodeKind::endpoint || host_[lower] != host_[upper]) {
        throw InputError("fabric: " + describe(upper) + " may only join the endpoints of its host");
      }
    } else {
      const int lower_tier = kind_[lower] == FabricNodeKind::endpoint ? 0 : tier_[lower];
      if (kind_[upper] != FabricNodeKind::network_switch ||
          kind_[lower] == FabricNodeKind::nvswitch || tier_[upper] != lower_tier + 1) {
        throw InputError("fabric: link " + describe(lower) + " - " + describe(upper) +
                         " does not join adjacent tiers");
      }
      level = tier_[upper];
    }
    if (links_.size() + 2 >= 0xffffffffu) throw InputError("fabric: too many links");
    const auto id = static_cast<LinkIndex>(links_.size());
    links_.push_back({lower, upper, capacity, latency, 1.0f, level, true});
    links_.push_back({upper, lower, capacity, latency, 1.0f, level, false});
    finalized_ = false;
    return id;
  }

  /// Sorts links per node and computes blocks; throws InputError on an impossible fabric.
  void finalize() {
    const std::size_t n = kind_.size();
    // CSR: per node [up links..., down links...].
    std::vector<std::uint32_t> ups(n, 0);
    std::vector<std::uint32_t> downs(n, 0);
    for (const auto& l : links_) (l.up ? ups : downs)[l.from]++;
    offsets_.assign(n + 1, 0);
    split_.assign(n, 0);
    for (std::size_t i = 0; i < n; ++i) offsets_[i + 1] = offsets_[i] + ups[i] + downs[i];
    adjacency_.assign(links_.size(), 0);
    std::vector<std::uint32_t> up_fill(n);
    std::vector<std::uint32_t> down_fill(n);
    for (std::size_t i = 0; i < n; ++i) {
      up_fill[i] = offsets_[i];
      down_fill[i] = offsets_[i] + ups[i];
      split_[i] = down_fill[i];
    }
    for (LinkIndex l = 0; l < links_.size(); ++l) {
      const auto& k = links_[l];
      adjacency_[k.up ? up_fill[k.from]++ : down_fill[k.from]++] = l;
    }
    for (NodeIndex e = 0; e < endpoint_count_; ++e) {
      if (offsets_[e] == offsets_[e + 1]) {
        throw InputError("fabric: " + describe(e) + " is not connected to anything");
      }
    }
    compute_blocks();
    compute_planes();
    // Down-links sorted by the child's (block, plane): the children that lead towards a
    // destination are then one contiguous range, found by binary search while routing.
    for (NodeIndex i = 0; i < n; ++i) {
      std::sort(adjacency_.begin() + split_[i], adjacency_.begin() + offsets_[i + 1],
                [&](LinkIndex a, LinkIndex b) { return child_key(a) < child_key(b); });
    }
    // The keys again, side by side with the down-links: a route's search for the run
    // towards its destination then reads one short array, not a link, its target's block
    // and its plane per probe (at 1,000,000 GPUs with QPs chosen, the walk down that
    // searches so took a third of the run).
    down_key_start_.assign(n + 1, 0);
    for (NodeIndex i = 0; i < n; ++i)
      down_key_start_[i + 1] = down_key_start_[i] + (offsets_[i + 1] - split_[i]);
    down_keys_.assign(down_key_start_[n], 0);
    for (NodeIndex i = 0; i < n; ++i) {
      for (std::uint32_t j = split_[i]; j < offsets_[i + 1]; ++j)
        down_keys_[down_key_start_[i] + (j - split_[i])] = packed_child_key(adjacency_[j]);
    }
    finalized_ = true;
  }

  /// (block, plane) of a link's target: the order of down_links(). Endpoints sort last.
  [[nodiscard]] std::pair<BlockIndex, std::uint32_t> child_key(LinkIndex l) const {
    const NodeIndex c = links_[l].to;
    return {block_of_[c], plane_[c]};
  }

  /// child_key() as one number that orders the same way: block in the high half.
  [[nodiscard]] std::uint64_t packed_child_key(LinkIndex l) const {
    const auto [block, plane] = child_key(l);
    return std::uint64_t{block} << 32 | plane;
  }
  /// packed_child_key() of each of down_links(n), in the same order.
  [[nodiscard]] std::span<const std::uint64_t> down_link_keys(NodeIndex n) const {
    return {down_keys_.data() + down_key_start_[n], down_keys_.data() + down_key_start_[n + 1]};
  }

  [[nodiscard]] bool finalized() const { return finalized_; }
  [[nodiscard]] std::size_t node_count() const { return kind_.size(); }
  [[nodiscard]] std::size_t endpoint_count() const { return endpoint_count_; }
  [[nodiscard]] std::size_t link_count() const { return links_.size(); }
  [[nodiscard]] int tiers() const { return max_tier_; }

  [[nodiscard]] FabricNodeKind kind(NodeIndex n) const { return kind_[n]; }
  [[nodiscard]] int tier(NodeIndex n) const { return tier_[n]; }
  [[nodiscard]] std::uint32_t host(NodeIndex n) const { return host_[n]; }
  [[nodiscard]] std::uint16_t local_rank(NodeIndex n) const { return local_[n]; }
  [[nodiscard]] std::uint16_t rail(NodeIndex n) const { return rail_[n]; }

  [[nodiscard]] const FabricLink& link(LinkIndex l) const { return links_[l]; }
  [[nodiscard]] const std::vector<FabricLink>& links() const { return links_; }
  [[nodiscard]] static LinkIndex reverse(LinkIndex l) { return l ^ 1u; }

  /// Links leaving `n` towards the tier above (for an endpoint: its NIC ports and its
  /// NVLink to the host's NVSwitch). down_links() are sorted by child_key().
  [[nodiscard]] std::span<const LinkIndex> up_links(NodeIndex n) const {
    return {adjacency_.data() + offsets_[n], adjacency_.data() + split_[n]};
  }
  [[nodiscard]] std::span<const LinkIndex> down_links(NodeIndex n) const {
    return {adjacency_.data() + split_[n], adjacency_.data() + offsets_[n + 1]};
  }

  /// Marks a cable (both directions) down (0), degraded (0..1) or healthy (1).
  void set_cable_health(LinkIndex l, float health) {
    if (l >= links_.size())
      throw InputError("fabric: link " + std::to_string(l) + " does not exist");
    if (!(health >= 0.0f && health <= 1.0f)) {
      throw InputError("fabric: health of link " + std::to_string(l) + " must be in [0, 1]");
    }
    links_[l].health = health;
    links_[reverse(l)].health = health;
  }
  void set_switch_down(NodeIndex s) {
    check_node(s);
    for (LinkIndex l : up_links(s)) set_cable_health(l, 0.0f);
    for (LinkIndex l : down_links(s)) set_cable_health(l, 0.0f);
  }

  // ---- blocks (see the header comment) -------------------------------------------------
  [[nodiscard]] BlockIndex block_of(NodeIndex sw) const { return block_of_[sw]; }
  [[nodiscard]] BlockIndex parent_block(BlockIndex b) const { return block_parent_[b]; }
  [[nodiscard]] int block_tier(BlockIndex b) const { return block_tier_[b]; }
  [[nodiscard]] std::size_t block_count() const { return block_parent_.size(); }
  /// Switches of a block.
  [[nodiscard]] std::span<const NodeIndex> block_members(BlockIndex b) const {
    return {block_members_.data() + block_offsets_[b],
            block_members_.data() + block_offsets_[b + 1]};
  }
  /// Whether the hosts' NVSwitches can reduce in the switch (NVLink SHARP, which NCCL's
  /// NVLS algorithms use): H100's third-generation NVSwitch can [pub].
  void set_nvswitch_reduction(bool on) { nvswitch_reduction_ = on; }
  [[nodiscard]] bool nvswitch_reduction() const { return nvswitch_reduction_; }
  /// The NVSwitch an endpoint's NVLink reaches, or no_node (no NVLink domain).
  [[nodiscard]] NodeIndex nvswitch_of(NodeIndex endpoint) const {
    for (LinkIndex l : up_links(endpoint)) {
      if (kind_[links_[l].to] == FabricNodeKind::nvswitch) return links_[l].to;
    }
    return no_node;
  }

  /// Plane of a switch: its connected component in the switch-to-switch graph. A
  /// dual-plane fabric (HPN) has two; blocks may span planes, routes never do.
  [[nodiscard]] std::uint32_t plane_of(NodeIndex sw) const { return plane_[sw]; }

  /// The block at `tier` above a tier-1 block (itself at tier 1), or no_block.
  [[nodiscard]] BlockIndex ancestor(BlockIndex b, int tier) const {
    while (b != no_block && block_tier_[b] < tier) b = block_parent_[b];
    return b != no_block && block_tier_[b] == tier ? b : no_block;
  }

  [[nodiscard]] std::string describe(NodeIndex n) const {
    if (n >= kind_.size()) return "node " + std::to_string(n) + " (does not exist)";
    switch (kind_[n]) {
      case FabricNodeKind::endpoint:
        return "endpoint " + std::to_string(n) + " (host " + std::to_string(host_[n]) + " GPU " +
               std::to_string(local_[n]) + ")";
      case FabricNodeKind::nvswitch: return "NVSwitch of host " + std::to_string(host_[n]);
      case FabricNodeKind::network_switch:
        return "tier-" + std::to_string(tier_[n]) + " switch " + std::to_string(n);
    }
    return "node " + std::to_string(n);
  }

  /// Approximate heap bytes held, for the memory figures of benchmarks.
  [[nodiscard]] std::size_t memory_bytes() const {
    return links_.capacity() * sizeof(FabricLink) + adjacency_.capacity() * 4 +
           offsets_.capacity() * 4 + split_.capacity() * 4 + down_keys_.capacity() * 8 +
           down_key_start_.capacity() * 4 + kind_.capacity() * 2 + host_.capacity() * 4 +
           local_.capacity() * 4 + block_of_.capacity() * 4 + block_parent_.capacity() * 4 +
           block_members_.capacity() * 4 + plane_.capacity() * 4;
  }

 private:
  NodeIndex push(FabricNodeKind k, std::uint8_t tier, std::uint32_t host, std::uint16_t local,
                 std::uint16_t rail) {
    if (kind_.size() >= no_node - 1) throw InputError("fabric: too many nodes");
    kind_.push_back(k);
    tier_.push_back(tier);
    host_.push_back(host);
    local_.push_back(local);
    rail_.push_back(rail);
    finalized_ = false;
    return static_cast<NodeIndex>(kind_.size() - 1);
  }
  void check_node(NodeIndex n) const {
    if (n >= kind_.size())
      throw InputError("fabric: node " + std::to_string(n) + " does not exist");
  }

  // Blocks bottom-up: a tier-1 switch's key is its sorted set of endpoints; a tier-t
  // switch's key is its sorted set of child blocks. Equal keys, one block.
  void compute_blocks() {
    const std::size_t n = kind_.size();
    block_of_.assign(n, no_block);
    block_parent_.clear();
    block_tier_.clear();
    for (int t = 1; t <= max_tier_; ++t) {
      std::map<std::vector<std::uint32_t>, BlockIndex> keys;
      for (NodeIndex s = 0; s < n; ++s) {
        if (kind_[s] != FabricNodeKind::network_switch || tier_[s] != t) continue;
        std::vector<std::uint32_t> key;
        for (LinkIndex l : down_links(s)) {
          const NodeIndex c = links_[l].to;
          key.push_back(t == 1 ? c : block_of_[c]);
        }
        std::sort(key.begin(), key.end());
        key.erase(std::unique(key.begin(), key.end()), key.end());
        if (key.empty()) throw InputError("fabric: " + describe(s) + " has no links down");
        auto [it, inserted] =
            keys.emplace(std::move(key), static_cast<BlockIndex>(block_parent_.size()));
        if (inserted) {
          block_parent_.push_back(no_block);
          block_tier_.push_back(static_cast<std::uint8_t>(t));
        }
        block_of_[s] = it->second;
      }
      // Parent of each child block: must be unique.
      for (NodeIndex s = 0; s < n; ++s) {
        if (kind_[s] != FabricNodeKind::network_switch || tier_[s] != t || t == 1) continue;
        for (LinkIndex l : down_links(s)) {
          const BlockIndex child = block_of_[links_[l].to];
          if (block_parent_[child] == no_block) {
            block_parent_[child] = block_of_[s];
          } else if (block_parent_[child] != block_of_[s]) {
            throw InputError("fabric: not a tiered Clos: " + describe(links_[l].to) +
                             " is reached from tier-" + std::to_string(t) +
                             " switches that reach different sets of endpoints (e.g. " +
                             describe(s) +
                             "); up/down routing needs every switch of a tier to reach either all "
                             "or none of a lower block");
          }
        }
      }
    }
    // Members per block.
    std::vector<std::uint32_t> counts(block_parent_.size() + 1, 0);
    for (NodeIndex s = 0; s < n; ++s) {
      if (block_of_[s] != no_block) counts[block_of_[s] + 1]++;
    }
    for (std::size_t b = 0; b < block_parent_.size(); ++b) counts[b + 1] += counts[b];
    block_offsets_ = counts;
    block_members_.assign(counts.back(), 0);
    std::vector<std::uint32_t> fill(counts.begin(), counts.end() - 1);
    for (NodeIndex s = 0; s < n; ++s) {
      if (block_of_[s] != no_block) block_members_[fill[block_of_[s]]++] = s;
    }
  }

  void compute_planes() {
    const std::size_t n = kind_.size();
    plane_.assign(n, 0xffffffffu);
    std::uint32_t next = 0;
    std::vector<NodeIndex> stack;
    for (NodeIndex s = 0; s < n; ++s) {
      if (kind_[s] != FabricNodeKind::network_switch || plane_[s] != 0xffffffffu) continue;
      plane_[s] = next;
      stack.push_back(s);
      while (!stack.empty()) {
        const NodeIndex x = stack.back();
        stack.pop_back();
        for (std::uint32_t i = offsets_[x]; i < offsets_[x + 1]; ++i) {
          const NodeIndex y = links_[adjacency_[i]].to;
          if (kind_[y] == FabricNodeKind::network_switch && plane_[y] == 0xffffffffu) {
            plane_[y] = next;
            stack.push_back(y);
          }
        }
      }
      ++next;
    }
  }

  std::vector<FabricNodeKind> kind_;
  std::vector<std::uint8_t> tier_;
  std::vector<std::uint32_t> host_;
  std::vector<std::uint16_t> local_;
  std::vector<std::uint16_t> rail_;
  std::vector<FabricLink> links_;
  std::vector<std::uint32_t> offsets_;
  std::vector<std::uint32_t> split_;
  std::vector<LinkIndex> adjacency_;
  std::vector<std::uint64_t> down_keys_;  // down_link_keys() of every node, one after another
  std::vector<std::uint32_t> down_key_start_;
  std::vector<BlockIndex> block_of_;
  std::vector<BlockIndex> block_parent_;
  std::vector<std::uint8_t> block_tier_;
  std::vector<std::uint32_t> block_offsets_;
  std::vector<NodeIndex> block_members_;
  std::vector<std::uint32_t> plane_;
  std::size_t endpoint_count_ = 0;
  std::uint8_t max_tier_ = 0;
  bool nvswitch_reduction_ = false;
  bool finalized_ = false;
};

/// The lowest tier at which switches a and b (leaves) share a block: 1 for the same
/// leaf, f.tiers() + 1 where they share none.
inline int meeting_tier(const Fabric& f, NodeIndex a, NodeIndex b) {
  if (a == b) return 1;
  for (int t = 2; t <= f.tiers(); ++t) {
    const BlockIndex x = f.ancestor(f.block_of(a), t);
    if (x != no_block && x == f.ancestor(f.block_of(b), t)) return t;
  }
  return f.tiers() + 1;
}

/// How a fabric lays out its hosts: the GPUs of its first host, and how many hosts of
/// that size its endpoints make (what a job's placement must fit into).
struct HostLayout {
  std::size_t hosts = 0;
  std::size_t per_host = 0;
};
inline HostLayout host_layout(const Fabric& f) {
  HostLayout h;
  for (NodeIndex e = 0; e < f.endpoint_count() && f.host(e) == f.host(0); ++e) ++h.per_host;
  h.hosts = f.endpoint_count() / std::max<std::size_t>(h.per_host, 1);
  return h;
}

RAILCC_NAMESPACE_END
