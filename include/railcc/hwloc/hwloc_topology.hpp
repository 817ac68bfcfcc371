// railcc/hwloc/hwloc_topology.hpp: node topology from hwloc, live or from an hwloc XML file.
//
// hwloc sees the whole PCI tree with every bridge. railcc keeps what NCCL keeps: host
// bridges, and of the PCI-to-PCI bridges only the upstream ports of switches (even
// bridge depth: root ports sit at depth 1, switch upstream ports at 2, 4, ..., their
// downstream ports at 3, 5, ...), so "one switch" means one device, as in nvidia-smi's
// PIX. GPUs are NVIDIA display-class functions (Debian's hwloc has no CUDA/NVML plugin,
// so live discovery cannot rely on OS devices); NVSwitches are NVIDIA "other bridge"
// functions or objects hwloc subtyped "NVSwitch"; NICs are network-class functions,
// named after their OpenFabrics (ibverbs) or network OS device. NVLinks come from the
// "NVLinkBandwidth" distances matrix when the file carries one (hwloc's NVML backend
// writes it, in MB/s per peer: links x per-link rate).
//
// Live discovery also reads port speeds from sysfs (/sys/class/infiniband/<dev>/ports/*/rate,
// /sys/class/net/<dev>/speed), which hwloc does not report.
//
// A file is checked and re-serialized before hwloc reads it (hwloc_xml_check.hpp), and
// what hwloc returns is checked again here: PCI addresses PCI allows, unique NUMA node
// numbers, and UTF-8 names (repaired for live discovery, whose strings come from the
// firmware), so that every topology it returns can be written as NCCL XML and read back.
//
// Needs hwloc and pugixml (target railcc::hwloc).
#pragma once

#include <hwloc.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/hwloc/hwloc_xml_check.hpp"
#include "railcc/input_file.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/utf8.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::hwloc_import {

struct TopologyDeleter {
  void operator()(hwloc_topology* t) const { hwloc_topology_destroy(t); }
};
using TopologyPtr = std::unique_ptr<hwloc_topology, TopologyDeleter>;

/// Loads the live topology (`xml` null), or the hwloc XML text `*xml` that
/// checked_hwloc_xml returned, named `source` in messages.
inline TopologyPtr load(const std::string* xml, const std::string& source) {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) throw InputError("hwloc: hwloc_topology_init failed");
  TopologyPtr topo(raw);
  // Keep every PCI device and bridge: the switch structure is what path classes need.
  hwloc_topology_set_io_types_filter(raw, HWLOC_TYPE_FILTER_KEEP_ALL);
  if (xml) {
    // The size hwloc takes counts the terminating NUL.
    if (xml->size() >= static_cast<std::size_t>(std::numeric_limits<int>::max())) {
      throw InputError(source + ": too large for hwloc's XML reader");
    }
    if (hwloc_topology_set_xmlbuffer(raw, xml->c_str(), static_cast<int>(xml->size() + 1)) != 0) {
      throw InputError(source + ": hwloc cannot read this file as hwloc XML (" +
                       std::strerror(errno) + ")");
    }
  }
  if (hwloc_topology_load(raw) != 0) {
    throw InputError(source + ": hwloc could not load the topology (" + std::strerror(errno) + ")" +
                     (xml ? "; it is well-formed XML but not a topology hwloc accepts" : ""));
  }
  return topo;
}

inline std::string info(hwloc_obj_t obj, const char* key) {
  const char* v = obj ? hwloc_obj_get_info_by_name(obj, key) : nullptr;
  return v ? v : "";
}

inline CpuSet to_cpu_set(hwloc_const_bitmap_t set) {
  CpuSet out;
  if (!set) return out;
  for (int i = hwloc_bitmap_first(set); i >= 0; i = hwloc_bitmap_next(set, i)) {
    if (static_cast<std::size_t>(i) < CpuSet::max_cpus) out.insert(static_cast<std::size_t>(i));
  }
  return out;
}

