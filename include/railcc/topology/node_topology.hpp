// railcc/topology/node_topology.hpp: the typed graph of one GPU node.
//
// A node is a tree of devices rooted at its CPUs (one `cpu` device per NUMA node):
// host bridges, PCIe switches, and the endpoints under them (GPUs, NICs, NVSwitches,
// other PCI functions), each with the link it trained on towards its parent. NVLink
// bundles join GPUs to GPUs, to NVSwitches or to a CPU, outside the tree.
//
// Importers (NCCL XML, hwloc) build a NodeTopology with the add_* calls and then call
// `finalize()`, which validates the whole graph and fixes the order of GPUs and NICs.
// Queries on paths, affinity and health live in their own headers and take a
// finalized topology.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/topology/cpu_set.hpp"
#include "railcc/topology/device_catalog.hpp"
#include "railcc/topology/pci.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

using DeviceId = std::uint32_t;
inline constexpr DeviceId no_device = std::numeric_limits<DeviceId>::max();

enum class DeviceKind : std::uint8_t {
  cpu,          ///< a NUMA node with its cores: the root of a PCI hierarchy
  host_bridge,  ///< a PCIe root complex (hwloc reports these; NCCL XML does not)
  pci_switch,   ///< a PCIe switch, or a bridge standing for one
  gpu,
  nic,
  nvswitch,
  pci_device,  ///< any other PCI function, or one whose class the source did not give
};

constexpr std::string_view to_string(DeviceKind k) {
  switch (k) {
    case DeviceKind::cpu: return "cpu";
    case DeviceKind::host_bridge: return "host_bridge";
    case DeviceKind::pci_switch: return "pci_switch";
    case DeviceKind::gpu: return "gpu";
    case DeviceKind::nic: return "nic";
    case DeviceKind::nvswitch: return "nvswitch";
    case DeviceKind::pci_device: return "pci_device";
  }
  return "?";
}

/// PCI configuration-space identity, each field as known from the source.
struct PciIdentity {
  std::optional<std::uint32_t> class_code;  ///< 24-bit class, e.g. 0x030200
  std::optional<std::uint16_t> vendor;
  std::optional<std::uint16_t> device;
  std::optional<std::uint16_t> subsystem_vendor;
  std::optional<std::uint16_t> subsystem_device;
  bool operator==(const PciIdentity&) const = default;
};

struct CpuInfo {
  int numa_id = -1;
  CpuSet affinity;  ///< logical CPUs of this NUMA node
  std::string arch;
  std::string vendor;
  std::optional<int> family_id;
  std::optional<int> model_id;
  std::string host_hash;  ///< NCCL's host identity hash, kept for round trips
  bool operator==(const CpuInfo&) const = default;
};

struct GpuInfo {
  int index = -1;           ///< CUDA device index; -1 until finalize() assigns one
  std::optional<int> sm;    ///< compute capability x10
  std::optional<int> rank;  ///< NCCL rank, when the file came from a running job
  std::optional<bool> gdr;  ///< GPUDirect RDMA capable
  bool operator==(const GpuInfo&) const = default;
};

/// One network port of a NIC (an `<net>` in NCCL's XML, an ibverbs port).
struct NicPort {
  std::string name;  ///< "mlx5_0", "eth0"
  std::optional<int> dev;
  std::optional<Bandwidth> speed;
  std::optional<int> port;
  std::optional<double> latency;
  std::string guid;
  std::optional<int> max_connections;
  std::optional<bool> gdr;
  bool operator==(const NicPort&) const = default;
};

struct NicInfo {
  std::vector<NicPort> ports;
  bool operator==(const NicInfo&) const = default;
};

