// railcc/formats/nccl_topo_xml.hpp: NCCL's topology XML (NCCL_TOPO_FILE, NCCL_TOPO_DUMP_FILE).
//
// Reads and writes the `<system version="1">` format NCCL dumps and accepts as an
// override: `system > cpu > pci ... > {gpu > nvlink, nic > net}`. Quirks are read the
// way NCCL reads them (src/graph/xml.cc, topo.cc):
//  - `class` is matched by prefix: "0x03..." is a GPU, "0x02..." a NIC, 0x0604 a PCI
//    bridge, 0x068000 an NVSwitch, 0x068001 a CPU (as an NVLink target);
//  - `link_speed` is matched by its leading "<rate> GT/s" ("32 GT/s PCIe/s" is Gen5);
//  - `link_width="0"` means x16;
//  - an `<nvlink>` whose tclass is not a GPU or a CPU leads to an NVSwitch;
//  - a `<nic>` may hang directly under a `<cpu>` (a NIC without a PCI path).
// Anything else that does not fit (malformed XML, unknown elements, missing or duplicate
// bus ids, NVLinks to GPUs that do not exist, absurd speeds) throws InputError naming the
// file, the line, the element and the problem. NCCL's *graph* XML (`<graphs>`) is
// refused with a message saying what it is.
//
// Needs pugixml (target railcc::formats).
#pragma once

#include <pugixml.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/input_file.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/utf8.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::nccl_xml {

/// Upper bound on a NIC port speed read from a file: 3.2 Tb/s, twice the fastest port
/// announced (1.6T). A larger value is a unit mistake, not hardware.
inline constexpr double max_port_mbps = 3.2e6;
/// Deepest <pci> nesting read. Real PCIe trees are a few levels deep (root port, one or
/// two switches); the bound keeps a hostile file from overflowing the reader's stack.
inline constexpr int max_pci_depth = 64;

class Reader {
 public:
  Reader(std::string_view text, std::string source) : text_(text), source_(std::move(source)) {}

  NodeTopology read() {
    check_utf8();
    pugi::xml_document doc;
    const auto result =
        doc.load_buffer(text_.data(), text_.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!result) {
      throw InputError(source_ + ":" + std::to_string(line_of(result.offset)) +
                       ": malformed XML: " + result.description());
    }
    pugi::xml_node root;
    for (auto n : doc.children()) {
      if (n.type() != pugi::node_element) continue;
      if (root) fail(n, "a second top-level element; an NCCL topology file has one <system>");
      root = n;
    }
    if (!root) throw InputError(source_ + ": no XML element; expected <system version=\"1\">");
    const std::string_view root_name = root.name();
    if (root_name == "graphs") {
      throw InputError(source_ +
                       ": this is an NCCL graph file (<graphs>: the ring and tree channel orders "
                       "of NCCL_GRAPH_FILE / NCCL_GRAPH_DUMP_FILE), not a topology file; pass the "
                       "<system> file of NCCL_TOPO_FILE / NCCL_TOPO_DUMP_FILE");
    }
    if (root_name != "system") {
      fail(root, "root element is not <system>: this is not an NCCL topology file");
    }
    check_attributes(root, {"version"});
    if (auto v = root.attribute("version")) {
      if (std::string_view(v.value()) != "1") {
        fail(root,
             "version \"" + std::string(v.value()) + "\" is not the version 1 format railcc reads");
      }
    } else {
      topo_.add_note(source_ + ": <system> has no version; read as version 1");
    }
    for (auto n : root.children()) {
      if (n.type() != pugi::node_element) continue;
      if (std::string_view(n.name()) != "cpu") unknown(n, "<system>", "<cpu>");
      read_cpu(n);
    }
    resolve_nvlinks();
    summarize_notes();
    topo_.set_source(source_);
    topo_.finalize();  // its errors name source_
    return std::move(topo_);
  }

 private:
  struct PendingNvLink {
    pugi::xml_node element;
    DeviceId gpu;
  };

  [[noreturn]] void fail(pugi::xml_node n, const std::string& what) const {
    throw InputError(source_ + ":" + std::to_string(line_of(n.offset_debug())) + ": " +
                     describe(n) + ": " + what);
  }
  [[noreturn]] void unknown(pugi::xml_node n, const char* parent, const char* expected) const {
    fail(n, std::string("unknown element in ") + parent + " (expected " + expected + ")");
  }

