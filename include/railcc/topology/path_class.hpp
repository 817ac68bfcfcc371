// railcc/topology/path_class.hpp: how two devices of a node reach each other.
//
// Two vocabularies, both in use by operators and by NCCL logs:
//  - nvidia-smi `topo -m`: X, NV#, PIX, PXB, PHB, NODE, SYS (NVML's topology levels);
//  - NCCL's path types (src/graph/topo.h, NCCL 2.28): LOC, NVL, NVB, C2C, PIX, PXB, P2C,
//    PXN, PHB, SYS, NET, DIS.
// They differ in two places: NCCL has no NODE (two host bridges of one CPU are PHB to
// NCCL), and NCCL calls a path through an intermediate GPU's NVLinks NVB where
// nvidia-smi shows the PCIe class.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "railcc/config.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// nvidia-smi's classes, best first.
enum class SmiPathClass : std::uint8_t {
  self,          ///< X
  nvlink,        ///< NV#: a bonded set of # NVLinks (directly or through NVSwitches)
  pix,           ///< at most a single PCIe bridge (one PCIe switch)
  pxb,           ///< multiple PCIe bridges, without the host bridge
  phb,           ///< through a PCIe host bridge (the CPU)
  node,          ///< between host bridges within one NUMA node
  sys,           ///< across the SMP interconnect between NUMA nodes (QPI/UPI/xGMI)
  disconnected,  ///< no path at all (a device outside every CPU's hierarchy)
};

/// NCCL's path types, with NCCL's numbering (lower is better).
enum class NcclPathType : std::uint8_t {
  loc,
  nvl,
  nvb,
  c2c,
  pix,
  pxb,
  p2c,
  pxn,
  phb,
  sys,
  net,
  dis
};

constexpr std::string_view to_string(SmiPathClass c) {
  switch (c) {
    case SmiPathClass::self: return "X";
    case SmiPathClass::nvlink: return "NV#";
    case SmiPathClass::pix: return "PIX";
    case SmiPathClass::pxb: return "PXB";
    case SmiPathClass::phb: return "PHB";
    case SmiPathClass::node: return "NODE";
    case SmiPathClass::sys: return "SYS";
    case SmiPathClass::disconnected: return "N/A";
  }
  return "?";
}

constexpr std::string_view to_string(NcclPathType t) {
  constexpr std::string_view names[] = {"LOC", "NVL", "NVB", "C2C", "PIX", "PXB",
                                        "P2C", "PXN", "PHB", "SYS", "NET", "DIS"};
  return names[static_cast<std::size_t>(t)];
}

/// The legend nvidia-smi prints under its matrix, one line per class.
constexpr std::string_view smi_legend =
    "  X    = Self\n"
    "  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes "
    "(e.g., QPI/UPI)\n"
    "  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges "
    "within a NUMA node\n"
    "  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)\n"
    "  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host "
    "Bridge)\n"
    "  PIX  = Connection traversing at most a single PCIe bridge\n"
    "  NV#  = Connection traversing a bonded set of # NVLinks\n";

/// Everything railcc says about the path between two devices.
struct DevicePath {
  SmiPathClass smi = SmiPathClass::disconnected;
  NcclPathType nccl = NcclPathType::dis;
  int nvlinks = 0;  ///< the # of NV#, when smi == nvlink
  /// Data rate in one direction: NVLinks x per-link rate, or the slowest trusted PCIe
  /// link on the way; nullopt when the links' rates are not known.
  std::optional<Bandwidth> bandwidth;

  /// The matrix cell: "X", "NV18", "PIX", ...
  [[nodiscard]] std::string smi_label() const {
    if (smi == SmiPathClass::nvlink) return "NV" + std::to_string(nvlinks);
    return std::string(to_string(smi));
  }
};

RAILCC_NAMESPACE_END
