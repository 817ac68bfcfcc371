// An all-reduce of real data on a simulated 4-node H100 cluster, with each algorithm:
// how a training codebase posts a collective on railcc's simulated backend, checks what
// it computed, and reads how long the fabric took.
//
//   railcc_example_simulate_all_reduce [FLOATS_PER_GPU]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "railcc/coll.hpp"
#include "railcc/fabric.hpp"

int main(int argc, char** argv) {
  const std::size_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (1u << 20);
  try {
    railcc::ColossusParams params;
    params.gpus = 32;  // 4 hosts of 8 H100s, one 400G NIC per GPU on its rail
    const railcc::Fabric fabric = railcc::colossus(params);
    const int ranks = static_cast<int>(fabric.endpoint_count());
    std::printf("all-reduce of %zu floats per GPU on %d GPUs (4 hosts x 8)\n", count, ranks);
    for (const auto algo :
         {railcc::Algorithm::ring, railcc::Algorithm::rabenseifner, railcc::Algorithm::tree,
          railcc::Algorithm::hierarchical, railcc::Algorithm::nvls}) {
      // Data mode: every rank owns real buffers; sends copy bytes and reductions add them.
      railcc::SimBackend backend(fabric, ranks);
      backend.set_reduction({railcc::DataType::float32, railcc::ReduceOp::sum});
      const railcc::BufferId input = backend.allocate(count * sizeof(float));
      const railcc::BufferId output = backend.allocate(count * sizeof(float));
      for (int r = 0; r < ranks; ++r) {
        std::vector<float> values(count);
        for (std::size_t i = 0; i < count; ++i) values[i] = static_cast<float>(r + 1) + 0.5f;
        std::memcpy(backend.buffer(r, input).data(), values.data(), count * sizeof(float));
      }
      railcc::all_reduce(backend, railcc::CollectiveCall{count, input, output}, algo,
                         railcc::Algorithm::rabenseifner);
      const railcc::SimResult result = backend.run();
      // Every element is sum over r of (r + 1.5): exact in float for these values.
      const float expected = static_cast<float>(ranks) * (ranks + 1) / 2.0f + 0.5f * ranks;
      std::size_t wrong = 0;
      for (int r = 0; r < ranks; ++r) {
        std::vector<float> got(count);
        std::memcpy(got.data(), backend.buffer(r, output).data(), count * sizeof(float));
        for (float v : got) wrong += v == expected ? 0 : 1;
      }
      const double seconds = result.makespan.in_seconds();
      const double algbw = static_cast<double>(count * sizeof(float)) / seconds / 1e9;
      std::printf("  %-13s %9.2f us  busbw %7.2f GB/s  %zu flows  wrong elements: %zu\n",
                  std::string(railcc::to_string(algo)).c_str(), result.makespan.in_us(),
                  algbw * 2.0 * (ranks - 1) / ranks, result.flows.size(), wrong);
      if (wrong != 0) return 1;
    }
  } catch (const railcc::InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  return 0;
}
