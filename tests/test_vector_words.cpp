// cuda/vector_words.hpp on the host: the 16-byte vectors and single elements the CUDA
// kernels reduce give, byte for byte, what the host backend's reduce_into and
// finish_reduction give on the same bytes, for every type and operator, on random bit
// patterns (NaNs, infinities, subnormals and integer wrap-around among them).
#include <doctest/doctest.h>

#include <array>
#include <cstring>
#include <random>

#include "nan_aware.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/cuda/vector_words.hpp"

using namespace railcc;
using cuda::Words16;

namespace {

template <DataType T>
void words_reduce(ReduceOp op, Words16& a, const Words16& b) {
  switch (op) {
    case ReduceOp::sum: return cuda::reduce_words<T, ReduceOp::sum>(a, b);
    case ReduceOp::prod: return cuda::reduce_words<T, ReduceOp::prod>(a, b);
    case ReduceOp::min: return cuda::reduce_words<T, ReduceOp::min>(a, b);
    case ReduceOp::max: return cuda::reduce_words<T, ReduceOp::max>(a, b);
    case ReduceOp::avg: return cuda::reduce_words<T, ReduceOp::avg>(a, b);
  }
}
template <DataType T>
void element_reduce(ReduceOp op, std::byte* a, const std::byte* b) {
  switch (op) {
    case ReduceOp::sum: return cuda::reduce_element<T, ReduceOp::sum>(a, b);
    case ReduceOp::prod: return cuda::reduce_element<T, ReduceOp::prod>(a, b);
    case ReduceOp::min: return cuda::reduce_element<T, ReduceOp::min>(a, b);
    case ReduceOp::max: return cuda::reduce_element<T, ReduceOp::max>(a, b);
    case ReduceOp::avg: return cuda::reduce_element<T, ReduceOp::avg>(a, b);
  }
}

/// The kernels' operations for a type known at run time.
struct KernelOps {
  void (*reduce_words)(ReduceOp, Words16&, const Words16&);
  void (*reduce_element)(ReduceOp, std::byte*, const std::byte*);
  void (*divide_words)(Words16&, int);
  void (*divide_element)(std::byte*, int);
};
template <DataType T>
KernelOps ops_of() {
  return {words_reduce<T>, element_reduce<T>, cuda::divide_words<T>, cuda::divide_element_at<T>};
}
KernelOps ops_of(DataType t) {
  switch (t) {
    case DataType::uint8: return ops_of<DataType::uint8>();
    case DataType::int32: return ops_of<DataType::int32>();
    case DataType::int64: return ops_of<DataType::int64>();
    case DataType::float16: return ops_of<DataType::float16>();
    case DataType::bfloat16: return ops_of<DataType::bfloat16>();
    case DataType::float32: return ops_of<DataType::float32>();
    case DataType::float64: return ops_of<DataType::float64>();
  }
  return {};
}

/// 16 random bytes; for floating types, some elements replaced by values that test
/// the edges (zeros of both signs, infinities, NaN, the smallest subnormal, 1 and -1).
std::array<std::byte, 16> random_vector(DataType t, std::mt19937_64& rng) {
  std::array<std::byte, 16> v;
  for (auto& b : v) b = static_cast<std::byte>(rng());
  if (!is_floating(t)) return v;
  const std::size_t size = size_of(t);
  for (std::size_t at = 0; at < v.size(); at += size) {
    if (rng() % 3 != 0) continue;
    const int pick = static_cast<int>(rng() % 7);
    const double d[] = {0.0, -0.0, 1.0 / 0.0, -1.0 / 0.0, 0.0 / 0.0, 1.0, -1.0};
    if (t == DataType::float64) {
      std::memcpy(&v[at], &d[pick], 8);
    } else if (t == DataType::float32) {
      const float f = static_cast<float>(d[pick]);
      std::memcpy(&v[at], &f, 4);
    } else {
      const std::uint16_t bits = t == DataType::float16
                                     ? Half::from_float(static_cast<float>(d[pick])).bits
                                     : BFloat16::from_float(static_cast<float>(d[pick])).bits;
      const std::uint16_t subnormal = 1;
      std::memcpy(&v[at], pick == 6 && rng() % 2 ? &subnormal : &bits, 2);
    }
  }
  return v;
}

/// Equal values (a NaN equals any NaN: tests/nan_aware.hpp).
bool same_values(DataType t, const std::array<std::byte, 16>& a,
                 const std::array<std::byte, 16>& b) {
  return test::first_difference(t, a.data(), b.data(), a.size() / size_of(t)) == -1;
}

}  // namespace

