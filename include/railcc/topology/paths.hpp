// railcc/topology/paths.hpp: path classes and bandwidth between two devices of a node.
//
// PCIe part: the devices' lowest common ancestor in the tree decides the class (a
// switch: PIX or PXB by how many switches the path crosses; a host bridge: PHB; a CPU:
// NODE; none: SYS). NVLink part: a direct bundle, or both GPUs on NVSwitches, is NV#
// with # the links of the bundle or the fewer NVSwitch links of the two GPUs; that is
// how nvidia-smi shows NV18 between any two H100 SXM GPUs. NCCL additionally finds
// NVB paths through an intermediate GPU (DGX-1 style meshes).
#pragma once

#include <algorithm>
#include <deque>
#include <optional>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/topology/path_class.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail {

inline std::vector<DeviceId> ancestors_including_self(const NodeTopology& topo, DeviceId id) {
  std::vector<DeviceId> chain;
  while (id != no_device) {
    chain.push_back(id);
    id = topo.device(id).parent;
  }
  return chain;
}

/// Links (by their owning device) on the tree path a -> lca -> b: each device below the
/// LCA owns the link to its parent.
inline std::optional<Bandwidth> slowest_trusted_link(const NodeTopology& topo,
                                                     const std::vector<DeviceId>& up_a,
                                                     const std::vector<DeviceId>& up_b,
                                                     std::size_t lca_pos_a, std::size_t lca_pos_b) {
  std::optional<Bandwidth> slowest;
  auto visit = [&](const std::vector<DeviceId>& chain, std::size_t lca_pos) {
    for (std::size_t i = 0; i < lca_pos; ++i) {
      const auto& d = topo.device(chain[i]);
      if (d.link_suspect) continue;
      if (auto bw = d.link.bandwidth(); bw && (!slowest || *bw < *slowest)) slowest = bw;
    }
  };
  visit(up_a, lca_pos_a);
  visit(up_b, lca_pos_b);
  return slowest;
}

inline int direct_nvlinks(const NodeTopology& topo, DeviceId a, DeviceId b) {
  int ab = 0;
  int ba = 0;
  for (const auto& l : topo.nvlinks()) {
    if (l.gpu == a && l.peer == b) ab += l.count;
    if (l.gpu == b && l.peer == a) ba += l.count;
  }
  // Each GPU lists the same bonded links from its side; a file may list only one side.
  return std::max(ab, ba);
}

inline int nvswitch_nvlinks(const NodeTopology& topo, DeviceId gpu) {
  int n = 0;
  for (const auto& l : topo.nvlinks()) {
    if (l.gpu == gpu && topo.device(l.peer).kind == DeviceKind::nvswitch) n += l.count;
  }
  return n;
}

/// True when b is reachable from a over GPU-to-GPU NVLinks through other GPUs.
inline bool nvlink_reachable_through_gpus(const NodeTopology& topo, DeviceId a, DeviceId b) {
  std::vector<bool> seen(topo.devices().size(), false);
  std::deque<DeviceId> queue{a};
  seen[a] = true;
  while (!queue.empty()) {
    const DeviceId g = queue.front();
    queue.pop_front();
    for (const auto& l : topo.nvlinks()) {
      DeviceId next = no_device;
      if (l.gpu == g) next = l.peer;
      if (l.peer == g) next = l.gpu;
      if (next == no_device || seen[next] || topo.device(next).kind != DeviceKind::gpu) continue;
      if (next == b) return true;
      seen[next] = true;
      queue.push_back(next);
    }
  }
  return false;
}

}  // namespace detail

