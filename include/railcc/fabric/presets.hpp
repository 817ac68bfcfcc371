// railcc/fabric/presets.hpp: published and textbook fabrics, each with parameters to change.
//
// Numbers and their sources are in docs/facts.md; each default below names its basis:
// [pub] a vendor document or paper, [calc] arithmetic on those, [guess] a modelling
// default with no public source, kept as a parameter.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/clos.hpp"
#include "railcc/fabric/node_shape.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// Cable latencies at ~5 ns per metre of fibre [pub]; the lengths are [guess].
namespace cable {
inline constexpr Picoseconds in_rack = Picoseconds::ns(15);       // 3 m, NIC to leaf
inline constexpr Picoseconds in_row = Picoseconds::ns(150);       // 30 m, leaf to spine
inline constexpr Picoseconds across_hall = Picoseconds::ns(500);  // 100 m, spine to core
}  // namespace cable

/// H100 NVLink 4 through NVSwitch: 450 GB/s each way per GPU [pub]. The per-link latency
/// is [guess]; NCCL's per-step NVLink latency (0.6 us for LL) covers software as well.
inline constexpr Bandwidth h100_nvlink = Bandwidth::GBps(450);
/// What NCCL counts on per H100: 18 links at 20.6 GB/s each way (SM90_NVLINK_BW in NCCL's
/// src/graph, docs/facts.md section 2), 370.8 GB/s: protocol and packet overheads taken off
/// the nominal 25 GB/s. Measured ring all-reduce bus bandwidth on 8 H100s is 365-370 GB/s.
inline constexpr Bandwidth h100_nvlink_usable = Bandwidth::GBps(20.6 * 18);
inline constexpr Picoseconds nvlink_latency = Picoseconds::ns(100);

/// A 400G NIC's nominal rate: 50 GB/s each way [pub].
inline constexpr Bandwidth nic_400g = Bandwidth::gbps(400);
/// What a GPU gets through its 400G NIC: the GPU-to-NIC path crosses a PCIe Gen5 x16
/// switch, which NCCL's topology models at 48 GB/s (docs/facts.md section 2) [pub], below
/// the port's 50. The presets' NIC links carry this by default; nic_400g is the nominal.
inline constexpr Bandwidth nic_400g_usable = Bandwidth::GBps(48);

struct ColossusParams {
  /// GPUs, rounded up to whole 8-GPU hosts: 100k (first phase), 200k, 1M planned [pub].
  std::uint64_t gpus = 100'000;
  /// Spectrum-4 SN5600: 128 ports of 400G [pub].
  std::uint32_t radix = 128;
  Bandwidth port = Bandwidth::gbps(400);
  /// One 400G NIC per GPU [pub], at what a GPU gets through it (nic_400g_usable); set
  /// nic_400g for the nominal rate.
  Bandwidth nic = nic_400g_usable;
  /// NVLink bandwidth per GPU each way: what NCCL counts on (h100_nvlink_usable, which
  /// measured ring all-reduces reach) by default; h100_nvlink for the nominal 450 GB/s.
  Bandwidth nvlink = h100_nvlink_usable;
  /// Down:up ratio per tier below the top (index 0: leaves). Empty: 1:1 everywhere.
  std::vector<double> oversubscription{};
  /// Hosts per rail leaf: 8 racks x 8 hosts = a 512-GPU array under 8 rail leaves [calc].
  std::uint32_t hosts_per_array = 64;
  /// Leaves per tier-2 block (pod): 8 arrays x 8 rails [calc].
  std::uint32_t leaves_per_pod = 64;
  /// Hosts shaped like a discovered node (GPUs per host = rails, NVLink, NIC speed)
  /// instead of an HGX H100; see node_shape.hpp.
  std::optional<NodeShape> node{};
};

