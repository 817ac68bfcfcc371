// railcc/cuda/kernels.cuh: reduction, division and copy on device buffers.
//
// The local work of a collective on a GPU: dst = dst op src after a receive, avg's
// division at the end, and copies. Every type and operator of the collectives (the
// element operations are coll/reduce_op.hpp's, shared with the host backends), on a
// stream, asynchronous and graph-capturable (launches and cudaMemcpyAsync only: no
// allocation, no synchronisation).
//
// How the kernels move bytes: each thread loads 16 bytes of each operand with one
// 128-bit instruction (uint4), reduces the 2 to 16 elements they hold in registers
// (cuda/vector_words.hpp) and stores 16 bytes, over a grid-stride loop of a grid sized to
// the GPU (a few blocks per multiprocessor), so one launch covers any count. Where the
// two buffers are not 16-byte aligned alike, the elements before the first aligned
// vector and after the last are done one by one; buffers misaligned differently are done
// one element per thread throughout.
//
// Needs nvcc: include it from .cu files (target railcc::cuda).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/config.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/cuda/vector_words.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

namespace cuda {

namespace detail {

/// Where a buffer pair splits into elements one by one, whole 16-byte vectors, and
/// elements one by one again.
struct Split {
  std::size_t head = 0;     ///< elements before the first vector
  std::size_t vectors = 0;  ///< 16-byte vectors
  std::size_t tail = 0;     ///< elements after the last vector
};

/// The split of `count` elements of `size` bytes at `a` and `b` (both must be vector
/// aligned at the same element for vectors to be used).
inline Split split_of(const void* a, const void* b, std::size_t count, std::size_t size) {
  const auto pa = reinterpret_cast<std::uintptr_t>(a);
  const auto pb = reinterpret_cast<std::uintptr_t>(b);
  Split s;
  if (pa % vector_bytes != pb % vector_bytes || pa % size != 0) {
    s.head = count;
    return s;
  }
  const std::size_t to_aligned = (vector_bytes - pa % vector_bytes) % vector_bytes / size;
  s.head = to_aligned < count ? to_aligned : count;
  const std::size_t per_vector = vector_bytes / size;
  s.vectors = (count - s.head) / per_vector;
  s.tail = count - s.head - s.vectors * per_vector;
  return s;
}

template <DataType T, ReduceOp Op>
__global__ void reduce_kernel(std::byte* dst, const std::byte* src, Split split) {
  constexpr std::size_t size = sizeof(typename ElementOf<T>::type);
  const std::size_t first = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const std::size_t stride = std::size_t{gridDim.x} * blockDim.x;
  for (std::size_t i = first; i < split.head; i += stride)
    reduce_element<T, Op>(dst + i * size, src + i * size);
  auto* d = reinterpret_cast<uint4*>(dst + split.head * size);
  const auto* s = reinterpret_cast<const uint4*>(src + split.head * size);
  for (std::size_t i = first; i < split.vectors; i += stride) {
    const uint4 x = d[i];
    const uint4 y = s[i];
    Words16 a{{x.x, x.y, x.z, x.w}};
    const Words16 b{{y.x, y.y, y.z, y.w}};
    reduce_words<T, Op>(a, b);
    d[i] = make_uint4(a.w[0], a.w[1], a.w[2], a.w[3]);
  }
  std::byte* const td = dst + split.head * size + split.vectors * vector_bytes;
  const std::byte* const ts = src + split.head * size + split.vectors * vector_bytes;
  for (std::size_t i = first; i < split.tail; i += stride)
    reduce_element<T, Op>(td + i * size, ts + i * size);
}

template <DataType T>
__global__ void divide_kernel(std::byte* buf, Split split, int ranks) {
  constexpr std::size_t size = sizeof(typename ElementOf<T>::type);
  const std::size_t first = std::size_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const std::size_t stride = std::size_t{gridDim.x} * blockDim.x;
  for (std::size_t i = first; i < split.head; i += stride)
    divide_element_at<T>(buf + i * size, ranks);
  auto* v = reinterpret_cast<uint4*>(buf + split.head * size);
  for (std::size_t i = first; i < split.vectors; i += stride) {
    const uint4 x = v[i];
    Words16 a{{x.x, x.y, x.z, x.w}};
    divide_words<T>(a, ranks);
    v[i] = make_uint4(a.w[0], a.w[1], a.w[2], a.w[3]);
  }
  std::byte* const t = buf + split.head * size + split.vectors * vector_bytes;
  for (std::size_t i = first; i < split.tail; i += stride)
    divide_element_at<T>(t + i * size, ranks);
}

/// Threads per block: enough to hide memory latency with a few blocks per
/// multiprocessor, few enough that the grid-stride loop keeps every block busy.
inline constexpr int block_threads = 512;
/// Blocks per multiprocessor: with 512 threads each, 4 fill an H100's 2,048 threads.
inline constexpr int blocks_per_sm = 4;

/// The grid for `work` items per thread-slot on the current device.
inline unsigned grid_for(std::size_t work) {
  int device = 0;
  RAILCC_CUDA_CHECK(cudaGetDevice(&device));
  int sms = 0;
  RAILCC_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const std::size_t most = static_cast<std::size_t>(sms) * blocks_per_sm;
  const std::size_t wanted = (work + block_threads - 1) / block_threads;
  return static_cast<unsigned>(wanted < most ? (wanted == 0 ? 1 : wanted) : most);
}

/// A pointer the GPU can read and write: device, managed or registered host memory.
inline void require_device_pointer(const void* p, const char* what, const char* call) {
  cudaPointerAttributes attributes{};
  RAILCC_CUDA_CHECK(cudaPointerGetAttributes(&attributes, p));
  if (attributes.type == cudaMemoryTypeUnregistered || attributes.devicePointer == nullptr) {
    throw InputError(std::string(call) + ": " + what +
                     " is host memory the GPU cannot reach (allocate it with cudaMalloc, "
                     "or register it with cudaHostRegister)");
  }
}

template <DataType T>
void launch_reduce(ReduceOp op, std::byte* dst, const std::byte* src, const Split& split,
                   cudaStream_t stream) {
  const std::size_t work = split.vectors > split.head ? split.vectors : split.head;
  const unsigned grid = grid_for(work);
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg:
      reduce_kernel<T, ReduceOp::sum><<<grid, block_threads, 0, stream>>>(dst, src, split);
      break;
    case ReduceOp::prod:
      reduce_kernel<T, ReduceOp::prod><<<grid, block_threads, 0, stream>>>(dst, src, split);
      break;
    case ReduceOp::min:
      reduce_kernel<T, ReduceOp::min><<<grid, block_threads, 0, stream>>>(dst, src, split);
      break;
    case ReduceOp::max:
      reduce_kernel<T, ReduceOp::max><<<grid, block_threads, 0, stream>>>(dst, src, split);
      break;
  }
  RAILCC_CUDA_CHECK(cudaGetLastError());
}

template <DataType T>
void launch_divide(std::byte* buf, const Split& split, int ranks, cudaStream_t stream) {
  const std::size_t work = split.vectors > split.head ? split.vectors : split.head;
  divide_kernel<T><<<grid_for(work), block_threads, 0, stream>>>(buf, split, ranks);
  RAILCC_CUDA_CHECK(cudaGetLastError());
}

/// cuda::reduce's launch, on arguments already checked (non-null memory the GPU reaches,
/// the source the destination itself or apart from it): for executors that check each
/// call's memory once instead of every step's (cuda::StreamMemory).
inline void reduce_checked(DataType t, ReduceOp op, void* dst, const void* src, std::size_t count,
                           cudaStream_t stream) {
  if (count == 0) return;
  auto* out = static_cast<std::byte*>(dst);
  const auto* in = static_cast<const std::byte*>(src);
  const Split split = split_of(dst, src, count, size_of(t));
  switch (t) {
    case DataType::uint8: return launch_reduce<DataType::uint8>(op, out, in, split, stream);
    case DataType::int32: return launch_reduce<DataType::int32>(op, out, in, split, stream);
    case DataType::int64: return launch_reduce<DataType::int64>(op, out, in, split, stream);
    case DataType::float16: return launch_reduce<DataType::float16>(op, out, in, split, stream);
    case DataType::bfloat16: return launch_reduce<DataType::bfloat16>(op, out, in, split, stream);
    case DataType::float32: return launch_reduce<DataType::float32>(op, out, in, split, stream);
    case DataType::float64: return launch_reduce<DataType::float64>(op, out, in, split, stream);
  }
}

/// cuda::finish_reduction's launch, on arguments already checked.
inline void finish_checked(DataType t, ReduceOp op, void* buf, std::size_t count, int ranks,
                           cudaStream_t stream) {
  if (op != ReduceOp::avg || ranks == 1 || count == 0) return;
  auto* b = static_cast<std::byte*>(buf);
  const Split split = split_of(buf, buf, count, size_of(t));
  switch (t) {
    case DataType::uint8: return launch_divide<DataType::uint8>(b, split, ranks, stream);
    case DataType::int32: return launch_divide<DataType::int32>(b, split, ranks, stream);
    case DataType::int64: return launch_divide<DataType::int64>(b, split, ranks, stream);
    case DataType::float16: return launch_divide<DataType::float16>(b, split, ranks, stream);
    case DataType::bfloat16: return launch_divide<DataType::bfloat16>(b, split, ranks, stream);
    case DataType::float32: return launch_divide<DataType::float32>(b, split, ranks, stream);
    case DataType::float64: return launch_divide<DataType::float64>(b, split, ranks, stream);
  }
}

}  // namespace detail