TEST_CASE("16-byte vectors and single elements reduce as the host backend does") {
  std::mt19937_64 rng(20261203);
  for (DataType t : all_data_types) {
    const KernelOps ops = ops_of(t);
    const std::size_t count = 16 / size_of(t);
    for (ReduceOp op : all_reduce_ops) {
      CAPTURE(to_string(t));
      CAPTURE(to_string(op));
      for (int trial = 0; trial < 200; ++trial) {
        const auto a = random_vector(t, rng);
        const auto b = random_vector(t, rng);
        auto expected = a;
        reduce_into(t, op, expected.data(), b.data(), count);

        Words16 wa, wb;
        std::memcpy(wa.w, a.data(), 16);
        std::memcpy(wb.w, b.data(), 16);
        ops.reduce_words(op, wa, wb);
        std::array<std::byte, 16> got;
        std::memcpy(got.data(), wa.w, 16);
        REQUIRE(same_values(t, got, expected));

        auto one = a;
        for (std::size_t i = 0; i < count; ++i)
          ops.reduce_element(op, one.data() + i * size_of(t), b.data() + i * size_of(t));
        REQUIRE(same_values(t, one, expected));
      }
    }
  }
}

TEST_CASE("avg's division of vectors and single elements is the host backend's") {
  std::mt19937_64 rng(7);
  for (DataType t : all_data_types) {
    CAPTURE(to_string(t));
    const KernelOps ops = ops_of(t);
    const std::size_t count = 16 / size_of(t);
    for (int trial = 0; trial < 300; ++trial) {
      const int ranks = 1 + static_cast<int>(rng() % 1000);
      const auto a = random_vector(t, rng);
      auto expected = a;
      finish_reduction(t, ReduceOp::avg, expected.data(), count, ranks);

      Words16 w;
      std::memcpy(w.w, a.data(), 16);
      ops.divide_words(w, ranks);
      std::array<std::byte, 16> got;
      std::memcpy(got.data(), w.w, 16);
      REQUIRE(same_values(t, got, expected));

      auto one = a;
      for (std::size_t i = 0; i < count; ++i)
        ops.divide_element(one.data() + i * size_of(t), ranks);
      REQUIRE(same_values(t, one, expected));
    }
  }
}

TEST_CASE("a vector's elements are its little-endian words in order") {
  // Independent of reduce_into: sums of known values, element by element.
  std::array<std::int64_t, 2> a{1, -5};
  const std::array<std::int64_t, 2> b{std::int64_t{1} << 40, 7};
  Words16 wa, wb;
  std::memcpy(wa.w, a.data(), 16);
  std::memcpy(wb.w, b.data(), 16);
  cuda::reduce_words<DataType::int64, ReduceOp::sum>(wa, wb);
  std::memcpy(a.data(), wa.w, 16);
  CHECK(a[0] == (std::int64_t{1} << 40) + 1);  // the carry crosses from word 0 to word 1
  CHECK(a[1] == 2);

  std::array<std::uint16_t, 8> h{}, g{};
  for (int i = 0; i < 8; ++i) {
    h[i] = BFloat16::from_float(static_cast<float>(i)).bits;
    g[i] = BFloat16::from_float(static_cast<float>(10 * i)).bits;
  }
  std::memcpy(wa.w, h.data(), 16);
  std::memcpy(wb.w, g.data(), 16);
  cuda::reduce_words<DataType::bfloat16, ReduceOp::sum>(wa, wb);
  std::memcpy(h.data(), wa.w, 16);
  for (int i = 0; i < 8; ++i) CHECK(BFloat16{h[i]}.to_float() == static_cast<float>(11 * i));

  std::array<std::uint8_t, 16> u{}, v{};
  for (int i = 0; i < 16; ++i) {
    u[i] = static_cast<std::uint8_t>(i);
    v[i] = static_cast<std::uint8_t>(200 + i);
  }
  std::memcpy(wa.w, u.data(), 16);
  std::memcpy(wb.w, v.data(), 16);
  cuda::reduce_words<DataType::uint8, ReduceOp::max>(wa, wb);
  std::memcpy(u.data(), wa.w, 16);
  for (int i = 0; i < 16; ++i) CHECK(u[i] == 200 + i);
}
