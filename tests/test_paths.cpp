// Path classes on a hand-built layout whose answers follow from the definitions.
#include <doctest/doctest.h>

#include "railcc/topology.hpp"

using namespace railcc;

namespace {

PciBusId bus(const char* s) { return *PciBusId::parse(s); }
PcieLink gen(int g, int w) { return PcieLink{g, w, {}}; }
PciIdentity h100() { return PciIdentity{0x030200, 0x10de, 0x2330, {}, {}}; }

CpuInfo numa(int id, const char* cpus) {
  CpuInfo c;
  c.numa_id = id;
  c.affinity = *CpuSet::from_list(cpus);
  return c;
}

// cpu0 ─ hb0 ─ sw0 ─┬ gpuA, nic0
//               │     └ sw1 ─ gpuB
//               └ gpuC
//       hb1 ─ gpuD
// cpu1 ─ hb2 ─ gpuE, nic1
struct Layout {
  NodeTopology topo;
  DeviceId cpu0, cpu1, sw0, sw1, a, b, c, d, e, nic0, nic1, nvs;
  Layout() {
    cpu0 = topo.add_cpu(numa(0, "0-15"));
    cpu1 = topo.add_cpu(numa(1, "16-31"));
    const auto hb0 = topo.add_device(DeviceKind::host_bridge, cpu0, {}, {}, {});
    const auto hb1 = topo.add_device(DeviceKind::host_bridge, cpu0, {}, {}, {});
    const auto hb2 = topo.add_device(DeviceKind::host_bridge, cpu1, {}, {}, {});
    sw0 = topo.add_device(DeviceKind::pci_switch, hb0, bus("0000:10:00.0"), gen(5, 16), {});
    a = topo.add_device(DeviceKind::gpu, sw0, bus("0000:11:00.0"), gen(5, 16), h100());
    NicInfo ports;
    ports.ports.push_back(NicPort{"mlx5_0", 0, Bandwidth::gbps(400), 1, {}, {}, {}, {}});
    nic0 = topo.add_device(DeviceKind::nic, sw0, bus("0000:12:00.0"), gen(5, 16), {}, ports);
    sw1 = topo.add_device(DeviceKind::pci_switch, sw0, bus("0000:13:00.0"), gen(4, 16), {});
    b = topo.add_device(DeviceKind::gpu, sw1, bus("0000:14:00.0"), gen(5, 16), h100());
    c = topo.add_device(DeviceKind::gpu, hb0, bus("0000:20:00.0"), gen(5, 16), h100());
    d = topo.add_device(DeviceKind::gpu, hb1, bus("0000:30:00.0"), gen(5, 16), h100());
    e = topo.add_device(DeviceKind::gpu, hb2, bus("0000:40:00.0"), gen(5, 16), h100());
    ports.ports[0].name = "mlx5_1";
    ports.ports[0].dev = 1;
    nic1 = topo.add_device(DeviceKind::nic, hb2, bus("0000:41:00.0"), gen(5, 16), {}, ports);
    nvs = topo.add_detached_nvswitch(bus("0000:f0:00.0"));
    topo.add_nvlink(a, b, 2);  // a direct bundle
    topo.add_nvlink(c, nvs, 18);
    topo.add_nvlink(d, nvs, 12);
    topo.finalize();
  }
};

}  // namespace

TEST_CASE("PCIe path classes follow nvidia-smi's definitions") {
  Layout l;
  const auto& t = l.topo;
  CHECK(path_between(t, l.a, l.a).smi == SmiPathClass::self);
  CHECK(path_between(t, l.a, l.nic0).smi == SmiPathClass::pix);   // one switch
  CHECK(path_between(t, l.b, l.nic0).smi == SmiPathClass::pxb);   // sw1 then sw0
  CHECK(path_between(t, l.c, l.nic0).smi == SmiPathClass::phb);   // meet at hb0
  CHECK(path_between(t, l.d, l.nic0).smi == SmiPathClass::node);  // hb1 vs hb0, same CPU
  CHECK(path_between(t, l.e, l.nic0).smi == SmiPathClass::sys);   // other NUMA node
  CHECK(path_between(t, l.e, l.nic1).smi == SmiPathClass::phb);
}

TEST_CASE("NCCL's names differ from nvidia-smi's where NCCL has no NODE") {
  Layout l;
  const auto& t = l.topo;
  CHECK(path_between(t, l.a, l.nic0).nccl == NcclPathType::pix);
  CHECK(path_between(t, l.b, l.nic0).nccl == NcclPathType::pxb);
  CHECK(path_between(t, l.c, l.nic0).nccl == NcclPathType::phb);
  CHECK(path_between(t, l.d, l.nic0).nccl == NcclPathType::phb);
  CHECK(path_between(t, l.e, l.nic0).nccl == NcclPathType::sys);
  CHECK(path_between(t, l.a, l.a).nccl == NcclPathType::loc);
}

