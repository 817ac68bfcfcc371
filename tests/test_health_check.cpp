// Health-check rules, each on a node built to break exactly that rule.
#include <doctest/doctest.h>

#include <algorithm>

#include "railcc/topology.hpp"

using namespace railcc;

namespace {

PciBusId bus(const char* s) { return *PciBusId::parse(s); }
PcieLink gen(int g, int w) { return PcieLink{g, w, {}}; }
const PciIdentity h100{0x030200, 0x10de, 0x2330, {}, {}};
const PciIdentity cx7{0x020700, 0x15b3, 0x1021, {}, {}};

NicInfo port(const char* name, int dev, double gbps) {
  NicInfo n;
  n.ports.push_back(NicPort{name, dev, Bandwidth::gbps(gbps), 1, {}, {}, {}, {}});
  return n;
}

CpuInfo numa(int id) {
  CpuInfo c;
  c.numa_id = id;
  c.affinity = *CpuSet::from_list(id == 0 ? "0-7" : "8-15");
  return c;
}

/// Two NUMA nodes, each with two switches holding one H100 and one 400G CX-7, all Gen5
/// x16, 18 NVLinks per GPU to one NVSwitch: a healthy HGX-style node.
struct HealthyNode {
  NodeTopology topo;
  std::vector<DeviceId> gpus, nics, switches, cpus;
  DeviceId nvswitch = no_device;
  explicit HealthyNode(int nvlinks = 18, double nic3_gbps = 400, int gpu2_width = 16) {
    cpus = {topo.add_cpu(numa(0)), topo.add_cpu(numa(1))};
    nvswitch = topo.add_detached_nvswitch(bus("0000:f0:00.0"));
    for (int i = 0; i < 4; ++i) {
      char b[16];
      std::snprintf(b, sizeof b, "0000:%02x:00.0", 0x10 * (i + 1));
      const auto sw = topo.add_device(DeviceKind::pci_switch, cpus[static_cast<std::size_t>(i / 2)],
                                      bus(b), gen(5, 16), {});
      switches.push_back(sw);
      std::snprintf(b, sizeof b, "0000:%02x:00.0", 0x10 * (i + 1) + 1);
      gpus.push_back(
          topo.add_device(DeviceKind::gpu, sw, bus(b), gen(5, i == 2 ? gpu2_width : 16), h100));
      std::snprintf(b, sizeof b, "0000:%02x:00.0", 0x10 * (i + 1) + 2);
      std::string name = "mlx5_" + std::to_string(i);
      const double speed = i == 3 ? nic3_gbps : 400;
      nics.push_back(topo.add_device(DeviceKind::nic, sw, bus(b), gen(5, 16), cx7,
                                     port(name.c_str(), i, speed)));
      topo.add_nvlink(gpus.back(), nvswitch, nvlinks);
    }
    topo.finalize();
  }
};

std::vector<Finding> of_kind(const std::vector<Finding>& all, FindingKind k) {
  std::vector<Finding> out;
  std::copy_if(all.begin(), all.end(), std::back_inserter(out),
               [&](const Finding& f) { return f.kind == k; });
  return out;
}

}  // namespace

TEST_CASE("A healthy node has no findings") {
  HealthyNode n;
  const auto findings = check_node(n.topo);
  for (const auto& f : findings) MESSAGE(f.message);
  CHECK(findings.empty());
}

namespace {
/// GPU on NUMA node 0, the only NIC on NUMA node 1.
NodeTopology split_node() {
  NodeTopology t;
  const auto c0 = t.add_cpu(numa(0));
  const auto c1 = t.add_cpu(numa(1));
  const auto s0 = t.add_device(DeviceKind::pci_switch, c0, bus("0000:10:00.0"), gen(5, 16), {});
  const auto s1 = t.add_device(DeviceKind::pci_switch, c1, bus("0000:80:00.0"), gen(5, 16), {});
  t.add_device(DeviceKind::gpu, s0, bus("0000:11:00.0"), gen(5, 16), h100);
  t.add_device(DeviceKind::nic, s1, bus("0000:81:00.0"), gen(5, 16), cx7, port("mlx5_0", 0, 400));
  t.finalize();
  return t;
}
}  // namespace

