// railcc/cuda/device_memory.cuh: device memory a transport owns, and the wave executor's
// memory operations on a stream.
//
// StreamMemory is comm/waves.hpp's `Memory` on a GPU: copies are cudaMemcpyAsync (the
// copy engines), reductions and avg's division the kernels of cuda/kernels.cuh, all
// queued on one stream in the order the waves give. Nothing here synchronises, so a
// whole collective queues without waiting and can be captured in a CUDA graph.
//
// Needs nvcc: include it from .cu files (target railcc::cuda).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "railcc/coll/backend.hpp"
#include "railcc/config.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/cuda/kernels.cuh"

RAILCC_NAMESPACE_BEGIN

namespace cuda {

/// Device memory of the current device, freed with its owner.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes != 0) RAILCC_CUDA_CHECK(cudaMalloc(&p_, bytes));
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }

  [[nodiscard]] std::byte* get() const { return static_cast<std::byte*>(p_); }
  [[nodiscard]] std::size_t bytes() const { return bytes_; }

 private:
  void release() {
    // Freeing is not checked: a destructor must not throw, and an error here (a context
    // already torn down at exit) leaves nothing to undo.
    if (p_ != nullptr) (void)cudaFree(p_);
    p_ = nullptr;
  }
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

/// comm/waves.hpp's memory operations, queued on `stream`. Its callers check each call's
/// memory once (the caller's buffers against the driver, the rest their own
/// allocations), and the waves never hand a kernel overlapping operands, so the steps
/// launch without the per-launch pointer queries of cuda::reduce.
struct StreamMemory {
  cudaStream_t stream = nullptr;
  void copy(std::byte* dst, const std::byte* src, std::size_t bytes) {
    cuda::copy(dst, src, bytes, stream);
  }
  void reduce(ReductionSpec red, std::byte* dst, const std::byte* src, std::size_t count) {
    detail::reduce_checked(red.type, red.op, dst, src, count, stream);
  }
  void finish(ReductionSpec red, std::byte* buf, std::size_t count, int ranks) {
    detail::finish_checked(red.type, red.op, buf, count, ranks, stream);
  }
};

}  // namespace cuda

RAILCC_NAMESPACE_END