TEST_CASE("NVLink bundles and NVSwitch fabrics give NV#") {
  Layout l;
  const auto& t = l.topo;
  const auto ab = path_between(t, l.a, l.b);
  CHECK(ab.smi_label() == "NV2");
  CHECK(ab.nccl == NcclPathType::nvl);
  CHECK(ab.bandwidth == Bandwidth::GBps(50));             // 2 NVLink-4 links at 25 GB/s
  CHECK(path_between(t, l.b, l.a).smi_label() == "NV2");  // listed from one side only
  const auto cd = path_between(t, l.c, l.d);
  CHECK(cd.smi_label() == "NV12");  // the fewer switch links of the two GPUs
  CHECK(cd.bandwidth == Bandwidth::GBps(300));
  CHECK(path_between(t, l.c, l.nvs).smi_label() == "NV18");
  // No NVLink between a and c: the PCIe class shows.
  CHECK(path_between(t, l.a, l.c).smi == SmiPathClass::phb);
}

TEST_CASE("NCCL sees NVB through an intermediate GPU; nvidia-smi shows the PCIe class") {
  NodeTopology t;
  const auto cpu = t.add_cpu(numa(0, "0-7"));
  const auto sw = t.add_device(DeviceKind::pci_switch, cpu, bus("0000:01:00.0"), gen(3, 16), {});
  const PciIdentity v100{0x030200, 0x10de, 0x1db1, {}, {}};
  const auto x = t.add_device(DeviceKind::gpu, sw, bus("0000:02:00.0"), gen(3, 16), v100);
  const auto y = t.add_device(DeviceKind::gpu, sw, bus("0000:03:00.0"), gen(3, 16), v100);
  const auto z = t.add_device(DeviceKind::gpu, sw, bus("0000:04:00.0"), gen(3, 16), v100);
  t.add_nvlink(x, y, 1);
  t.add_nvlink(y, z, 2);
  t.finalize();
  const auto xz = path_between(t, x, z);
  CHECK(xz.smi == SmiPathClass::pix);
  CHECK(xz.nccl == NcclPathType::nvb);
  CHECK(path_between(t, x, y).smi_label() == "NV1");
  CHECK(path_between(t, x, y).bandwidth == Bandwidth::GBps(25));  // NVLink 2 on a V100
}

TEST_CASE("PCIe path bandwidth is the slowest trusted link") {
  Layout l;
  const auto& t = l.topo;
  CHECK(path_between(t, l.a, l.nic0).bandwidth == pcie_x16_bandwidth(5));
  CHECK(path_between(t, l.b, l.nic0).bandwidth == pcie_x16_bandwidth(4));  // sw1's uplink
}

TEST_CASE("Suspect links are skipped by bandwidth and flagged on the device") {
  NodeTopology t;
  const auto cpu = t.add_cpu(numa(0, "0-7"));
  const auto vm_bridge =
      t.add_device(DeviceKind::pci_switch, cpu, bus("0000:a1:00.0"), gen(1, 1), {});
  const auto g = t.add_device(DeviceKind::gpu, vm_bridge, bus("0000:a4:00.0"), gen(5, 16), h100());
  const auto n = t.add_device(DeviceKind::nic, vm_bridge, bus("0000:a3:00.0"), gen(5, 16), {});
  const auto real_sw =
      t.add_device(DeviceKind::pci_switch, cpu, bus("0000:b1:00.0"), gen(5, 16), {});
  const auto g2 = t.add_device(DeviceKind::gpu, real_sw, bus("0000:b4:00.0"), gen(5, 16), h100());
  t.finalize();
  CHECK(t.device(vm_bridge).link_suspect);
  CHECK_FALSE(t.device(real_sw).link_suspect);
  CHECK(path_between(t, g, n).bandwidth == pcie_x16_bandwidth(5));
  // g -> bridge -> cpu -> real_sw -> g2: the Gen1 x1 uplink is ignored, so Gen5 x16.
  CHECK(path_between(t, g, g2).bandwidth == pcie_x16_bandwidth(5));
}

