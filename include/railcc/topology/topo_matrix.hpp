// railcc/topology/topo_matrix.hpp: the GPU/NIC matrix in the layout of `nvidia-smi topo -m`.
//
// Tab-separated cells, " X " on the diagonal, CPU and NUMA affinity columns for GPU rows,
// then nvidia-smi's legend and NIC legend, so an operator can put railcc's view of a
// node beside what nvidia-smi prints on it. railcc's own additions (the rail of each NIC
// and its speed) follow in a separate "Rails" section.
#pragma once

#include <cstdio>
#include <string>

#include "railcc/config.hpp"
#include "railcc/topology/affinity.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/topology/paths.hpp"

RAILCC_NAMESPACE_BEGIN

inline std::string render_topology_matrix(const NodeTopology& topo) {
  std::vector<DeviceId> cols(topo.gpus().begin(), topo.gpus().end());
  cols.insert(cols.end(), topo.nics().begin(), topo.nics().end());
  auto name = [&](DeviceId id) {
    return topo.device(id).kind == DeviceKind::gpu
               ? "GPU" + std::to_string(topo.device(id).gpu().index)
               : "NIC" + std::to_string(topo.nic_ordinal(id));
  };
  std::string out = "\t";
  for (DeviceId c : cols) out += name(c) + "\t";
  out += "CPU Affinity\tNUMA Affinity\n";
  for (DeviceId r : cols) {
    out += name(r);
    for (DeviceId c : cols) {
      out += '\t';
      out += r == c ? " X " : path_between(topo, r, c).smi_label();
    }
    if (topo.device(r).kind == DeviceKind::gpu) {
      const DeviceId cpu = topo.cpu_of(r);
      const std::string cpus = cpu == no_device ? "" : topo.device(cpu).cpu().affinity.to_list();
      const int numa = topo.numa_node_of(r);
      out += '\t';
      out += cpus.empty() ? "N/A" : cpus;
      out += '\t';
      out += numa < 0 ? "N/A" : std::to_string(numa);
    }
    out += '\n';
  }
  out += "\nLegend:\n\n";
  out += smi_legend;
  if (!topo.nics().empty()) {
    out += "\nNIC Legend:\n\n";
    for (DeviceId n : topo.nics()) out += "  " + name(n) + ": " + topo.nic_name(n) + "\n";
    out += "\nRails:\n\n";
    const auto rails = nic_rails(topo);
    for (std::size_t i = 0; i < rails.size(); ++i) {
      const DeviceId n = topo.nics()[i];
      const auto& d = topo.device(n);
      out += "  " + name(n) + ": ";
      if (rails[i]) {
        const DeviceId g = *topo.find_gpu(*rails[i]);
        out += "rail " + std::to_string(*rails[i]) + " (" + path_between(topo, g, n).smi_label() +
               " to GPU" + std::to_string(*rails[i]) + ")";
      } else {
        out += "no rail (no GPU)";
      }
      if (auto speed = topo.nic_speed(n)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, ", %g Gb/s", speed->in_gbps());
        out += buf;
      }
      if (d.bus_id) out += ", " + d.bus_id->to_string();
      out += ", NUMA " +
             (topo.numa_node_of(n) < 0 ? std::string("N/A") : std::to_string(topo.numa_node_of(n)));
      out += "\n";
    }
  }
  return out;
}

RAILCC_NAMESPACE_END
