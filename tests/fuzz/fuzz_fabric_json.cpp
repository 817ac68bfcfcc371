// libFuzzer target for the fabric JSON reader (railcc.fabric.v1). Any input must either
// build a fabric or throw InputError: never crash, hang or throw anything else. A fabric
// it builds must route and simulate a transfer between its first and last GPU, and
// write itself back as JSON that reads again into a fabric of the same size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "railcc/fabric.hpp"
#include "railcc/formats/fabric_json.hpp"
#include "railcc/sim/engine.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  railcc::Fabric fabric;
  try {
    fabric = railcc::parse_fabric_json(text, "fuzz.json");
  } catch (const railcc::InputError&) {
    return 0;
  }
  const auto gpus = static_cast<railcc::NodeIndex>(fabric.endpoint_count());
  railcc::FlowGraph flows;
  flows.add({0, gpus - 1, railcc::Bytes::MiB(1), 0, {}});
  try {
    (void)railcc::simulate(fabric, flows);
  } catch (const railcc::InputError&) {
    // A fabric may be valid and still have no path between two GPUs (an unwired rail).
  }
  const auto again =
      railcc::parse_fabric_json(railcc::fabric_to_json(fabric).dump(), "fabric_to_json");
  if (again.endpoint_count() != fabric.endpoint_count() ||
      again.link_count() != fabric.link_count()) {
    std::abort();
  }
  return 0;
}
