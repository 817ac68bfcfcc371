#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "railcc/formats.hpp"
#include "railcc/hwloc/hwloc_topology.hpp"
#include "railcc/topology.hpp"
#include "test_support.hpp"

using namespace railcc;

namespace {
std::string data(const char* name) { return std::string(RAILCC_TEST_DATA_DIR) + "/" + name; }

std::string text_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The DGX-2 export with its first occurrence of `from` replaced by `to`.
std::string dgx2_with(const std::string& from, const std::string& to) {
  std::string text = text_of(data("hwloc-nvidiaDGX2.xml"));
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

std::string error_of(const std::string& xml) {
  return railcc_test::error_of([&] { parse_hwloc_xml(xml, "x.xml"); });
}
}  // namespace

TEST_CASE("hwloc XML of a DGX-2: 16 V100 SXM3 on 12 NVSwitches, 6 NVLinks each") {
  const auto t = read_hwloc_xml(data("hwloc-nvidiaDGX2.xml"));
  REQUIRE(t.gpus().size() == 16);
  std::size_t nvswitches = 0;
  for (const auto& d : t.devices()) nvswitches += d.kind == DeviceKind::nvswitch ? 1 : 0;
  CHECK(nvswitches == 12);
  CHECK(t.cpus().size() == 2);
  for (std::size_t i = 0; i < 16; ++i) {
    const auto g = t.gpus()[i];
    CAPTURE(i);
    CHECK(t.device(g).gpu().index == static_cast<int>(i));  // from the nvml<i> OS devices
    REQUIRE(t.gpu_model(g));
    CHECK(t.gpu_model(g)->name == "Tesla V100 SXM3 32GB");
    CHECK(t.nvlink_count(g) == 6);
    CHECK(t.numa_node_of(g) == (i < 8 ? 0 : 1));
    // Each of its 6 links goes to a different NVSwitch, as 25000 MB/s each in the matrix.
    std::size_t bundles = 0;
    for (const auto& l : t.nvlinks()) {
      if (l.gpu != g) continue;
      ++bundles;
      CHECK(l.count == 1);
      CHECK(t.device(l.peer).kind == DeviceKind::nvswitch);
    }
    CHECK(bundles == 6);
    // hwloc reports link rates in GB/s only: Gen3 x16 is 15.75 GB/s.
    CHECK(t.device(g).link.bandwidth()->in_GBps() == doctest::Approx(15.753846).epsilon(1e-5));
  }
  CHECK(t.device(t.gpus()[0]).bus_id->to_string() == "0000:34:00.0");
  CHECK(t.device(t.cpus()[0]).cpu().affinity.to_list() == "0-1");
  CHECK(t.device(t.cpus()[0]).cpu().vendor == "GenuineIntel");
  const auto p = path_between(t, t.gpus()[0], t.gpus()[15]);
  CHECK(p.smi_label() == "NV6");
  CHECK(p.bandwidth == Bandwidth::GBps(150));
  // PCIe: GPU0 and GPU1 share a switch (PIX), GPU0 and GPU2 two switches (PXB), and the
  // two sockets' GPUs meet only through the CPUs (SYS).
  const auto& d0 = t.device(t.gpus()[0]);
  const auto& d1 = t.device(t.gpus()[1]);
  const auto& d2 = t.device(t.gpus()[2]);
  CHECK(d0.parent == d1.parent);
  CHECK(t.device(d0.parent).bus_id->to_string() == "0000:32:00.0");
  CHECK(d0.parent != d2.parent);
  CHECK(check_node(t).size() == 16);  // the file lists no NIC: every GPU lacks one
}

TEST_CASE("PCIe classes of the DGX-2 without its NVLinks") {
  // Strip the NVLinks by round-tripping only the PCI tree through a fresh model.
  const auto t = read_hwloc_xml(data("hwloc-nvidiaDGX2.xml"));
  NodeTopology pci_only;
  std::vector<DeviceId> map(t.devices().size(), no_device);
  for (const auto& d : t.devices()) {
    if (d.kind == DeviceKind::cpu)
      map[d.id] = pci_only.add_cpu(d.cpu());
    else if (d.parent != no_device)
      map[d.id] = pci_only.add_device(d.kind, map[d.parent], d.bus_id, d.link, d.pci, d.info);
  }
  pci_only.finalize();
  const auto g = pci_only.gpus();
  CHECK(path_between(pci_only, g[0], g[1]).smi == SmiPathClass::pix);
  CHECK(path_between(pci_only, g[0], g[2]).smi == SmiPathClass::pxb);
  CHECK(path_between(pci_only, g[0], g[4]).smi == SmiPathClass::node);  // another host bridge
  CHECK(path_between(pci_only, g[0], g[8]).smi == SmiPathClass::sys);
  CHECK(path_between(pci_only, g[0], g[4]).nccl == NcclPathType::phb);
}

TEST_CASE("hwloc XML exports to NCCL XML keeping GPUs, NVLinks and path classes") {
  const auto t = read_hwloc_xml(data("hwloc-nvidiaDGX2.xml"));
  const auto back = parse_nccl_topology_xml(write_nccl_topology_xml(t), "exported");
  REQUIRE(back.gpus().size() == 16);
  for (std::size_t i = 0; i < 16; ++i) {
    CHECK(back.nvlink_count(back.gpus()[i]) == 6);
    CHECK(back.device(back.gpus()[i]).bus_id == t.device(t.gpus()[i]).bus_id);
    for (std::size_t j = 0; j < 16; ++j) {
      CHECK(path_between(back, back.gpus()[i], back.gpus()[j]).smi_label() ==
            path_between(t, t.gpus()[i], t.gpus()[j]).smi_label());
    }
  }
}

TEST_CASE("Live discovery of this machine") {
  const auto t = discover_node_topology();
  CHECK_FALSE(t.cpus().empty());
  std::size_t cpus = 0;
  for (auto c : t.cpus()) cpus += t.device(c).cpu().affinity.count();
  CHECK(cpus >= 1);
  // GPUs are NVIDIA display functions: whatever this machine has, each one found is one.
  for (auto g : t.gpus()) {
    CHECK(t.device(g).pci.vendor == pci_vendor::nvidia);
    CHECK(pci_class::is_display(*t.device(g).pci.class_code));
  }
  MESSAGE("this machine: " << t.gpus().size() << " GPUs, " << t.nics().size() << " NICs");
}

TEST_CASE("Bad hwloc input is an InputError naming the file") {
  CHECK_THROWS_WITH_AS(read_hwloc_xml("/nonexistent/topo.xml"),
                       doctest::Contains("/nonexistent/topo.xml: cannot open file"), InputError);
  const std::string path = "railcc_bad_hwloc.xml";
  {
    std::ifstream in(data("hwloc-nvidiaDGX2.xml"));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(path);
    out << text.substr(0, text.size() / 3);
  }
  std::string message;
  try {
    read_hwloc_xml(path);
  } catch (const InputError& e) {
    message = e.what();
  }
  CHECK(message.find(path) != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("hwloc XML that once crashed a reader is refused by name, or reads and exports") {
  // Found by fuzzing (tests/data/bad-input): files that segfaulted inside libhwloc 2.9's
  // XML reader, had railcc read an enum value hwloc never checked, leaked inside hwloc, or
  // read into topologies whose NCCL XML export railcc then refused (non-UTF-8 bytes, PCI
  // function 9, a NUMA node twice, a switch port with a network class).
  const std::string dir = std::string(RAILCC_TEST_DATA_DIR) + "/bad-input";
  std::size_t refused = 0;
  std::size_t read = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("hwloc_", 0) != 0) continue;
    CAPTURE(name);
    NodeTopology t;
    try {
      t = read_hwloc_xml(entry.path().string());
    } catch (const InputError& e) {
      // Named with its line: "<path>:<line>: ..." (or hwloc's own refusal, "<path>: hwloc").
      CHECK(std::string(e.what()).rfind(entry.path().string() + ":", 0) == 0);
      ++refused;
      continue;
    }
    ++read;
    const auto once = parse_nccl_topology_xml(write_nccl_topology_xml(t), "export");
    CHECK(parse_nccl_topology_xml(write_nccl_topology_xml(once), "export") == once);
  }
  CHECK(refused == 14);
  CHECK(read == 1);
}

TEST_CASE("hwloc XML: values railcc or hwloc would misread are refused with their line") {
  CHECK(error_of(text_of(data("hwloc-nvidiaDGX2.xml"))) == "(no error)");
  CHECK(error_of(dgx2_with(R"(bridge_type="1-1")", R"(bridge_type="7-1")")) ==
        "x.xml:52: <object>: bridge_type=\"7-1\" is not an hwloc bridge type (0-1 or 1-1: host "
        "or PCI upstream, PCI downstream)");
  CHECK(error_of(dgx2_with(R"(osdev_type="5")", R"(osdev_type="9")")) ==
        "x.xml:58: <object>: osdev_type=\"9\" is not an hwloc OS device type (0 to 5)");
  CHECK(error_of(dgx2_with(R"(pci_busid="0000:2b:00.0")", R"(pci_busid="0000:2b:00.9")")) ==
        "x.xml:52: <object>: pci_busid=\"0000:2b:00.9\" is not a PCI address (dddd:bb:dd.f, "
        "device 0 to 31, function 0 to 7)");
  // Two NUMA nodes numbered 0: well-formed, accepted by hwloc, refused by railcc (NCCL's
  // format has one <cpu> per NUMA node).
  CHECK(error_of(dgx2_with(R"(type="NUMANode" os_index="1")", R"(type="NUMANode" os_index="0")")) ==
        "x.xml: NUMA node os_index 0 appears twice; NUMA node numbers are unique");
  CHECK(error_of(dgx2_with("<info name=\"CPUVendor\" value=\"GenuineIntel\"/>",
                           "<info name=\"CPUVendor\" value=\"Genuine\xffIntel\"/>")) ==
        "x.xml:14: not UTF-8 text (byte 0xff)");
  CHECK(error_of(dgx2_with("<info name=\"NVIDIASerial\"", "`<info name=\"NVIDIASerial\"")) ==
        "x.xml:58: <object>: text inside <object>, which holds none in hwloc XML");
  CHECK(
      error_of(dgx2_with(R"(complete_nodeset="0x00000001" gp_index="294")", R"(gp_index="294")")) ==
      "x.xml:19: <object>: a NUMANode object needs cpuset, complete_cpuset, nodeset and "
      "complete_nodeset");
  CHECK(error_of(dgx2_with(R"(<object type="PCIDev")", R"(<object type="PCIDev" cpuset="0x1")"))
            .find("a PCIDev object with a cpuset or nodeset") != std::string::npos);
  CHECK(error_of(dgx2_with(R"(type="NUMANode" os_index="0")", R"(type="NU" os_index="0")")) ==
        "x.xml:19: <object>: type=\"NU\" is not an hwloc object type (Machine, Package, Core, PU, "
        "NUMANode, L1Cache, Group, Bridge, PCIDev, OSDev, ...)");
  CHECK(error_of(dgx2_with(R"(nodeset="0x00000001")", R"(nodeset="0x0000000g")")) ==
        "x.xml:13: <object>: nodeset=\"0x0000000g\" is not an hwloc bitmap (0x-prefixed hex "
        "words, comma-separated)");
  CHECK(error_of(dgx2_with(R"(gp_index="294")", R"(gp_index="294" gp_index="295")")) ==
        "x.xml:19: <object>: attribute 'gp_index' given twice");
  // hwloc abort()s the process on a topology without a NUMA node.
  CHECK(error_of(R"(<topology version="2.0"><object type="Machine" cpuset="0x1" )"
                 R"(complete_cpuset="0x1" nodeset="0x1" complete_nodeset="0x1"/></topology>)") ==
        "x.xml:1: <topology>: no NUMANode object; hwloc needs at least one");
  CHECK(error_of("<graphs/>") ==
        "x.xml:1: <graphs>: root element <graphs> is not <topology>: this is not an hwloc XML "
        "file");
  CHECK(error_of(dgx2_with("<topology version=\"2.0\">", "<topology version=\"2.0\"><Bad/>")) ==
        "x.xml:3: <Bad>: element <Bad> is not an hwloc XML element");
}

TEST_CASE("hwloc XML nested deeper than any export is refused, not a stack overflow") {
  std::string xml = R"(<topology version="2.0"><object type="Machine" os_index="0" )"
                    R"(cpuset="0x1" complete_cpuset="0x1" nodeset="0x1" complete_nodeset="0x1">)";
  const int depth = 20000;
  for (int i = 0; i < depth; ++i) {
    xml += R"(<object type="Group" cpuset="0x1" complete_cpuset="0x1" nodeset="0x1" )"
           R"(complete_nodeset="0x1">)";
  }
  for (int i = 0; i < depth; ++i) xml += "</object>";
  xml += "</object></topology>";
  CHECK(error_of(xml).find("elements nested more than 128 deep") != std::string::npos);
}

TEST_CASE("hwloc XML that is well-formed but no topology is hwloc's error, named") {
  // This reaches hwloc's own reader, which refuses it: a distance matrix whose index
  // list is shorter than its length says.
  const std::string sets =
      R"(cpuset="0x1" complete_cpuset="0x1" nodeset="0x1" complete_nodeset="0x1")";
  const std::string message = error_of(
      R"(<topology version="2.0"><object type="Machine" )" + sets + R"(><object type="NUMANode" )" +
      R"(os_index="0" )" + sets + R"(/><object type="PU" os_index="0" )" + sets +
      R"(/></object><distances2 type="PU" nbobjs="2" kind="5" indexing="os"><indexes length="9">)"
      R"(0 1</indexes></distances2></topology>)");
  CHECK_MESSAGE(message.rfind("x.xml: hwloc", 0) == 0, message);
}

TEST_CASE("Every hwloc import exports NCCL XML that reads back") {
  const auto t = read_hwloc_xml(data("hwloc-nvidiaDGX2.xml"));
  const auto once = parse_nccl_topology_xml(write_nccl_topology_xml(t), "export");
  const auto twice = parse_nccl_topology_xml(write_nccl_topology_xml(once), "export");
  CHECK(once == twice);
  CHECK(once.gpus().size() == 16);
  // A switch port whose function reports a network class is still written as a switch,
  // and a non-NVIDIA display function (a BMC's VGA) as the plain device railcc keeps it as.
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{R"(pci_type="0604 [10b5:9781] [10b5:9781] b0")",
                                            R"(pci_type="0200 [10b5:9781] [10b5:9781] b0")"},
        {R"(pci_type="0680 [10de:1ac2] [0000:0000] a1")",
         R"(pci_type="0300 [1a03:2000] [1a03:2000] 41")"}}) {
    const auto odd = parse_hwloc_xml(dgx2_with(from, to), "odd.xml");
    const auto exported = parse_nccl_topology_xml(write_nccl_topology_xml(odd), "export");
    CHECK(exported.gpus().size() == 16);
    CHECK(exported.nics().size() == odd.nics().size());
  }
}