  // NCCL writes ASCII; anything that is not even UTF-8 is a damaged file, and letting it
  // through would put bytes no JSON or XML writer can emit into names and notes.
  void check_utf8() const {
    if (const auto at = first_invalid_utf8(text_)) {
      throw InputError(source_ + ":" + std::to_string(line_of(static_cast<std::ptrdiff_t>(*at))) +
                       ": " + invalid_utf8_message(text_, *at));
    }
  }

  /// The 1-based line of a byte offset. The newlines are indexed once, on the first
  /// call, so naming every device's line costs a binary search, not a rescan of the file.
  std::size_t line_of(std::ptrdiff_t offset) const {
    if (offset < 0) return 0;
    if (!newlines_indexed_) {
      for (std::size_t i = 0; i < text_.size(); ++i) {
        if (text_[i] == '\n') newlines_.push_back(i);
      }
      newlines_indexed_ = true;
    }
    const auto end = std::min(static_cast<std::size_t>(offset), text_.size());
    return 1 + static_cast<std::size_t>(std::lower_bound(newlines_.begin(), newlines_.end(), end) -
                                        newlines_.begin());
  }

  static std::string describe(pugi::xml_node n) {
    std::string s = "<" + std::string(n.name());
    for (const char* key : {"busid", "numaid", "dev", "name", "target"}) {
      if (auto a = n.attribute(key)) s += " " + std::string(key) + "=\"" + a.value() + "\"";
    }
    return s + ">";
  }

  void check_attributes(pugi::xml_node n, std::initializer_list<std::string_view> known) {
    for (auto a : n.attributes()) {
      bool ok = false;
      for (auto k : known) ok = ok || k == a.name();
      if (!ok) ignored_attributes_.insert("<" + std::string(n.name()) + " " + a.name() + ">");
    }
  }

