// The reduction kernels' memory bandwidth against a device-to-device copy measured in
// the same run on the same GPU. A reduction dst = dst op src reads two buffers and
// writes one (3 bytes moved per byte reduced), a copy reads one and writes one (2): the
// table compares bytes moved per second, and the goal is a reduction at 85% or more of
// the copy's (docs/backends.md). Timed with CUDA events over back-to-back launches on
// one stream, after warm-up launches.
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/cuda/kernels.cuh"

using namespace railcc;

namespace {

struct Timer {
  Timer() {
    RAILCC_CUDA_CHECK(cudaEventCreate(&start));
    RAILCC_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~Timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  /// Seconds per call of `f` over `iterations` calls on `stream`.
  template <class F>
  double time(cudaStream_t stream, int warmup, int iterations, F&& f) {
    for (int i = 0; i < warmup; ++i) f();
    RAILCC_CUDA_CHECK(cudaEventRecord(start, stream));
    for (int i = 0; i < iterations; ++i) f();
    RAILCC_CUDA_CHECK(cudaEventRecord(stop, stream));
    RAILCC_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    RAILCC_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms / 1e3 / iterations;
  }
  cudaEvent_t start, stop;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"railcc's reduction kernels against a device-to-device copy, on one GPU"};
  std::size_t bytes = std::size_t{1} << 30;
  int iterations = 20;
  double goal = 0.85;
  app.add_option("-b,--bytes", bytes, "bytes per buffer (default 1 GiB)")
      ->check(CLI::PositiveNumber);
  app.add_option("-n,--iterations", iterations, "timed calls per row")
      ->check(CLI::Range(1, 100000));
  app.add_option("--goal", goal, "the reduction's share of the copy's bytes per second aimed at");
  CLI11_PARSE(app, argc, argv);
  try {
    if (cuda::device_count() == 0) {
      std::fprintf(stderr, "cuda_reduce_bandwidth: no GPU\n");
      return 1;
    }
    int device = 0;
    RAILCC_CUDA_CHECK(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    RAILCC_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    void *a = nullptr, *b = nullptr;
    RAILCC_CUDA_CHECK(cudaMalloc(&a, bytes));
    RAILCC_CUDA_CHECK(cudaMalloc(&b, bytes));
    RAILCC_CUDA_CHECK(cudaMemset(a, 0, bytes));
    RAILCC_CUDA_CHECK(cudaMemset(b, 0, bytes));
    cudaStream_t stream;
    RAILCC_CUDA_CHECK(cudaStreamCreate(&stream));
    Timer timer;
    const int warmup = 3;
    const double copy_s =
        timer.time(stream, warmup, iterations, [&] { cuda::copy(a, b, bytes, stream); });
    const double copy_Bps = 2.0 * static_cast<double>(bytes) / copy_s;
    std::printf("# %s, %zu bytes per buffer, %d calls per row\n", prop.name, bytes, iterations);
    std::printf("# copy (cudaMemcpyAsync, device to device): %.1f us, %.1f GB/s moved\n",
                copy_s * 1e6, copy_Bps / 1e9);
    std::printf("# %-9s %-5s %12s %14s %12s\n", "type", "op", "time (us)", "moved (GB/s)",
                "of copy");
    bool below = false;
    for (DataType t : all_data_types) {
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
        const std::size_t count = bytes / size_of(t);
        const double s = timer.time(stream, warmup, iterations,
                                    [&] { cuda::reduce(t, op, a, b, count, stream); });
        const double Bps = 3.0 * static_cast<double>(count * size_of(t)) / s;
        const double share = Bps / copy_Bps;
        below = below || share < goal;
        std::printf("  %-9s %-5s %12.1f %14.1f %11.3f%s\n", std::string(to_string(t)).c_str(),
                    std::string(to_string(op)).c_str(), s * 1e6, Bps / 1e9, share,
                    share < goal ? "  below the goal" : "");
      }
    }
    std::printf("# goal: a reduction at %.2f of the copy's bytes per second: %s\n", goal,
                below ? "not met on every row" : "met on every row");
    RAILCC_CUDA_CHECK(cudaStreamDestroy(stream));
    RAILCC_CUDA_CHECK(cudaFree(a));
    RAILCC_CUDA_CHECK(cudaFree(b));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_reduce_bandwidth: %s\n", e.what());
    return 1;
  }
}