struct Device {
  DeviceId id = no_device;
  DeviceKind kind = DeviceKind::pci_device;
  std::optional<PciBusId> bus_id;
  DeviceId parent = no_device;
  PcieLink link;  ///< upstream link to `parent`
  PciIdentity pci;
  std::variant<std::monostate, CpuInfo, GpuInfo, NicInfo> info;
  std::vector<DeviceId> children;
  /// Set by finalize(): the reported link is implausibly slow for what hangs below it
  /// (a VM's placeholder bridge at 2.5 GT/s x1 above Gen5 x16 devices). Bandwidth
  /// queries skip such links and the health check reports them.
  bool link_suspect = false;

  bool operator==(const Device&) const = default;

  [[nodiscard]] const CpuInfo& cpu() const { return std::get<CpuInfo>(info); }
  [[nodiscard]] const GpuInfo& gpu() const { return std::get<GpuInfo>(info); }
  [[nodiscard]] const NicInfo& nic() const { return std::get<NicInfo>(info); }
};

/// `count` NVLinks from a GPU to a peer (GPU, NVSwitch or CPU), as the GPU reports them.
struct NvLinkBundle {
  DeviceId gpu = no_device;
  DeviceId peer = no_device;
  int count = 0;
  bool operator==(const NvLinkBundle&) const = default;
};

/// Most NVLinks between one GPU and one peer that railcc (and NCCL's XML) takes, over
/// three times the 18 of an H100, the most any GPU has.
inline constexpr int max_nvlinks_per_bundle = 64;

class NodeTopology {
 public:
  /// Links faster than this many times their parent's uplink mark it as suspect (see
  /// Device::link_suspect). Real switches oversubscribe their uplink by at most a few
  /// times; a factor of 8 keeps every real design and catches placeholder links, which
  /// are off by two orders of magnitude.
  static constexpr double suspect_link_ratio = 8.0;

  DeviceId add_cpu(CpuInfo info) {
    Device d;
    d.kind = DeviceKind::cpu;
    d.info = std::move(info);
    return push(std::move(d));
  }

  /// Adds a device under `parent` (a cpu or a PCI device already added).
  DeviceId add_device(DeviceKind kind, DeviceId parent, std::optional<PciBusId> bus_id,
                      PcieLink link, PciIdentity pci,
                      std::variant<std::monostate, CpuInfo, GpuInfo, NicInfo> info = {}) {
    if (kind == DeviceKind::cpu) throw InputError("a cpu device cannot have a parent");
    check_id(parent, "parent");
    Device d;
    d.kind = kind;
    d.bus_id = bus_id;
    d.parent = parent;
    d.link = link;
    d.pci = pci;
    d.info = std::move(info);
    if (kind == DeviceKind::gpu && !std::holds_alternative<GpuInfo>(d.info)) d.info = GpuInfo{};
    if (kind == DeviceKind::nic && !std::holds_alternative<NicInfo>(d.info)) d.info = NicInfo{};
    const DeviceId id = push(std::move(d));
    devices_[parent].children.push_back(id);
    return id;
  }

  /// An NVSwitch known only as an NVLink target (NCCL XML lists no PCI path for it).
  DeviceId add_detached_nvswitch(std::optional<PciBusId> bus_id) {
    Device d;
    d.kind = DeviceKind::nvswitch;
    d.bus_id = bus_id;
    d.pci.class_code = pci_class::nvswitch;
    return push(std::move(d));
  }

  void add_nvlink(DeviceId gpu, DeviceId peer, int count) {
    check_id(gpu, "NVLink GPU");
    check_id(peer, "NVLink peer");
    if (count < 1 || count > max_nvlinks_per_bundle) {
      throw InputError(label(gpu) + ": " + std::to_string(count) + " NVLinks to " + label(peer) +
                       "; a bundle has 1 to " + std::to_string(max_nvlinks_per_bundle));
    }
    nvlinks_.push_back({gpu, peer, count});
  }

  /// A remark from the importer: something read in a way the user should know about
  /// (a default applied, a quirk interpreted). Shown by railcc-topo on stderr.
  void add_note(std::string note) { notes_.push_back(std::move(note)); }
  void set_source(std::string source) { source_ = std::move(source); }
  Device& mutable_device(DeviceId id) {
    check_id(id, "device");
    return devices_[id];
  }