/// The path between two devices of a finalized topology.
inline DevicePath path_between(const NodeTopology& topo, DeviceId a, DeviceId b) {
  DevicePath p;
  if (a == b) {
    p.smi = SmiPathClass::self;
    p.nccl = NcclPathType::loc;
    return p;
  }
  const auto& da = topo.device(a);
  const auto& db = topo.device(b);

  // NVLink first: it is what both nvidia-smi and NCCL report when present.
  if (da.kind == DeviceKind::gpu && db.kind == DeviceKind::gpu) {
    int links = detail::direct_nvlinks(topo, a, b);
    if (links == 0) {
      const int sa = detail::nvswitch_nvlinks(topo, a);
      const int sb = detail::nvswitch_nvlinks(topo, b);
      if (sa > 0 && sb > 0) links = std::min(sa, sb);
    }
    if (links > 0) {
      p.smi = SmiPathClass::nvlink;
      p.nccl = NcclPathType::nvl;
      p.nvlinks = links;
      if (auto per = topo.nvlink_bandwidth_per_link(a)) p.bandwidth = *per * links;
      return p;
    }
  } else if ((da.kind == DeviceKind::gpu && db.kind == DeviceKind::nvswitch) ||
             (db.kind == DeviceKind::gpu && da.kind == DeviceKind::nvswitch)) {
    const DeviceId gpu = da.kind == DeviceKind::gpu ? a : b;
    if (int links = detail::direct_nvlinks(topo, a, b); links > 0) {
      p.smi = SmiPathClass::nvlink;
      p.nccl = NcclPathType::nvl;
      p.nvlinks = links;
      if (auto per = topo.nvlink_bandwidth_per_link(gpu)) p.bandwidth = *per * links;
      return p;
    }
  }

  const auto up_a = detail::ancestors_including_self(topo, a);
  const auto up_b = detail::ancestors_including_self(topo, b);
  std::size_t ia = 0;
  std::size_t ib = 0;
  bool found = false;
  for (ia = 0; ia < up_a.size() && !found; ++ia) {
    for (ib = 0; ib < up_b.size(); ++ib) {
      if (up_a[ia] == up_b[ib]) {
        found = true;
        break;
      }
    }
    if (found) break;
  }

  if (!found) {
    // Different CPUs (or a detached device): the path crosses the SMP interconnect.
    const bool both_rooted = topo.cpu_of(a) != no_device && topo.cpu_of(b) != no_device;
    p.smi = both_rooted ? SmiPathClass::sys : SmiPathClass::disconnected;
    p.nccl = both_rooted ? NcclPathType::sys : NcclPathType::dis;
    if (both_rooted) {
      p.bandwidth =
          detail::slowest_trusted_link(topo, up_a, up_b, up_a.size() - 1, up_b.size() - 1);
    }
  } else {
    const auto& lca = topo.device(up_a[ia]);
    switch (lca.kind) {
      case DeviceKind::cpu:
        p.smi = SmiPathClass::node;
        p.nccl = NcclPathType::phb;
        break;
      case DeviceKind::host_bridge:
        p.smi = SmiPathClass::phb;
        p.nccl = NcclPathType::phb;
        break;
      default: {
        int switches = 0;
        for (std::size_t i = 1; i <= ia; ++i) {
          if (topo.device(up_a[i]).kind == DeviceKind::pci_switch) ++switches;
        }
        for (std::size_t i = 1; i < ib; ++i) {
          if (topo.device(up_b[i]).kind == DeviceKind::pci_switch) ++switches;
        }
        p.smi = switches <= 1 ? SmiPathClass::pix : SmiPathClass::pxb;
        p.nccl = switches <= 1 ? NcclPathType::pix : NcclPathType::pxb;
      }
    }
    p.bandwidth = detail::slowest_trusted_link(topo, up_a, up_b, ia, ib);
  }

  if (da.kind == DeviceKind::gpu && db.kind == DeviceKind::gpu &&
      detail::nvlink_reachable_through_gpus(topo, a, b)) {
    p.nccl = NcclPathType::nvb;  // NCCL routes through the intermediate GPU's NVLinks
  }
  return p;
}

RAILCC_NAMESPACE_END
