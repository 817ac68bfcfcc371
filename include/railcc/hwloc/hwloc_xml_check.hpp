// railcc/hwloc/hwloc_xml_check.hpp: what railcc checks in an hwloc XML file before hwloc
// reads it.
//
// hwloc's XML import trusts its input. Without libxml2 (Debian's libhwloc-plugins, only a
// recommended package) it parses with a minimal reader of its own that crashes on
// malformed files, recurses once per nesting level, and stores enum fields unchecked;
// with libxml2 it reads the same files more strictly. So railcc parses the file first with
// pugixml, refuses what either reader could trip on, naming the line, and hands hwloc a
// canonical re-serialization of the document pugixml read: one well-formed text, the
// same for both of hwloc's readers, that no reader can take differently from railcc.
//
// Refused: text that is not UTF-8; malformed XML; a root element other than <topology>;
// nesting deeper than max_depth; element names outside [a-z0-9_] and attribute names
// outside [a-z_] (what hwloc's own reader accepts); text outside the elements that hold
// it (<indexes>, <u64values>, <userdata>); and, in <object>, a bridge_type or
// osdev_type outside hwloc 2's enums or a pci_busid that is not a PCI address.
//
// Needs pugixml (target railcc::hwloc links it).
#pragma once

#include <pugixml.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/utf8.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::hwloc_xml {

/// Deepest element nesting passed to hwloc, whose reader recurses once per level. A real
/// export nests about 20 deep (machine, package, caches, core, PU; bridges and PCI).
inline constexpr int max_depth = 128;

class Checker {
 public:
  Checker(std::string_view text, std::string source) : text_(text), source_(std::move(source)) {}

  std::string canonical() {
    if (const auto at = first_invalid_utf8(text_)) {
      fail_at(static_cast<std::ptrdiff_t>(*at), invalid_utf8_message(text_, *at));
    }
    pugi::xml_document doc;
    const auto result =
        doc.load_buffer(text_.data(), text_.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!result) fail_at(result.offset, std::string("malformed XML: ") + result.description());
    pugi::xml_node root;
    for (auto n : doc.children()) {
      if (n.type() != pugi::node_element) continue;
      if (root) fail(n, "a second top-level element; an hwloc XML file has one <topology>");
      root = n;
    }
    if (!root) throw InputError(source_ + ": no XML element; expected hwloc's <topology>");
    if (std::string_view(root.name()) != "topology") {
      fail(root, "root element <" + std::string(root.name()) +
                     "> is not <topology>: this is not an hwloc XML file");
    }
    // Iterative walk: the check itself must not recurse once per level either.
    std::vector<std::pair<pugi::xml_node, int>> stack{{root, 1}};
    bool numa = false;
    while (!stack.empty()) {
      const auto [n, depth] = stack.back();
      stack.pop_back();
      numa = numa || (std::string_view(n.name()) == "object" &&
                      std::string_view(n.attribute("type").value()) == "NUMANode");
      if (depth > max_depth) {
        fail(n, "elements nested more than " + std::to_string(max_depth) +
                    " deep; no hwloc export is that deep");
      }
      check_element(n);
      for (auto c : n.children()) {
        if (c.type() == pugi::node_element) stack.emplace_back(c, depth + 1);
      }
    }
    // hwloc 2.9 calls abort() on a topology without one ("Topology does not contain any
    // NUMA node, aborting!"); every real export has at least one.
    if (!numa) fail(root, "no NUMANode object; hwloc needs at least one");
    std::ostringstream out;
    doc.save(out, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
    return out.str();
  }

 private:
  static bool only(std::string_view s, std::string_view allowed) {
    return !s.empty() && s.find_first_not_of(allowed) == std::string_view::npos;
  }

  void check_element(pugi::xml_node n) const {
    const std::string_view name = n.name();
    if (!only(name, "abcdefghijklmnopqrstuvwxyz0123456789_")) {
      fail(n, "element <" + std::string(name) + "> is not an hwloc XML element");
    }
    std::vector<std::string_view> names;
    for (auto a : n.attributes()) {
      if (!only(a.name(), "abcdefghijklmnopqrstuvwxyz_")) {
        fail(n, "attribute '" + std::string(a.name()) + "' is not an hwloc XML attribute");
      }
      names.emplace_back(a.name());
    }
    // XML forbids an attribute twice and libxml2 refuses it; pugixml keeps both and hwloc's
    // own reader would take them in turn. Sorted, so a hostile element with 100,000
    // attributes costs n log n, not n^2.
    std::sort(names.begin(), names.end());
    if (const auto twice = std::adjacent_find(names.begin(), names.end()); twice != names.end()) {
      fail(n, "attribute '" + std::string(*twice) + "' given twice");
    }
    // Text belongs only in distance matrices and user data; anywhere else hwloc's reader
    // fails partway through an object (and leaks it: see tests/lsan.supp).
    if (name != "indexes" && name != "u64values" && name != "userdata") {
      for (auto c : n.children()) {
        if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) {
          fail(n, "text inside <" + std::string(name) + ">, which holds none in hwloc XML");
        }
      }
    }
    if (name != "object") return;
    // Every object has a type, spelled in full: hwloc's reader also takes prefixes and
    // aliases ("NU" for NUMANode), and crashed on some of them.
    const std::string_view type = n.attribute("type").value();
    if (!is_object_type(type)) {
      fail(n, "type=\"" + std::string(type) +
                  "\" is not an hwloc object type (Machine, Package, Core, PU, NUMANode, "
                  "L1Cache, Group, Bridge, PCIDev, OSDev, ...)");
    }
    if (std::string_view(n.parent().name()) == "topology" && type != "Machine" &&
        type != "System") {
      fail(n, "the top-level object is a " + std::string(type) + ", not the Machine");
    }
    // hwloc's exporter gives every CPU-side and memory object all four sets, and no I/O
    // or Misc object any; its reader then combines them without checking (a NUMA node
    // without its complete_nodeset is a null bitmap hwloc dereferences).
    const bool io = type == "Bridge" || type == "PCIDev" || type == "OSDev" || type == "Misc";
    int sets = 0;
    for (const char* set : {"cpuset", "complete_cpuset", "nodeset", "complete_nodeset"}) {
      sets += n.attribute(set) ? 1 : 0;
    }
    if (io && sets > 0) {
      fail(n, "a " + std::string(type) +
                  " object with a cpuset or nodeset, which hwloc gives "
                  "only to CPU-side and memory objects");
    }
    for (const char* set : {"cpuset", "complete_cpuset", "nodeset", "complete_nodeset",
                            "allowed_cpuset", "allowed_nodeset"}) {
      if (auto a = n.attribute(set); a && !is_bitmap(a.value())) {
        fail(n, std::string(set) + "=\"" + a.value() +
                    "\" is not an hwloc bitmap (0x-prefixed hex words, comma-separated)");
      }
    }
    if (!io && sets != 4) {
      fail(n, "a " + (type.empty() ? std::string("typeless") : std::string(type)) +
                  " object needs cpuset, complete_cpuset, nodeset and complete_nodeset");
    }
    // And a CPU-side or memory object sits under another one (or at the top): under an
    // I/O object, which has no sets, hwloc writes into its parent's null nodeset.
    if (!io && std::string_view(n.parent().name()) == "object" && !n.parent().attribute("cpuset")) {
      fail(n, "a " + std::string(type) +
                  " object under an I/O or Misc object; hwloc puts "
                  "CPU-side and memory objects only under each other");
    }
    if (auto a = n.attribute("bridge_type")) {
      // hwloc 2: 0 host, 1 PCI, for the upstream and the downstream side.
      const std::string_view v = a.value();
      if (v.size() != 3 || (v[0] != '0' && v[0] != '1') || v[1] != '-' ||
          (v[2] != '0' && v[2] != '1')) {
        fail(n, "bridge_type=\"" + std::string(v) +
                    "\" is not an hwloc bridge type (0-1 or 1-1: host or PCI upstream, PCI "
                    "downstream)");
      }
    }
    if (auto a = n.attribute("osdev_type")) {
      // hwloc 2: block, GPU, network, OpenFabrics, DMA, coprocessor.
      const std::string_view v = a.value();
      if (v.size() != 1 || v[0] < '0' || v[0] > '5') {
        fail(n, "osdev_type=\"" + std::string(v) + "\" is not an hwloc OS device type (0 to 5)");
      }
    }
    if (auto a = n.attribute("pci_busid")) {
      unsigned domain = 0, bus = 0, dev = 0, func = 0;
      char end = 0;
      const std::string v = a.value();
      if (std::sscanf(v.c_str(), "%4x:%2x:%2x.%1x%c", &domain, &bus, &dev, &func, &end) != 4 ||
          dev > 31 || func > 7) {
        fail(n, "pci_busid=\"" + v +
                    "\" is not a PCI address (dddd:bb:dd.f, device 0 to 31, function 0 to 7)");
      }
    }
  }

