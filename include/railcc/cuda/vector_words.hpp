// railcc/cuda/vector_words.hpp: a reduction on 16 bytes held as four 32-bit words.
//
// The CUDA kernels load and store 16 bytes per thread (one uint4: a single 128-bit memory
// instruction, the widest a GPU has) and reduce the elements packed in those words in
// registers. The unpacking lives here, in plain C++ that is also host code, so the host's
// unit tests check exactly what the GPU runs against the host backend's reduce_into: the
// same element operations (coll/reduce_op.hpp), the same little-endian packing of
// elements into words that memory has on both sides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

namespace cuda {

/// 16 bytes as four little-endian 32-bit words (a uint4's x, y, z, w).
struct Words16 {
  std::uint32_t w[4];
};

/// Bytes a 16-byte vector holds.
inline constexpr std::size_t vector_bytes = 16;

/// The C++ element type of a DataType, and for 16-bit floats the type that converts them.
template <DataType T>
struct ElementOf;
template <>
struct ElementOf<DataType::uint8> {
  using type = std::uint8_t;
  using half = void;
};
template <>
struct ElementOf<DataType::int32> {
  using type = std::int32_t;
  using half = void;
};
template <>
struct ElementOf<DataType::int64> {
  using type = std::int64_t;
  using half = void;
};
template <>
struct ElementOf<DataType::float16> {
  using type = std::uint16_t;
  using half = Half;
};
template <>
struct ElementOf<DataType::bfloat16> {
  using type = std::uint16_t;
  using half = BFloat16;
};
template <>
struct ElementOf<DataType::float32> {
  using type = float;
  using half = void;
};
template <>
struct ElementOf<DataType::float64> {
  using type = double;
  using half = void;
};

namespace detail {

/// Calls `f(x, y)` for each element x of `a` and y of `b` at the same place, and stores
/// what it returns in x's place. Elements of sizeof(Element) bytes packed little-endian:
/// two 64-bit elements over words (0, 1) and (2, 3), low word first; one, two or four
/// per word otherwise, the lowest bytes first.
template <class Element, class F>
RAILCC_HOST_DEVICE void for_each_element(Words16& a, const Words16& b, F f) {
  if constexpr (sizeof(Element) == 8) {
    for (int i = 0; i < 4; i += 2) {
      const std::uint64_t x = a.w[i] | std::uint64_t{a.w[i + 1]} << 32;
      const std::uint64_t y = b.w[i] | std::uint64_t{b.w[i + 1]} << 32;
      Element ex, ey;
      std::memcpy(&ex, &x, sizeof ex);
      std::memcpy(&ey, &y, sizeof ey);
      const Element r = f(ex, ey);
      std::uint64_t z;
      std::memcpy(&z, &r, sizeof z);
      a.w[i] = static_cast<std::uint32_t>(z);
      a.w[i + 1] = static_cast<std::uint32_t>(z >> 32);
    }
  } else {
    static_assert(sizeof(Element) == 4 || sizeof(Element) == 2 || sizeof(Element) == 1);
    constexpr int bits = 8 * static_cast<int>(sizeof(Element));
    for (int i = 0; i < 4; ++i) {
      std::uint32_t out = 0;
      for (int k = 0; k < 32; k += bits) {
        // The element's bytes are the low bytes of the shifted word (little-endian).
        const std::uint32_t x = a.w[i] >> k;
        const std::uint32_t y = b.w[i] >> k;
        Element ex, ey;
        std::memcpy(&ex, &x, sizeof ex);
        std::memcpy(&ey, &y, sizeof ey);
        const Element r = f(ex, ey);
        std::uint32_t z = 0;
        std::memcpy(&z, &r, sizeof r);
        out |= z << k;
      }
      a.w[i] = out;
    }
  }
}

/// One element of type T: x op y (avg reduces as sum; 16-bit floats in float, rounded).
template <DataType T, ReduceOp Op>
struct Reduce {
  using E = typename ElementOf<T>::type;
  using H = typename ElementOf<T>::half;
  static constexpr ReduceOp op = Op == ReduceOp::avg ? ReduceOp::sum : Op;
  RAILCC_HOST_DEVICE E operator()(E x, E y) const {
    if constexpr (std::is_void_v<H>)
      return railcc::detail::reduce::combine<op>(x, y);
    else
      return railcc::detail::reduce::combine_16<op, H>(x, y);
  }
};

/// One element of type T divided by the rank count, as finish_reduction divides:
/// integers by the int, floating point by the count in their own type, 16-bit floats in
/// float. The second operand is unused.
template <DataType T>
struct Divide {
  using E = typename ElementOf<T>::type;
  using H = typename ElementOf<T>::half;
  int ranks;
  RAILCC_HOST_DEVICE E operator()(E x, E /*unused*/) const {
    if constexpr (!std::is_void_v<H>)
      return railcc::detail::reduce::divide_16<H>(x, static_cast<float>(ranks));
    else if constexpr (std::is_integral_v<E>)
      return railcc::detail::reduce::divide<E>(x, ranks);
    else
      return railcc::detail::reduce::divide<E>(x, static_cast<E>(ranks));
  }
};

/// Applies `f` to the element at `dst` (and the one at `src`), in place.
template <class E, class F>
RAILCC_HOST_DEVICE void apply_at(std::byte* dst, const std::byte* src, F f) {
  E x, y;
  std::memcpy(&x, dst, sizeof x);
  std::memcpy(&y, src, sizeof y);
  x = f(x, y);
  std::memcpy(dst, &x, sizeof x);
}

}  // namespace detail

/// a = a op b, element by element, for the 16 / size_of(T) elements of type T in each.
/// avg reduces as sum (its division comes once, at the end: divide_words).
template <DataType T, ReduceOp Op>
RAILCC_HOST_DEVICE void reduce_words(Words16& a, const Words16& b) {
  detail::for_each_element<typename ElementOf<T>::type>(a, b, detail::Reduce<T, Op>{});
}

/// avg's end: every element of `a` divided by `ranks` (as finish_reduction divides).
template <DataType T>
RAILCC_HOST_DEVICE void divide_words(Words16& a, int ranks) {
  detail::for_each_element<typename ElementOf<T>::type>(a, a, detail::Divide<T>{ranks});
}

/// One element: dst = dst op src (the elements before the first whole vector and after
/// the last). avg reduces as sum.
template <DataType T, ReduceOp Op>
RAILCC_HOST_DEVICE void reduce_element(std::byte* dst, const std::byte* src) {
  detail::apply_at<typename ElementOf<T>::type>(dst, src, detail::Reduce<T, Op>{});
}

/// One element divided by `ranks` (avg's end).
template <DataType T>
RAILCC_HOST_DEVICE void divide_element_at(std::byte* p, int ranks) {
  detail::apply_at<typename ElementOf<T>::type>(p, p, detail::Divide<T>{ranks});
}

}  // namespace cuda

RAILCC_NAMESPACE_END
