// railcc/fabric/node_shape.hpp: what a fabric needs to know about its nodes, taken from a
// discovered node topology.
//
// Fabric presets assume an HGX H100 node (8 GPUs, 450 GB/s NVLink each, one 400G NIC per
// GPU). Given the NodeTopology of the real node (NCCL XML, hwloc), `node_shape` extracts
// the GPU count, the NVLink bandwidth every pair of GPUs gets, and the speed of the NIC on
// each GPU's rail, and the presets build hosts of that shape instead.
#pragma once

#include <algorithm>
#include <optional>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/topology/affinity.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/topology/paths.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

struct NodeShape {
  std::uint32_t gpus = 8;
  /// NVLink bandwidth each way between any two GPUs of the node; nullopt when some pair has
  /// no NVLink path (the fabric then has no NVLink domain for that node).
  std::optional<Bandwidth> nvlink;
  /// Speed of the slowest rail NIC; nullopt when the topology does not say.
  std::optional<Bandwidth> nic;
  /// The GPUs meet on NVSwitches that reduce in the switch (NVLS): Hopper and later.
  bool nvswitch_reduction = false;
};

inline NodeShape node_shape(const NodeTopology& topo) {
  if (topo.gpus().empty()) throw InputError("node shape: " + topo.source() + " has no GPU");
  NodeShape s;
  s.gpus = static_cast<std::uint32_t>(topo.gpus().size());
  // The NVLink bandwidth every pair gets: the least over pairs, none if a pair has none.
  s.nvlink = [&]() -> std::optional<Bandwidth> {
    std::optional<Bandwidth> least;
    for (DeviceId a : topo.gpus()) {
      for (DeviceId b : topo.gpus()) {
        if (a >= b) continue;
        const auto p = path_between(topo, a, b);
        if (p.smi != SmiPathClass::nvlink || !p.bandwidth) return std::nullopt;
        least = least ? std::min(*least, *p.bandwidth) : *p.bandwidth;
      }
    }
    return least;
  }();
  if (s.gpus == 1) s.nvlink.reset();
  // NVLS needs third-generation NVSwitch (Hopper, sm90) or later, and every GPU on it.
  bool all_on_nvswitch = s.nvlink.has_value();
  for (DeviceId g : topo.gpus()) {
    const auto sm = topo.gpu_sm(g);
    bool on_switch = false;
    for (const auto& l : topo.nvlinks()) {
      on_switch = on_switch || (l.gpu == g && topo.device(l.peer).kind == DeviceKind::nvswitch);
    }
    all_on_nvswitch = all_on_nvswitch && on_switch && sm && *sm >= 90;
  }
  s.nvswitch_reduction = all_on_nvswitch;
  const auto rails = nic_rails(topo);
  for (std::size_t i = 0; i < rails.size(); ++i) {
    if (!rails[i]) continue;
    if (const auto speed = topo.nic_speed(topo.nics()[i]))
      s.nic = s.nic ? std::min(*s.nic, *speed) : *speed;
  }
  return s;
}

RAILCC_NAMESPACE_END
