// Comparing reduction results where NaNs may differ: which NaN an operation on NaNs
// returns is the hardware's choice (x86 keeps an operand's payload, and a vectorised loop
// may swap a product's operands; a GPU returns its canonical NaN), so a NaN equals any
// NaN and every other element must be equal byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "railcc/coll/data_type.hpp"

namespace railcc::test {

/// Whether the element of type t at `p` is a NaN.
inline bool is_nan_at(DataType t, const std::byte* p) {
  switch (t) {
    case DataType::float16: {
      std::uint16_t h;
      std::memcpy(&h, p, 2);
      return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
    }
    case DataType::bfloat16: {
      std::uint16_t h;
      std::memcpy(&h, p, 2);
      return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0;
    }
    case DataType::float32: {
      float f;
      std::memcpy(&f, p, 4);
      return f != f;
    }
    case DataType::float64: {
      double d;
      std::memcpy(&d, p, 8);
      return d != d;
    }
    default: return false;
  }
}

/// The first of `count` elements of type t where `got` and `want` differ (a NaN equals
/// any NaN), or -1.
inline long long first_difference(DataType t, const std::byte* got, const std::byte* want,
                                  std::size_t count) {
  const std::size_t size = size_of(t);
  for (std::size_t i = 0; i < count; ++i) {
    const std::byte* g = got + i * size;
    const std::byte* w = want + i * size;
    if (is_nan_at(t, g) && is_nan_at(t, w)) continue;
    if (std::memcmp(g, w, size) != 0) return static_cast<long long>(i);
  }
  return -1;
}

}  // namespace railcc::test
