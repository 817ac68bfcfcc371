// railcc/coll/data_type.hpp: the element types collectives move, named as nccl-tests names them.
//
// float16 and bfloat16 are stored as their 16-bit patterns (`Half`, `BFloat16`) and
// converted to and from float with round-to-nearest-even, as GPUs do, so a host-side
// reduction in data mode rounds like the device does.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

enum class DataType : std::uint8_t { uint8, int32, int64, float16, bfloat16, float32, float64 };

inline constexpr DataType all_data_types[] = {
    DataType::uint8,    DataType::int32,   DataType::int64,  DataType::float16,
    DataType::bfloat16, DataType::float32, DataType::float64};

constexpr std::size_t size_of(DataType t) {
  switch (t) {
    case DataType::uint8: return 1;
    case DataType::float16:
    case DataType::bfloat16: return 2;
    case DataType::int32:
    case DataType::float32: return 4;
    case DataType::int64:
    case DataType::float64: return 8;
  }
  return 0;
}

constexpr bool is_floating(DataType t) {
  return t == DataType::float16 || t == DataType::bfloat16 || t == DataType::float32 ||
         t == DataType::float64;
}

/// nccl-tests' names: "uint8", "int32", "int64", "half", "bfloat16", "float", "double".
constexpr std::string_view to_string(DataType t) {
  switch (t) {
    case DataType::uint8: return "uint8";
    case DataType::int32: return "int32";
    case DataType::int64: return "int64";
    case DataType::float16: return "half";
    case DataType::bfloat16: return "bfloat16";
    case DataType::float32: return "float";
    case DataType::float64: return "double";
  }
  return "?";
}

constexpr std::optional<DataType> parse_data_type(std::string_view s) {
  for (DataType t : all_data_types) {
    if (s == to_string(t)) return t;
  }
  if (s == "float16" || s == "fp16") return DataType::float16;
  if (s == "float32" || s == "fp32") return DataType::float32;
  if (s == "float64" || s == "fp64") return DataType::float64;
  if (s == "bf16") return DataType::bfloat16;
  return std::nullopt;
}

namespace detail {
// std::bit_cast is a host function to nvcc; memcpy is both (and free at -O1 and above).
RAILCC_HOST_DEVICE inline std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
RAILCC_HOST_DEVICE inline float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace detail

/// IEEE 754 binary16.
struct Half {
  std::uint16_t bits = 0;

  RAILCC_HOST_DEVICE static Half from_float(float f) {
    const std::uint32_t x = detail::bits_of(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // inf or NaN
      return {static_cast<std::uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u))};
    }
    if (abs >= 0x477ff000u) return {static_cast<std::uint16_t>(sign | 0x7c00u)};  // rounds to inf
    if (abs < 0x38800000u) {
      // Subnormal half (or zero): shift the significand with the implicit bit, round to even.
      if (abs < 0x33000000u) return {static_cast<std::uint16_t>(sign)};
      const std::uint32_t e = abs >> 23;
      const std::uint32_t m = (abs & 0x7fffffu) | 0x800000u;
      const std::uint32_t shift = 126 - e;  // 14 + (113 - e) - 1
      std::uint32_t h = m >> shift;
      const std::uint32_t rem = m & ((1u << shift) - 1);
      const std::uint32_t half_way = 1u << (shift - 1);
      if (rem > half_way || (rem == half_way && (h & 1u))) ++h;
      return {static_cast<std::uint16_t>(sign | h)};
    }
    std::uint32_t h = ((abs - 0x38000000u) >> 13);
    const std::uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return {static_cast<std::uint16_t>(sign | h)};
  }
  [[nodiscard]] RAILCC_HOST_DEVICE float to_float() const {
    const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
    const std::uint32_t e = (bits >> 10) & 0x1fu;
    const std::uint32_t m = bits & 0x3ffu;
    if (e == 0) {
      const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24
      return sign ? -v : v;
    }
    if (e == 31) return detail::float_of(sign | 0x7f800000u | (m << 13));
    return detail::float_of(sign | ((e + 112) << 23) | (m << 13));
  }
};

/// bfloat16: the top half of a binary32.
struct BFloat16 {
  std::uint16_t bits = 0;

  RAILCC_HOST_DEVICE static BFloat16 from_float(float f) {
    const std::uint32_t x = detail::bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
      return {static_cast<std::uint16_t>((x >> 16) | 0x40u)};  // quiet NaN
    const std::uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
    return {static_cast<std::uint16_t>((x + rounding) >> 16)};
  }
  [[nodiscard]] RAILCC_HOST_DEVICE float to_float() const {
    return detail::float_of(static_cast<std::uint32_t>(bits) << 16);
  }
};

RAILCC_NAMESPACE_END