  std::optional<long long> integer(pugi::xml_node n, const char* key, long long lo, long long hi,
                                   int base = 10) const {
    auto a = n.attribute(key);
    if (!a) return std::nullopt;
    std::string_view s = a.value();
    if (base == 16 && (s.starts_with("0x") || s.starts_with("0X"))) s.remove_prefix(2);
    long long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) {
      fail(n, std::string(key) + "=\"" + a.value() + "\" is not " +
                  (base == 16 ? "a hexadecimal number" : "an integer"));
    }
    if (v < lo || v > hi) {
      fail(n, std::string(key) + "=\"" + a.value() + "\" is out of range [" + std::to_string(lo) +
                  ", " + std::to_string(hi) + "]");
    }
    return v;
  }

  std::optional<double> real(pugi::xml_node n, const char* key) const {
    auto a = n.attribute(key);
    if (!a) return std::nullopt;
    std::istringstream in{std::string(a.value())};
    in.imbue(std::locale::classic());
    double v = 0;
    if (!(in >> v) || !(in >> std::ws).eof()) {
      fail(n, std::string(key) + "=\"" + a.value() + "\" is not a number");
    }
    return v;
  }

  std::optional<std::uint16_t> hex16(pugi::xml_node n, const char* key) const {
    auto v = integer(n, key, 0, 0xffff, 16);
    return v ? std::optional<std::uint16_t>(static_cast<std::uint16_t>(*v)) : std::nullopt;
  }

  /// NCCL matches `class` by prefix: "0x03" and "0x030200" are both display controllers.
  std::optional<std::uint32_t> class_code(pugi::xml_node n, const char* key = "class") const {
    auto a = n.attribute(key);
    if (!a) return std::nullopt;
    std::string_view s = a.value();
    if (s.starts_with("0x") || s.starts_with("0X")) s.remove_prefix(2);
    std::uint32_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
    if (s.size() < 2 || s.size() > 6 || ec != std::errc{} || p != s.data() + s.size()) {
      fail(n, std::string(key) + "=\"" + a.value() + "\" is not a PCI class code (0xCCSSPP)");
    }
    return v << (4 * (6 - s.size()));
  }

  /// "32.0 GT/s PCIe", "32 GT/s PCIe/s", "16 GT/s": the leading rate decides, as NCCL's
  /// prefix match does. Empty or "Unknown" means the kernel did not know.
  std::optional<int> link_generation(pugi::xml_node n) {
    auto a = n.attribute("link_speed");
    if (!a) return std::nullopt;
    std::string_view s = a.value();
    if (s.empty() || s.starts_with("Unknown")) {
      ++unknown_speeds_;
      return std::nullopt;
    }
    struct Rate {
      std::string_view prefix;
      int gen;
    };
    constexpr Rate rates[] = {{"2.5 GT/s", 1},  {"5 GT/s", 2},  {"5.0 GT/s", 2},  {"8 GT/s", 3},
                              {"8.0 GT/s", 3},  {"16 GT/s", 4}, {"16.0 GT/s", 4}, {"32 GT/s", 5},
                              {"32.0 GT/s", 5}, {"64 GT/s", 6}, {"64.0 GT/s", 6}};
    for (const auto& r : rates) {
      if (s.starts_with(r.prefix)) return r.gen;
    }
    fail(n, "link_speed=\"" + std::string(s) + "\" is not a PCIe rate (2.5 to 64 GT/s)");
  }

  std::optional<int> link_width(pugi::xml_node n) {
    auto w = integer(n, "link_width", 0, 32);
    if (!w) return std::nullopt;
    if (*w == 0) {
      ++zero_widths_;
      return 16;  // NCCL: a width of 0 (VFs, passthrough) is read as x16
    }
    if (*w != 1 && *w != 2 && *w != 4 && *w != 8 && *w != 12 && *w != 16 && *w != 32) {
      fail(n, "link_width=\"" + std::to_string(*w) + "\" is not a PCIe link width");
    }
    return static_cast<int>(*w);
  }

  void read_cpu(pugi::xml_node n) {
    check_attributes(n,
                     {"numaid", "affinity", "arch", "vendor", "familyid", "modelid", "host_hash"});
    CpuInfo info;
    const auto numa = integer(n, "numaid", -1, 4095);
    if (!numa) fail(n, "missing numaid");
    info.numa_id = static_cast<int>(*numa);
    if (!numa_ids_.insert(info.numa_id).second) {
      fail(n, "a second <cpu> with numaid=\"" + std::to_string(info.numa_id) + "\"");
    }
    if (auto a = n.attribute("affinity")) {
      auto set = CpuSet::from_mask(a.value());
      if (!set) fail(n, "affinity=\"" + std::string(a.value()) + "\" is not a CPU mask");
      info.affinity = *set;
    }
    info.arch = n.attribute("arch").value();
    info.vendor = n.attribute("vendor").value();
    if (auto v = integer(n, "familyid", 0, 1 << 20)) info.family_id = static_cast<int>(*v);
    if (auto v = integer(n, "modelid", 0, 1 << 20)) info.model_id = static_cast<int>(*v);
    info.host_hash = n.attribute("host_hash").value();
    const DeviceId cpu = topo_.add_cpu(std::move(info));
    for (auto c : n.children()) {
      if (c.type() != pugi::node_element) continue;
      const std::string_view name = c.name();
      if (name == "pci") {
        read_pci(c, cpu, 1);
      } else if (name == "nic") {
        const DeviceId nic =
            topo_.add_device(DeviceKind::nic, cpu, std::nullopt, {}, {}, NicInfo{});
        read_nic(c, nic);
      } else {
        unknown(c, "<cpu>", "<pci> or <nic>");
      }
    }
  }

  void read_pci(pugi::xml_node n, DeviceId parent, int depth) {
    if (depth > max_pci_depth) {
      fail(n, "<pci> nested more than " + std::to_string(max_pci_depth) +
                  " deep; no PCIe hierarchy is that deep");
    }
    check_attributes(n, {"busid", "class", "vendor", "device", "subsystem_vendor",
                         "subsystem_device", "link_speed", "link_width"});
    auto busid_attr = n.attribute("busid");
    if (!busid_attr) fail(n, "missing busid");
    const auto bus = PciBusId::parse(busid_attr.value());
    if (!bus) fail(n, "busid=\"" + std::string(busid_attr.value()) + "\" is not a PCI address");
    const auto [known, inserted] =
        by_bus_.emplace(*bus, BusEntry{line_of(n.offset_debug()), no_device});
    if (!inserted) {
      fail(n, "duplicate busid " + bus->to_string() + " (first at line " +
                  std::to_string(known->second.line) + ")");
    }
    PciIdentity pci;
    pci.class_code = class_code(n);
    pci.vendor = hex16(n, "vendor");
    pci.device = hex16(n, "device");
    pci.subsystem_vendor = hex16(n, "subsystem_vendor");
    pci.subsystem_device = hex16(n, "subsystem_device");
    PcieLink link;
    link.generation = link_generation(n);
    link.width = link_width(n);

    pugi::xml_node gpu_el;
    pugi::xml_node nic_el;
    bool has_pci_children = false;
    for (auto c : n.children()) {
      if (c.type() != pugi::node_element) continue;
      const std::string_view name = c.name();
      if (name == "gpu") {
        if (gpu_el) fail(c, "a second <gpu> in one PCI function");
        gpu_el = c;
      } else if (name == "nic") {
        if (nic_el) fail(c, "a second <nic> in one PCI function");
        nic_el = c;
      } else if (name == "pci") {
        has_pci_children = true;
      } else {
        unknown(c, "<pci>", "<pci>, <gpu> or <nic>");
      }
    }
    DeviceKind kind = DeviceKind::pci_device;
    if (pci.class_code) {
      const auto c = *pci.class_code;
      if (pci_class::is_display(c))
        kind = DeviceKind::gpu;
      else if (pci_class::is_network(c))
        kind = DeviceKind::nic;
      else if (pci_class::is_pci_bridge(c))
        kind = DeviceKind::pci_switch;
      else if (c == pci_class::nvswitch)
        kind = DeviceKind::nvswitch;
      else if (has_pci_children)
        kind = DeviceKind::pci_switch;
    } else if (gpu_el) {
      kind = DeviceKind::gpu;
    } else if (nic_el) {
      kind = DeviceKind::nic;
    } else if (has_pci_children) {
      kind = DeviceKind::pci_switch;  // NCCL's fallback type for an unclassed node is PCI
    } else {
      ++unclassed_leaves_;
    }
    if (gpu_el && kind != DeviceKind::gpu)
      fail(gpu_el, "<gpu> inside a PCI function whose class is not a display controller");
    if (nic_el && kind != DeviceKind::nic)
      fail(nic_el, "<nic> inside a PCI function whose class is not a network controller");
    if (has_pci_children && kind != DeviceKind::pci_switch) {
      fail(n, "a " + std::string(to_string(kind)) + " cannot contain <pci> children");
    }
    const DeviceId id = topo_.add_device(kind, parent, bus, link, pci);
    known->second.device = id;
    if (gpu_el) read_gpu(gpu_el, id);
    if (nic_el) read_nic(nic_el, id);
    for (auto c : n.children()) {
      if (c.type() == pugi::node_element && std::string_view(c.name()) == "pci") {
        read_pci(c, id, depth + 1);
      }
    }
  }

  void read_gpu(pugi::xml_node n, DeviceId id) {
    check_attributes(n, {"dev", "sm", "rank", "gdr"});
    GpuInfo g;
    if (auto v = integer(n, "dev", 0, 4095)) g.index = static_cast<int>(*v);
    if (auto v = integer(n, "sm", 10, 200)) g.sm = static_cast<int>(*v);
    if (auto v = integer(n, "rank", 0, 1 << 24)) g.rank = static_cast<int>(*v);
    if (auto v = integer(n, "gdr", 0, 1)) g.gdr = *v != 0;
    topo_.mutable_device(id).info = g;
    for (auto c : n.children()) {
      if (c.type() != pugi::node_element) continue;
      const std::string_view name = c.name();
      if (name == "nvlink") {
        pending_.push_back({c, id});
      } else if (name == "c2c") {
        ++c2c_links_;  // Grace-Hopper's CPU link: not modelled yet
      } else {
        unknown(c, "<gpu>", "<nvlink> or <c2c>");
      }
    }
  }

  void read_nic(pugi::xml_node n, DeviceId id) {
    check_attributes(n, {});
    NicInfo info;
    for (auto c : n.children()) {
      if (c.type() != pugi::node_element) continue;
      if (std::string_view(c.name()) != "net") unknown(c, "<nic>", "<net>");
      check_attributes(
          c, {"name", "dev", "speed", "port", "latency", "guid", "maxconn", "gdr", "coll"});
      NicPort p;
      p.name = c.attribute("name").value();
      if (auto v = integer(c, "dev", 0, 4095)) p.dev = static_cast<int>(*v);
      // NCCL reads speed as an integer number of Mb/s.
      if (auto v = integer(c, "speed", std::numeric_limits<long long>::min(),
                           std::numeric_limits<long long>::max())) {
        if (*v <= 0 || static_cast<double>(*v) > max_port_mbps) {
          fail(c, "speed=\"" + std::string(c.attribute("speed").value()) +
                      "\" Mb/s is not a NIC speed (expected 1 to 3,200,000 Mb/s)");
        }
        p.speed = Bandwidth::mbps(static_cast<double>(*v));
      }
      if (auto v = integer(c, "port", 0, 255)) p.port = static_cast<int>(*v);
      if (auto v = real(c, "latency")) {
        if (*v < 0 || *v > 1e6) {
          fail(c, "latency=\"" + std::string(c.attribute("latency").value()) +
                      "\" is negative or absurd");
        }
        p.latency = *v;
      }
      p.guid = c.attribute("guid").value();
      if (auto v = integer(c, "maxconn", 0, 1 << 30)) p.max_connections = static_cast<int>(*v);
      if (auto v = integer(c, "gdr", 0, 1)) p.gdr = *v != 0;
      info.ports.push_back(std::move(p));
    }
    topo_.mutable_device(id).info = std::move(info);
  }

  void resolve_nvlinks() {
    std::map<PciBusId, DeviceId> detached_switches;
    for (const auto& [n, gpu] : pending_) {
      check_attributes(n, {"target", "count", "tclass"});
      const auto count = integer(n, "count", 0, max_nvlinks_per_bundle);
      if (!count) fail(n, "missing count");
      if (*count == 0) continue;  // NCCL skips empty bundles as well
      const auto tclass = class_code(n, "tclass");
      if (!tclass) fail(n, "missing tclass");
      const std::uint32_t tc = *tclass;
      if (tc == pci_class::nvlink_cpu) {
        topo_.add_nvlink(gpu, topo_.cpu_of(gpu), static_cast<int>(*count));
        continue;
      }
      auto target_attr = n.attribute("target");
      if (!target_attr) fail(n, "missing target");
      const auto target = PciBusId::parse(target_attr.value());
      if (!target)
        fail(n, "target=\"" + std::string(target_attr.value()) + "\" is not a PCI address");
      const DeviceId found = find_device(*target);
      if (pci_class::is_display(tc)) {
        if (found == no_device) {
          fail(n,
               "NVLink target " + target->to_string() + " does not exist: no GPU has that busid");
        }
        if (topo_.device(found).kind != DeviceKind::gpu) {
          fail(n, "NVLink target " + target->to_string() + " is a " +
                      std::string(to_string(topo_.device(found).kind)) + ", not a GPU");
        }
        if (found == gpu) {
          ++self_links_;  // NCCL connects the GPU to itself: no path ever uses it
          continue;
        }
        topo_.add_nvlink(gpu, found, static_cast<int>(*count));
        continue;
      }
      // Any other tclass is an NVSwitch, as in NCCL.
      DeviceId sw = found;
      if (sw != no_device && topo_.device(sw).kind != DeviceKind::nvswitch) {
        fail(n, "NVLink target " + target->to_string() + " is a " +
                    std::string(to_string(topo_.device(sw).kind)) + ", not an NVSwitch");
      }
      if (sw == no_device) {
        auto it = detached_switches.find(*target);
        if (it == detached_switches.end()) {
          it = detached_switches.emplace(*target, topo_.add_detached_nvswitch(*target)).first;
        }
        sw = it->second;
      }
      topo_.add_nvlink(gpu, sw, static_cast<int>(*count));
    }
  }

  DeviceId find_device(PciBusId bus) const {
    const auto it = by_bus_.find(bus);
    return it == by_bus_.end() ? no_device : it->second.device;
  }

  void summarize_notes() {
    auto note = [&](std::size_t n, const std::string& text) {
      if (n > 0) topo_.add_note(source_ + ": " + std::to_string(n) + " " + text);
    };
    note(zero_widths_, "link(s) with link_width=\"0\", read as x16 as NCCL does");
    note(unknown_speeds_, "link(s) with an empty or unknown link_speed; their rate is unknown");
    note(unclassed_leaves_,
         "PCI function(s) without a class, kept as plain PCI devices (NCCL fills these from "
         "sysfs at run time)");
    note(self_links_,
         "<nvlink> element(s) whose target is the GPU itself, ignored as no path uses them");
    note(c2c_links_, "<c2c> element(s): CPU-GPU C2C links are not modelled and were skipped");
    for (const auto& a : ignored_attributes_) {
      topo_.add_note(source_ + ": attribute " + a + " is not read by railcc and was ignored");
    }
  }

  std::string_view text_;
  std::string source_;
  mutable std::vector<std::size_t> newlines_;
  mutable bool newlines_indexed_ = false;
  NodeTopology topo_;
  std::vector<PendingNvLink> pending_;
  std::set<int> numa_ids_;
  /// Every <pci> read: its line (for the duplicate message) and its device (NVLink targets).
  struct BusEntry {
    std::size_t line;
    DeviceId device;
  };
  std::map<PciBusId, BusEntry> by_bus_;
  std::set<std::string> ignored_attributes_;
  std::size_t zero_widths_ = 0;
  std::size_t unknown_speeds_ = 0;
  std::size_t unclassed_leaves_ = 0;
  std::size_t self_links_ = 0;
  std::size_t c2c_links_ = 0;
};

