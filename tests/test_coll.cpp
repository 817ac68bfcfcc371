// Collectives on the simulated backend: exact data against a reference, times against
// closed forms.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "check_contains.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/coll/ring.hpp"
#include "railcc/coll/sim_backend.hpp"
#include "railcc/fabric/presets.hpp"

using namespace railcc;

namespace {

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

double read_as_double(DataType t, const std::byte* p) {
  switch (t) {
    case DataType::uint8: return static_cast<double>(static_cast<std::uint8_t>(*p));
    case DataType::int32: {
      std::int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DataType::int64: {
      std::int64_t v;
      std::memcpy(&v, p, 8);
      return static_cast<double>(v);
    }
    case DataType::float16: {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return Half{v}.to_float();
    }
    case DataType::bfloat16: {
      std::uint16_t v;
      std::memcpy(&v, p, 2);
      return BFloat16{v}.to_float();
    }
    case DataType::float32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DataType::float64: {
      double v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
  return 0;
}

void write_random(DataType t, ReduceOp op, std::byte* p, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::uniform_real_distribution<double> near_one(0.5, 1.5);
  const double x = op == ReduceOp::prod ? near_one(rng) : unit(rng);
  switch (t) {
    case DataType::uint8: *p = static_cast<std::byte>(rng()); break;
    case DataType::int32: {
      const auto v = static_cast<std::int32_t>(rng());
      std::memcpy(p, &v, 4);
      break;
    }
    case DataType::int64: {
      const auto v = static_cast<std::int64_t>(rng());
      std::memcpy(p, &v, 8);
      break;
    }
    case DataType::float16: {
      const auto v = Half::from_float(static_cast<float>(x)).bits;
      std::memcpy(p, &v, 2);
      break;
    }
    case DataType::bfloat16: {
      const auto v = BFloat16::from_float(static_cast<float>(x)).bits;
      std::memcpy(p, &v, 2);
      break;
    }
    case DataType::float32: {
      const auto v = static_cast<float>(x);
      std::memcpy(p, &v, 4);
      break;
    }
    case DataType::float64: std::memcpy(p, &x, 8); break;
  }
}

double epsilon(DataType t) {
  switch (t) {
    case DataType::float16: return 9.77e-4;   // 2^-10
    case DataType::bfloat16: return 7.82e-3;  // 2^-7
    case DataType::float32: return 1.2e-7;
    case DataType::float64: return 2.3e-16;
    default: return 0;
  }
}

/// Runs a ring all-reduce in data mode and checks every element of every rank against a
/// reference: integers bit-exact (wrapping arithmetic is associative), floats against a
/// float64 reduction within p rounding steps of the type's epsilon.
void check_ring_all_reduce(const Fabric& fabric, int p, DataType type, ReduceOp op,
                           std::size_t count, bool in_place, int channels, std::uint64_t seed) {
  CAPTURE(p);
  CAPTURE(to_string(type));
  CAPTURE(to_string(op));
  CAPTURE(count);
  CAPTURE(in_place);
  CAPTURE(channels);
  SimBackend b(fabric, p);
  b.set_reduction({type, op});
  const std::size_t elem = size_of(type);
  const BufferId in = b.allocate(count * elem);
  const BufferId out = in_place ? in : b.allocate(count * elem);
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::byte>> inputs(static_cast<std::size_t>(p));
  for (int r = 0; r < p; ++r) {
    auto buf = b.buffer(r, in);
    for (std::size_t i = 0; i < count; ++i) write_random(type, op, buf.data() + i * elem, rng);
    inputs[static_cast<std::size_t>(r)].assign(buf.begin(), buf.end());
    if (!in_place)
      std::fill(b.buffer(r, out).begin(), b.buffer(r, out).end(), std::byte{0xa5});  // poison
  }
  ring_all_reduce(b, CollectiveCall{count, in, out, channels});
  b.run();
  std::vector<std::byte> expected(count * elem);
  for (std::size_t i = 0; i < count; ++i) {
    if (!is_floating(type)) {
      // The same wrapping arithmetic in rank order.
      std::memcpy(expected.data() + i * elem, inputs[0].data() + i * elem, elem);
      for (int r = 1; r < p; ++r) {
        reduce_into(type, op, expected.data() + i * elem,
                    inputs[static_cast<std::size_t>(r)].data() + i * elem, 1);
      }
      finish_reduction(type, op, expected.data() + i * elem, 1, p);
    }
  }
  int wrong = 0;
  for (int r = 0; r < p; ++r) {
    const auto got = b.buffer(r, out);
    for (std::size_t i = 0; i < count && wrong < 5; ++i) {
      if (!is_floating(type)) {
        if (std::memcmp(got.data() + i * elem, expected.data() + i * elem, elem) != 0) {
          ++wrong;
          FAIL_CHECK("rank " << r << " element " << i << " differs");
        }
        continue;
      }
      double ref = read_as_double(type, inputs[0].data() + i * elem);
      double magnitude = std::abs(ref);
      for (int k = 1; k < p; ++k) {
        const double x =
            read_as_double(type, inputs[static_cast<std::size_t>(k)].data() + i * elem);
        magnitude = op == ReduceOp::prod ? magnitude * std::abs(x) : magnitude + std::abs(x);
        switch (op) {
          case ReduceOp::sum:
          case ReduceOp::avg: ref += x; break;
          case ReduceOp::prod: ref *= x; break;
          case ReduceOp::min: ref = std::min(ref, x); break;
          case ReduceOp::max: ref = std::max(ref, x); break;
        }
      }
      if (op == ReduceOp::avg) {
        ref /= p;
        magnitude /= p;
      }
      const double v = read_as_double(type, got.data() + i * elem);
      const bool exact = op == ReduceOp::min || op == ReduceOp::max;
      const double tol = exact ? 0.0 : (p + 1) * epsilon(type) * magnitude;
      if (!(std::abs(v - ref) <= tol)) {
        ++wrong;
        FAIL_CHECK("rank " << r << " element " << i << ": " << v << " vs " << ref << " (tolerance "
                           << tol << ")");
      }
    }
  }
  CHECK(wrong == 0);
}

Fabric one_leaf(std::uint32_t hosts, Picoseconds cable) {
  Fabric f;
  for (std::uint32_t h = 0; h < hosts; ++h) f.add_endpoint(h, 0, 0);
  const auto leaf = f.add_switch(1);
  for (std::uint32_t h = 0; h < hosts; ++h) f.connect(h, leaf, Bandwidth::gbps(400), cable);
  f.finalize();
  return f;
}

}  // namespace

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

TEST_CASE("Ring all-reduce gives exact data for every type, op and rank count") {
  ColossusParams params;
  params.gpus = 64;
  const auto fabric = colossus(params);  // 8 hosts of 8 GPUs
  std::uint64_t seed = 1;
  for (int p : {1, 2, 3, 5, 8, 16, 24, 64}) {
    for (DataType t : all_data_types) {
      for (ReduceOp op : all_reduce_ops) {
        const std::size_t count = p <= 8 ? 37 : 101;  // never a multiple of p
        check_ring_all_reduce(fabric, p, t, op, count, (seed % 2) == 0,
                              1 + static_cast<int>(seed % 3), seed);
        ++seed;
      }
    }
  }
  // Fewer elements than ranks: some chunks are empty.
  check_ring_all_reduce(fabric, 5, DataType::float32, ReduceOp::sum, 2, false, 2, 99);
  check_ring_all_reduce(fabric, 8, DataType::int64, ReduceOp::max, 0, true, 1, 98);
}

TEST_CASE("Ring all-reduce time: 2(p-1) steps of n/p at the NIC rate, exactly") {
  const auto cable = Picoseconds::ns(15);
  for (std::uint32_t p : {2u, 4u, 8u}) {
    CAPTURE(p);
    const auto fabric = one_leaf(p, cable);
    SimBackendConfig cfg;
    cfg.mode = SimMode::timing;
    SimBackend b(fabric, static_cast<int>(p), cfg);
    b.set_reduction({DataType::float32, ReduceOp::sum});
    const std::size_t count = std::size_t{1} << 22;  // 16 MiB of floats, divisible by p
    const BufferId buf = b.allocate(count * 4);
    ring_all_reduce(b, CollectiveCall{count, buf, buf, 1});
    const auto r = b.run();
    const Picoseconds step = cfg.sim.message_overhead +
                             transfer_time(Bytes::of(count * 4 / p), Bandwidth::gbps(400)) +
                             cable * 2 + cfg.sim.switch_hop;
    CHECK(r.makespan == step * (2 * (p - 1)));
    // Never below the bandwidth bound 2 (p-1)/p n / B.
    const double bound = 2.0 * (p - 1) / p * static_cast<double>(count * 4) /
                         Bandwidth::gbps(400).in_bytes_per_second();
    CHECK(r.makespan.in_seconds() >= bound);
  }
}

TEST_CASE("Data mode and timing mode give the same simulated time") {
  ColossusParams params;
  params.gpus = 32;
  const auto fabric = colossus(params);
  Picoseconds times[2];
  for (int m = 0; m < 2; ++m) {
    SimBackendConfig cfg;
    cfg.mode = m == 0 ? SimMode::data : SimMode::timing;
    SimBackend b(fabric, 24, cfg);
    b.set_reduction({DataType::bfloat16, ReduceOp::sum});
    const BufferId in = b.allocate(1000 * 2);
    const BufferId out = b.allocate(1000 * 2);
    ring_all_reduce(b, CollectiveCall{1000, in, out, 2});
    times[m] = b.run().makespan;
  }
  CHECK(times[0] == times[1]);
  CHECK(times[0] > Picoseconds{});
}

TEST_CASE("Bad collective setups are refused before anything runs") {
  const auto fabric = one_leaf(4, {});
  CHECK_CONTAINS(error_of([&] { SimBackend(fabric, 5); }), "5 ranks but the fabric has 4 GPUs");
  CHECK_CONTAINS(error_of([&] { SimBackend(fabric, 0); }), "at least one rank");
  SimBackendConfig small;
  small.max_data_bytes = 1000;
  SimBackend b(fabric, 4, small);
  CHECK_CONTAINS(error_of([&] { b.allocate(300); }), "use timing mode for this size");
  SimBackend c(fabric, 4);
  const BufferId buf = c.allocate(64);
  CHECK_CONTAINS(error_of([&] {
                   c.transfer(0, {buf, 0, 64}, 1, {buf, 32, 64}, RecvAction::copy, {});
                 }),
                 "outside buffer");
  CHECK_CONTAINS(error_of([&] {
                   c.transfer(0, {buf, 0, 8}, 1, {buf, 0, 16}, RecvAction::copy, {});
                 }),
                 "transfer of 8 bytes into a region of 16");
  CHECK_CONTAINS(error_of([&] {
                   c.transfer(0, {buf, 0, 8}, 7, {buf, 0, 8}, RecvAction::copy, {});
                 }),
                 "destination rank 7 does not exist");
  CHECK_CONTAINS(error_of([&] {
                   ring_all_reduce(c, CollectiveCall{16, buf, buf, 0});
                 }),
                 "channels must be at least 1");
}

#include "railcc/coll/collectives.hpp"

TEST_CASE(
    "Rabenseifner time: 2 log2 p steps of halving sizes; 2 more full steps when p is not a power "
    "of two") {
  const auto cable = Picoseconds::ns(15);
  for (std::uint32_t p : {2u, 4u, 8u, 6u}) {
    CAPTURE(p);
    const auto fabric = one_leaf(p, cable);
    SimBackendConfig cfg;
    cfg.mode = SimMode::timing;
    SimBackend b(fabric, static_cast<int>(p), cfg);
    b.set_reduction({DataType::float32, ReduceOp::sum});
    const std::size_t count = std::size_t{1} << 20;
    const BufferId buf = b.allocate(count * 4);
    all_reduce(b, CollectiveCall{count, buf, buf}, Algorithm::rabenseifner);
    const auto r = b.run();
    const Picoseconds alpha = cfg.sim.message_overhead + cable * 2 + cfg.sim.switch_hop;
    const auto step = [&](std::size_t bytes) {
      return alpha + transfer_time(Bytes::of(bytes), Bandwidth::gbps(400));
    };
    std::uint32_t pow2 = 1;
    while (pow2 * 2 <= p) pow2 *= 2;
    Picoseconds expected;
    for (std::uint32_t d = pow2 / 2; d >= 1; d /= 2)
      expected += step(count * 4 * d / pow2) * 2;    // halving + doubling
    if (p != pow2) expected += step(count * 4) * 2;  // fold and unfold
    CHECK(r.makespan == expected);
  }
}

TEST_CASE("Hierarchical time: NVLink reduce-scatter, rail all-reduce, NVLink all-gather") {
  ColossusParams params;
  params.gpus = 32;  // 4 hosts of 8, one array: every rail on its own leaf
  const auto fabric = colossus(params);
  SimBackendConfig cfg;
  cfg.mode = SimMode::timing;
  SimBackend b(fabric, 32, cfg);
  b.set_reduction({DataType::bfloat16, ReduceOp::sum});
  const std::size_t count = std::size_t{1} << 22;  // 8 MiB of bf16, divisible by 32
  const BufferId buf = b.allocate(count * 2);
  all_reduce(b, CollectiveCall{count, buf, buf}, Algorithm::hierarchical, Algorithm::ring);
  const auto r = b.run();
  const std::size_t bytes = count * 2;
  const Picoseconds nv = cfg.sim.nvlink_message_overhead + nvlink_latency * 2;
  const Picoseconds net = cfg.sim.message_overhead + cable::in_rack * 2 + cfg.sim.switch_hop;
  const Picoseconds intra = nv + transfer_time(Bytes::of(bytes / 8), h100_nvlink);
  const Picoseconds inter = net + transfer_time(Bytes::of(bytes / 32), Bandwidth::gbps(400));
  CHECK(r.makespan == intra * 7 + inter * 6 + intra * 7);
}
