#include <doctest/doctest.h>

#include <string>

#include "railcc/formats.hpp"

using namespace railcc;

TEST_CASE("JSON export carries the model and the derived views") {
  const auto t = read_nccl_topology_xml(std::string(RAILCC_TEST_DATA_DIR) +
                                        "/ibmcloud-gx3d-8xh100-nccl-topo.xml");
  // Serialize and parse back, as another tool would.
  const auto j = nlohmann::json::parse(node_topology_to_json(t).dump());
  CHECK(j["schema"] == "railcc.node_topology.v1");
  CHECK(j["devices"].size() == t.devices().size());
  CHECK(j["gpus"].size() == 8);
  CHECK(j["nics"].size() == 8);
  CHECK(j["nvlinks"].size() == 32);

  const auto& gpu0 = j["gpus"][0];
  CHECK(gpu0["bus_id"] == "0000:a4:00.0");
  CHECK(gpu0["numa_id"] == 0);
  CHECK(gpu0["cpuset"] == "0-79");
  CHECK(gpu0["nic_path"] == "PIX");
  CHECK(gpu0["nearest_nics"] == nlohmann::json::array({7}));  // NIC7 is mlx5_7
  CHECK(gpu0["rail_nics"] == nlohmann::json::array({7}));
  CHECK(gpu0["nvlinks"] == 18);
  CHECK(gpu0["nvlink_peers"].size() == 7);
  CHECK(gpu0["nvlink_peers"][0]["GBps"].get<double>() == doctest::Approx(450.0));

  const auto& nic7 = j["nics"][7];
  CHECK(nic7["name"] == "mlx5_7");
  CHECK(nic7["rail"] == 0);
  CHECK(nic7["speed_gbps"].get<double>() == doctest::Approx(200.0));
  CHECK(nic7["bus_id"] == "0000:a3:00.0");

  const auto& gpu_dev = j["devices"][gpu0["device"].get<std::size_t>()];
  CHECK(gpu_dev["kind"] == "gpu");
  CHECK(gpu_dev["gpu"]["model"] == "H100 SXM5 80GB");
  CHECK(gpu_dev["link"]["generation"] == 5);
  CHECK(gpu_dev["link"]["width"] == 16);
  const auto& bridge = j["devices"][gpu_dev["parent"].get<std::size_t>()];
  CHECK(bridge["kind"] == "pci_switch");
  CHECK(bridge["link"]["suspect"] == true);
  CHECK(bridge["link"]["GBps"].get<double>() == doctest::Approx(0.25));

  CHECK(j["paths"][0][1]["smi"] == "NV18");
  CHECK(j["paths"][0][1]["nccl"] == "NVL");
  CHECK(j["paths"][0][15]["smi"] == "PIX");  // GPU0 to NIC7
  CHECK(j["notes"].size() == 1);
}
