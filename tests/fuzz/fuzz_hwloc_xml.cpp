// libFuzzer target for the hwloc XML importer: railcc's checks, then hwloc's own reader.
// Any input must either parse into a consistent topology or throw InputError: never
// crash, hang, or throw anything else. Everything derived from a parsed topology (matrix,
// check, JSON) must work, and its NCCL XML export must read back, and read back the same
// the second time round.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "railcc/formats.hpp"
#include "railcc/hwloc/hwloc_topology.hpp"
#include "railcc/topology.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  railcc::NodeTopology topo;
  try {
    topo = railcc::parse_hwloc_xml(text, "fuzz.xml");
  } catch (const railcc::InputError&) {
    return 0;
  }
  (void)railcc::render_topology_matrix(topo);
  (void)railcc::check_node(topo);
  (void)railcc::node_topology_to_json(topo).dump(-1, ' ', false,
                                                 nlohmann::json::error_handler_t::strict);
  const auto once =
      railcc::parse_nccl_topology_xml(railcc::write_nccl_topology_xml(topo), "export");
  const auto twice =
      railcc::parse_nccl_topology_xml(railcc::write_nccl_topology_xml(once), "export");
  if (!(once == twice)) std::abort();
  return 0;
}
