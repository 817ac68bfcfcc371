// A training loop's use of railcc: data-parallel SGD on a toy model, its gradients
// averaged across ranks every step, as a framework's data-parallel wrapper does.
//
//   mpirun -np 4 railcc_example_train_loop [STEPS]
//   torchrun --nproc-per-node 4 --no-python railcc_example_train_loop [STEPS]
//
// The process starts as its launcher started it (railcc reads the launcher's environment
// and RAILCC_* settings: docs/env.md): over MPI under mpirun or srun, over TCP under
// torchrun. It builds one Communicator, and every step
//  1. "runs backward" layer by layer, last layer first, and starts an all-reduce (avg) of
//     each layer's gradient as soon as it is ready, without waiting (iall_reduce);
//  2. waits for them all, then updates the parameters.
// The first step plans each layer's all-reduce; later steps reuse the plans. Gradients are
// chosen so that the average is exact in float: at the end every rank checks that its
// parameters equal the closed form and each other's, and the job exits 1 if not.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "railcc/launch/communicator.hpp"
#include "railcc/mpi/communicator.hpp"

namespace {

/// Rank r's gradient of element i at any step: (r + 1) (i mod 5 + 1) / 4, whose average
/// over p ranks, (p + 1) / 2 (i mod 5 + 1) / 4, a float holds exactly.
float gradient(int rank, std::size_t i) {
  return static_cast<float>(rank + 1) * static_cast<float>(i % 5 + 1) * 0.25f;
}

int run(railcc::Communicator& comm, int steps) {
  const int rank = comm.rank();
  const int p = comm.size();
  // Layers of unequal sizes, as a model's are (in elements).
  const std::vector<std::size_t> layer_sizes{4096, 300'000, 1'000'000, 777, 65'536};
  std::vector<std::vector<float>> params;
  std::vector<std::vector<float>> grads;
  for (std::size_t n : layer_sizes) {
    params.emplace_back(n, 1.0f);
    grads.emplace_back(n, 0.0f);
  }
  const float lr = 0.5f;
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; ++step) {
    std::vector<railcc::Request> pending;
    for (std::size_t l = layer_sizes.size(); l-- > 0;) {  // backward: last layer first
      for (std::size_t i = 0; i < grads[l].size(); ++i) grads[l][i] = gradient(rank, i);
      pending.push_back(comm.iall_reduce(grads[l].data(), grads[l].data(), grads[l].size(),
                                         railcc::DataType::float32, railcc::ReduceOp::avg));
    }
    for (auto& r : pending) r.wait();
    for (std::size_t l = 0; l < params.size(); ++l) {
      for (std::size_t i = 0; i < params[l].size(); ++i) params[l][i] -= lr * grads[l][i];
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The closed form: w = 1 - steps lr (p + 1) / 2 (i mod 5 + 1) / 4, on every rank.
  std::size_t wrong = 0;
  for (std::size_t l = 0; l < params.size(); ++l) {
    for (std::size_t i = 0; i < params[l].size(); ++i) {
      float w = 1.0f;
      const float avg = static_cast<float>(p + 1) / 2 * static_cast<float>(i % 5 + 1) * 0.25f;
      for (int s = 0; s < steps; ++s) w -= lr * avg;
      wrong += params[l][i] == w ? 0 : 1;
    }
  }
  const std::size_t plans = comm.cached_plans();  // the loop's, before the check's own call
  auto all_wrong = static_cast<std::int64_t>(wrong);
  comm.all_reduce(&all_wrong, &all_wrong, 1, railcc::DataType::int64, railcc::ReduceOp::sum);
  if (rank == 0) {
    std::size_t elements = 0;
    for (std::size_t n : layer_sizes) elements += n;
    std::printf(
        "%d ranks (%s), %d steps of %zu parameters in %zu layers: %.3f s, "
        "%zu plans made, %lld parameters wrong\n",
        p, comm.placement().describe().c_str(), steps, elements, layer_sizes.size(), seconds, plans,
        static_cast<long long>(all_wrong));
  }
  return all_wrong == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const bool mpi = railcc::launched_for_mpi();
  if (mpi) MPI_Init(&argc, &argv);
  int rc = 0;
  try {
    railcc::Communicator comm = mpi ? railcc::mpi_communicator() : railcc::tcp_communicator();
    rc = run(comm, argc > 1 ? std::atoi(argv[1]) : 10);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_loop: %s\n", e.what());
    // Over MPI the other ranks may be stuck in MPI; over TCP they fail on their own.
    if (mpi) MPI_Abort(MPI_COMM_WORLD, 3);
    rc = 3;
  }
  if (mpi) MPI_Finalize();
  return rc;
}
