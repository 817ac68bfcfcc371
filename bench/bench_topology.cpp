// Cost of the node-topology pipeline a launcher runs at start-up: parse NCCL's XML,
// compute the GPU/NIC path matrix, run the health check. Node-sized inputs; the point is
// to see these stay far below a job's start-up budget and to catch regressions.
#include <benchmark/benchmark.h>

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
