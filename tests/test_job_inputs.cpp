// formats/job_inputs.hpp and comm/placement.hpp's rails: what RAILCC_FABRIC and
// RAILCC_TOPO_FILE name, read as the communicator reads them, against what the files say.
#include <doctest/doctest.h>

#include <string>

#include "check_contains.hpp"
#include "railcc/comm/placement.hpp"
#include "railcc/formats/job_inputs.hpp"

using namespace railcc;

namespace {
std::string data(const char* name) { return std::string(RAILCC_TEST_DATA_DIR) + "/" + name; }
}  // namespace

TEST_CASE("RAILCC_TOPO_FILE: each local rank's rail is its GPU's NIC's, as the file wires them") {
  RailccSettings s;
  // IBM Cloud gx3d: eight H100s, each with its own NIC behind its PCIe switch.
  s.topo_file = data("ibmcloud-gx3d-8xh100-nccl-topo.xml");
  const JobInputs eight = read_job_inputs(s, 8);
  REQUIRE(eight.topology.has_value());
  CHECK_FALSE(eight.fabric.has_value());
  for (std::uint32_t local = 0; local < 8; ++local)
    CHECK(rail_from_topology(*eight.topology, local, 8) == local);
  // Azure NCv4: four A100s and one NIC, which every GPU reaches: all on rail 0.
  s.topo_file = data("azure-ncv4-topo.xml");
  const JobInputs four = read_job_inputs(s, 4);
  for (std::uint32_t local = 0; local < 4; ++local)
    CHECK(rail_from_topology(*four.topology, local, 4) == 0);
  // More ranks on the host than the file has GPUs: not this machine's file.
  CHECK_THROWS_WITH_AS(rail_from_topology(*four.topology, 0, 5),
                       doctest::Contains("has 4 GPUs, but this host runs 5 ranks"), InputError);
}

TEST_CASE("RAILCC_TOPO_FILE and RAILCC_FABRIC: bad files and names are errors naming them") {
  RailccSettings s;
  s.topo_file = data("hwloc-nvidiaDGX2.xml");
  CHECK_THROWS_WITH_AS(read_job_inputs(s, 4), doctest::Contains("read_hwloc_xml"), InputError);
  s.topo_file = data("no-such-file.xml");
  CHECK_THROWS_WITH_AS(read_job_inputs(s, 4), doctest::Contains("RAILCC_TOPO_FILE"), InputError);
  s.topo_file.reset();
  s.fabric = "dragonfly";
  CHECK_THROWS_WITH_AS(read_job_inputs(s, 4),
                       doctest::Contains("RAILCC_FABRIC 'dragonfly': not a preset"), InputError);
  s.fabric = "colossus";
  const JobInputs c = read_job_inputs(s, 16);
  REQUIRE(c.fabric.has_value());
  CHECK(c.fabric->endpoint_count() == 16);
  CHECK(c.fabric_name == "colossus");
}

TEST_CASE("the environment: the communicator's settings, and their bad values named") {
  const auto env = Environment::of({{"RAILCC_TIMEOUT", "30"},
                                    {"RAILCC_CHECK_CALLS", "1"},
                                    {"RAILCC_ALGO", "ring"},
                                    {"RAILCC_RANKS_PER_HOST", "4"},
                                    {"RAILCC_LANES", "4"}});
  const RailccSettings s = RailccSettings::from(env);
  CHECK(s.lanes == 4);
  CHECK(RailccSettings::from(Environment::of({})).lanes == 1);
  CHECK(s.timeout == std::chrono::seconds(30));
  CHECK(s.check_calls);
  CHECK(s.algorithm == "ring");
  CHECK(s.ranks_per_host == 4);
  CHECK_THROWS_WITH_AS(RailccSettings::from(Environment::of({{"RAILCC_TIMEOUT", "0"}})),
                       doctest::Contains("RAILCC_TIMEOUT"), InputError);
  CHECK_THROWS_WITH_AS(RailccSettings::from(Environment::of({{"RAILCC_CHECK_CALLS", "yes"}})),
                       doctest::Contains("RAILCC_CHECK_CALLS"), InputError);
  CHECK_THROWS_WITH_AS(RailccSettings::from(Environment::of({{"RAILCC_FABRIC", ""}})),
                       doctest::Contains("RAILCC_FABRIC is set but empty"), InputError);
  CHECK_THROWS_WITH_AS(RailccSettings::from(Environment::of({{"RAILCC_RANKS_PER_HOST", "0"}})),
                       doctest::Contains("RAILCC_RANKS_PER_HOST"), InputError);
  CHECK_THROWS_WITH_AS(RailccSettings::from(Environment::of({{"RAILCC_LANES", "33"}})),
                       doctest::Contains("RAILCC_LANES"), InputError);
}
