// railcc/coll/reduce_op.hpp: reduction operators on typed buffers.
//
// sum, prod, min, max on every DataType, and avg, which like NCCL's ncclAvg reduces with
// sum and divides by the rank count once at the end (integer types divide with truncation
// toward zero). Integer arithmetic wraps (two's complement), as on the GPU. half and
// bfloat16 are computed in float and rounded back after every operation, as a GPU's
// 16-bit arithmetic rounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <type_traits>

#include "railcc/coll/data_type.hpp"
#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

enum class ReduceOp : std::uint8_t { sum, prod, min, max, avg };

inline constexpr ReduceOp all_reduce_ops[] = {ReduceOp::sum, ReduceOp::prod, ReduceOp::min,
                                              ReduceOp::max, ReduceOp::avg};

constexpr std::string_view to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::prod: return "prod";
    case ReduceOp::min: return "min";
    case ReduceOp::max: return "max";
    case ReduceOp::avg: return "avg";
  }
  return "?";
}

constexpr std::optional<ReduceOp> parse_reduce_op(std::string_view s) {
  for (ReduceOp op : all_reduce_ops) {
    if (s == to_string(op)) return op;
  }
  return std::nullopt;
}

namespace detail::reduce {

template <class T>
T load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <class T>
void store(std::byte* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

/// One element: `a op b`. Integers wrap (computed unsigned); floating-point min and max
/// keep `a` when the two compare equal or either is NaN, the same on every backend. Host
/// and device (the CUDA kernels reduce with it).
template <ReduceOp Op, class T>
RAILCC_HOST_DEVICE T combine(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    if constexpr (Op == ReduceOp::sum || Op == ReduceOp::avg)
      return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    else if constexpr (Op == ReduceOp::prod)
      return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
    else if constexpr (Op == ReduceOp::min)
      return b < a ? b : a;
    else
      return a < b ? b : a;
  } else {
    if constexpr (Op == ReduceOp::sum || Op == ReduceOp::avg)
      return a + b;
    else if constexpr (Op == ReduceOp::prod)
      return a * b;
    else if constexpr (Op == ReduceOp::min)
      return b < a ? b : a;
    else
      return a < b ? b : a;
  }
}

template <class T>
T combine(ReduceOp op, T a, T b) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return combine<ReduceOp::sum>(a, b);
    case ReduceOp::prod: return combine<ReduceOp::prod>(a, b);
    case ReduceOp::min: return combine<ReduceOp::min>(a, b);
    case ReduceOp::max: return combine<ReduceOp::max>(a, b);
  }
  return a;
}

// The loops below take the operator as a template argument, so each is a plain loop over
// elements the compiler vectorises (the host backend's reductions run at memory speed);
// the element type goes through memcpy because buffers carry no alignment promise. The
// source and destination never overlap (a backend reduces a received copy into its
// buffer), and saying so lets -O2 vectorise without a run-time overlap check.
/// Elements a block of the loops below takes: a fixed trip count that is a multiple of
/// every vector width, which -O2's cost model asks for before it vectorises a loop.
inline constexpr std::size_t block_elements = 64;

template <ReduceOp Op, class T>
void reduce_elements(std::byte* RAILCC_RESTRICT dst, const std::byte* RAILCC_RESTRICT src,
                     std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    store(dst + i * sizeof(T),
          combine<Op>(load<T>(dst + i * sizeof(T)), load<T>(src + i * sizeof(T))));
  }
}

template <ReduceOp Op, class T>
void reduce_loop(std::byte* dst, const std::byte* src, std::size_t count) {
  std::size_t i = 0;
  for (; i + block_elements <= count; i += block_elements)
    reduce_elements<Op, T>(dst + i * sizeof(T), src + i * sizeof(T), block_elements);
  reduce_elements<Op, T>(dst + i * sizeof(T), src + i * sizeof(T), count - i);
}

/// One 16-bit floating-point element (H: Half or BFloat16, as bits): computed in float
/// and rounded back, as a GPU's 16-bit arithmetic rounds. Host and device.
template <ReduceOp Op, class H>
RAILCC_HOST_DEVICE std::uint16_t combine_16(std::uint16_t a, std::uint16_t b) {
  return H::from_float(combine<Op>(H{a}.to_float(), H{b}.to_float())).bits;
}

template <ReduceOp Op, class H>
void reduce_elements_16(std::byte* RAILCC_RESTRICT dst, const std::byte* RAILCC_RESTRICT src,
                        std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    store(dst + 2 * i,
          combine_16<Op, H>(load<std::uint16_t>(dst + 2 * i), load<std::uint16_t>(src + 2 * i)));
  }
}

