// Bad NCCL topology XML: each case fails with an InputError naming the input, the line,
// the element and the problem; never a crash or a partial topology.
#include <doctest/doctest.h>

#include <string>

#include "check_contains.hpp"
#include "railcc/formats.hpp"

using namespace railcc;

namespace {

std::string error_of(const std::string& xml) {
  try {
    parse_nccl_topology_xml(xml, "bad.xml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

// A minimal valid file with one GPU and one NIC, into which each case injects a fault.
std::string node(const std::string& gpu_attrs = "dev=\"0\" sm=\"90\"",
                 const std::string& gpu_inner = "",
                 const std::string& net_attrs = "name=\"mlx5_0\" dev=\"0\" speed=\"400000\"",
                 const std::string& extra = "") {
  return "<system version=\"1\">\n"
         "  <cpu numaid=\"0\" affinity=\"0000ffff\">\n"
         "    <pci busid=\"0000:10:00.0\" class=\"0x060400\" link_speed=\"32.0 GT/s PCIe\" "
         "link_width=\"16\">\n"
         "      <pci busid=\"0000:11:00.0\" class=\"0x030200\" link_speed=\"32.0 GT/s PCIe\" "
         "link_width=\"16\">\n"
         "        <gpu " +
         gpu_attrs + ">" + gpu_inner +
         "</gpu>\n"
         "      </pci>\n"
         "      <pci busid=\"0000:12:00.0\" class=\"0x020700\" link_speed=\"32.0 GT/s PCIe\" "
         "link_width=\"16\">\n"
         "        <nic><net " +
         net_attrs +
         "/></nic>\n"
         "      </pci>\n" +
         extra +
         "    </pci>\n"
         "  </cpu>\n"
         "</system>\n";
}

std::string one_pci(const std::string& attrs, const std::string& inner = "") {
  return "<system version=\"1\"><cpu numaid=\"0\"><pci " + attrs + ">" + inner +
         "</pci></cpu></system>";
}

const std::string dev0 = "dev=\"0\"";

}  // namespace

TEST_CASE("The fault-free base case parses") {
  const auto t = parse_nccl_topology_xml(node(), "good.xml");
  CHECK(t.gpus().size() == 1);
  CHECK(t.nics().size() == 1);
}

TEST_CASE("Malformed and truncated XML name the file and line") {
  CHECK_CONTAINS(error_of("<system version=\"1\">\n<cpu numaid=\"0\">\n</system>"),
                 "bad.xml:3: malformed XML");
  const auto full = node();
  const auto cut = error_of(full.substr(0, full.size() / 2));
  CHECK_CONTAINS(cut, "bad.xml:");
  CHECK_CONTAINS(cut, "malformed XML");
  CHECK_CONTAINS(error_of(""), "bad.xml");
  CHECK_CONTAINS(error_of("not xml at all"), "bad.xml");
  CHECK_CONTAINS(error_of("<system version=\"1\"/><system version=\"1\"/>"),
                 "a second top-level element");
  CHECK_CONTAINS(error_of("<system version=\"1\">\n<cpu numaid=\"0\" ar\xff"
                          "ch=\"x\"/></system>"),
                 "bad.xml:2: not UTF-8 text (byte 0xff)");
  // Multi-byte UTF-8 is text like any other.
  CHECK_CONTAINS(error_of("<system version=\"1\"><cpu numaid=\"0\" vendor=\"\xc3\xa9\"/></system>"),
                 "(no error)");
}

TEST_CASE("Wrong roots and versions are refused") {
  CHECK_CONTAINS(error_of("<topology version=\"2.0\"/>"),
                 "bad.xml:1: <topology>: root element is not <system>");
  CHECK_CONTAINS(error_of("<system version=\"2\"/>"), "version \"2\"");
  CHECK_CONTAINS(error_of("<graphs version=\"1\"/>"), "NCCL graph file");
}

TEST_CASE("Unknown elements are errors, with their line") {
  CHECK_CONTAINS(error_of(node(dev0, "<bogus/>")), "bad.xml:5: <bogus>: unknown element in <gpu>");
  CHECK_CONTAINS(error_of(node(dev0, "", "name=\"x\"", "      <switch/>\n")),
                 "bad.xml:10: <switch>: unknown element in <pci>");
  CHECK_CONTAINS(error_of("<system version=\"1\"><gpu/></system>"), "unknown element in <system>");
  CHECK_CONTAINS(
      error_of(
          node(dev0, "", "name=\"x\"",
               "      <pci busid=\"0000:13:00.0\" class=\"0x020000\"><nic><port/></nic></pci>\n")),
      "<port>: unknown element in <nic>");
}

TEST_CASE("Missing, malformed and duplicate bus ids") {
  CHECK_CONTAINS(error_of(one_pci("class=\"0x030200\"")), "<pci>: missing busid");
  CHECK_CONTAINS(error_of(one_pci("busid=\"12:34\"")), "busid=\"12:34\" is not a PCI address");
  CHECK_CONTAINS(
      error_of(
          node(dev0, "", "name=\"x\"", "      <pci busid=\"0000:11:00.0\" class=\"0x020700\"/>\n")),
      "bad.xml:10: <pci busid=\"0000:11:00.0\">: duplicate busid 0000:11:00.0 (first at line 4)");
  CHECK_CONTAINS(error_of("<system version=\"1\"><cpu numaid=\"0\"/><cpu numaid=\"0\"/></system>"),
                 "a second <cpu> with numaid=\"0\"");
  CHECK_CONTAINS(error_of("<system version=\"1\"><cpu/></system>"), "<cpu>: missing numaid");
}

TEST_CASE("NVLinks to GPUs that do not exist are errors") {
  CHECK_CONTAINS(
      error_of(node(dev0, "<nvlink target=\"0000:99:00.0\" count=\"4\" tclass=\"0x030200\"/>")),
      "NVLink target 0000:99:00.0 does not exist");
  CHECK_CONTAINS(
      error_of(node(dev0, "<nvlink target=\"0000:12:00.0\" count=\"4\" tclass=\"0x030200\"/>")),
      "NVLink target 0000:12:00.0 is a nic, not a GPU");
  CHECK_CONTAINS(
      error_of(node(dev0, "<nvlink target=\"0000:12:00.0\" count=\"4\" tclass=\"0x068000\"/>")),
      "is a nic, not an NVSwitch");
  CHECK_CONTAINS(error_of(node(dev0, "<nvlink count=\"4\" tclass=\"0x030200\"/>")),
                 "missing target");
  CHECK_CONTAINS(error_of(node(dev0, "<nvlink target=\"0000:f0:00.0\" count=\"4\"/>")),
                 "missing tclass");
  CHECK_CONTAINS(
      error_of(node(dev0, "<nvlink target=\"0000:f0:00.0\" count=\"1000\" tclass=\"0x068000\"/>")),
      "count=\"1000\" is out of range");
  // An NVSwitch target needs no PCI element: NCCL dumps from VMs have none.
  const auto ok = parse_nccl_topology_xml(
      node(dev0, "<nvlink target=\"0000:f0:00.0\" count=\"18\" tclass=\"0x068000\"/>"), "ok.xml");
  CHECK(ok.nvlink_count(ok.gpus()[0]) == 18);
}

TEST_CASE("Absurd speeds, widths and numbers are errors naming the attribute") {
  CHECK_CONTAINS(error_of(node(dev0, "", "name=\"x\" speed=\"-5\"")),
                 "speed=\"-5\" Mb/s is not a NIC speed");
  CHECK_CONTAINS(error_of(node(dev0, "", "name=\"x\" speed=\"400000000\"")), "is not a NIC speed");
  CHECK_CONTAINS(error_of(node(dev0, "", "name=\"x\" speed=\"fast\"")),
                 "speed=\"fast\" is not an integer");
  CHECK_CONTAINS(error_of(node(dev0, "", "name=\"x\" speed=\"0\"")), "is not a NIC speed");
  CHECK_CONTAINS(error_of(node(dev0, "", "name=\"x\" speed=\"100000.5\"")), "is not an integer");
  CHECK_CONTAINS(error_of(node(dev0, "", "name=\"x\" latency=\"-1\"")),
                 "latency=\"-1\" is negative or absurd");
  CHECK_CONTAINS(error_of(node("sm=\"9000\"")), "sm=\"9000\" is out of range");
  CHECK_CONTAINS(error_of(node("dev=\"zero\"")), "dev=\"zero\" is not an integer");
  CHECK_CONTAINS(error_of(one_pci("busid=\"0000:01:00.0\" link_speed=\"999 GT/s\"")),
                 "link_speed=\"999 GT/s\" is not a PCIe rate");
  CHECK_CONTAINS(error_of(one_pci("busid=\"0000:01:00.0\" link_width=\"3\"")),
                 "link_width=\"3\" is not a PCIe link width");
  CHECK_CONTAINS(error_of(one_pci("busid=\"0000:01:00.0\" link_width=\"64\"")),
                 "link_width=\"64\" is out of range");
  CHECK_CONTAINS(error_of("<system version=\"1\"><cpu numaid=\"0\" affinity=\"zz\"/></system>"),
                 "affinity=\"zz\" is not a CPU mask");
  CHECK_CONTAINS(error_of(one_pci("busid=\"0000:01:00.0\" class=\"0xnope\"")),
                 "class=\"0xnope\" is not a PCI class code");
}

TEST_CASE("Contradictions between class and content are errors") {
  CHECK_CONTAINS(error_of(one_pci("busid=\"0000:01:00.0\" class=\"0x030200\"", "<nic/>")),
                 "<nic> inside a PCI function whose class is not a network controller");
  CHECK_CONTAINS(error_of(one_pci("busid=\"0000:01:00.0\" class=\"0x030200\"",
                                  "<pci busid=\"0000:02:00.0\"/>")),
                 "a gpu cannot contain <pci> children");
  CHECK_CONTAINS(
      error_of(
          node(dev0, "", "name=\"x\"",
               "      <pci busid=\"0000:13:00.0\" class=\"0x030200\"><gpu dev=\"0\"/></pci>\n")),
      "GPU index 0 is used by both");
}

TEST_CASE("Quirks NCCL accepts are accepted, and said") {
  // Prefix-matched class and speed, width 0, an unknown attribute, an empty link speed.
  const auto t = parse_nccl_topology_xml(
      "<system version=\"1\"><cpu numaid=\"0\">"
      "<pci busid=\"0000:01:00.0\" class=\"0x03\" link_speed=\"16 GT/s PCIe/s\" link_width=\"0\" "
      "keep=\"1\">"
      "<gpu dev=\"0\"/></pci>"
      "<pci busid=\"0000:02:00.0\" class=\"0x0207\" link_speed=\"\"/>"
      "</cpu></system>",
      "quirks.xml");
  REQUIRE(t.gpus().size() == 1);
  CHECK(t.device(t.gpus()[0]).link == PcieLink{4, 16, {}});
  CHECK(t.device(t.gpus()[0]).pci.class_code == 0x030000);
  REQUIRE(t.nics().size() == 1);
  CHECK(t.device(t.nics()[0]).pci.class_code == 0x020700);
  std::string notes;
  for (const auto& n : t.notes()) notes += n + "\n";
  CHECK_CONTAINS(notes, "attribute <pci keep> is not read by railcc");
  CHECK_CONTAINS(notes, "1 link(s) with link_width=\"0\"");
  CHECK_CONTAINS(notes, "1 link(s) with an empty or unknown link_speed");
}

TEST_CASE("A missing file is an error naming it") {
  CHECK_THROWS_WITH_AS(read_nccl_topology_xml("/nonexistent/topo.xml"),
                       doctest::Contains("/nonexistent/topo.xml: cannot open file"), InputError);
}