inline std::string hex(std::uint32_t v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*x", digits, v);
  return buf;
}

/// NCCL's "%f" where that reads back as the same value, else the shortest exact form.
inline std::string exact_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%f", v);
  if (std::strtod(buf, nullptr) == v) return buf;
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

class Writer {
 public:
  explicit Writer(const NodeTopology& topo) : topo_(topo) {}

  std::string write() {
    pugi::xml_document doc;
    auto system = doc.append_child("system");
    system.append_attribute("version") = "1";
    for (DeviceId c : topo_.cpus()) write_cpu(system, topo_.device(c));
    std::ostringstream out;
    doc.save(out, "  ", pugi::format_indent | pugi::format_no_declaration, pugi::encoding_utf8);
    return out.str();
  }

 private:
  void write_cpu(pugi::xml_node parent, const Device& d) {
    const auto& info = d.cpu();
    auto n = parent.append_child("cpu");
    if (!info.host_hash.empty()) n.append_attribute("host_hash") = info.host_hash.c_str();
    n.append_attribute("numaid") = info.numa_id;
    if (!info.affinity.empty()) n.append_attribute("affinity") = info.affinity.to_mask().c_str();
    if (!info.arch.empty()) n.append_attribute("arch") = info.arch.c_str();
    if (!info.vendor.empty()) n.append_attribute("vendor") = info.vendor.c_str();
    if (info.family_id) n.append_attribute("familyid") = *info.family_id;
    if (info.model_id) n.append_attribute("modelid") = *info.model_id;
    write_children(n, d);
  }

