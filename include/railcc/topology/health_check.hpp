// railcc/topology/health_check.hpp: an operator's check of one node's wiring.
//
// Each finding names the device by PCI bus id and says what is wrong and what was
// expected. The rules (docs/topology.md explains each):
//  - gpu-nic-distance: a GPU with no NIC at PIX or PXB (GPUDirect RDMA would cross the CPU);
//  - numa-mismatch: a GPU and the NIC on its rail on different NUMA nodes;
//  - pcie-link: a link below what the device supports, below Gen5 x16 on the path of an
//    H100-class GPU or a 400G NIC, or slower than a NIC's port;
//  - nic-speed-mix: NICs whose ports run at different speeds;
//  - nvlink-count: an SXM GPU with fewer or more NVLinks than its model has.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/topology/affinity.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/topology/paths.hpp"

RAILCC_NAMESPACE_BEGIN

enum class FindingKind : std::uint8_t {
  gpu_nic_distance,
  numa_mismatch,
  pcie_link,
  nic_speed_mix,
  nvlink_count,
};

constexpr std::string_view to_string(FindingKind k) {
  switch (k) {
    case FindingKind::gpu_nic_distance: return "gpu-nic-distance";
    case FindingKind::numa_mismatch: return "numa-mismatch";
    case FindingKind::pcie_link: return "pcie-link";
    case FindingKind::nic_speed_mix: return "nic-speed-mix";
    case FindingKind::nvlink_count: return "nvlink-count";
  }
  return "?";
}

struct Finding {
  FindingKind kind;
  std::string bus_id;   ///< the device at fault ("" only for devices without one)
  std::string message;  ///< a full sentence naming every device involved
};

namespace detail {

inline std::string format_rate(Bandwidth b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB/s", b.in_GBps());
  return buf;
}

inline std::string bus_of(const NodeTopology& topo, DeviceId id) {
  const auto& d = topo.device(id);
  return d.bus_id ? d.bus_id->to_string() : std::string{};
}

/// What a GPU or NIC needs from every PCIe link between it and its CPU, and from its own.
struct PcieNeed {
  std::optional<Bandwidth> path;  ///< every link on the way to the CPU
  std::optional<Bandwidth> own;   ///< the device's own link (what it supports)
  std::string why_path;
  std::string why_own;
};

inline PcieNeed pcie_need(const NodeTopology& topo, DeviceId id) {
  PcieNeed need;
  const auto& d = topo.device(id);
  if (d.kind == DeviceKind::gpu) {
    const auto* model = topo.gpu_model(id);
    const auto sm = topo.gpu_sm(id);
    if (model) {
      need.own = pcie_x16_bandwidth(model->max_pcie_gen);
      need.why_own =
          std::string(model->name) + " supports Gen" + std::to_string(model->max_pcie_gen) + " x16";
    }
    if (sm && *sm >= 90 && *sm < 100) {
      need.path = pcie_x16_bandwidth(5);
      need.why_path = "an H100-class GPU needs Gen5 x16";
    }
  } else if (d.kind == DeviceKind::nic) {
    if (auto speed = topo.nic_speed(id)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "a %g Gb/s NIC", speed->in_gbps());
      need.path = *speed;
      need.why_path = std::string(buf) + " needs " + format_rate(*speed);
      if (speed->in_gbps() >= 400 && pcie_x16_bandwidth(5) > *need.path) {
        need.path = pcie_x16_bandwidth(5);
        need.why_path = std::string(buf) + " needs Gen5 x16";
      }
    }
    if (d.pci.vendor && d.pci.device) {
      if (const auto* m = find_nic_model(*d.pci.vendor, *d.pci.device); m && m->max_pcie_gen) {
        need.own = pcie_x16_bandwidth(*m->max_pcie_gen);
        need.why_own =
            std::string(m->name) + " supports Gen" + std::to_string(*m->max_pcie_gen) + " x16";
      }
    }
  }
  return need;
}

}  // namespace detail

