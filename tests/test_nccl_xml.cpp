// Every shipped NCCL topology file, asserted against what the file says.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "railcc/formats.hpp"
#include "railcc/topology.hpp"

using namespace railcc;

namespace {

std::string data(const char* name) { return std::string(RAILCC_TEST_DATA_DIR) + "/" + name; }

std::vector<std::string> gpu_buses(const NodeTopology& t) {
  std::vector<std::string> out;
  for (auto g : t.gpus()) out.push_back(t.device(g).bus_id->to_string());
  return out;
}

std::size_t count_kind(const NodeTopology& t, DeviceKind k) {
  std::size_t n = 0;
  for (const auto& d : t.devices()) n += d.kind == k ? 1 : 0;
  return n;
}

/// The NIC under the same PCIe switch as a GPU.
DeviceId nic_beside(const NodeTopology& t, DeviceId gpu) {
  for (auto n : t.nics()) {
    if (t.device(n).parent == t.device(gpu).parent) return n;
  }
  return no_device;
}

const char* const topology_files[] = {"ibmcloud-gx3d-8xh100-nccl-topo.xml",
                                      "azure-ndv5-topo.xml",
                                      "azure-ndv4-topo.xml",
                                      "azure-ndv2-topo.xml",
                                      "azure-ncv4-topo.xml",
                                      "aws-p5.48xlarge-nccl-topo.xml"};

}  // namespace

TEST_CASE("IBM Cloud gx3d: 8 H100 SXM5, 8 CX-7 VFs at 200G, one NIC beside each GPU") {
  const auto t = read_nccl_topology_xml(data("ibmcloud-gx3d-8xh100-nccl-topo.xml"));
  CHECK(gpu_buses(t) == std::vector<std::string>{"0000:a4:00.0", "0000:ae:00.0", "0000:b8:00.0",
                                                 "0000:c2:00.0", "0000:cc:00.0", "0000:d6:00.0",
                                                 "0000:e0:00.0", "0000:ea:00.0"});
  REQUIRE(t.nics().size() == 8);
  CHECK(t.cpus().size() == 2);
  CHECK(count_kind(t, DeviceKind::pci_switch) == 8);
  CHECK(count_kind(t, DeviceKind::nvswitch) == 4);
  for (auto g : t.gpus()) {
    const auto& d = t.device(g);
    CAPTURE(d.bus_id->to_string());
    CHECK(d.gpu().sm == 90);
    CHECK(d.gpu().rank == d.gpu().index);
    CHECK(d.gpu().gdr == true);
    REQUIRE(t.gpu_model(g));
    CHECK(t.gpu_model(g)->name == "H100 SXM5 80GB");
    CHECK(d.link == PcieLink{5, 16, {}});  // link_width="0" read as x16
    CHECK(t.nvlink_count(g) == 18);        // 5 + 5 + 4 + 4 to four NVSwitches
    CHECK(t.numa_node_of(g) == (d.gpu().index < 4 ? 0 : 1));
    // Exactly one NIC at PIX, the one under the same bridge.
    int pix = 0;
    for (auto n : t.nics()) pix += path_between(t, g, n).smi == SmiPathClass::pix ? 1 : 0;
    CHECK(pix == 1);
    const auto near = nearest_nics(t, g);
    REQUIRE(near.size() == 1);
    CHECK(near[0] == nic_beside(t, g));
  }
  // The VM's bridges report 2.5 GT/s x1 and are marked suspect.
  for (const auto& d : t.devices()) {
    if (d.kind != DeviceKind::pci_switch) continue;
    CHECK(d.link == PcieLink{1, 1, {}});
    CHECK(d.link_suspect);
    CHECK(d.pci.vendor == 0x104c);
  }
  // NIC0 is mlx5_0 (NCCL dev 0), beside GPU7; mlx5_7 is beside GPU0.
  CHECK(t.nic_name(t.nics()[0]) == "mlx5_0");
  CHECK(t.device(t.nics()[0]).bus_id->to_string() == "0000:e9:00.0");
  const auto rails = nic_rails(t);
  for (std::size_t i = 0; i < 8; ++i) {
    CHECK(rails[i] == 7 - static_cast<int>(i));
    CHECK(t.nic_speed(t.nics()[i]) == Bandwidth::gbps(200));
    const auto& p = t.device(t.nics()[i]).nic().ports.at(0);
    CHECK(p.port == 1);
    CHECK(p.max_connections == 131072);
    CHECK(p.gdr == true);
  }
  const auto& cpu0 = t.device(t.cpus()[0]).cpu();
  CHECK(cpu0.affinity.to_list() == "0-79");
  CHECK(cpu0.vendor == "GenuineIntel");
  CHECK(cpu0.model_id == 143);
  CHECK(t.device(t.cpus()[1]).cpu().affinity.to_list() == "80-159");
  // Any two GPUs: NV18 through the NVSwitches, 450 GB/s each way.
  const auto p = path_between(t, t.gpus()[0], t.gpus()[7]);
  CHECK(p.smi_label() == "NV18");
  CHECK(p.nccl == NcclPathType::nvl);
  CHECK(p.bandwidth == Bandwidth::GBps(450));
  // GPU to its NIC: Gen5 x16, the 2.5 GT/s x1 placeholder ignored.
  CHECK(path_between(t, t.gpus()[0], nic_beside(t, t.gpus()[0])).bandwidth ==
        pcie_x16_bandwidth(5));
  // GPU to a NIC on the other socket: SYS.
  CHECK(path_between(t, t.gpus()[0], t.nics()[0]).smi == SmiPathClass::sys);
  // The health check reports the eight placeholder bridges and nothing else.
  const auto findings = check_node(t);
  REQUIRE(findings.size() == 8);
  for (const auto& f : findings) {
    CHECK(f.kind == FindingKind::pcie_link);
    CHECK(f.message.find("Gen1 x1 (2.5 GT/s)") != std::string::npos);
    CHECK(f.message.find("placeholder bridge") != std::string::npos);
  }
  CHECK(findings[0].bus_id == "0000:a1:00.0");
  CHECK(t.notes().size() == 1);
  CHECK(t.notes()[0].find("16 link(s) with link_width=\"0\"") != std::string::npos);
}