TEST_CASE("A GPU without a NIC at PIX/PXB is reported by bus id") {
  const auto t = split_node();
  const auto f = of_kind(check_node(t), FindingKind::gpu_nic_distance);
  REQUIRE(f.size() == 1);
  CHECK(f[0].bus_id == "0000:11:00.0");
  CHECK(f[0].message.find("nearest is NIC mlx5_0 (0000:81:00.0) at SYS") != std::string::npos);
}

TEST_CASE("A GPU whose rail NIC sits on the other NUMA node is reported") {
  const auto t = split_node();
  const auto f = of_kind(check_node(t), FindingKind::numa_mismatch);
  REQUIRE(f.size() == 1);
  CHECK(f[0].bus_id == "0000:11:00.0");
  CHECK(f[0].message.find("NUMA node 0") != std::string::npos);
  CHECK(f[0].message.find("NUMA node 1") != std::string::npos);
  HealthyNode healthy;
  CHECK(of_kind(check_node(healthy.topo), FindingKind::numa_mismatch).empty());
}

TEST_CASE("A GPU link trained below Gen5 x16 is reported, and only that one") {
  HealthyNode n(18, 400, /*gpu2_width=*/8);
  const auto f = of_kind(check_node(n.topo), FindingKind::pcie_link);
  REQUIRE(f.size() == 1);
  CHECK(f[0].bus_id == "0000:31:00.0");
  CHECK(f[0].message.find("Gen5 x8") != std::string::npos);
  CHECK(f[0].message.find("supports Gen5 x16") != std::string::npos);
}

TEST_CASE("A 400G NIC behind a Gen4 switch uplink is reported at the switch") {
  NodeTopology t;
  const auto cpu = t.add_cpu(numa(0));
  const auto sw = t.add_device(DeviceKind::pci_switch, cpu, bus("0000:10:00.0"), gen(4, 16), {});
  t.add_device(DeviceKind::nic, sw, bus("0000:11:00.0"), gen(5, 16), cx7, port("mlx5_0", 0, 400));
  t.finalize();
  const auto f = of_kind(check_node(t), FindingKind::pcie_link);
  REQUIRE(f.size() == 1);
  CHECK(f[0].bus_id == "0000:10:00.0");
  CHECK(f[0].message.find("400 Gb/s NIC needs Gen5 x16") != std::string::npos);
  CHECK_FALSE(t.device(sw).link_suspect);  // 2x slower: plausible, and really too slow
}

TEST_CASE("NICs of mixed speeds are reported naming the odd one") {
  HealthyNode n(18, /*nic3_gbps=*/200);
  const auto f = of_kind(check_node(n.topo), FindingKind::nic_speed_mix);
  REQUIRE(f.size() == 1);
  CHECK(f[0].bus_id == "0000:42:00.0");
  CHECK(f[0].message.find("200 Gb/s: NIC mlx5_3 (0000:42:00.0)") != std::string::npos);
}

TEST_CASE("An SXM GPU without its NVLink count is reported") {
  HealthyNode n(/*nvlinks=*/16);
  const auto f = of_kind(check_node(n.topo), FindingKind::nvlink_count);
  REQUIRE(f.size() == 4);
  CHECK(f[0].message.find("16 NVLinks, but an H100 SXM5 80GB has 18") != std::string::npos);
}

TEST_CASE("A node without GPUs has nothing to check") {
  NodeTopology t;
  const auto cpu = t.add_cpu(numa(0));
  t.add_device(DeviceKind::nic, cpu, bus("0000:00:03.0"), {}, {0x020000, 0x1af4, 0x1041, {}, {}});
  t.finalize();
  CHECK(check_node(t).empty());
}