/// dst[i] = dst[i] op src[i] for `count` elements of type `t`, on `stream` (asynchronous).
/// Both buffers in memory the GPU reaches; src may equal dst, but not overlap it
/// otherwise. avg reduces as sum: finish_reduction divides at the end.
inline void reduce(DataType t, ReduceOp op, void* dst, const void* src, std::size_t count,
                   cudaStream_t stream) {
  if (count == 0) return;
  if (dst == nullptr || src == nullptr)
    throw InputError("cuda::reduce: a null buffer for " + std::to_string(count) + " elements");
  const std::size_t size = size_of(t);
  const auto d = reinterpret_cast<std::uintptr_t>(dst);
  const auto s = reinterpret_cast<std::uintptr_t>(src);
  if (d != s && d < s + count * size && s < d + count * size)
    throw InputError("cuda::reduce: the source overlaps the destination without being it");
  detail::require_device_pointer(dst, "the destination", "cuda::reduce");
  detail::require_device_pointer(src, "the source", "cuda::reduce");
  detail::reduce_checked(t, op, dst, src, count, stream);
}

/// avg's end: every one of `count` elements divided by `ranks`, as the host's
/// finish_reduction divides (other operators: nothing to do).
inline void finish_reduction(DataType t, ReduceOp op, void* buf, std::size_t count, int ranks,
                             cudaStream_t stream) {
  if (ranks < 1) throw InputError("cuda::finish_reduction: " + std::to_string(ranks) + " ranks");
  if (op != ReduceOp::avg || ranks == 1 || count == 0) return;
  if (buf == nullptr)
    throw InputError("cuda::finish_reduction: a null buffer for " + std::to_string(count) +
                     " elements");
  detail::require_device_pointer(buf, "the buffer", "cuda::finish_reduction");
  detail::finish_checked(t, op, buf, count, ranks, stream);
}

/// `bytes` from src to dst on `stream`: the copy engines (cudaMemcpyAsync), which move
/// device-to-device copies at the memory's rate and leave the multiprocessors free.
inline void copy(void* dst, const void* src, std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  if (dst == nullptr || src == nullptr)
    throw InputError("cuda::copy: a null buffer for " + std::to_string(bytes) + " bytes");
  RAILCC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
}

}  // namespace cuda

RAILCC_NAMESPACE_END