  void write_children(pugi::xml_node n, const Device& d) {
    for (DeviceId c : d.children) write_device(n, topo_.device(c));
  }

  void write_device(pugi::xml_node parent, const Device& d) {
    if (d.kind == DeviceKind::host_bridge) {
      write_children(parent, d);  // NCCL's format has no host bridges: hoist the children
      return;
    }
    if (!d.bus_id) {
      if (d.kind == DeviceKind::nic) write_nic(parent, d);
      return;  // nothing else without a bus id can be expressed
    }
    auto n = parent.append_child("pci");
    n.append_attribute("busid") = d.bus_id->to_string().c_str();
    const auto& p = d.pci;
    if (auto cls = class_for(d)) n.append_attribute("class") = hex(*cls, 6).c_str();
    if (p.vendor) n.append_attribute("vendor") = hex(*p.vendor, 4).c_str();
    if (p.device) n.append_attribute("device") = hex(*p.device, 4).c_str();
    if (p.subsystem_vendor)
      n.append_attribute("subsystem_vendor") = hex(*p.subsystem_vendor, 4).c_str();
    if (p.subsystem_device)
      n.append_attribute("subsystem_device") = hex(*p.subsystem_device, 4).c_str();
    if (d.link.generation) {
      const std::string speed = std::string(pcie_transfer_rate(*d.link.generation)) + " GT/s PCIe";
      n.append_attribute("link_speed") = speed.c_str();
    }
    if (d.link.width) n.append_attribute("link_width") = *d.link.width;
    if (d.kind == DeviceKind::gpu) write_gpu(n, d);
    if (d.kind == DeviceKind::nic) write_nic(n, d);
    write_children(n, d);
  }

