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

namespace detail {

template <class T>
RAILCC_HOST_DEVICE T from_bits(std::uint32_t u) {
  T v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}
template <class T>
RAILCC_HOST_DEVICE std::uint32_t to_bits(T v) {
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

/// The element type's reduction in words; `Element` is the C++ type of the element, `H`
/// Half or BFloat16 for the 16-bit floating-point types (void otherwise).
template <ReduceOp Op, class Element, class H>
RAILCC_HOST_DEVICE void combine_words(Words16& a, const Words16& b) {
  using railcc::detail::reduce::combine;
  using railcc::detail::reduce::combine_16;
  if constexpr (sizeof(Element) == 8) {
    // Two 64-bit elements: words (0, 1) and (2, 3), low word first.
    for (int i = 0; i < 4; i += 2) {
      const std::uint64_t x = a.w[i] | std::uint64_t{a.w[i + 1]} << 32;
      const std::uint64_t y = b.w[i] | std::uint64_t{b.w[i + 1]} << 32;
      Element ex, ey;
      std::memcpy(&ex, &x, sizeof ex);
      std::memcpy(&ey, &y, sizeof ey);
      const Element r = combine<Op>(ex, ey);
      std::uint64_t z;
      std::memcpy(&z, &r, sizeof z);
      a.w[i] = static_cast<std::uint32_t>(z);
      a.w[i + 1] = static_cast<std::uint32_t>(z >> 32);
    }
  } else if constexpr (sizeof(Element) == 4) {
    for (int i = 0; i < 4; ++i)
      a.w[i] = to_bits(combine<Op>(from_bits<Element>(a.w[i]), from_bits<Element>(b.w[i])));
  } else if constexpr (sizeof(Element) == 2) {
    // Two 16-bit elements per word, the low half first.
    for (int i = 0; i < 4; ++i) {
      const std::uint32_t lo =
          combine_16<Op, H>(static_cast<std::uint16_t>(a.w[i]), static_cast<std::uint16_t>(b.w[i]));
      const std::uint32_t hi = combine_16<Op, H>(static_cast<std::uint16_t>(a.w[i] >> 16),
                                                 static_cast<std::uint16_t>(b.w[i] >> 16));
      a.w[i] = lo | hi << 16;
    }
  } else {
    static_assert(sizeof(Element) == 1);
    // Four bytes per word, the lowest first.
    for (int i = 0; i < 4; ++i) {
      std::uint32_t r = 0;
      for (int k = 0; k < 32; k += 8) {
        const auto x = static_cast<Element>(a.w[i] >> k);
        const auto y = static_cast<Element>(b.w[i] >> k);
        r |= std::uint32_t{static_cast<std::uint8_t>(combine<Op>(x, y))} << k;
      }
      a.w[i] = r;
    }
  }
}

/// avg's division of one element, as finish_reduction divides: integers by the int,
/// floating point by the count in their own type.
template <class Element>
RAILCC_HOST_DEVICE Element divide_element(Element e, int ranks) {
  using railcc::detail::reduce::divide;
  if constexpr (std::is_integral_v<Element>)
    return divide<Element>(e, ranks);
  else
    return divide<Element>(e, static_cast<Element>(ranks));
}

/// avg's final division of every element of the words by `ranks`.
template <class Element, class H>
RAILCC_HOST_DEVICE void divide_words(Words16& a, int ranks) {
  using railcc::detail::reduce::divide_16;
  if constexpr (sizeof(Element) == 8) {
    for (int i = 0; i < 4; i += 2) {
      const std::uint64_t x = a.w[i] | std::uint64_t{a.w[i + 1]} << 32;
      Element e;
      std::memcpy(&e, &x, sizeof e);
      const Element r = divide_element(e, ranks);
      std::uint64_t z;
      std::memcpy(&z, &r, sizeof z);
      a.w[i] = static_cast<std::uint32_t>(z);
      a.w[i + 1] = static_cast<std::uint32_t>(z >> 32);
    }
  } else if constexpr (sizeof(Element) == 4) {
    for (int i = 0; i < 4; ++i) {
      const auto e = from_bits<Element>(a.w[i]);
      a.w[i] = to_bits(divide_element(e, ranks));
    }
  } else if constexpr (sizeof(Element) == 2) {
    const auto by = static_cast<float>(ranks);
    for (int i = 0; i < 4; ++i) {
      const std::uint32_t lo = divide_16<H>(static_cast<std::uint16_t>(a.w[i]), by);
      const std::uint32_t hi = divide_16<H>(static_cast<std::uint16_t>(a.w[i] >> 16), by);
      a.w[i] = lo | hi << 16;
    }
  } else {
    static_assert(sizeof(Element) == 1);
    for (int i = 0; i < 4; ++i) {
      std::uint32_t r = 0;
      for (int k = 0; k < 32; k += 8) {
        const auto x = static_cast<Element>(a.w[i] >> k);
        r |= std::uint32_t{static_cast<std::uint8_t>(divide_element(x, ranks))} << k;
      }
      a.w[i] = r;
    }
  }
}

}  // namespace detail

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

/// a = a op b, element by element, for the 16 / size_of(T) elements of type T in each.
/// avg reduces as sum (its division comes once, at the end: divide_words).
template <DataType T, ReduceOp Op>
RAILCC_HOST_DEVICE void reduce_words(Words16& a, const Words16& b) {
  constexpr ReduceOp op = Op == ReduceOp::avg ? ReduceOp::sum : Op;
  detail::combine_words<op, typename ElementOf<T>::type, typename ElementOf<T>::half>(a, b);
}

/// avg's end: every element of `a` divided by `ranks` (as finish_reduction divides).
template <DataType T>
RAILCC_HOST_DEVICE void divide_words(Words16& a, int ranks) {
  detail::divide_words<typename ElementOf<T>::type, typename ElementOf<T>::half>(a, ranks);
}

/// One element: dst = dst op src (the elements before the first whole vector and after
/// the last). avg reduces as sum.
template <DataType T, ReduceOp Op>
RAILCC_HOST_DEVICE void reduce_element(std::byte* dst, const std::byte* src) {
  using E = typename ElementOf<T>::type;
  using H = typename ElementOf<T>::half;
  constexpr ReduceOp op = Op == ReduceOp::avg ? ReduceOp::sum : Op;
  E a, b;
  std::memcpy(&a, dst, sizeof a);
  std::memcpy(&b, src, sizeof b);
  if constexpr (std::is_void_v<H>)
    a = railcc::detail::reduce::combine<op>(a, b);
  else
    a = railcc::detail::reduce::combine_16<op, H>(a, b);
  std::memcpy(dst, &a, sizeof a);
}

/// One element divided by `ranks` (avg's end).
template <DataType T>
RAILCC_HOST_DEVICE void divide_element_at(std::byte* p, int ranks) {
  using E = typename ElementOf<T>::type;
  using H = typename ElementOf<T>::half;
  E a;
  std::memcpy(&a, p, sizeof a);
  if constexpr (std::is_void_v<H>)
    a = detail::divide_element(a, ranks);
  else
    a = railcc::detail::reduce::divide_16<H>(a, static_cast<float>(ranks));
  std::memcpy(p, &a, sizeof a);
}

}  // namespace cuda

RAILCC_NAMESPACE_END
