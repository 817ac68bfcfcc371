// A training loop's use of railcc on GPUs: data-parallel SGD on a toy model whose
// parameters and gradients live in device memory, the gradients averaged across ranks
// every step over NCCL, stream-ordered, as a framework's data-parallel wrapper does.
//
//   torchrun --nproc-per-node 8 --no-python railcc_example_nccl_train_loop [STEPS]
//
// One GPU per rank (its local rank's). The ranks meet at torchrun's store, then talk over
// NCCL (docs/backends.md, "The NCCL transport"). Every step, on one compute stream:
//  1. "backward": a kernel writes each layer's gradient, last layer first, and the
//     layer's all-reduce (avg) is queued on the same stream right after it, so it starts
//     as soon as that gradient is ready and the host never waits;
//  2. a kernel updates the parameters.
// The first step plans each layer's all-reduce (or hands it to NCCL's own, where the
// tuner predicts NCCL no slower; RAILCC_DEBUG=INFO says which); later steps reuse the
// plans. Gradients are chosen so that the average is exact in float: at the end every
// rank checks its parameters against the closed form, and the job exits 1 if not.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "railcc/cuda/check.hpp"
#include "railcc/cuda/device_memory.cuh"
#include "railcc/nccl/communicator.cuh"

namespace {

/// Rank r's gradient of element i: (r + 1) (i mod 5 + 1) / 4, whose average over p ranks,
/// (p + 1) / 2 (i mod 5 + 1) / 4, a float holds exactly.
__global__ void backward(float* grad, std::size_t n, int rank) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    grad[i] = static_cast<float>(rank + 1) * static_cast<float>(i % 5 + 1) * 0.25f;
}

__global__ void sgd(float* param, const float* grad, std::size_t n, float lr) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    param[i] -= lr * grad[i];
}

int run(railcc::Communicator& comm, int steps) {
  const int rank = comm.rank();
  const int p = comm.size();
  const std::vector<std::size_t> layer_sizes{4096, 300'000, 1'000'000, 777, 65'536};
  std::vector<railcc::cuda::DeviceBuffer> params;
  std::vector<railcc::cuda::DeviceBuffer> grads;
  for (std::size_t n : layer_sizes) {
    std::vector<float> ones(n, 1.0f);
    params.emplace_back(n * sizeof(float));
    grads.emplace_back(n * sizeof(float));
    RAILCC_CUDA_CHECK(
        cudaMemcpy(params.back().get(), ones.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  }
  cudaStream_t compute;
  RAILCC_CUDA_CHECK(cudaStreamCreate(&compute));
  railcc::CallOptions on_compute;
  on_compute.stream = compute;  // queued behind the kernel that wrote the gradient
  const float lr = 0.5f;
  for (int step = 0; step < steps; ++step) {
    for (std::size_t l = layer_sizes.size(); l-- > 0;) {  // backward: last layer first
      auto* g = reinterpret_cast<float*>(grads[l].get());
      backward<<<128, 256, 0, compute>>>(g, layer_sizes[l], rank);
      RAILCC_CUDA_CHECK(cudaGetLastError());
      comm.all_reduce(g, g, layer_sizes[l], railcc::DataType::float32, railcc::ReduceOp::avg,
                      on_compute);
    }
    for (std::size_t l = 0; l < layer_sizes.size(); ++l) {
      sgd<<<128, 256, 0, compute>>>(reinterpret_cast<float*>(params[l].get()),
                                    reinterpret_cast<const float*>(grads[l].get()), layer_sizes[l],
                                    lr);
      RAILCC_CUDA_CHECK(cudaGetLastError());
    }
  }
  RAILCC_CUDA_CHECK(cudaStreamSynchronize(compute));
  RAILCC_CUDA_CHECK(cudaStreamDestroy(compute));

  // The closed form: w = 1 - steps lr (p + 1) / 2 (i mod 5 + 1) / 4, on every rank.
  std::size_t wrong = 0;
  for (std::size_t l = 0; l < layer_sizes.size(); ++l) {
    std::vector<float> w(layer_sizes[l]);
    RAILCC_CUDA_CHECK(
        cudaMemcpy(w.data(), params[l].get(), w.size() * sizeof(float), cudaMemcpyDeviceToHost));
    for (std::size_t i = 0; i < w.size(); ++i) {
      float want = 1.0f;
      const float avg = static_cast<float>(p + 1) / 2 * static_cast<float>(i % 5 + 1) * 0.25f;
      for (int s = 0; s < steps; ++s) want -= lr * avg;
      wrong += w[i] == want ? 0 : 1;
    }
  }
  // Every rank's count, through the communicator's bootstrap (host memory).
  long long all_wrong = 0;
  for (const std::string& c :
       comm.transport().bootstrap().all_gather(std::to_string(static_cast<long long>(wrong))))
    all_wrong += std::stoll(c);
  if (rank == 0)
    std::printf("%d ranks (%s) over %s, %d steps: %zu plans made, %lld parameters wrong\n", p,
                comm.placement().describe().c_str(), comm.transport_name().c_str(), steps,
                comm.cached_plans(), all_wrong);
  return all_wrong == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    railcc::Communicator comm = railcc::nccl::nccl_communicator();
    return run(comm, argc > 1 ? std::atoi(argv[1]) : 10);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nccl_train_loop: %s\n", e.what());
    return 3;
  }
}