  /// Validates the graph and derives orders. Throws InputError naming the first problem
  /// (duplicate bus ids, duplicate GPU indices, NVLinks of an impossible shape), prefixed
  /// with source() when one is set.
  void finalize() {
    try {
      validate_and_order();
    } catch (const InputError& e) {
      if (source_.empty()) throw;
      throw InputError(source_ + ": " + e.what());
    }
    finalized_ = true;
  }

  [[nodiscard]] bool finalized() const { return finalized_; }
  [[nodiscard]] const std::vector<Device>& devices() const { return devices_; }
  [[nodiscard]] const Device& device(DeviceId id) const {
    check_id(id, "device");
    return devices_[id];
  }
  [[nodiscard]] const std::vector<NvLinkBundle>& nvlinks() const { return nvlinks_; }
  /// GPUs ordered by CUDA index (GPU0 first).
  [[nodiscard]] std::span<const DeviceId> gpus() const { return gpus_; }
  /// NICs in the order railcc numbers them (NIC0 first): by NCCL device number when
  /// every NIC has one, else by PCI bus id.
  [[nodiscard]] std::span<const DeviceId> nics() const { return nics_; }
  [[nodiscard]] std::span<const DeviceId> cpus() const { return cpus_; }
  [[nodiscard]] const std::vector<std::string>& notes() const { return notes_; }
  [[nodiscard]] const std::string& source() const { return source_; }

  [[nodiscard]] std::optional<DeviceId> find(PciBusId bus_id) const {
    auto it = bus_index_.find(bus_id);
    if (it == bus_index_.end()) return std::nullopt;
    return it->second;
  }

  /// The GPU with a CUDA index, if there is one.
  [[nodiscard]] std::optional<DeviceId> find_gpu(int index) const {
    for (DeviceId g : gpus_) {
      if (devices_[g].gpu().index == index) return g;
    }
    return std::nullopt;
  }

  /// The cpu device above `id`, or no_device for a detached device.
  [[nodiscard]] DeviceId cpu_of(DeviceId id) const {
    check_id(id, "device");
    while (id != no_device && devices_[id].kind != DeviceKind::cpu) id = devices_[id].parent;
    return id;
  }
  /// NUMA node of a device, -1 when it hangs under no CPU.
  [[nodiscard]] int numa_node_of(DeviceId id) const {
    const DeviceId c = cpu_of(id);
    return c == no_device ? -1 : devices_[c].cpu().numa_id;
  }

  /// Position of a GPU in gpus() / a NIC in nics(), or -1.
  [[nodiscard]] int gpu_ordinal(DeviceId id) const { return ordinal(gpus_, id); }
  [[nodiscard]] int nic_ordinal(DeviceId id) const { return ordinal(nics_, id); }

  /// Total NVLinks a GPU reports.
  [[nodiscard]] int nvlink_count(DeviceId gpu) const {
    int n = 0;
    for (const auto& l : nvlinks_) {
      if (l.gpu == gpu) n += l.count;
    }
    return n;
  }

