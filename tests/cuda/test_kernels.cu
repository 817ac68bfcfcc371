// cuda/kernels.cuh on a GPU: reduce, finish_reduction and copy give on device buffers
// what the host backend gives on the same bytes, for every type and operator, at counts
// and offsets that exercise the elements before, between and after the 16-byte vectors;
// bad input is refused before anything runs. Needs a GPU: scripts/gpu-check runs it.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../nan_aware.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/cuda/device_memory.cuh"
#include "railcc/cuda/kernels.cuh"
#include "railcc/error.hpp"

using namespace railcc;

namespace {

std::vector<std::byte> random_bytes(std::size_t n, std::mt19937_64& rng) {
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

}  // namespace

TEST_CASE("reduce on the GPU matches the host backend for every type, operator, count and offset") {
  REQUIRE_MESSAGE(cuda::device_count() > 0, "no GPU: this test needs one (scripts/gpu-check)");
  std::mt19937_64 rng(42);
  const std::size_t counts[] = {0, 1, 3, 8, 9, 31, 4096 + 5, (std::size_t{1} << 20) + 7};
  cudaStream_t stream;
  RAILCC_CUDA_CHECK(cudaStreamCreate(&stream));
  for (DataType t : all_data_types) {
    const std::size_t size = size_of(t);
    // Offsets in elements of the destination and source from a 256-byte aligned
    // allocation: both aligned, both off by the same amount, and off by different
    // amounts (no vectors at all).
    const std::size_t offsets[][2] = {{0, 0}, {1, 1}, {3, 3}, {1, 0}, {0, 2}};
    for (ReduceOp op : all_reduce_ops) {
      for (std::size_t count : counts) {
        for (const auto& off : offsets) {
          CAPTURE(to_string(t));
          CAPTURE(to_string(op));
          CAPTURE(count);
          CAPTURE(off[0]);
          CAPTURE(off[1]);
          const std::size_t bytes = (count + 4) * size;
          auto a = random_bytes(bytes, rng);
          const auto b = random_bytes(bytes, rng);
          cuda::DeviceBuffer da(bytes), db(bytes);
          RAILCC_CUDA_CHECK(cudaMemcpy(da.get(), a.data(), bytes, cudaMemcpyHostToDevice));
          RAILCC_CUDA_CHECK(cudaMemcpy(db.get(), b.data(), bytes, cudaMemcpyHostToDevice));
          cuda::reduce(t, op, da.get() + off[0] * size, db.get() + off[1] * size, count, stream);
          RAILCC_CUDA_CHECK(cudaStreamSynchronize(stream));
          std::vector<std::byte> got(bytes);
          RAILCC_CUDA_CHECK(cudaMemcpy(got.data(), da.get(), bytes, cudaMemcpyDeviceToHost));
          reduce_into(t, op, a.data() + off[0] * size, b.data() + off[1] * size, count);
          // The whole allocation: the elements around the range are untouched too.
          REQUIRE(test::first_difference(t, got.data(), a.data(), bytes / size) == -1);
        }
      }
    }
  }
  RAILCC_CUDA_CHECK(cudaStreamDestroy(stream));
}

TEST_CASE("avg's division on the GPU matches the host backend's") {
  REQUIRE_MESSAGE(cuda::device_count() > 0, "no GPU: this test needs one (scripts/gpu-check)");
  std::mt19937_64 rng(7);
  for (DataType t : all_data_types) {
    for (std::size_t count : {std::size_t{1}, std::size_t{17}, std::size_t{100003}}) {
      for (int ranks : {2, 3, 8, 1000}) {
        CAPTURE(to_string(t));
        CAPTURE(count);
        CAPTURE(ranks);
        const std::size_t size = size_of(t);
        const std::size_t bytes = (count + 1) * size;
        auto a = random_bytes(bytes, rng);
        cuda::DeviceBuffer d(bytes);
        RAILCC_CUDA_CHECK(cudaMemcpy(d.get(), a.data(), bytes, cudaMemcpyHostToDevice));
        cuda::finish_reduction(t, ReduceOp::avg, d.get() + size, count, ranks, nullptr);
        std::vector<std::byte> got(bytes);
        RAILCC_CUDA_CHECK(cudaMemcpy(got.data(), d.get(), bytes, cudaMemcpyDeviceToHost));
        finish_reduction(t, ReduceOp::avg, a.data() + size, count, ranks);
        REQUIRE(test::first_difference(t, got.data(), a.data(), count + 1) == -1);
      }
    }
  }
}

TEST_CASE("copy moves the bytes, and bad input is refused before anything runs") {
  REQUIRE_MESSAGE(cuda::device_count() > 0, "no GPU: this test needs one (scripts/gpu-check)");
  std::mt19937_64 rng(3);
  const auto a = random_bytes(1000003, rng);
  cuda::DeviceBuffer src(a.size()), dst(a.size());
  RAILCC_CUDA_CHECK(cudaMemcpy(src.get(), a.data(), a.size(), cudaMemcpyHostToDevice));
  cuda::copy(dst.get(), src.get(), a.size(), nullptr);
  std::vector<std::byte> got(a.size());
  RAILCC_CUDA_CHECK(cudaMemcpy(got.data(), dst.get(), a.size(), cudaMemcpyDeviceToHost));
  CHECK(got == a);

  std::vector<float> host(64);
  CHECK_THROWS_WITH_AS(
      cuda::reduce(DataType::float32, ReduceOp::sum, host.data(), src.get(), 64, nullptr),
      doctest::Contains("the destination is host memory the GPU cannot reach"), InputError);
  CHECK_THROWS_WITH_AS(
      cuda::reduce(DataType::float32, ReduceOp::sum, dst.get(), nullptr, 64, nullptr),
      doctest::Contains("a null buffer"), InputError);
  CHECK_THROWS_WITH_AS(
      cuda::reduce(DataType::float32, ReduceOp::sum, dst.get(), dst.get() + 4, 64, nullptr),
      doctest::Contains("overlaps"), InputError);
  CHECK_THROWS_WITH_AS(
      cuda::finish_reduction(DataType::int32, ReduceOp::avg, dst.get(), 4, 0, nullptr),
      doctest::Contains("0 ranks"), InputError);
  CHECK_THROWS_WITH_AS(RAILCC_CUDA_CHECK(cudaSetDevice(1 << 20)),
                       doctest::Contains("cudaSetDevice(1 << 20) failed"), cuda::CudaError);
}
