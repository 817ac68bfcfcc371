// railcc/fabric/clos.hpp: a generic builder of tiered (folded) Clos fabrics.
//
// The fabric presets (colossus, llama3, hpn, fat-tree) are all instances of one recursive
// construction, parameterized per tier:
//  - tier 1 (leaf) switches take `leaf_down` NIC ports each; with `rail_optimized`, leaf
//    (array a, rail r) takes NIC r of the `leaf_down` hosts of array a, so NIC i of every
//    host is on rail i; otherwise a leaf takes `leaf_down` consecutive GPUs;
//  - a tier-t block (t >= 2, below the top) is `down[t]` blocks of tier t-1 plus one
//    tier-t switch per up-port of the switches below: port m of lower switch i goes to
//    switch (i * up[t-1] + m) of the block. Every switch of a block reaches the whole block;
//  - the top tier joins the B blocks below it. Port m of lower switch i goes to top switch
//    (i, m mod g), with g the fewest top switches per lower switch for which no top switch
//    has more than `radix` links: a 25-pod Colossus needs 13 per group, not 64.
// With `planes` > 1 every NIC has that many ports, each on its own copy of the network
// (Alibaba HPN's dual plane). Per-tier oversubscription is the ratio down:up of a tier's
// switches, set through the up-port counts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

struct ClosTierLinks {
  std::uint32_t up_ports = 0;  ///< up-ports per switch of this tier (0 at the top)
  Bandwidth bandwidth;         ///< of each up-link
  Picoseconds latency;         ///< of each up-link
};

struct ClosSpec {
  std::uint32_t hosts = 0;
  std::uint32_t gpus_per_host = 8;
  /// NVLink domain per host: one NVSwitch joined to each GPU (none when 0 bandwidth).
  Bandwidth nvlink;
  Picoseconds nvlink_latency;
  /// The NVSwitch reduces in the switch (NVLS).
  bool nvswitch_reduction = false;
  /// NIC ports per GPU, one per plane.
  std::uint32_t planes = 1;
  Bandwidth nic_port;
  Picoseconds nic_latency;
  bool rail_optimized = true;
  /// Tier-1 down-ports: hosts per rail leaf (rail-optimized) or GPUs per leaf.
  std::uint32_t leaf_down = 64;
  /// Lower blocks per block, for tiers 2 .. tiers-1 (index 0 is tier 2). The top tier
  /// takes all blocks below it.
  std::vector<std::uint32_t> block_down;
  /// Up-links of tiers 1 .. tiers-1 (index 0 is tier 1).
  std::vector<ClosTierLinks> up;
  std::uint32_t radix = 128;

  [[nodiscard]] int tiers() const { return static_cast<int>(up.size()) + 1; }
};