TEST_CASE("Rails pair each NIC with its closest GPU, spreading ties") {
  Layout l;
  const auto rails = nic_rails(l.topo);
  REQUIRE(rails.size() == 2);
  CHECK(rails[0] == l.topo.device(l.a).gpu().index);
  CHECK(rails[1] == l.topo.device(l.e).gpu().index);

  // Two GPUs and two NICs under one switch: one NIC each.
  NodeTopology t;
  const auto cpu = t.add_cpu(numa(0, "0-7"));
  const auto sw = t.add_device(DeviceKind::pci_switch, cpu, bus("0000:01:00.0"), gen(4, 16), {});
  const auto g0 = t.add_device(DeviceKind::gpu, sw, bus("0000:02:00.0"), gen(4, 16), {});
  t.add_device(DeviceKind::nic, sw, bus("0000:03:00.0"), gen(4, 16), {});
  const auto g1 = t.add_device(DeviceKind::gpu, sw, bus("0000:04:00.0"), gen(4, 16), {});
  t.add_device(DeviceKind::nic, sw, bus("0000:05:00.0"), gen(4, 16), {});
  t.finalize();
  const auto r = nic_rails(t);
  CHECK(r[0] == t.device(g0).gpu().index);
  CHECK(r[1] == t.device(g1).gpu().index);
}

TEST_CASE("GPU affinity reports NUMA, CPUs, nearest NIC and NVLink peers") {
  Layout l;
  const auto aff = gpu_affinity(l.topo, l.a);
  CHECK(aff.numa_node == 0);
  CHECK(aff.cpus.to_list() == "0-15");
  REQUIRE(aff.nearest_nics.size() == 1);
  CHECK(aff.nearest_nics[0] == l.nic0);
  CHECK(aff.nic_path == SmiPathClass::pix);
  CHECK(aff.rail_nics == std::vector<DeviceId>{l.nic0});
  REQUIRE(aff.nvlink_peers.size() == 1);
  CHECK(aff.nvlink_peers[0].gpu == l.b);
  CHECK(aff.nvlink_peers[0].links == 2);
  CHECK(gpu_affinity(l.topo, l.e).numa_node == 1);
}

TEST_CASE("GPU indices default to PCI bus order; duplicates are an error") {
  NodeTopology t;
  const auto cpu = t.add_cpu(numa(0, "0-7"));
  const auto late = t.add_device(DeviceKind::gpu, cpu, bus("0000:b0:00.0"), {}, {});
  const auto early = t.add_device(DeviceKind::gpu, cpu, bus("0000:20:00.0"), {}, {});
  t.finalize();
  CHECK(t.device(early).gpu().index == 0);
  CHECK(t.device(late).gpu().index == 1);
  CHECK(t.gpus()[0] == early);

  NodeTopology dup;
  const auto c = dup.add_cpu(numa(0, "0-7"));
  GpuInfo g;
  g.index = 3;
  dup.add_device(DeviceKind::gpu, c, bus("0000:01:00.0"), {}, {}, g);
  dup.add_device(DeviceKind::gpu, c, bus("0000:02:00.0"), {}, {}, g);
  CHECK_THROWS_WITH_AS(dup.finalize(), doctest::Contains("GPU index 3 is used by both"),
                       InputError);

  NodeTopology same_bus;
  const auto c2 = same_bus.add_cpu(numa(0, "0-7"));
  same_bus.add_device(DeviceKind::gpu, c2, bus("0000:01:00.0"), {}, {});
  same_bus.add_device(DeviceKind::nic, c2, bus("0000:01:00.0"), {}, {});
  CHECK_THROWS_WITH_AS(same_bus.finalize(), doctest::Contains("duplicate PCI bus id 0000:01:00.0"),
                       InputError);
}

TEST_CASE("The matrix has nvidia-smi's layout") {
  Layout l;
  const auto m = render_topology_matrix(l.topo);
  CHECK(m.rfind("\tGPU0\tGPU1\tGPU2\tGPU3\tGPU4\tNIC0\tNIC1\tCPU Affinity\tNUMA Affinity\n", 0) ==
        0);
  // GPU0 is a (bus 11), GPU1 b (14), GPU2 c (20), GPU3 d (30), GPU4 e (40).
  CHECK(m.find("GPU0\t X \tNV2\tPHB\tNODE\tSYS\tPIX\tSYS\t0-15\t0\n") != std::string::npos);
  CHECK(m.find("NIC1\tSYS\tSYS\tSYS\tSYS\tPHB\tSYS\t X \n") != std::string::npos);
  CHECK(m.find("  NV#  = Connection traversing a bonded set of # NVLinks\n") != std::string::npos);
  CHECK(m.find("  NIC0: mlx5_0\n") != std::string::npos);
}
