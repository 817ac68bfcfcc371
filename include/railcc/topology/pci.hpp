// railcc/topology/pci.hpp: PCI addresses, class codes and PCIe link rates.
//
// `PciBusId` parses and prints the `domain:bus:device.function` form used by sysfs,
// nvidia-smi, NCCL and hwloc. `PcieLink` holds what a device's upstream link trained
// at, as the source reports it: a generation and a width (NCCL XML, sysfs) or only a
// rate in GB/s (hwloc), and turns either into a `Bandwidth`.
#pragma once

#include <array>
#include <charconv>
#include <compare>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "railcc/config.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// A PCI function address. Ordered the way `lspci` sorts: domain, bus, device, function.
struct PciBusId {
  std::uint32_t domain = 0;  ///< 16 bits on most systems; VMs use up to 0xffff
  std::uint8_t bus = 0;
  std::uint8_t device = 0;    ///< 0..31
  std::uint8_t function = 0;  ///< 0..7

  auto operator<=>(const PciBusId&) const = default;

  /// Parses "dddd:bb:dd.f" (domain optional, hex, case-insensitive). Returns nullopt on any
  /// malformed or out-of-range field rather than guessing.
  static std::optional<PciBusId> parse(std::string_view text) {
    auto hex = [](std::string_view s, std::uint32_t max) -> std::optional<std::uint32_t> {
      if (s.empty() || s.size() > 8) return std::nullopt;
      std::uint32_t v = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
      if (ec != std::errc{} || p != s.data() + s.size() || v > max) return std::nullopt;
      return v;
    };
    const auto dot = text.rfind('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const auto colon2 = text.rfind(':', dot);
    if (colon2 == std::string_view::npos) return std::nullopt;
    const auto colon1 = text.rfind(':', colon2 == 0 ? 0 : colon2 - 1);
    std::string_view domain_s = "0";
    std::string_view bus_s;
    if (colon1 != std::string_view::npos && colon1 < colon2) {
      domain_s = text.substr(0, colon1);
      bus_s = text.substr(colon1 + 1, colon2 - colon1 - 1);
    } else {
      bus_s = text.substr(0, colon2);
    }
    const auto dom = hex(domain_s, 0xffffu);
    const auto bus = hex(bus_s, 0xffu);
    const auto dev = hex(text.substr(colon2 + 1, dot - colon2 - 1), 0x1fu);
    const auto fn = hex(text.substr(dot + 1), 0x7u);
    if (!dom || !bus || !dev || !fn) return std::nullopt;
    return PciBusId{*dom, static_cast<std::uint8_t>(*bus), static_cast<std::uint8_t>(*dev),
                    static_cast<std::uint8_t>(*fn)};
  }

  /// "0000:a4:00.0", lower-case hex as sysfs and NCCL write it.
  [[nodiscard]] std::string to_string() const {
    std::array<char, 32> buf{};
    std::snprintf(buf.data(), buf.size(), "%04x:%02x:%02x.%x", static_cast<unsigned>(domain),
                  static_cast<unsigned>(bus), static_cast<unsigned>(device),
                  static_cast<unsigned>(function));
    return buf.data();
  }
};

/// PCI vendor ids railcc recognises.
namespace pci_vendor {
inline constexpr std::uint16_t nvidia = 0x10de;
inline constexpr std::uint16_t mellanox = 0x15b3;
inline constexpr std::uint16_t amazon = 0x1d0f;
}  // namespace pci_vendor

/// PCI class codes (24 bits: base class, sub-class, programming interface) and the
/// tests railcc applies to them. Matching is on base/sub-class, as NCCL's prefix
/// matching of its `class` attribute does ("0x03" is any display controller).
namespace pci_class {
inline constexpr std::uint32_t pci_bridge = 0x060400;
inline constexpr std::uint32_t nvswitch = 0x068000;    ///< "other bridge": how NVSwitch reports
inline constexpr std::uint32_t nvlink_cpu = 0x068001;  ///< NCCL's tclass for an NVLink to a CPU
inline constexpr std::uint32_t ethernet = 0x020000;
inline constexpr std::uint32_t infiniband = 0x020700;
inline constexpr std::uint32_t display_3d = 0x030200;
inline constexpr std::uint32_t host_bridge = 0x060000;

constexpr bool is_display(std::uint32_t c) { return (c >> 16) == 0x03; }
constexpr bool is_network(std::uint32_t c) { return (c >> 16) == 0x02; }
constexpr bool is_pci_bridge(std::uint32_t c) { return (c >> 8) == 0x0604; }
constexpr bool is_other_bridge(std::uint32_t c) { return (c >> 8) == 0x0680; }
}  // namespace pci_class

/// Usable data rate of one PCIe lane in one direction, after line encoding
/// (8b/10b for Gen1-2, 128b/130b for Gen3-5, FLIT mode 242/256 for Gen6), as the
/// PCI-SIG specifications define them. Gen3 x16 gives 15.75 GB/s, the value hwloc reports.
constexpr std::optional<Bandwidth> pcie_lane_bandwidth(int generation) {
  switch (generation) {
    case 1: return Bandwidth::GBps(2.5 * 0.8 / 8.0);
    case 2: return Bandwidth::GBps(5.0 * 0.8 / 8.0);
    case 3: return Bandwidth::GBps(8.0 * 128.0 / 130.0 / 8.0);
    case 4: return Bandwidth::GBps(16.0 * 128.0 / 130.0 / 8.0);
    case 5: return Bandwidth::GBps(32.0 * 128.0 / 130.0 / 8.0);
    case 6: return Bandwidth::GBps(64.0 * 242.0 / 256.0 / 8.0);
    default: return std::nullopt;
  }
}

/// Transfer rate of a generation in GT/s ("2.5", "32.0"), as sysfs prints it.
constexpr std::string_view pcie_transfer_rate(int generation) {
  constexpr std::array<std::string_view, 7> rates{"?", "2.5", "5.0", "8.0", "16.0", "32.0", "64.0"};
  return generation >= 1 && generation <= 6 ? rates[static_cast<std::size_t>(generation)] : "?";
}

/// The link a device trained on towards its parent. Either field may be unknown: NCCL
/// files written by hand omit speeds, hwloc reports only a total rate.
struct PcieLink {
  std::optional<int> generation;  ///< 1..6
  std::optional<int> width;       ///< lanes: 1, 2, 4, 8, 16 or 32
  /// Rate reported directly (hwloc's GB/s) when generation/width are not known.
  std::optional<Bandwidth> reported_rate;