/// Builds and finalizes the fabric. Throws InputError on an impossible specification
/// (a switch would need more ports than `radix`, zero sizes, mismatched tier lists).
inline Fabric build_clos(const ClosSpec& spec) {
  const int T = spec.tiers();
  if (spec.hosts == 0 || spec.gpus_per_host == 0) throw InputError("clos: no hosts");
  if (spec.planes == 0) throw InputError("clos: planes must be at least 1");
  if (spec.leaf_down == 0) throw InputError("clos: leaf_down must be at least 1");
  if (spec.block_down.size() + 2 != static_cast<std::size_t>(T) && T > 1) {
    throw InputError("clos: block_down must list tiers 2 to " + std::to_string(T - 1) + " (" +
                     std::to_string(T - 2) + " values), got " +
                     std::to_string(spec.block_down.size()));
  }
  for (std::size_t t = 0; t < spec.up.size(); ++t) {
    if (spec.up[t].up_ports == 0) {
      throw InputError("clos: tier " + std::to_string(t + 1) + " has no up-ports");
    }
    if (!(spec.up[t].bandwidth > Bandwidth{})) {
      throw InputError("clos: tier " + std::to_string(t + 1) + " up-links have no bandwidth");
    }
  }
  if (!(spec.nic_port > Bandwidth{})) throw InputError("clos: NIC ports have no bandwidth");
  const std::uint64_t total_gpus = static_cast<std::uint64_t>(spec.hosts) * spec.gpus_per_host;
  if (total_gpus >= no_node / 2) throw InputError("clos: too many GPUs");

  Fabric f;
  for (std::uint32_t h = 0; h < spec.hosts; ++h) {
    for (std::uint32_t g = 0; g < spec.gpus_per_host; ++g) {
      f.add_endpoint(h, static_cast<std::uint16_t>(g), static_cast<std::uint16_t>(g));
    }
  }
  if (spec.nvlink > Bandwidth{} && spec.gpus_per_host > 1) {
    for (std::uint32_t h = 0; h < spec.hosts; ++h) {
      const NodeIndex nvs = f.add_nvswitch(h);
      for (std::uint32_t g = 0; g < spec.gpus_per_host; ++g) {
        f.connect(h * spec.gpus_per_host + g, nvs, spec.nvlink, spec.nvlink_latency);
      }
    }
    f.set_nvswitch_reduction(spec.nvswitch_reduction);
  }
  if (spec.leaf_down + (T > 1 ? spec.up[0].up_ports : 0) > spec.radix) {
    throw InputError("clos: a leaf needs " + std::to_string(spec.leaf_down) + " down + " +
                     std::to_string(T > 1 ? spec.up[0].up_ports : 0) +
                     " up ports, more than radix " + std::to_string(spec.radix));
  }

  for (std::uint32_t plane = 0; plane < spec.planes; ++plane) {
    // Tier 1: the leaves of this plane, in block order.
    std::vector<NodeIndex> level;  // switches of the current tier, block-major
    std::uint32_t per_block = 1;   // switches per block at the current tier
    if (spec.rail_optimized) {
      const std::uint32_t arrays = (spec.hosts + spec.leaf_down - 1) / spec.leaf_down;
      for (std::uint32_t a = 0; a < arrays; ++a) {
        for (std::uint32_t r = 0; r < spec.gpus_per_host; ++r) {
          const NodeIndex leaf = f.add_switch(1);
          level.push_back(leaf);
          for (std::uint32_t k = 0; k < spec.leaf_down; ++k) {
            const std::uint32_t host = a * spec.leaf_down + k;
            if (host >= spec.hosts) break;
            f.connect(host * spec.gpus_per_host + r, leaf, spec.nic_port, spec.nic_latency);
          }
        }
      }
    } else {
      const std::uint64_t leaves = (total_gpus + spec.leaf_down - 1) / spec.leaf_down;
      for (std::uint64_t i = 0; i < leaves; ++i) {
        const NodeIndex leaf = f.add_switch(1);
        level.push_back(leaf);
        for (std::uint64_t k = 0; k < spec.leaf_down; ++k) {
          const std::uint64_t gpu = i * spec.leaf_down + k;
          if (gpu >= total_gpus) break;
          f.connect(static_cast<NodeIndex>(gpu), leaf, spec.nic_port, spec.nic_latency);
        }
      }
    }

    for (int t = 2; t <= T; ++t) {
      const auto& links = spec.up[static_cast<std::size_t>(t - 2)];
      const std::uint32_t u = links.up_ports;
      const std::uint32_t blocks_below = static_cast<std::uint32_t>(level.size() / per_block);
      std::vector<NodeIndex> next;
      if (t < T) {
        const std::uint32_t d = spec.block_down[static_cast<std::size_t>(t - 2)];
        if (d == 0) throw InputError("clos: tier " + std::to_string(t) + " blocks are empty");
        const std::uint32_t up_next = spec.up[static_cast<std::size_t>(t - 1)].up_ports;
        if (d + up_next > spec.radix) {
          throw InputError("clos: a tier-" + std::to_string(t) + " switch needs " +
                           std::to_string(d) + " down + " + std::to_string(up_next) +
                           " up ports, more than radix " + std::to_string(spec.radix));
        }
        const std::uint32_t blocks = (blocks_below + d - 1) / d;
        const std::uint32_t switches = per_block * u;
        for (std::uint32_t b = 0; b < blocks; ++b) {
          const std::size_t base = next.size();
          for (std::uint32_t s = 0; s < switches; ++s)
            next.push_back(f.add_switch(static_cast<std::uint8_t>(t)));
          for (std::uint32_t c = 0; c < d; ++c) {
            const std::uint32_t child = b * d + c;
            if (child >= blocks_below) break;
            for (std::uint32_t i = 0; i < per_block; ++i) {
              for (std::uint32_t m = 0; m < u; ++m) {
                f.connect(level[child * per_block + i], next[base + i * u + m], links.bandwidth,
                          links.latency);
              }
            }
          }
        }
        per_block = switches;
      } else {
        // Top tier: g switches per (lower switch index), fewest that respect the radix.
        const std::uint32_t B = blocks_below;
        std::uint32_t g = std::max<std::uint32_t>(1, (u * B + spec.radix - 1) / spec.radix);
        while (g <= u && static_cast<std::uint64_t>(B) * ((u + g - 1) / g) > spec.radix) ++g;
        if (g > u) {
          throw InputError("clos: " + std::to_string(B) + " tier-" + std::to_string(t - 1) +
                           " blocks exceed what radix-" + std::to_string(spec.radix) +
                           " top switches can join; add a tier or raise the radix");
        }
        for (std::uint32_t i = 0; i < per_block; ++i) {
          std::vector<NodeIndex> group;
          for (std::uint32_t c = 0; c < g; ++c)
            group.push_back(f.add_switch(static_cast<std::uint8_t>(t)));
          for (std::uint32_t b = 0; b < B; ++b) {
            for (std::uint32_t m = 0; m < u; ++m) {
              f.connect(level[b * per_block + i], group[m % g], links.bandwidth, links.latency);
            }
          }
          next.insert(next.end(), group.begin(), group.end());
        }
        per_block = static_cast<std::uint32_t>(next.size());
      }
      level = std::move(next);
    }
  }
  f.finalize();
  return f;
}

RAILCC_NAMESPACE_END