TEST_CASE("Azure ND H100 v5: 8 virtual switches of one GPU and one IB NIC each") {
  const auto t = read_nccl_topology_xml(data("azure-ndv5-topo.xml"));
  CHECK(t.cpus().size() == 2);
  CHECK(gpu_buses(t) == std::vector<std::string>{"0001:00:00.0", "0002:00:00.0", "0003:00:00.0",
                                                 "0008:00:00.0", "0009:00:00.0", "000a:00:00.0",
                                                 "000b:00:00.0", "000c:00:00.0"});
  REQUIRE(t.nics().size() == 8);
  CHECK(count_kind(t, DeviceKind::pci_switch) == 8);
  const char* nic_of_gpu[] = {"0101:00:00.0", "0102:00:00.0", "0103:00:00.0", "0104:00:00.0",
                              "0105:00:00.0", "0106:00:00.0", "0107:00:00.0", "0108:00:00.0"};
  for (std::size_t i = 0; i < 8; ++i) {
    const auto g = t.gpus()[i];
    CHECK(t.device(g).pci.class_code == 0x030200);
    CHECK(t.device(g).link == PcieLink{5, 16, {}});
    CHECK(t.numa_node_of(g) == (i < 4 ? 0 : 1));
    const auto near = nearest_nics(t, g);
    REQUIRE(near.size() == 1);
    CHECK(t.device(near[0]).bus_id->to_string() == nic_of_gpu[i]);
    CHECK(t.device(near[0]).pci.class_code == 0x020700);
    CHECK(path_between(t, g, near[0]).smi == SmiPathClass::pix);
    CHECK(t.nvlink_count(g) == 0);  // the file has no <gpu> children
  }
  CHECK(t.device(t.cpus()[0]).cpu().affinity.to_list() == "0-47");
  CHECK(t.device(t.cpus()[1]).cpu().affinity.to_list() == "48-95");
  CHECK(path_between(t, t.gpus()[0], t.gpus()[1]).smi == SmiPathClass::node);
  CHECK(path_between(t, t.gpus()[0], t.gpus()[4]).smi == SmiPathClass::sys);
  CHECK(check_node(t).empty());
}