inline std::optional<Bandwidth> sysfs_port_speed(const std::string& osdev, bool openfabrics) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (openfabrics) {
    // "400 Gb/sec (4X NDR)"
    const fs::path ports = fs::path("/sys/class/infiniband") / osdev / "ports";
    std::optional<Bandwidth> best;
    for (const auto& port : fs::directory_iterator(ports, ec)) {
      std::ifstream in(port.path() / "rate");
      double gbps = 0;
      if (in >> gbps && gbps > 0 && (!best || Bandwidth::gbps(gbps) > *best)) {
        best = Bandwidth::gbps(gbps);
      }
    }
    return best;
  }
  std::ifstream in(fs::path("/sys/class/net") / osdev / "speed");  // Mb/s, -1 when down
  long mbps = 0;
  if (in >> mbps && mbps > 0) return Bandwidth::mbps(static_cast<double>(mbps));
  return std::nullopt;
}

class Converter {
 public:
  Converter(hwloc_topology_t t, std::string source, bool live)
      : t_(t), source_(std::move(source)), live_(live) {}

  NodeTopology convert() {
    add_numa_nodes();
    for (hwloc_obj_t b = hwloc_get_next_bridge(t_, nullptr); b; b = hwloc_get_next_bridge(t_, b)) {
      if (b->attr->bridge.upstream_type != HWLOC_OBJ_BRIDGE_HOST) continue;
      const DeviceId hb =
          topo_.add_device(DeviceKind::host_bridge, cpu_for(b), std::nullopt, {}, {});
      walk(b, hb);
    }
    // PCI functions hwloc attached straight to a CPU-side object, without a host bridge.
    for (hwloc_obj_t p = hwloc_get_next_pcidev(t_, nullptr); p; p = hwloc_get_next_pcidev(t_, p)) {
      if (p->parent && !hwloc_obj_type_is_io(p->parent->type)) add_pci(p, cpu_for(p));
    }
    add_nvlinks();
    if (!nvlink_assumed_rate_.empty()) {
      topo_.add_note(source_ + ": NVLink counts of " + nvlink_assumed_rate_ +
                     " derived assuming 25 GB/s per link (GPU generation unknown)");
    }
    if (multi_numa_ > 0) {
      topo_.add_note(source_ + ": " + std::to_string(multi_numa_) +
                     " PCI tree(s) hang under objects spanning several NUMA nodes; placed on the "
                     "first of them");
    }
    topo_.set_source(source_);
    topo_.finalize();  // its errors name source_
    return std::move(topo_);
  }