  static bool is_object_type(std::string_view t) {
    // hwloc 2's names, and the hwloc 1.x names its reader still takes.
    for (std::string_view known :
         {"Machine",  "Package", "Die",      "Core",     "PU",       "L1Cache",
          "L2Cache",  "L3Cache", "L4Cache",  "L5Cache",  "L1iCache", "L2iCache",
          "L3iCache", "Group",   "NUMANode", "MemCache", "Bridge",   "PCIDev",
          "OSDev",    "Misc",    "System",   "Socket",   "Cache"}) {
      if (t == known) return true;
    }
    return false;
  }

  /// hwloc_bitmap_snprintf's form: "0x0000000f", "0x00000001,0x00000000", and for an
  /// infinite set a leading "0xf...f".
  static bool is_bitmap(std::string_view v) {
    if (v.empty()) return false;
    std::size_t i = 0;
    bool first = true;
    while (i <= v.size()) {
      const auto comma = v.find(',', i);
      const std::string_view word =
          v.substr(i, comma == std::string_view::npos ? v.npos : comma - i);
      const bool infinite = first && word == "0xf...f";
      if (!infinite && (word.size() < 3 || word.size() > 18 || word.substr(0, 2) != "0x" ||
                        word.find_first_not_of("0123456789abcdefABCDEF", 2) != word.npos)) {
        return false;
      }
      if (comma == std::string_view::npos) return true;
      i = comma + 1;
      first = false;
    }
    return false;
  }

  [[noreturn]] void fail(pugi::xml_node n, const std::string& what) const {
    fail_at(n.offset_debug(), "<" + std::string(n.name()) + ">: " + what);
  }
  [[noreturn]] void fail_at(std::ptrdiff_t offset, const std::string& what) const {
    std::size_t line = 1;
    const auto end =
        std::min(static_cast<std::size_t>(std::max<std::ptrdiff_t>(offset, 0)), text_.size());
    line += static_cast<std::size_t>(
        std::count(text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(end), '\n'));
    throw InputError(source_ + ":" + std::to_string(line) + ": " + what);
  }

  std::string_view text_;
  std::string source_;
};

}  // namespace detail::hwloc_xml

/// The hwloc XML text `text` after railcc's checks (see above), re-serialized for hwloc;
/// `source` names it in messages.
inline std::string checked_hwloc_xml(std::string_view text, std::string source) {
  return detail::hwloc_xml::Checker(text, std::move(source)).canonical();
}

RAILCC_NAMESPACE_END