  bool operator==(const PcieLink&) const = default;

  /// Data rate in one direction, or nullopt where the source did not say.
  [[nodiscard]] std::optional<Bandwidth> bandwidth() const {
    if (generation && width) {
      if (auto lane = pcie_lane_bandwidth(*generation)) return *lane * static_cast<double>(*width);
    }
    return reported_rate;
  }

  /// "Gen5 x16", "15.8 GB/s" or "unknown".
  [[nodiscard]] std::string describe() const {
    std::array<char, 64> buf{};
    if (generation && width) {
      std::snprintf(buf.data(), buf.size(), "Gen%d x%d (%s GT/s)", *generation, *width,
                    std::string(pcie_transfer_rate(*generation)).c_str());
    } else if (generation) {
      std::snprintf(buf.data(), buf.size(), "Gen%d", *generation);
    } else if (reported_rate) {
      std::snprintf(buf.data(), buf.size(), "%.2f GB/s", reported_rate->in_GBps());
    } else {
      return "unknown";
    }
    return buf.data();
  }
};

/// Bandwidth of a full-width link of a generation (Gen5 x16 = 63 GB/s).
constexpr Bandwidth pcie_x16_bandwidth(int generation) {
  return pcie_lane_bandwidth(generation).value_or(Bandwidth{}) * 16.0;
}

RAILCC_NAMESPACE_END
