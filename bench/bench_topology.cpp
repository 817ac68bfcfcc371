// Cost of the node-topology pipeline a launcher runs at start-up: parse NCCL's XML,
// compute the GPU/NIC path matrix, run the health check. Node-sized inputs; the point is
// to see these stay far below a job's start-up budget and to catch regressions.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "railcc/formats.hpp"
#include "railcc/topology.hpp"

namespace {

std::string slurp(const char* name) {
  std::ifstream in(std::string(RAILCC_TEST_DATA_DIR) + "/" + name);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string& ibm_xml() {
  static const std::string xml = slurp("ibmcloud-gx3d-8xh100-nccl-topo.xml");
  return xml;
}

void BM_ParseNcclXml(benchmark::State& state) {
  for (auto _ : state) {
    auto t = railcc::parse_nccl_topology_xml(ibm_xml(), "ibm");
    benchmark::DoNotOptimize(t);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * ibm_xml().size()));
}
BENCHMARK(BM_ParseNcclXml);

/// A node file with `n` PCI functions under one CPU, as a very large (or hostile) NCCL XML
/// would have them. Parsing must stay linear in the file: naming each device's line once
/// rescanned the file per device (a 5 MB file took 48 s).
std::string many_devices_xml(std::int64_t n) {
  std::string xml = "<system version=\"1\">\n  <cpu numaid=\"0\">\n";
  char line[160];
  for (std::int64_t i = 0; i < n; ++i) {
    std::snprintf(line, sizeof line,
                  "    <pci busid=\"%04x:%02x:%02x.0\" class=\"0x010802\" vendor=\"0x144d\" "
                  "link_speed=\"16.0 GT/s PCIe\" link_width=\"4\"/>\n",
                  static_cast<unsigned>(i / 8192), static_cast<unsigned>(i / 32 % 256),
                  static_cast<unsigned>(i % 32));
    xml += line;
  }
  return xml + "  </cpu>\n</system>\n";
}

void BM_ParseNcclXmlDevices(benchmark::State& state) {
  const std::string xml = many_devices_xml(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(railcc::parse_nccl_topology_xml(xml, "many.xml"));
  }
  state.SetComplexityN(state.range(0));
  state.SetBytesProcessed(static_cast<std::int64_t>(xml.size()) * state.iterations());
}
BENCHMARK(BM_ParseNcclXmlDevices)->RangeMultiplier(4)->Range(1024, 65536)->Complexity();

void BM_PathMatrix(benchmark::State& state) {
  const auto t = railcc::parse_nccl_topology_xml(ibm_xml(), "ibm");
  for (auto _ : state) {
    auto m = railcc::render_topology_matrix(t);
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_PathMatrix);

void BM_HealthCheck(benchmark::State& state) {
  const auto t = railcc::parse_nccl_topology_xml(ibm_xml(), "ibm");
  for (auto _ : state) {
    auto f = railcc::check_node(t);
    benchmark::DoNotOptimize(f);
  }
}
BENCHMARK(BM_HealthCheck);

void BM_WriteNcclXml(benchmark::State& state) {
  const auto t = railcc::parse_nccl_topology_xml(ibm_xml(), "ibm");
  for (auto _ : state) {
    auto x = railcc::write_nccl_topology_xml(t);
    benchmark::DoNotOptimize(x);
  }
}
BENCHMARK(BM_WriteNcclXml);

}  // namespace

BENCHMARK_MAIN();
