// Bad input that once crashed, hung or misled a reader, and the files a user can name
// that are not files to read. Each case ends in an InputError naming the problem, fast.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "check_contains.hpp"
#include "railcc/formats/fabric_json.hpp"
#include "railcc/formats/nccl_topo_xml.hpp"
#include "railcc/input_file.hpp"
#include "test_support.hpp"

using namespace railcc;
using railcc_test::error_of;

namespace {

std::string bad(const std::string& name) {
  return std::string(RAILCC_TEST_DATA_DIR) + "/bad-input/" + name;
}

/// A scratch path in the working directory, removed when the test ends.
struct ScratchPath {
  explicit ScratchPath(std::string p) : path(std::move(p)) { std::filesystem::remove_all(path); }
  ~ScratchPath() { std::filesystem::remove_all(path); }
  std::string path;
};

}  // namespace

TEST_CASE("A fabric JSON number too large for a double is an InputError") {
  // nlohmann-json throws out_of_range (not parse_error) for 1e400: it used to escape.
  CHECK_CONTAINS(error_of([] { parse_fabric_json("1e400", "x.json"); }),
                 "x.json: unreadable JSON: [json.exception.out_of_range.406]");
  CHECK_CONTAINS(error_of([] { read_fabric_json(bad("overflow_number_abort.json")); }),
                 "overflow_number_abort.json: unreadable JSON");
}

TEST_CASE("Fabric JSON links slower than 1 Mb/s are refused") {
  // 1e-300 Gb/s made a transfer's time overflow 64-bit picoseconds (a crash in data mode,
  // a negative efficiency otherwise).
  CHECK_CONTAINS(error_of([] { read_fabric_json(bad("tinybw1_segv.json")); }),
                 "links[0].gbps: is 1e-300: a link's bandwidth must be 1 Mb/s to 1 Pb/s");
  CHECK_CONTAINS(error_of([] { read_fabric_json(bad("tinybw_all_links_negative_eff.json")); }),
                 "links[0].gbps: is 1e-300");
  // The bound itself is accepted.
  Fabric f;
  f.add_endpoint(0, 0, 0);
  const NodeIndex leaf = f.add_switch(1);
  CHECK_NOTHROW(f.connect(0, leaf, min_link_bandwidth, Picoseconds{}));
  CHECK_THROWS_AS(f.connect(0, leaf, Bandwidth::mbps(0.999), Picoseconds{}), InputError);
  CHECK_THROWS_AS(f.connect(0, leaf, Bandwidth::gbps(1.001e6), Picoseconds{}), InputError);
}

TEST_CASE("A short fabric JSON cannot make the reader allocate for millions of GPUs") {
  // 123 bytes asked for 50M GPUs (2.7 GB before the first error).
  CHECK_CONTAINS(error_of([] { read_fabric_json(bad("123byte_fabric_2.7GB.json")); }),
                 "hosts: is 16777215, expected 1 to 4000000");
  // Under the cap, a file without the cables for its GPUs is refused before building.
  CHECK_CONTAINS(error_of([] {
                   parse_fabric_json(R"({"schema": "railcc.fabric.v1", "hosts": 1000000,
                     "gpus_per_host": 3, "nvlink": {"GBps": 450}, "switches": [], "links": []})",
                                     "x.json");
                 }),
                 "x.json: links: has 0 cable(s) for 3000000 GPUs");
}

TEST_CASE("Only regular files are read, and only up to max_input_file_bytes") {
  CHECK_CONTAINS(error_of([] { read_input_file("/nonexistent/file.json"); }),
                 "/nonexistent/file.json: cannot open file (no such file)");
  // A FIFO would block the open until a writer came; a device never ends.
  ScratchPath fifo("railcc_test_fifo.json");
  REQUIRE(mkfifo(fifo.path.c_str(), 0600) == 0);
  CHECK_CONTAINS(error_of([&] { read_fabric_json(fifo.path); }),
                 "railcc_test_fifo.json: not a regular file");
  CHECK_CONTAINS(error_of([] { read_nccl_topology_xml("/dev/zero"); }),
                 "/dev/zero: not a regular file");
  ScratchPath dir("railcc_test_dir.xml");
  std::filesystem::create_directory(dir.path);
  CHECK_CONTAINS(error_of([&] { read_nccl_topology_xml(dir.path); }), "not a regular file");
  // A sparse file one byte over the limit is refused by its size, without reading it.
  ScratchPath big("railcc_test_big.json");
  { std::ofstream(big.path).put(' '); }
  std::filesystem::resize_file(big.path, max_input_file_bytes + 1);
  CHECK_CONTAINS(error_of([&] { read_fabric_json(big.path); }),
                 "railcc_test_big.json: 268435457 bytes, more than the 268435456");
  // A readable file is read whole.
  ScratchPath small("railcc_test_small.txt");
  { std::ofstream(small.path) << "twelve bytes"; }
  CHECK(read_input_file(small.path) == "twelve bytes");
}

TEST_CASE("NCCL XML nested deeper than any PCIe tree is refused, not a stack overflow") {
  std::string xml = R"(<system version="1"><cpu numaid="0">)";
  const int depth = 20000;
  for (int i = 0; i < depth; ++i) {
    char bus[32];
    std::snprintf(bus, sizeof bus, "0000:%02x:%02x.0", (i / 32) % 256, i % 32);
    xml += std::string(R"(<pci busid=")") + bus + R"(" class="0x060400">)";
  }
  for (int i = 0; i < depth; ++i) xml += "</pci>";
  xml += "</cpu></system>";
  CHECK_CONTAINS(error_of([&] { parse_nccl_topology_xml(xml, "deep.xml"); }),
                 "<pci> nested more than 64 deep");
}