 private:
  void add_numa_nodes() {
    hwloc_obj_t root = hwloc_get_root_obj(t_);
    hwloc_obj_t package = hwloc_get_obj_by_type(t_, HWLOC_OBJ_PACKAGE, 0);
    const int n = hwloc_get_nbobjs_by_type(t_, HWLOC_OBJ_NUMANODE);
    for (int i = 0; i < n; ++i) {
      hwloc_obj_t numa = hwloc_get_obj_by_type(t_, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
      hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(t_, HWLOC_OBJ_PACKAGE, numa);
      if (!pkg) pkg = package;
      CpuInfo c;
      if (numa->os_index > 4095 || !numa_cpu_.emplace(numa->os_index, no_device).second) {
        throw InputError(source_ + ": NUMA node os_index " + std::to_string(numa->os_index) +
                         (numa->os_index > 4095 ? " is out of range (0 to 4095)"
                                                : " appears twice; NUMA node numbers are unique"));
      }
      c.numa_id = static_cast<int>(numa->os_index);
      c.affinity = to_cpu_set(numa->cpuset);
      c.arch = repair_utf8(info(root, "Architecture"));
      c.vendor = repair_utf8(info(pkg, "CPUVendor"));
      if (auto f = info(pkg, "CPUFamilyNumber"); !f.empty()) c.family_id = std::atoi(f.c_str());
      if (auto m = info(pkg, "CPUModelNumber"); !m.empty()) c.model_id = std::atoi(m.c_str());
      numa_cpu_[numa->os_index] = topo_.add_cpu(std::move(c));
    }
    if (numa_cpu_.empty()) {
      CpuInfo c;
      c.numa_id = 0;
      c.affinity = to_cpu_set(root->cpuset);
      numa_cpu_[0] = topo_.add_cpu(std::move(c));
    }
  }

  /// The cpu device for an I/O object: the first NUMA node of its nearest normal ancestor.
  DeviceId cpu_for(hwloc_obj_t io) {
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(t_, io);
    if (anc && anc->nodeset) {
      const int first = hwloc_bitmap_first(anc->nodeset);
      if (hwloc_bitmap_weight(anc->nodeset) > 1) ++multi_numa_;
      if (auto it = numa_cpu_.find(static_cast<unsigned>(first)); it != numa_cpu_.end()) {
        return it->second;
      }
    }
    return numa_cpu_.begin()->second;
  }

  PciBusId bus_of(const hwloc_obj_attr_u::hwloc_pcidev_attr_s& p) const {
    // hwloc reads a function as one hex digit and a device as two: check what PCI allows.
    if (p.dev > 31 || p.func > 7) {
      char bus[32];
      std::snprintf(bus, sizeof bus, "%04x:%02x:%02x.%x", p.domain, p.bus, p.dev, p.func);
      throw InputError(source_ + ": PCI address " + bus +
                       " is not one (device 0 to 31, function 0 to 7)");
    }
    return PciBusId{p.domain, p.bus, p.dev, p.func};
  }
  static PcieLink link_of(const hwloc_obj_attr_u::hwloc_pcidev_attr_s& p) {
    PcieLink l;
    if (p.linkspeed > 0) l.reported_rate = Bandwidth::GBps(p.linkspeed);
    return l;
  }
  static PciIdentity identity_of(const hwloc_obj_attr_u::hwloc_pcidev_attr_s& p) {
    PciIdentity id;
    id.class_code = static_cast<std::uint32_t>(p.class_id) << 8;
    id.vendor = p.vendor_id;
    id.device = p.device_id;
    id.subsystem_vendor = p.subvendor_id;
    id.subsystem_device = p.subdevice_id;
    return id;
  }

  void walk(hwloc_obj_t obj, DeviceId parent) {
    for (hwloc_obj_t c = obj->io_first_child; c; c = c->next_sibling) {
      if (c->type == HWLOC_OBJ_BRIDGE) {
        const auto& br = c->attr->bridge;
        DeviceId next = parent;
        // Keep switch upstream ports (even depth); skip root ports and downstream ports.
        if (br.upstream_type == HWLOC_OBJ_BRIDGE_PCI && br.depth >= 2 && br.depth % 2 == 0) {
          next = topo_.add_device(DeviceKind::pci_switch, parent, bus_of(br.upstream.pci),
                                  link_of(br.upstream.pci), identity_of(br.upstream.pci));
        }
        walk(c, next);
      } else if (c->type == HWLOC_OBJ_PCI_DEVICE) {
        add_pci(c, parent);
      }
    }
  }

  void add_pci(hwloc_obj_t obj, DeviceId parent) {
    const auto& p = obj->attr->pcidev;
    const std::uint32_t cls = static_cast<std::uint32_t>(p.class_id) << 8;
    const bool nvidia = p.vendor_id == pci_vendor::nvidia;
    const bool subtype_nvswitch = obj->subtype && std::strcmp(obj->subtype, "NVSwitch") == 0;
    DeviceKind kind = DeviceKind::pci_device;
    if (subtype_nvswitch || (nvidia && pci_class::is_other_bridge(cls)))
      kind = DeviceKind::nvswitch;
    else if (nvidia && pci_class::is_display(cls))
      kind = DeviceKind::gpu;
    else if (pci_class::is_network(cls))
      kind = DeviceKind::nic;

    std::variant<std::monostate, CpuInfo, GpuInfo, NicInfo> extra;
    if (kind == DeviceKind::gpu) {
      GpuInfo g;
      for (hwloc_obj_t os = obj->io_first_child; os; os = os->next_sibling) {
        if (os->type != HWLOC_OBJ_OS_DEVICE || !os->name) continue;
        // "cuda3" is the CUDA index; "nvml3" NVML's, which follows PCI order as well.
        int idx = -1;
        if (std::sscanf(os->name, "cuda%d", &idx) == 1 ||
            std::sscanf(os->name, "nvml%d", &idx) == 1) {
          if (g.index < 0 || std::strncmp(os->name, "cuda", 4) == 0) g.index = idx;
        }
      }
      extra = g;
    } else if (kind == DeviceKind::nic) {
      NicInfo n;
      for (hwloc_obj_t os = obj->io_first_child; os; os = os->next_sibling) {
        if (os->type != HWLOC_OBJ_OS_DEVICE || !os->name) continue;
        const auto t = os->attr->osdev.type;
        if (t != HWLOC_OBJ_OSDEV_OPENFABRICS && t != HWLOC_OBJ_OSDEV_NETWORK) continue;
        NicPort port;
        port.name = repair_utf8(os->name);
        if (live_) port.speed = sysfs_port_speed(port.name, t == HWLOC_OBJ_OSDEV_OPENFABRICS);
        // ibverbs names ("mlx5_0") are what NCCL and nvidia-smi show: list them first.
        if (t == HWLOC_OBJ_OSDEV_OPENFABRICS)
          n.ports.insert(n.ports.begin(), port);
        else
          n.ports.push_back(port);
      }
      extra = n;
    }
    const DeviceId id =
        topo_.add_device(kind, parent, bus_of(p), link_of(p), identity_of(p), extra);
    by_obj_[obj] = id;
  }

  void add_nvlinks() {
    unsigned nr = 1;
    hwloc_distances_s* dist = nullptr;
    if (hwloc_distances_get_by_name(t_, "NVLinkBandwidth", &nr, &dist, 0) != 0 || nr == 0) return;
    for (unsigned i = 0; i < dist->nbobjs; ++i) {
      const DeviceId a = device_for(dist->objs[i]);
      if (a == no_device || topo_.device(a).kind != DeviceKind::gpu) continue;
      for (unsigned j = 0; j < dist->nbobjs; ++j) {
        const std::uint64_t mbps = dist->values[i * dist->nbobjs + j];
        const DeviceId b = device_for(dist->objs[j]);
        if (i == j || mbps == 0 || b == no_device) continue;
        auto per_link = topo_.nvlink_bandwidth_per_link(a);
        if (!per_link) {
          per_link = Bandwidth::GBps(25);
          nvlink_assumed_rate_ = topo_.label(a);
        }
        const double links = Bandwidth::MBps(static_cast<double>(mbps)) / *per_link;
        const int count = static_cast<int>(std::lround(links));
        if (count < 1 || count > max_nvlinks_per_bundle || std::abs(links - count) > 0.01) {
          hwloc_distances_release(t_, dist);
          throw InputError(source_ + ": NVLinkBandwidth of " + std::to_string(mbps) +
                           " MB/s from " + topo_.label(a) + " to " + topo_.label(b) +
                           " is not a whole number of NVLinks from 1 to " +
                           std::to_string(max_nvlinks_per_bundle));
        }
        topo_.add_nvlink(a, b, count);
      }
    }
    hwloc_distances_release(t_, dist);
  }

  DeviceId device_for(hwloc_obj_t obj) const {
    // NVML's OS devices stand for their PCI function.
    if (obj && obj->type == HWLOC_OBJ_OS_DEVICE) obj = obj->parent;
    auto it = by_obj_.find(obj);
    return it == by_obj_.end() ? no_device : it->second;
  }

  hwloc_topology_t t_;
  std::string source_;
  bool live_;
  NodeTopology topo_;
  std::map<unsigned, DeviceId> numa_cpu_;
  std::map<hwloc_obj_t, DeviceId> by_obj_;
  std::size_t multi_numa_ = 0;
  std::string nvlink_assumed_rate_;
};

}  // namespace detail::hwloc_import

/// Parses hwloc XML held in memory (checked first: hwloc_xml_check.hpp); `source` names it
/// in messages.
inline NodeTopology parse_hwloc_xml(std::string_view xml, const std::string& source = "<memory>") {
  const std::string checked = checked_hwloc_xml(xml, source);
  auto t = detail::hwloc_import::load(&checked, source);
  return detail::hwloc_import::Converter(t.get(), source, false).convert();
}

/// Discovers this machine's topology with hwloc. On a machine without NVIDIA GPUs the
/// result has no GPUs: that is the correct answer, not an error.
inline NodeTopology discover_node_topology() {
  auto t = detail::hwloc_import::load(nullptr, "live hwloc discovery");
  return detail::hwloc_import::Converter(t.get(), "hwloc (this machine)", true).convert();
}

/// Reads an hwloc XML export (`lstopo --of xml`, hwloc 1.x or 2.x).
inline NodeTopology read_hwloc_xml(const std::string& path) {
  return parse_hwloc_xml(read_input_file(path), path);
}

RAILCC_NAMESPACE_END