/// Colossus-class rail-optimized Clos. Three tiers up to 524,288 GPUs (k^3/4 at k = 128),
/// four above (the 1M plan: tier-3 blocks of 64 pods) [calc]. `gpus` is rounded up to
/// whole hosts.
inline Fabric colossus(const ColossusParams& p = {}) {
  if (p.gpus == 0) throw InputError("colossus: gpus must be at least 1");
  if (p.gpus > max_fabric_endpoints) {
    throw InputError("colossus: more than " + std::to_string(max_fabric_endpoints) +
                     " GPUs is outside this preset");
  }
  ClosSpec s;
  const std::uint32_t per_host = p.node ? p.node->gpus : 8;
  s.hosts = static_cast<std::uint32_t>((p.gpus + per_host - 1) / per_host);
  s.gpus_per_host = per_host;
  s.nvlink = p.node ? p.node->nvlink.value_or(Bandwidth{}) : p.nvlink;
  s.nvlink_latency = nvlink_latency;
  s.nvswitch_reduction = p.node ? p.node->nvswitch_reduction : true;
  s.nic_port = p.node && p.node->nic ? *p.node->nic : p.nic;
  s.nic_latency = cable::in_rack;
  s.rail_optimized = true;
  s.leaf_down = p.hosts_per_array;
  s.radix = p.radix;
  const std::uint64_t arrays = (s.hosts + p.hosts_per_array - 1) / p.hosts_per_array;
  const std::uint64_t pods = (arrays * per_host + p.leaves_per_pod - 1) / p.leaves_per_pod;
  const int tiers = pods <= p.radix ? 3 : 4;
  auto ratio = [&](int tier) {
    const auto i = static_cast<std::size_t>(tier - 1);
    const double r = i < p.oversubscription.size() ? p.oversubscription[i] : 1.0;
    if (!(r >= 1.0) || !std::isfinite(r)) {
      throw InputError("colossus: oversubscription of tier " + std::to_string(tier) +
                       " must be >= 1 (down:up)");
    }
    return r;
  };
  auto ups = [&](std::uint32_t down, int tier) {
    return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::lround(down / ratio(tier))));
  };
  s.up.push_back({ups(p.hosts_per_array, 1), p.port, cable::in_row});
  s.block_down.push_back(p.leaves_per_pod);
  s.up.push_back({ups(p.leaves_per_pod, 2), p.port, cable::across_hall});
  if (tiers == 4) {
    s.block_down.push_back(p.radix / 2);
    s.up.push_back({ups(p.radix / 2, 3), p.port, cable::across_hall});
  }
  return build_clos(s);
}

/// What a tuner assumes of a job whose fabric it is not told: the colossus Clos for
/// `hosts` hosts of `per_host` GPUs, with H100 NVLink and 400G NICs at their usable rates;
/// `nvswitch_reduction`: the hosts' NVSwitches reduce (NVLS; host memory has none).
inline Fabric rail_optimised_fabric(std::uint64_t hosts, std::uint32_t per_host,
                                    bool nvswitch_reduction) {
  ColossusParams p;
  p.gpus = hosts * per_host;
  NodeShape shape;
  shape.gpus = per_host;
  shape.nvlink = h100_nvlink_usable;
  shape.nic = nic_400g_usable;
  shape.nvswitch_reduction = nvswitch_reduction;
  p.node = shape;
  return colossus(p);
}

struct Llama3Params {
  /// 3,072-GPU pods ("AI zones") [pub]; 8 of them make the 24,576-GPU cluster [pub].
  std::uint32_t pods = 8;
  /// 16 GPUs (two 8-GPU hosts) per rack switch, 192 racks per pod [pub].
  std::uint32_t gpus_per_rack = 16;
  std::uint32_t racks_per_pod = 192;
  /// The aggregation layer is oversubscribed 1:7 [pub].
  double aggregation_oversubscription = 7.0;
  /// Up-links per cluster switch to the aggregation layer: not published [guess]; their
  /// bandwidth is set so the ratio is exactly the published one.
  std::uint32_t aggregation_ports = 24;
  Bandwidth port = Bandwidth::gbps(400);
  /// Each GPU's 400G NIC, at what a GPU gets through it (see nic_400g_usable).
  Bandwidth nic = nic_400g_usable;
  /// NVLink per GPU each way, as NCCL counts it (see h100_nvlink_usable).
  Bandwidth nvlink = h100_nvlink_usable;
};