TEST_CASE("Azure ND A100 v4: 4 NUMA nodes, 2 GPUs and 2 NICs per Gen4 switch") {
  const auto t = read_nccl_topology_xml(data("azure-ndv4-topo.xml"));
  CHECK(t.cpus().size() == 4);
  CHECK(t.gpus().size() == 8);
  CHECK(t.nics().size() == 8);
  CHECK(count_kind(t, DeviceKind::pci_switch) == 4);
  for (const auto& d : t.devices()) {
    if (d.kind == DeviceKind::cpu) continue;
    CHECK(d.link == PcieLink{4, 16, {}});
  }
  // GPU0 is 0001:00:00.0 (lowest bus), on NUMA node 1 with 0002 and NICs 0101, 0102.
  const auto g0 = t.gpus()[0];
  CHECK(t.device(g0).bus_id->to_string() == "0001:00:00.0");
  CHECK(t.numa_node_of(g0) == 1);
  CHECK(path_between(t, g0, t.gpus()[1]).smi == SmiPathClass::pix);
  CHECK(path_between(t, g0, t.gpus()[2]).smi == SmiPathClass::sys);
  CHECK(nearest_nics(t, g0).size() == 2);
  // Rails spread the switch's two NICs over its two GPUs.
  const auto rails = nic_rails(t);
  for (std::size_t i = 0; i < 8; ++i) CHECK(rails[i] == static_cast<int>(i));
  CHECK(check_node(t).empty());
}

TEST_CASE("Azure NDv2: 8 GPUs share one NIC on NUMA node 0") {
  const auto t = read_nccl_topology_xml(data("azure-ndv2-topo.xml"));
  CHECK(t.cpus().size() == 2);
  CHECK(t.gpus().size() == 8);
  REQUIRE(t.nics().size() == 1);
  CHECK(t.numa_node_of(t.nics()[0]) == 0);
  CHECK(t.device(t.nics()[0]).bus_id->to_string() == "0101:00:00.0");
  CHECK(t.device(t.gpus()[0]).link == PcieLink{4, 16, {}});  // the file says "16 GT/s"
  CHECK(t.device(t.cpus()[0]).cpu().affinity.to_list() == "0-19");
  CHECK(t.device(t.cpus()[0]).cpu().model_id == 85);
  for (auto g : t.gpus()) {
    CHECK(nearest_nics(t, g) == std::vector<DeviceId>{t.nics()[0]});
  }
  const auto findings = check_node(t);
  std::size_t distance = 0;
  std::size_t numa = 0;
  for (const auto& f : findings) {
    distance += f.kind == FindingKind::gpu_nic_distance ? 1 : 0;
    numa += f.kind == FindingKind::numa_mismatch ? 1 : 0;
  }
  CHECK(distance == 8);
  CHECK(numa == 4);
  CHECK(findings.size() == 12);
}

