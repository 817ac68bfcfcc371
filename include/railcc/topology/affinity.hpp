// railcc/topology/affinity.hpp: what each GPU is close to, and the rail of each NIC.
//
// The rail of a NIC is the index of the GPU it serves: NIC i of every node sits on rail
// i of a rail-optimized fabric. railcc derives it from the PCIe tree by pairing each NIC
// with the closest GPU, spreading NICs evenly over equally close GPUs, so a switch with
// two GPUs and two NICs gives each GPU one NIC, and a switch with one GPU and four NICs
// (AWS p5) puts all four on that GPU's rail.
#pragma once

#include <algorithm>
#include <optional>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/topology/paths.hpp"

RAILCC_NAMESPACE_BEGIN

/// NICs at the best path class from a GPU (several when equally close).
inline std::vector<DeviceId> nearest_nics(const NodeTopology& topo, DeviceId gpu) {
  std::vector<DeviceId> best;
  SmiPathClass best_class = SmiPathClass::disconnected;
  for (DeviceId nic : topo.nics()) {
    const auto c = path_between(topo, gpu, nic).smi;
    if (c < best_class) {
      best_class = c;
      best.clear();
    }
    if (c == best_class && c != SmiPathClass::disconnected) best.push_back(nic);
  }
  return best;
}

/// Rail (GPU index) of each NIC, in the order of topo.nics(); nullopt for a NIC when the
/// node has no GPU or the NIC reaches none.
inline std::vector<std::optional<int>> nic_rails(const NodeTopology& topo) {
  std::vector<std::optional<int>> rails(topo.nics().size());
  std::vector<int> load(topo.gpus().size(), 0);
  for (std::size_t n = 0; n < topo.nics().size(); ++n) {
    std::optional<std::size_t> pick;
    SmiPathClass pick_class = SmiPathClass::disconnected;
    for (std::size_t g = 0; g < topo.gpus().size(); ++g) {
      const auto c = path_between(topo, topo.gpus()[g], topo.nics()[n]).smi;
      if (c == SmiPathClass::disconnected) continue;
      if (!pick || c < pick_class || (c == pick_class && load[g] < load[*pick])) {
        pick = g;
        pick_class = c;
      }
    }
    if (pick) {
      ++load[*pick];
      rails[n] = topo.device(topo.gpus()[*pick]).gpu().index;
    }
  }
  return rails;
}

struct NvLinkPeer {
  DeviceId gpu;
  int links;
  std::optional<Bandwidth> bandwidth;
};

/// The facts an operator or a placement policy wants about one GPU.
struct GpuAffinity {
  DeviceId gpu = no_device;
  int numa_node = -1;
  CpuSet cpus;
  std::vector<DeviceId> nearest_nics;
  SmiPathClass nic_path = SmiPathClass::disconnected;  ///< class to the nearest NICs
  std::vector<DeviceId> rail_nics;                     ///< NICs whose rail is this GPU
  std::vector<NvLinkPeer> nvlink_peers;
  int nvlinks = 0;  ///< total NVLinks of the GPU
};

inline GpuAffinity gpu_affinity(const NodeTopology& topo, DeviceId gpu,
                                const std::vector<std::optional<int>>& rails) {
  GpuAffinity a;
  a.gpu = gpu;
  a.numa_node = topo.numa_node_of(gpu);
  if (DeviceId cpu = topo.cpu_of(gpu); cpu != no_device) a.cpus = topo.device(cpu).cpu().affinity;
  a.nearest_nics = nearest_nics(topo, gpu);
  if (!a.nearest_nics.empty()) a.nic_path = path_between(topo, gpu, a.nearest_nics.front()).smi;
  const int index = topo.device(gpu).gpu().index;
  for (std::size_t n = 0; n < rails.size(); ++n) {
    if (rails[n] == index) a.rail_nics.push_back(topo.nics()[n]);
  }
  for (DeviceId other : topo.gpus()) {
    if (other == gpu) continue;
    const auto p = path_between(topo, gpu, other);
    if (p.smi == SmiPathClass::nvlink) a.nvlink_peers.push_back({other, p.nvlinks, p.bandwidth});
  }
  a.nvlinks = topo.nvlink_count(gpu);
  return a;
}

inline GpuAffinity gpu_affinity(const NodeTopology& topo, DeviceId gpu) {
  return gpu_affinity(topo, gpu, nic_rails(topo));
}

RAILCC_NAMESPACE_END
