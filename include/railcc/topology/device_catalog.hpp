// railcc/topology/device_catalog.hpp: what railcc knows about specific GPUs and NICs.
//
// A node description names devices by PCI vendor/device id and, for GPUs, by compute
// capability ("sm"). This catalog turns those into the capabilities the health check
// and the bandwidth model need: the PCIe generation a device can train at, its form
// factor, how many NVLinks it has and how fast each one is.
//
// Ids and names: the pci.ids database (pci.ids package, 2023-04-11). NVLink counts and
// per-link rates: NVIDIA's P100/V100/A100/H100 datasheets (an H100 SXM5 has 18 NVLink-4
// links at 25 GB/s each way: 450 GB/s, see docs/facts.md section 2).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "railcc/config.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// NVLink generation of a GPU architecture, from its compute capability x10 (sm=90 for
/// Hopper). nullopt for architectures without NVLink or unknown to railcc.
constexpr std::optional<int> nvlink_generation_for_sm(int sm) {
  if (sm >= 100 && sm < 110) return 5;  // Blackwell
  if (sm >= 90 && sm < 100) return 4;   // Hopper
  if (sm >= 80 && sm < 90) return 3;    // Ampere (A100; GA10x consumer parts have none)
  if (sm >= 70 && sm < 80) return 2;    // Volta
  if (sm >= 60 && sm < 70) return 1;    // Pascal
  return std::nullopt;
}

/// Nominal data rate of one NVLink in one direction, by generation: 20 GB/s for
/// NVLink 1, 25 GB/s for NVLink 2-4, 50 GB/s for NVLink 5.
constexpr std::optional<Bandwidth> nvlink_link_bandwidth(int generation) {
  switch (generation) {
    case 1: return Bandwidth::GBps(20);
    case 2:
    case 3:
    case 4: return Bandwidth::GBps(25);
    case 5: return Bandwidth::GBps(50);
    default: return std::nullopt;
  }
}

enum class GpuFormFactor : std::uint8_t { sxm, pcie };

struct GpuModel {
  std::uint16_t device_id;
  std::string_view name;
  int sm;              ///< compute capability x10
  int max_pcie_gen;    ///< generation of the host interface
  GpuFormFactor form;  ///< SXM parts have a fixed NVLink count; PCIe cards use optional bridges
  int nvlinks;         ///< links an SXM part has; 0 for PCIe cards
};

inline constexpr std::array<GpuModel, 16> nvidia_gpu_models{{
    {0x15f8, "Tesla P100 PCIe 16GB", 60, 3, GpuFormFactor::pcie, 0},
    {0x15f9, "Tesla P100 SXM2 16GB", 60, 3, GpuFormFactor::sxm, 4},
    {0x1db1, "Tesla V100 SXM2 16GB", 70, 3, GpuFormFactor::sxm, 6},
    {0x1db4, "Tesla V100 PCIe 16GB", 70, 3, GpuFormFactor::pcie, 0},
    {0x1db5, "Tesla V100 SXM2 32GB", 70, 3, GpuFormFactor::sxm, 6},
    {0x1db6, "Tesla V100 PCIe 32GB", 70, 3, GpuFormFactor::pcie, 0},
    {0x1db8, "Tesla V100 SXM3 32GB", 70, 3, GpuFormFactor::sxm, 6},
    {0x1df6, "Tesla V100S PCIe 32GB", 70, 3, GpuFormFactor::pcie, 0},
    {0x20b0, "A100 SXM4 40GB", 80, 4, GpuFormFactor::sxm, 12},
    {0x20b2, "A100 SXM4 80GB", 80, 4, GpuFormFactor::sxm, 12},
    {0x20b5, "A100 PCIe 80GB", 80, 4, GpuFormFactor::pcie, 0},
    {0x20f1, "A100 PCIe 40GB", 80, 4, GpuFormFactor::pcie, 0},
    {0x2322, "H800 PCIe", 90, 5, GpuFormFactor::pcie, 0},
    {0x2324, "H800", 90, 5, GpuFormFactor::sxm, 8},
    {0x2330, "H100 SXM5 80GB", 90, 5, GpuFormFactor::sxm, 18},
    {0x2331, "H100 PCIe", 90, 5, GpuFormFactor::pcie, 0},
}};

constexpr const GpuModel* find_gpu_model(std::uint16_t vendor, std::uint16_t device) {
  if (vendor != 0x10de) return nullptr;
  for (const auto& m : nvidia_gpu_models) {
    if (m.device_id == device) return &m;
  }
  return nullptr;
}

struct NicModel {
  std::uint16_t vendor_id;
  std::uint16_t device_id;
  std::string_view name;
  std::optional<int> max_pcie_gen;  ///< nullopt for virtual functions: the host decides
};

inline constexpr std::array<NicModel, 11> nic_models{{
    {0x15b3, 0x1017, "ConnectX-5", 3},
    {0x15b3, 0x1019, "ConnectX-5 Ex", 4},
    {0x15b3, 0x101b, "ConnectX-6", 4},
    {0x15b3, 0x101d, "ConnectX-6 Dx", 4},
    {0x15b3, 0x101e, "ConnectX mlx5 virtual function", std::nullopt},
    {0x15b3, 0x1021, "ConnectX-7", 5},
    {0x15b3, 0x1023, "ConnectX-8", 6},
    {0x15b3, 0xa2dc, "BlueField-3 (ConnectX-7)", 5},
    {0x1d0f, 0xefa0, "Elastic Fabric Adapter", std::nullopt},
    {0x1d0f, 0xefa1, "Elastic Fabric Adapter", std::nullopt},
    {0x1d0f, 0xefa2, "Elastic Fabric Adapter", std::nullopt},
}};

constexpr const NicModel* find_nic_model(std::uint16_t vendor, std::uint16_t device) {
  for (const auto& m : nic_models) {
    if (m.vendor_id == vendor && m.device_id == device) return &m;
  }
  return nullptr;
}

RAILCC_NAMESPACE_END
