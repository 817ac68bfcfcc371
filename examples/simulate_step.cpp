// One communication step on a 100k-GPU Colossus-class fabric, with ECMP and with packet
// spraying: how long it takes and how busy each tier is.
//
//   railcc_example_simulate_step [GPUS]
#include <cstdio>
#include <cstdlib>

#include "railcc/fabric.hpp"
#include "railcc/sim.hpp"

int main(int argc, char** argv) {
  railcc::ColossusParams params;
  if (argc > 1) params.gpus = std::strtoull(argv[1], nullptr, 10);
  try {
    const railcc::Fabric fabric = railcc::colossus(params);
    // Every GPU sends 64 MiB to the GPU of its rail 9 hosts further: over its rail leaf
    // for most hosts, up the fabric to the next array for the last 9 of each 64-host array.
    railcc::FlowGraph flows;
    const auto n = static_cast<railcc::NodeIndex>(fabric.endpoint_count());
    for (railcc::NodeIndex g = 0; g < n; ++g) {
      flows.add({g, (g + 9 * 8) % n, railcc::Bytes::MiB(64), 0, {}});
    }
    for (const auto mode : {railcc::RoutingMode::ecmp, railcc::RoutingMode::spray}) {
      railcc::SimConfig config;
      config.routing.mode = mode;
      const auto result = railcc::simulate(fabric, flows, config);
      std::printf("%s: %zu GPUs, step took %.1f us\n",
                  mode == railcc::RoutingMode::ecmp ? "ECMP " : "spray", fabric.endpoint_count(),
                  result.makespan.in_us());
      for (const auto& c : result.link_classes) {
        if (c.links == 0 || c.bytes == 0) continue;
        std::printf("  %-20s links %8zu  used %5.1f%%  utilization mean %5.1f%%  max %5.1f%%\n",
                    railcc::link_class_name(c.level, c.up).c_str(), c.links,
                    100.0 * static_cast<double>(c.used_links) / static_cast<double>(c.links),
                    100.0 * c.mean_utilization, 100.0 * c.max_utilization);
      }
    }
  } catch (const railcc::InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