  /// The class written for a device: its own, unless that would make NCCL (and railcc)
  /// read it as another kind, as hwloc's class-less NVSwitch functions would be. A GPU or
  /// NIC without a class stays without one: its <gpu>/<nic> child says what it is.
  static std::optional<std::uint32_t> class_for(const Device& d) {
    const auto c = d.pci.class_code;
    switch (d.kind) {
      case DeviceKind::gpu:
        return !c || pci_class::is_display(*c) ? c : std::optional(pci_class::display_3d);
      case DeviceKind::nic:
        return !c || pci_class::is_network(*c) ? c : std::optional(pci_class::ethernet);
      case DeviceKind::nvswitch: return pci_class::nvswitch;
      case DeviceKind::pci_switch:
        // A switch port whose own class reads as a GPU, NIC or NVSwitch (hwloc reports
        // what the function says) is written as the bridge it is.
        return c && reads_as_endpoint(*c) ? std::optional(pci_class::pci_bridge) : c;
      case DeviceKind::pci_device:
        // A plain function with such a class (a BMC's VGA, a non-NVIDIA display or network
        // function hwloc keeps as a plain device) is written without one, so that it
        // reads back as the plain device it is.
        return c && reads_as_endpoint(*c) ? std::nullopt : c;
      default: return c;
    }
  }