  /// Catalog entry of a GPU, from its PCI ids, or nullptr.
  [[nodiscard]] const GpuModel* gpu_model(DeviceId id) const {
    const auto& p = device(id).pci;
    if (!p.vendor || !p.device) return nullptr;
    return find_gpu_model(*p.vendor, *p.device);
  }
  /// Compute capability x10 of a GPU: from the file, else from the catalog.
  [[nodiscard]] std::optional<int> gpu_sm(DeviceId id) const {
    const auto& d = device(id);
    if (d.kind != DeviceKind::gpu) return std::nullopt;
    if (d.gpu().sm) return d.gpu().sm;
    if (const auto* m = gpu_model(id)) return m->sm;
    return std::nullopt;
  }
  /// Rate of one of this GPU's NVLinks in one direction, when its generation is known.
  [[nodiscard]] std::optional<Bandwidth> nvlink_bandwidth_per_link(DeviceId gpu) const {
    const auto sm = gpu_sm(gpu);
    if (!sm) return std::nullopt;
    const auto gen = nvlink_generation_for_sm(*sm);
    return gen ? nvlink_link_bandwidth(*gen) : std::nullopt;
  }
  /// Fastest port of a NIC, when any port's speed is known.
  [[nodiscard]] std::optional<Bandwidth> nic_speed(DeviceId id) const {
    std::optional<Bandwidth> best;
    for (const auto& p : device(id).nic().ports) {
      if (p.speed && (!best || *p.speed > *best)) best = p.speed;
    }
    return best;
  }
  /// The name operators use for a NIC: its first port's name, else its bus id.
  [[nodiscard]] std::string nic_name(DeviceId id) const {
    const auto& d = device(id);
    if (!d.nic().ports.empty() && !d.nic().ports.front().name.empty()) {
      return d.nic().ports.front().name;
    }
    return d.bus_id ? d.bus_id->to_string() : "nic#" + std::to_string(id);
  }

  /// "GPU0 (0000:a4:00.0)", "NIC mlx5_7 (0000:a3:00.0)", "PCIe switch 0000:a1:00.0":
  /// how messages name a device.
  [[nodiscard]] std::string label(DeviceId id) const {
    const auto& d = device(id);
    const std::string bus = d.bus_id ? d.bus_id->to_string() : std::string{};
    switch (d.kind) {
      case DeviceKind::cpu: return "CPU of NUMA node " + std::to_string(d.cpu().numa_id);
      case DeviceKind::gpu: {
        std::string s = d.gpu().index >= 0 ? "GPU" + std::to_string(d.gpu().index) : "GPU";
        return bus.empty() ? s : s + " (" + bus + ")";
      }
      case DeviceKind::nic: {
        const std::string name = nic_name(id);
        return bus.empty() || name == bus ? "NIC " + name : "NIC " + name + " (" + bus + ")";
      }
      case DeviceKind::nvswitch: return "NVSwitch " + (bus.empty() ? std::to_string(id) : bus);
      case DeviceKind::pci_switch: return "PCIe switch " + bus;
      case DeviceKind::host_bridge: return "host bridge #" + std::to_string(id);
      case DeviceKind::pci_device: return "PCI device " + bus;
    }
    return bus;
  }

  /// Same devices, links and attributes (importer notes and source name aside).
  bool operator==(const NodeTopology& o) const {
    return devices_ == o.devices_ && nvlinks_ == o.nvlinks_;
  }

 private:
  DeviceId push(Device d) {
    if (devices_.size() >= no_device - 1) throw InputError("too many devices in one node");
    d.id = static_cast<DeviceId>(devices_.size());
    devices_.push_back(std::move(d));
    finalized_ = false;
    return devices_.back().id;
  }
  void check_id(DeviceId id, const char* what) const {
    if (id >= devices_.size()) {
      throw InputError(std::string(what) + " id " + std::to_string(id) + " does not exist");
    }
  }
  static int ordinal(const std::vector<DeviceId>& v, DeviceId id) {
    auto it = std::find(v.begin(), v.end(), id);
    return it == v.end() ? -1 : static_cast<int>(it - v.begin());
  }
  void validate_and_order() {
    std::map<PciBusId, DeviceId> by_bus;
    for (const auto& d : devices_) {
      if (d.bus_id) {
        auto [it, inserted] = by_bus.emplace(*d.bus_id, d.id);
        if (!inserted) {
          throw InputError("duplicate PCI bus id " + d.bus_id->to_string() + ": " +
                           label(it->second) + " and " + label(d.id));
        }
      }
    }
    bus_index_ = std::move(by_bus);
    for (const auto& l : nvlinks_) {
      if (devices_[l.gpu].kind != DeviceKind::gpu) {
        throw InputError("NVLink from " + label(l.gpu) + ", which is not a GPU");
      }
      const auto pk = devices_[l.peer].kind;
      if (pk != DeviceKind::gpu && pk != DeviceKind::nvswitch && pk != DeviceKind::cpu) {
        throw InputError("NVLink from " + label(l.gpu) + " to " + label(l.peer) +
                         ", which is neither a GPU, an NVSwitch nor a CPU");
      }
      if (l.count < 1) {
        throw InputError("NVLink from " + label(l.gpu) + " to " + label(l.peer) + " has " +
                         std::to_string(l.count) + " links");
      }
    }
    order_gpus();
    order_nics();
    cpus_.clear();
    for (const auto& d : devices_) {
      if (d.kind == DeviceKind::cpu) cpus_.push_back(d.id);
    }
    mark_suspect_links();
  }