TEST_CASE("Azure NC A100 v4: one GPU per NUMA node, a PCI-less Ethernet NIC") {
  const auto t = read_nccl_topology_xml(data("azure-ncv4-topo.xml"));
  CHECK(t.cpus().size() == 4);
  REQUIRE(t.gpus().size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto g = t.gpus()[i];
    CHECK(t.numa_node_of(g) == static_cast<int>(i));
    CHECK(t.device(g).gpu().sm == 80);
    CHECK(t.gpu_model(g)->name == "A100 PCIe 80GB");
    CHECK(t.device(g).link.generation == std::nullopt);  // link_speed=""
    CHECK(t.device(g).link.width == 16);                 // link_width="0"
    CHECK(t.nvlink_count(g) == 0);  // the <nvlink> of each GPU targets the GPU itself
  }
  REQUIRE(t.nics().size() == 1);
  const auto nic = t.nics()[0];
  CHECK_FALSE(t.device(nic).bus_id);
  CHECK(t.nic_name(nic) == "eth0");
  CHECK(t.nic_speed(nic) == Bandwidth::gbps(100));
  CHECK(t.device(nic).nic().ports[0].gdr == false);
  CHECK(path_between(t, t.gpus()[0], nic).smi == SmiPathClass::node);
  CHECK(path_between(t, t.gpus()[0], nic).nccl == NcclPathType::phb);
  CHECK(path_between(t, t.gpus()[1], nic).smi == SmiPathClass::sys);
  CHECK(t.device(t.cpus()[3]).cpu().affinity.to_list() == "72-95");
  bool noted_self_links = false;
  for (const auto& n : t.notes()) noted_self_links |= n.find("4 <nvlink>") != std::string::npos;
  CHECK(noted_self_links);
}

TEST_CASE("AWS p5.48xlarge: 8 switches of 4 unclassed Gen5 x16 functions") {
  const auto t = read_nccl_topology_xml(data("aws-p5.48xlarge-nccl-topo.xml"));
  CHECK(t.cpus().size() == 2);
  CHECK(t.gpus().empty());
  CHECK(t.nics().empty());
  CHECK(count_kind(t, DeviceKind::pci_switch) == 8);
  CHECK(count_kind(t, DeviceKind::pci_device) == 32);
  for (const auto& d : t.devices()) {
    if (d.kind == DeviceKind::pci_switch) {
      CHECK(d.children.size() == 4);
      CHECK(d.link == PcieLink{});
    }
    if (d.kind == DeviceKind::pci_device) CHECK(d.link == PcieLink{5, 16, {}});  // "32 GT/s PCIe/s"
  }
  CHECK(t.device(t.cpus()[0]).cpu().vendor == "AuthenticAMD");
  REQUIRE(t.notes().size() == 1);
  CHECK(t.notes()[0].find("32 PCI function(s) without a class") != std::string::npos);
}

TEST_CASE("The NCCL graph file is refused with a message saying what it is") {
  CHECK_THROWS_WITH_AS(read_nccl_topology_xml(data("azure-ncv4-graph.xml")),
                       doctest::Contains("azure-ncv4-graph.xml: this is an NCCL graph file"),
                       InputError);
}

TEST_CASE("Export then import gives the same model, and export is stable") {
  for (const char* file : topology_files) {
    CAPTURE(file);
    const auto original = read_nccl_topology_xml(data(file));
    const auto xml = write_nccl_topology_xml(original);
    const auto again = parse_nccl_topology_xml(xml, "exported");
    CHECK(again == original);
    CHECK(write_nccl_topology_xml(again) == xml);
    // Derived views agree as well.
    CHECK(render_topology_matrix(again) == render_topology_matrix(original));
  }
}

TEST_CASE("Export writes NCCL's spellings") {
  const auto t = read_nccl_topology_xml(data("ibmcloud-gx3d-8xh100-nccl-topo.xml"));
  const auto xml = write_nccl_topology_xml(t);
  CHECK(xml.rfind("<system version=\"1\">", 0) == 0);
  CHECK(xml.find(
            "<pci busid=\"0000:a4:00.0\" class=\"0x030200\" vendor=\"0x10de\" device=\"0x2330\"") !=
        std::string::npos);
  CHECK(xml.find("link_speed=\"32.0 GT/s PCIe\" link_width=\"16\"") != std::string::npos);
  CHECK(xml.find("<nvlink target=\"0000:f5:00.0\" count=\"5\" tclass=\"0x068000\" />") !=
        std::string::npos);
  CHECK(xml.find("<net name=\"mlx5_7\" dev=\"7\" speed=\"200000\" port=\"1\" latency=\"0.000000\" "
                 "guid=\"0x34f4e30003e1a258\" maxconn=\"131072\" gdr=\"1\" />") !=
        std::string::npos);
  CHECK(xml.find("affinity=\"0000ffff,ffffffff,ffffffff\"") != std::string::npos);
}