template <ReduceOp Op, class H>
void reduce_loop_16(std::byte* dst, const std::byte* src, std::size_t count) {
  std::size_t i = 0;
  for (; i + block_elements <= count; i += block_elements)
    reduce_elements_16<Op, H>(dst + 2 * i, src + 2 * i, block_elements);
  reduce_elements_16<Op, H>(dst + 2 * i, src + 2 * i, count - i);
}

template <class T>
void reduce_into(ReduceOp op, std::byte* dst, const std::byte* src, std::size_t count) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return reduce_loop<ReduceOp::sum, T>(dst, src, count);
    case ReduceOp::prod: return reduce_loop<ReduceOp::prod, T>(dst, src, count);
    case ReduceOp::min: return reduce_loop<ReduceOp::min, T>(dst, src, count);
    case ReduceOp::max: return reduce_loop<ReduceOp::max, T>(dst, src, count);
  }
}

template <class H>
void reduce_into_16(ReduceOp op, std::byte* dst, const std::byte* src, std::size_t count) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: return reduce_loop_16<ReduceOp::sum, H>(dst, src, count);
    case ReduceOp::prod: return reduce_loop_16<ReduceOp::prod, H>(dst, src, count);
    case ReduceOp::min: return reduce_loop_16<ReduceOp::min, H>(dst, src, count);
    case ReduceOp::max: return reduce_loop_16<ReduceOp::max, H>(dst, src, count);
  }
}

/// avg's division of one element by the rank count: integers truncate toward zero, 16-bit
/// floats divide in float and round back. Host and device.
template <class T, class D>
RAILCC_HOST_DEVICE T divide(T x, D by) {
  return static_cast<T>(x / by);
}
template <class H>
RAILCC_HOST_DEVICE std::uint16_t divide_16(std::uint16_t x, float by) {
  return H::from_float(H{x}.to_float() / by).bits;
}

template <class T, class D>
void divide_loop(std::byte* buf, std::size_t count, D by) {
  for (std::size_t i = 0; i < count; ++i)
    store(buf + i * sizeof(T), divide<T>(load<T>(buf + i * sizeof(T)), by));
}

template <class H>
void divide_loop_16(std::byte* buf, std::size_t count, float by) {
  for (std::size_t i = 0; i < count; ++i)
    store(buf + 2 * i, divide_16<H>(load<std::uint16_t>(buf + 2 * i), by));
}

}  // namespace detail::reduce

/// dst[i] = dst[i] op src[i] for `count` elements of type `t`.
inline void reduce_into(DataType t, ReduceOp op, std::byte* dst, const std::byte* src,
                        std::size_t count) {
  using namespace detail::reduce;
  switch (t) {
    case DataType::uint8: return reduce_into<std::uint8_t>(op, dst, src, count);
    case DataType::int32: return reduce_into<std::int32_t>(op, dst, src, count);
    case DataType::int64: return reduce_into<std::int64_t>(op, dst, src, count);
    case DataType::float16: return reduce_into_16<Half>(op, dst, src, count);
    case DataType::bfloat16: return reduce_into_16<BFloat16>(op, dst, src, count);
    case DataType::float32: return reduce_into<float>(op, dst, src, count);
    case DataType::float64: return reduce_into<double>(op, dst, src, count);
  }
}

/// avg's final step: divide every element by `ranks` (others: nothing to do).
inline void finish_reduction(DataType t, ReduceOp op, std::byte* buf, std::size_t count,
                             int ranks) {
  using namespace detail::reduce;
  if (op != ReduceOp::avg || ranks <= 1) return;
  switch (t) {
    case DataType::uint8: return divide_loop<std::uint8_t>(buf, count, ranks);
    case DataType::int32: return divide_loop<std::int32_t>(buf, count, ranks);
    case DataType::int64: return divide_loop<std::int64_t>(buf, count, ranks);
    case DataType::float16: return divide_loop_16<Half>(buf, count, static_cast<float>(ranks));
    case DataType::bfloat16: return divide_loop_16<BFloat16>(buf, count, static_cast<float>(ranks));
    case DataType::float32: return divide_loop<float>(buf, count, static_cast<float>(ranks));
    case DataType::float64: return divide_loop<double>(buf, count, static_cast<double>(ranks));
  }
}

RAILCC_NAMESPACE_END
