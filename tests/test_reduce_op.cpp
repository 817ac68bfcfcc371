// coll/data_type.hpp and coll/reduce_op.hpp: element types convert exactly and the
// operators reduce as IEEE and two's complement arithmetic say.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"

using namespace railcc;

TEST_CASE("half and bfloat16 convert with round-to-nearest-even, both ways exact") {
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const Half h{static_cast<std::uint16_t>(bits)};
    if (!std::isnan(h.to_float())) REQUIRE(Half::from_float(h.to_float()).bits == bits);
    const BFloat16 b{static_cast<std::uint16_t>(bits)};
    if (!std::isnan(b.to_float())) REQUIRE(BFloat16::from_float(b.to_float()).bits == bits);
  }
  CHECK(Half::from_float(1.0f / 3.0f).bits == 0x3555);
  CHECK(Half::from_float(65520.0f).bits == 0x7c00);               // rounds up to infinity
  CHECK(Half::from_float(std::ldexp(1.0f, -25)).bits == 0x0000);  // tie to even: zero
  CHECK(Half::from_float(3 * std::ldexp(1.0f, -25)).bits == 0x0002);
  CHECK(BFloat16::from_float(1.00390625f).bits == 0x3f80);  // tie to even
  CHECK(parse_data_type("half") == DataType::float16);
  CHECK(parse_data_type("bf16") == DataType::bfloat16);
  CHECK_FALSE(parse_data_type("float8"));
}

TEST_CASE("Reduction operators, including integer wrap-around and avg's division") {
  std::uint8_t a[] = {250, 3, 7};
  const std::uint8_t b[] = {10, 5, 2};
  reduce_into(DataType::uint8, ReduceOp::sum, reinterpret_cast<std::byte*>(a),
              reinterpret_cast<const std::byte*>(b), 3);
  CHECK(a[0] == 4);  // 260 mod 256
  CHECK(a[1] == 8);
  std::int32_t x[] = {2147483647, -7};
  const std::int32_t y[] = {1, 2};
  reduce_into(DataType::int32, ReduceOp::sum, reinterpret_cast<std::byte*>(x),
              reinterpret_cast<const std::byte*>(y), 2);
  CHECK(x[0] == -2147483647 - 1);
  std::int32_t z[] = {-7, 9};
  finish_reduction(DataType::int32, ReduceOp::avg, reinterpret_cast<std::byte*>(z), 2, 2);
  CHECK(z[0] == -3);  // truncation toward zero
  CHECK(z[1] == 4);
  float f[] = {1.0f, -2.0f};
  const float g[] = {3.0f, -1.0f};
  reduce_into(DataType::float32, ReduceOp::min, reinterpret_cast<std::byte*>(f),
              reinterpret_cast<const std::byte*>(g), 2);
  CHECK(f[0] == 1.0f);
  CHECK(f[1] == -2.0f);
  CHECK(parse_reduce_op("prod") == ReduceOp::prod);
}
