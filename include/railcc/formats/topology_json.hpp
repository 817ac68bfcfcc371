// railcc/formats/topology_json.hpp: JSON export of a node topology, for other tools.
//
// Schema "railcc.node_topology.v1", documented in docs/topology.md: the raw device tree
// (`devices`, `nvlinks`) and the derived views operators ask for (`gpus` with their
// NUMA node, CPU set, nearest NICs and NVLink peers; `nics` with their rail), plus the
// importer's `notes`. Bandwidths are GB/s (1e9 bytes/s) in one direction; NIC port
// speeds are Gb/s, as vendors quote them.
//
// Needs nlohmann-json (target railcc::formats).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "railcc/config.hpp"
#include "railcc/topology/affinity.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/topology/paths.hpp"

RAILCC_NAMESPACE_BEGIN

inline constexpr std::string_view node_topology_json_schema = "railcc.node_topology.v1";

inline nlohmann::json node_topology_to_json(const NodeTopology& topo) {
  using nlohmann::json;
  auto opt_hex = [](const auto& v, int digits) -> json {
    if (!v) return nullptr;
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%0*x", digits, static_cast<unsigned>(*v));
    return buf;
  };
  auto opt = [](const auto& v) -> json { return v ? json(*v) : json(nullptr); };
  auto bus = [&](DeviceId id) -> json {
    const auto& d = topo.device(id);
    return d.bus_id ? json(d.bus_id->to_string()) : json(nullptr);
  };

  json devices = json::array();
  for (const auto& d : topo.devices()) {
    json j;
    j["id"] = d.id;
    j["kind"] = std::string(to_string(d.kind));
    j["bus_id"] = bus(d.id);
    j["parent"] = d.parent == no_device ? json(nullptr) : json(d.parent);
    j["children"] = d.children;
    if (d.kind != DeviceKind::cpu) {
      j["pci"] = {{"class", opt_hex(d.pci.class_code, 6)},
                  {"vendor", opt_hex(d.pci.vendor, 4)},
                  {"device", opt_hex(d.pci.device, 4)},
                  {"subsystem_vendor", opt_hex(d.pci.subsystem_vendor, 4)},
                  {"subsystem_device", opt_hex(d.pci.subsystem_device, 4)}};
      const auto bw = d.link.bandwidth();
      j["link"] = {{"generation", opt(d.link.generation)},
                   {"width", opt(d.link.width)},
                   {"GBps", bw ? json(bw->in_GBps()) : json(nullptr)},
                   {"suspect", d.link_suspect}};
    }
    if (d.kind == DeviceKind::cpu) {
      const auto& c = d.cpu();
      j["cpu"] = {
          {"numa_id", c.numa_id}, {"cpuset", c.affinity.to_list()}, {"arch", c.arch},
          {"vendor", c.vendor},   {"family_id", opt(c.family_id)},  {"model_id", opt(c.model_id)}};
    } else if (d.kind == DeviceKind::gpu) {
      const auto& g = d.gpu();
      const auto* model = topo.gpu_model(d.id);
      j["gpu"] = {{"index", g.index},
                  {"sm", opt(topo.gpu_sm(d.id))},
                  {"rank", opt(g.rank)},
                  {"gdr", opt(g.gdr)},
                  {"model", model ? json(std::string(model->name)) : json(nullptr)}};
    } else if (d.kind == DeviceKind::nic) {
      json ports = json::array();
      for (const auto& p : d.nic().ports) {
        ports.push_back({{"name", p.name},
                         {"dev", opt(p.dev)},
                         {"speed_gbps", p.speed ? json(p.speed->in_gbps()) : json(nullptr)},
                         {"port", opt(p.port)},
                         {"guid", p.guid},
                         {"gdr", opt(p.gdr)}});
      }
      j["nic"] = {{"ports", ports}};
    }
    devices.push_back(std::move(j));
  }

  json nvlinks = json::array();
  for (const auto& l : topo.nvlinks()) {
    nvlinks.push_back({{"gpu", l.gpu}, {"peer", l.peer}, {"count", l.count}});
  }

  const auto rails = nic_rails(topo);
  json gpus = json::array();
  for (DeviceId g : topo.gpus()) {
    const auto a = gpu_affinity(topo, g, rails);
    json near = json::array();
    for (DeviceId n : a.nearest_nics) near.push_back(topo.nic_ordinal(n));
    json rail_nics = json::array();
    for (DeviceId n : a.rail_nics) rail_nics.push_back(topo.nic_ordinal(n));
    json peers = json::array();
    for (const auto& p : a.nvlink_peers) {
      peers.push_back({{"gpu", topo.device(p.gpu).gpu().index},
                       {"nvlinks", p.links},
                       {"GBps", p.bandwidth ? json(p.bandwidth->in_GBps()) : json(nullptr)}});
    }
    gpus.push_back({{"index", topo.device(g).gpu().index},
                    {"device", g},
                    {"bus_id", bus(g)},
                    {"numa_id", a.numa_node < 0 ? json(nullptr) : json(a.numa_node)},
                    {"cpuset", a.cpus.to_list()},
                    {"nearest_nics", near},
                    {"nic_path", std::string(to_string(a.nic_path))},
                    {"rail_nics", rail_nics},
                    {"nvlinks", a.nvlinks},
                    {"nvlink_peers", peers}});
  }

  json nics = json::array();
  for (std::size_t i = 0; i < topo.nics().size(); ++i) {
    const DeviceId n = topo.nics()[i];
    const auto speed = topo.nic_speed(n);
    nics.push_back(
        {{"index", i},
         {"device", n},
         {"name", topo.nic_name(n)},
         {"bus_id", bus(n)},
         {"numa_id", topo.numa_node_of(n) < 0 ? json(nullptr) : json(topo.numa_node_of(n))},
         {"speed_gbps", speed ? json(speed->in_gbps()) : json(nullptr)},
         {"rail", opt(rails[i])}});
  }

  json paths = json::array();
  std::vector<DeviceId> ends(topo.gpus().begin(), topo.gpus().end());
  ends.insert(ends.end(), topo.nics().begin(), topo.nics().end());
  for (DeviceId r : ends) {
    json row = json::array();
    for (DeviceId c : ends) {
      const auto p = path_between(topo, r, c);
      row.push_back({{"smi", p.smi_label()}, {"nccl", std::string(to_string(p.nccl))}});
    }
    paths.push_back(std::move(row));
  }

  return {{"schema", std::string(node_topology_json_schema)},
          {"source", topo.source()},
          {"devices", devices},
          {"nvlinks", nvlinks},
          {"gpus", gpus},
          {"nics", nics},
          {"paths", paths},
          {"notes", topo.notes()}};
}

RAILCC_NAMESPACE_END