/// Runs every rule on a finalized topology. An empty result means a healthy node.
inline std::vector<Finding> check_node(const NodeTopology& topo) {
  std::vector<Finding> findings;
  const auto rails = nic_rails(topo);

  for (DeviceId g : topo.gpus()) {
    const auto near = nearest_nics(topo, g);
    const auto cls = near.empty() ? SmiPathClass::disconnected : path_between(topo, g, near[0]).smi;
    if (cls != SmiPathClass::pix && cls != SmiPathClass::pxb) {
      std::string msg = topo.label(g) + ": no NIC at PIX or PXB distance (";
      msg += near.empty()
                 ? "the node has no reachable NIC"
                 : "nearest is " + topo.label(near[0]) + " at " + std::string(to_string(cls));
      msg += "); GPUDirect RDMA traffic would cross the CPU";
      findings.push_back({FindingKind::gpu_nic_distance, detail::bus_of(topo, g), msg});
    }
  }

  for (DeviceId g : topo.gpus()) {
    const auto aff = gpu_affinity(topo, g, rails);
    const auto& partners = aff.rail_nics.empty() ? aff.nearest_nics : aff.rail_nics;
    for (DeviceId n : partners) {
      const int gn = topo.numa_node_of(g);
      const int nn = topo.numa_node_of(n);
      if (gn >= 0 && nn >= 0 && gn != nn) {
        findings.push_back({FindingKind::numa_mismatch, detail::bus_of(topo, g),
                            topo.label(g) + " is on NUMA node " + std::to_string(gn) + " but " +
                                topo.label(n) + ", its NIC, is on NUMA node " +
                                std::to_string(nn)});
      }
    }
  }

  // PCIe links: group every shortfall by the device that owns the slow link.
  struct Shortfall {
    std::vector<std::string> reasons;
  };
  std::map<DeviceId, Shortfall> slow;
  std::vector<DeviceId> endpoints(topo.gpus().begin(), topo.gpus().end());
  endpoints.insert(endpoints.end(), topo.nics().begin(), topo.nics().end());
  for (DeviceId e : endpoints) {
    const auto need = detail::pcie_need(topo, e);
    for (DeviceId d = e; d != no_device && topo.device(d).kind != DeviceKind::cpu;
         d = topo.device(d).parent) {
      const auto bw = topo.device(d).link.bandwidth();
      if (!bw) continue;
      constexpr double tolerance = 0.99;  // rates computed two ways differ in the last bits
      if (d == e && need.own && *bw < *need.own * tolerance) {
        slow[d].reasons.push_back(need.why_own);
      }
      if (need.path && *bw < *need.path * tolerance) {
        slow[d].reasons.push_back(d == e ? need.why_path
                                         : topo.label(e) + " below it (" + need.why_path + ")");
      }
    }
  }
  for (const auto& [d, s] : slow) {
    const auto& dev = topo.device(d);
    std::string msg = topo.label(d) + ": PCIe link trained at " + dev.link.describe() + ", " +
                      detail::format_rate(*dev.link.bandwidth()) + "; ";
    for (std::size_t i = 0; i < s.reasons.size(); ++i) msg += (i ? "; " : "") + s.reasons[i];
    if (dev.link_suspect) {
      msg +=
          ". The devices below it trained much faster: a VM's placeholder bridge reports "
          "this, a bare-metal node never does; railcc's bandwidth model ignores this link";
    }
    findings.push_back({FindingKind::pcie_link, detail::bus_of(topo, d), msg});
  }

  std::map<double, std::vector<DeviceId>> by_speed;
  for (DeviceId n : topo.nics()) {
    if (auto s = topo.nic_speed(n)) by_speed[s->in_gbps()].push_back(n);
  }
  if (by_speed.size() > 1) {
    std::string msg = "NICs run at mixed speeds:";
    DeviceId minority = no_device;
    std::size_t minority_size = SIZE_MAX;
    for (const auto& [gbps, nics] : by_speed) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " %g Gb/s:", gbps);
      msg += buf;
      for (DeviceId n : nics) msg += " " + topo.label(n);
      msg += ";";
      if (nics.size() < minority_size) {
        minority = nics.front();
        minority_size = nics.size();
      }
    }
    msg.pop_back();
    findings.push_back({FindingKind::nic_speed_mix, detail::bus_of(topo, minority), msg});
  }

  for (DeviceId g : topo.gpus()) {
    const auto* model = topo.gpu_model(g);
    if (!model || model->form != GpuFormFactor::sxm) continue;
    const int have = topo.nvlink_count(g);
    if (have != model->nvlinks) {
      findings.push_back({FindingKind::nvlink_count, detail::bus_of(topo, g),
                          topo.label(g) + ": " + std::to_string(have) + " NVLinks, but an " +
                              std::string(model->name) + " has " + std::to_string(model->nvlinks)});
    }
  }
  return findings;
}

RAILCC_NAMESPACE_END
