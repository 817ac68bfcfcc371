// An all-reduce on a modelled 4-node H100 cluster, with each algorithm: how a training
// codebase builds a collective's plan once, times it on the simulated fabric, and runs it
// with real data on ranks that share nothing but messages (one thread each).
//
//   railcc_example_simulate_all_reduce [FLOATS_PER_GPU]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "railcc/backend.hpp"
#include "railcc/coll.hpp"
#include "railcc/fabric.hpp"

int main(int argc, char** argv) {
  const std::size_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (1u << 18);
  try {
    railcc::ColossusParams params;
    params.gpus = 32;  // 4 hosts of 8 H100s, one 400G NIC per GPU on its rail
    const railcc::Fabric fabric = railcc::colossus(params);
    const int ranks = static_cast<int>(fabric.endpoint_count());
    const railcc::ReductionSpec sum{railcc::DataType::float32, railcc::ReduceOp::sum};
    std::printf("all-reduce of %zu floats per GPU on %d GPUs (4 hosts x 8)\n", count, ranks);
    for (const auto algo :
         {railcc::Algorithm::ring, railcc::Algorithm::rabenseifner, railcc::Algorithm::tree,
          railcc::Algorithm::hierarchical, railcc::Algorithm::nvls}) {
      // 1. The plan: what the algorithm posts, as a value (operations and dependencies).
      railcc::SimBackendConfig timing;
      timing.mode = railcc::SimMode::timing;
      railcc::SimBackend simulator(fabric, ranks, timing);
      railcc::PlanBuilder builder(simulator.target(), sum);
      const railcc::BufferId input = builder.allocate(count * sizeof(float));
      const railcc::BufferId output = builder.allocate(count * sizeof(float));
      const auto done = railcc::all_reduce(builder, railcc::CollectiveCall{count, input, output},
                                           algo, railcc::Algorithm::rabenseifner);
      const railcc::Plan plan = builder.build(done);

      // 2. Its time on the modelled fabric.
      const railcc::SimResult timed = simulator.run(plan);

      // 3. The same plan with real data: each rank a thread running its own projection.
      railcc::InProcessBackend threads(simulator.target());
      threads.set_reduction(sum);
      threads.allocate(count * sizeof(float));  // input
      threads.allocate(count * sizeof(float));  // output
      for (int r = 0; r < ranks; ++r) {
        std::vector<float> values(count, static_cast<float>(r + 1) + 0.5f);
        std::memcpy(threads.buffer(r, input).data(), values.data(), count * sizeof(float));
      }
      const railcc::InProcessResult ran = threads.run(plan);
      // Every element is the sum over r of (r + 1.5): exact in float for these values.
      const float expected = static_cast<float>(ranks) * (ranks + 1) / 2.0f + 0.5f * ranks;
      std::size_t wrong = 0;
      for (int r = 0; r < ranks; ++r) {
        std::vector<float> got(count);
        std::memcpy(got.data(), threads.buffer(r, output).data(), count * sizeof(float));
        for (float v : got) wrong += v == expected ? 0 : 1;
      }
      const double seconds = timed.makespan.in_seconds();
      const double algbw = static_cast<double>(count * sizeof(float)) / seconds / 1e9;
      std::printf("  %-13s %6zu ops  %9.2f us  busbw %7.2f GB/s  %6zu messages  wrong: %zu\n",
                  std::string(railcc::to_string(algo)).c_str(), plan.size(), timed.makespan.in_us(),
                  algbw * 2.0 * (ranks - 1) / ranks, ran.messages, wrong);
      if (wrong != 0) return 1;
    }
  } catch (const railcc::InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