  /// Whether the reader would take a function of class `c` for a GPU, NIC or NVSwitch.
  static bool reads_as_endpoint(std::uint32_t c) {
    return pci_class::is_display(c) || pci_class::is_network(c) || c == pci_class::nvswitch;
  }

  void write_gpu(pugi::xml_node parent, const Device& d) {
    const auto& g = d.gpu();
    auto n = parent.append_child("gpu");
    n.append_attribute("dev") = g.index;
    if (g.sm) n.append_attribute("sm") = *g.sm;
    if (g.rank) n.append_attribute("rank") = *g.rank;
    if (g.gdr) n.append_attribute("gdr") = *g.gdr ? 1 : 0;
    for (const auto& l : topo_.nvlinks()) {
      if (l.gpu != d.id) continue;
      const auto& peer = topo_.device(l.peer);
      auto e = n.append_child("nvlink");
      if (peer.kind != DeviceKind::cpu) {
        if (!peer.bus_id) continue;
        e.append_attribute("target") = peer.bus_id->to_string().c_str();
      }
      e.append_attribute("count") = l.count;
      const std::uint32_t tclass = peer.kind == DeviceKind::cpu ? pci_class::nvlink_cpu
                                   : peer.kind == DeviceKind::nvswitch
                                       ? pci_class::nvswitch
                                       : peer.pci.class_code.value_or(pci_class::display_3d);
      e.append_attribute("tclass") = hex(tclass, 6).c_str();
    }
  }

  void write_nic(pugi::xml_node parent, const Device& d) {
    auto n = parent.append_child("nic");
    for (const auto& p : d.nic().ports) {
      auto e = n.append_child("net");
      if (!p.name.empty()) e.append_attribute("name") = p.name.c_str();
      if (p.dev) e.append_attribute("dev") = *p.dev;
      if (p.speed)
        e.append_attribute("speed") = std::to_string(std::llround(p.speed->in_mbps())).c_str();
      if (p.port) e.append_attribute("port") = *p.port;
      if (p.latency) e.append_attribute("latency") = exact_number(*p.latency).c_str();
      if (!p.guid.empty()) e.append_attribute("guid") = p.guid.c_str();
      if (p.max_connections) e.append_attribute("maxconn") = *p.max_connections;
      if (p.gdr) e.append_attribute("gdr") = *p.gdr ? 1 : 0;
    }
  }

  const NodeTopology& topo_;
};

}  // namespace detail::nccl_xml

/// Parses NCCL topology XML held in memory; `source` names it in messages.
inline NodeTopology parse_nccl_topology_xml(std::string_view xml, std::string source = "<memory>") {
  return detail::nccl_xml::Reader(xml, std::move(source)).read();
}

/// Reads an NCCL topology XML file.
inline NodeTopology read_nccl_topology_xml(const std::string& path) {
  return parse_nccl_topology_xml(read_input_file(path), path);
}

/// Writes a topology in NCCL's format. What the format cannot hold is left out: host
/// bridges (their children move up to the CPU), link rates known only as GB/s, and
/// NVLinks to peers without a bus id.
inline std::string write_nccl_topology_xml(const NodeTopology& topo) {
  return detail::nccl_xml::Writer(topo).write();
}

RAILCC_NAMESPACE_END
