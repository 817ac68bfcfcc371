// railcc/coll/reduce_op.hpp: reduction operators on typed buffers.
//
// sum, prod, min, max on every DataType, and avg, which like NCCL's ncclAvg reduces with
// sum and divides by the rank count once at the end (integer types divide with truncation
// toward zero). Integer arithmetic wraps (two's complement), as on the GPU. half and
// bfloat16 are computed in float and rounded back after every operation, as a GPU's
// 16-bit arithmetic rounds.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

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

template <class T>
T combine(ReduceOp op, T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg: return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
      case ReduceOp::prod: return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
      case ReduceOp::min: return std::min(a, b);
      case ReduceOp::max: return std::max(a, b);
    }
  } else {
    switch (op) {
      case ReduceOp::sum:
      case ReduceOp::avg: return a + b;
      case ReduceOp::prod: return a * b;
      case ReduceOp::min: return b < a ? b : a;
      case ReduceOp::max: return a < b ? b : a;
    }
  }
  return a;
}

template <class T>
void reduce_into(ReduceOp op, std::byte* dst, const std::byte* src, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    store(dst + i * sizeof(T),
          combine(op, load<T>(dst + i * sizeof(T)), load<T>(src + i * sizeof(T))));
  }
}

template <class H>
void reduce_into_16(ReduceOp op, std::byte* dst, const std::byte* src, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const H a{load<std::uint16_t>(dst + 2 * i)};
    const H b{load<std::uint16_t>(src + 2 * i)};
    store(dst + 2 * i, H::from_float(combine(op, a.to_float(), b.to_float())).bits);
  }
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
  for (std::size_t i = 0; i < count; ++i) {
    switch (t) {
      case DataType::uint8:
        store(buf + i, static_cast<std::uint8_t>(load<std::uint8_t>(buf + i) / ranks));
        break;
      case DataType::int32: store(buf + 4 * i, load<std::int32_t>(buf + 4 * i) / ranks); break;
      case DataType::int64: store(buf + 8 * i, load<std::int64_t>(buf + 8 * i) / ranks); break;
      case DataType::float16:
        store(buf + 2 * i, Half::from_float(Half{load<std::uint16_t>(buf + 2 * i)}.to_float() /
                                            static_cast<float>(ranks))
                               .bits);
        break;
      case DataType::bfloat16:
        store(buf + 2 * i,
              BFloat16::from_float(BFloat16{load<std::uint16_t>(buf + 2 * i)}.to_float() /
                                   static_cast<float>(ranks))
                  .bits);
        break;
      case DataType::float32:
        store(buf + 4 * i, load<float>(buf + 4 * i) / static_cast<float>(ranks));
        break;
      case DataType::float64:
        store(buf + 8 * i, load<double>(buf + 8 * i) / static_cast<double>(ranks));
        break;
    }
  }
}

RAILCC_NAMESPACE_END