  static PciBusId bus_or_max(const Device& d) {
    return d.bus_id.value_or(PciBusId{0xffffffffu, 0xff, 0xff, 0xff});
  }

  // GPUs without an index get the free indices in PCI bus order, which is the order
  // nvidia-smi and CUDA_DEVICE_ORDER=PCI_BUS_ID use.
  void order_gpus() {
    std::vector<DeviceId> gpus;
    for (const auto& d : devices_) {
      if (d.kind == DeviceKind::gpu) gpus.push_back(d.id);
    }
    std::sort(gpus.begin(), gpus.end(), [&](DeviceId a, DeviceId b) {
      return bus_or_max(devices_[a]) < bus_or_max(devices_[b]);
    });
    std::map<int, DeviceId> by_index;
    for (auto id : gpus) {
      const int idx = devices_[id].gpu().index;
      if (idx < 0) continue;
      auto [it, inserted] = by_index.emplace(idx, id);
      if (!inserted) {
        throw InputError("GPU index " + std::to_string(idx) + " is used by both " +
                         label(it->second) + " and " + label(id));
      }
    }
    int next = 0;
    for (auto id : gpus) {
      auto& g = std::get<GpuInfo>(devices_[id].info);
      if (g.index >= 0) continue;
      while (by_index.count(next) != 0) ++next;
      g.index = next;
      by_index.emplace(next, id);
    }
    gpus_.clear();
    for (const auto& [idx, id] : by_index) gpus_.push_back(id);
  }

  void order_nics() {
    nics_.clear();
    bool all_have_dev = true;
    for (const auto& d : devices_) {
      if (d.kind != DeviceKind::nic) continue;
      nics_.push_back(d.id);
      if (d.nic().ports.empty() || !d.nic().ports.front().dev) all_have_dev = false;
    }
    std::stable_sort(nics_.begin(), nics_.end(), [&](DeviceId a, DeviceId b) {
      const auto& da = devices_[a];
      const auto& db = devices_[b];
      if (all_have_dev) return *da.nic().ports.front().dev < *db.nic().ports.front().dev;
      if (bus_or_max(da) != bus_or_max(db)) return bus_or_max(da) < bus_or_max(db);
      return nic_name(a) < nic_name(b);
    });
  }

  void mark_suspect_links() {
    for (auto& d : devices_) d.link_suspect = false;
    for (auto& d : devices_) {
      if (d.kind != DeviceKind::pci_switch) continue;
      const auto own = d.link.bandwidth();
      if (!own) continue;
      for (DeviceId c : d.children) {
        const auto child = devices_[c].link.bandwidth();
        if (child && *child / *own > suspect_link_ratio) {
          d.link_suspect = true;
          break;
        }
      }
    }
  }

  std::vector<Device> devices_;
  std::vector<NvLinkBundle> nvlinks_;
  std::vector<DeviceId> gpus_;
  std::vector<DeviceId> nics_;
  std::vector<DeviceId> cpus_;
  std::map<PciBusId, DeviceId> bus_index_;
  std::vector<std::string> notes_;
  std::string source_;
  bool finalized_ = false;
};

RAILCC_NAMESPACE_END