/// Meta's 24k-GPU RoCE cluster for Llama 3: rack switches, full-bisection pods, 1:7
/// aggregation layer. Not rail-optimized: a rack switch takes all 16 GPUs of its rack.
inline Fabric llama3(const Llama3Params& p = {}) {
  if (p.pods == 0 || p.gpus_per_rack == 0 || p.racks_per_pod == 0) {
    throw InputError("llama3: pods, gpus_per_rack and racks_per_pod must be positive");
  }
  if (!(p.aggregation_oversubscription >= 1.0)) {
    throw InputError("llama3: aggregation_oversubscription must be >= 1");
  }
  ClosSpec s;
  const std::uint64_t gpus = std::uint64_t{p.pods} * p.racks_per_pod * p.gpus_per_rack;
  s.hosts = static_cast<std::uint32_t>(gpus / 8);
  s.gpus_per_host = 8;
  s.nvlink = p.nvlink;
  s.nvlink_latency = nvlink_latency;
  s.nvswitch_reduction = true;
  s.nic_port = p.nic;
  s.nic_latency = cable::in_rack;
  s.rail_optimized = false;
  s.leaf_down = p.gpus_per_rack;
  // Cluster switches are modular chassis: no single-chip radix bounds them.
  s.radix =
      std::max<std::uint32_t>(p.racks_per_pod + p.aggregation_ports, p.pods * p.aggregation_ports);
  s.up.push_back({p.gpus_per_rack, p.port, cable::in_row});
  s.block_down.push_back(p.racks_per_pod);
  const Bandwidth agg_link = p.port * (static_cast<double>(p.racks_per_pod) /
                                       (p.aggregation_oversubscription * p.aggregation_ports));
  s.up.push_back({p.aggregation_ports, agg_link, cable::across_hall});
  return build_clos(s);
}

struct HpnParams {
  /// 15 segments of 1,024 GPUs (128 hosts) make a 15k-GPU pod [pub].
  std::uint32_t segments = 15;
  std::uint32_t hosts_per_segment = 128;
  /// Each 400G NIC is split into 2 x 200G ports, one per plane [pub]; each carries half
  /// of what a GPU gets through the NIC (nic_400g_usable / 2). Bandwidth::gbps(200) is
  /// the nominal.
  Bandwidth port = nic_400g_usable * 0.5;
  /// NVLink per GPU each way, as NCCL counts it (see h100_nvlink_usable).
  Bandwidth nvlink = h100_nvlink_usable;
  /// ToR: 60 x 400G up-links per 128 x 200G down [pub, HPN SIGCOMM 2024].
  std::uint32_t tor_up_ports = 60;
  Bandwidth tor_up = Bandwidth::gbps(400);
  std::uint32_t radix = 128;
};

/// Alibaba HPN: two tiers, dual plane, rail-optimized segments.
inline Fabric hpn(const HpnParams& p = {}) {
  if (p.segments == 0 || p.hosts_per_segment == 0)
    throw InputError("hpn: segments and hosts must be positive");
  ClosSpec s;
  s.hosts = p.segments * p.hosts_per_segment;
  s.gpus_per_host = 8;
  s.nvlink = p.nvlink;
  s.nvlink_latency = nvlink_latency;
  s.nvswitch_reduction = true;
  s.planes = 2;
  s.nic_port = p.port;
  s.nic_latency = cable::in_rack;
  s.rail_optimized = true;
  s.leaf_down = p.hosts_per_segment;
  s.radix =
      std::max(p.radix, p.hosts_per_segment + p.tor_up_ports);  // ToR ports are 200G/400G mixed
  s.up.push_back({p.tor_up_ports, p.tor_up, cable::in_row});
  return build_clos(s);
}

/// The textbook k-ary fat tree (Al-Fares et al., SIGCOMM 2008): k pods of k/2 edge and
/// k/2 aggregation switches, (k/2)^2 cores, k^3/4 hosts; here one GPU per host, no NVLink.
inline Fabric fat_tree(std::uint32_t k, Bandwidth link = Bandwidth::gbps(400)) {
  if (k < 2 || k % 2 != 0 || k > 256) throw InputError("fat-tree: k must be even, 2 to 256");
  ClosSpec s;
  s.hosts = k * k * k / 4;
  s.gpus_per_host = 1;
  s.nic_port = link;
  s.nic_latency = cable::in_rack;
  s.rail_optimized = false;
  s.leaf_down = k / 2;
  s.radix = k;
  s.up.push_back({k / 2, link, cable::in_row});
  s.block_down.push_back(k / 2);
  s.up.push_back({k / 2, link, cable::across_hall});
  return build_clos(s);
}

RAILCC_NAMESPACE_END
