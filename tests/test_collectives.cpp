// Every collective and algorithm in data mode, against a straightforward reference:
// integers bit-exact, floats within the rounding a reduction over p ranks can add.
// Inputs are random per case; outputs are poisoned first so an unwritten element fails.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "check_contains.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/sim_backend.hpp"
#include "railcc/fabric/presets.hpp"
#include "test_support.hpp"

using namespace railcc;

namespace {

double as_double(DataType t, const std::byte* p) {
  switch (t) {
    case DataType::uint8: return static_cast<double>(std::to_integer<std::uint8_t>(*p));
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

void random_element(DataType t, ReduceOp op, std::byte* p, std::mt19937_64& rng) {
  const double x = op == ReduceOp::prod ? std::uniform_real_distribution<double>(0.5, 1.5)(rng)
                                        : std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
  const std::uint64_t bits = rng();
  switch (t) {
    case DataType::uint8: *p = static_cast<std::byte>(bits); break;
    case DataType::int32: {
      const auto v = static_cast<std::int32_t>(bits);
      std::memcpy(p, &v, 4);
      break;
    }
    case DataType::int64: {
      const auto v = static_cast<std::int64_t>(bits);
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
    case DataType::float16: return 9.77e-4;
    case DataType::bfloat16: return 7.82e-3;
    case DataType::float32: return 1.2e-7;
    case DataType::float64: return 2.3e-16;
    default: return 0;
  }
}

/// The reduction over ranks of element `i` of each input, compared with `got`.
bool reduced_matches(DataType t, ReduceOp op, const std::vector<const std::byte*>& inputs,
                     const std::byte* got) {
  const std::size_t e = size_of(t);
  const int p = static_cast<int>(inputs.size());
  if (!is_floating(t)) {
    std::vector<std::byte> acc(inputs[0], inputs[0] + e);
    for (int r = 1; r < p; ++r)
      reduce_into(t, op, acc.data(), inputs[static_cast<std::size_t>(r)], 1);
    finish_reduction(t, op, acc.data(), 1, p);
    return std::memcmp(acc.data(), got, e) == 0;
  }
  double ref = as_double(t, inputs[0]);
  double mag = std::abs(ref);
  for (int r = 1; r < p; ++r) {
    const double x = as_double(t, inputs[static_cast<std::size_t>(r)]);
    mag = op == ReduceOp::prod ? mag * std::abs(x) : mag + std::abs(x);
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
    mag /= p;
  }
  const double tol =
      (op == ReduceOp::min || op == ReduceOp::max) ? 0.0 : (p + 1) * epsilon(t) * mag;
  return std::abs(as_double(t, got) - ref) <= tol;
}

enum class Coll { all_reduce, reduce_scatter, all_gather, broadcast, reduce, all_to_all };

struct Case {
  Coll coll;
  Algorithm algo;
  Algorithm inter = Algorithm::rabenseifner;
  int p;
  DataType type;
  ReduceOp op;
  std::size_t count;
  bool in_place;
  int channels;
  int root;
};

const Fabric& fabric64() {
  static const Fabric f = [] {
    ColossusParams params;
    params.gpus = 64;
    return colossus(params);
  }();
  return f;
}

/// Runs one case and returns the number of wrong elements.
int run_case(const Case& c, std::uint64_t seed) {
  SimBackend b(fabric64(), c.p);
  b.set_reduction({c.type, c.op});
  const std::size_t e = size_of(c.type);
  const auto P = static_cast<std::size_t>(c.p);
  std::size_t in_elems = c.count;
  std::size_t out_elems = c.count;
  if (c.coll == Coll::reduce_scatter || c.coll == Coll::all_to_all) in_elems = c.count * P;
  if (c.coll == Coll::all_gather || c.coll == Coll::all_to_all) out_elems = c.count * P;
  const bool in_place = c.in_place && c.coll != Coll::all_to_all;
  const BufferId in = b.allocate((in_place ? std::max(in_elems, out_elems) : in_elems) * e);
  const BufferId out = in_place ? in : b.allocate(out_elems * e);
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::byte>> inputs(P);
  for (std::size_t r = 0; r < P; ++r) {
    auto buf = b.buffer(static_cast<int>(r), in);
    std::fill(buf.begin(), buf.end(), std::byte{0xa5});  // poison
    // In-place all-gather: the rank's input sits at its chunk of the output.
    const std::size_t at = (in_place && c.coll == Coll::all_gather) ? r * c.count * e : 0;
    for (std::size_t i = 0; i < in_elems; ++i)
      random_element(c.type, c.op, buf.data() + at + i * e, rng);
    inputs[r].assign(buf.begin() + static_cast<std::ptrdiff_t>(at),
                     buf.begin() + static_cast<std::ptrdiff_t>(at + in_elems * e));
    if (!in_place)
      std::fill(b.buffer(static_cast<int>(r), out).begin(),
                b.buffer(static_cast<int>(r), out).end(), std::byte{0x5a});
  }
  CollectiveCall call{c.count, in, out, c.channels, c.root, 3};
  switch (c.coll) {
    case Coll::all_reduce: all_reduce(b, call, c.algo, c.inter); break;
    case Coll::reduce_scatter: reduce_scatter(b, call, c.algo); break;
    case Coll::all_gather: all_gather(b, call, c.algo); break;
    case Coll::broadcast: broadcast(b, call, c.algo); break;
    case Coll::reduce: reduce(b, call, c.algo); break;
    case Coll::all_to_all: all_to_all(b, call, c.algo); break;
  }
  b.run();
  int wrong = 0;
  auto ptrs = [&](std::size_t offset_elems) {
    std::vector<const std::byte*> v;
    for (std::size_t r = 0; r < P; ++r) v.push_back(inputs[r].data() + offset_elems * e);
    return v;
  };
  for (std::size_t r = 0; r < P; ++r) {
    const auto got = b.buffer(static_cast<int>(r), out);
    switch (c.coll) {
      case Coll::all_reduce:
        for (std::size_t i = 0; i < c.count; ++i)
          wrong += reduced_matches(c.type, c.op, ptrs(i), got.data() + i * e) ? 0 : 1;
        break;
      case Coll::reduce_scatter: {
        const std::size_t at = in_place ? r * c.count : 0;
        for (std::size_t i = 0; i < c.count; ++i) {
          wrong += reduced_matches(c.type, c.op, ptrs(r * c.count + i), got.data() + (at + i) * e)
                       ? 0
                       : 1;
        }
        break;
      }
      case Coll::all_gather:
        for (std::size_t k = 0; k < P; ++k) {
          wrong +=
              std::memcmp(got.data() + k * c.count * e, inputs[k].data(), c.count * e) == 0 ? 0 : 1;
        }
        break;
      case Coll::broadcast:
        wrong += std::memcmp(got.data(), inputs[static_cast<std::size_t>(c.root)].data(),
                             c.count * e) == 0
                     ? 0
                     : 1;
        break;
      case Coll::reduce:
        if (r != static_cast<std::size_t>(c.root)) break;
        for (std::size_t i = 0; i < c.count; ++i)
          wrong += reduced_matches(c.type, c.op, ptrs(i), got.data() + i * e) ? 0 : 1;
        break;
      case Coll::all_to_all:
        for (std::size_t k = 0; k < P; ++k) {
          wrong += std::memcmp(got.data() + k * c.count * e, inputs[k].data() + r * c.count * e,
                               c.count * e) == 0
                       ? 0
                       : 1;
        }
        break;
    }
  }
  return wrong;
}

}  // namespace

TEST_CASE("The correctness matrix: collectives x algorithms x types x ops x rank counts") {
  std::uint64_t seed = 17;
  std::size_t cases = 0;
  const int rank_counts[] = {1, 2, 3, 5, 8, 16, 24, 64};
  struct Plan {
    Coll coll;
    Algorithm algo;
    Algorithm inter;
    bool reduces;
  };
  const Plan plans[] = {
      {Coll::all_reduce, Algorithm::ring, Algorithm::ring, true},
      {Coll::all_reduce, Algorithm::rabenseifner, Algorithm::ring, true},
      {Coll::all_reduce, Algorithm::tree, Algorithm::ring, true},
      {Coll::all_reduce, Algorithm::hierarchical, Algorithm::ring, true},
      {Coll::all_reduce, Algorithm::hierarchical, Algorithm::rabenseifner, true},
      {Coll::reduce_scatter, Algorithm::ring, Algorithm::ring, true},
      {Coll::reduce, Algorithm::chain, Algorithm::ring, true},
      {Coll::all_gather, Algorithm::ring, Algorithm::ring, false},
      {Coll::all_gather, Algorithm::bruck, Algorithm::ring, false},
      {Coll::broadcast, Algorithm::chain, Algorithm::ring, false},
      {Coll::all_to_all, Algorithm::pairwise, Algorithm::ring, false},
  };
  for (const auto& plan : plans) {
    for (int p : rank_counts) {
      for (DataType t : all_data_types) {
        for (ReduceOp op : all_reduce_ops) {
          if (!plan.reduces && op != ReduceOp::sum) continue;
          // All pairs for small groups; a rotating sample of type/op pairs for 16+ ranks.
          if (p >= 16 && (static_cast<int>(t) * 5 + static_cast<int>(op) + p) % 6 != 0) continue;
          ++seed;
          const Case c{
              plan.coll,
              plan.algo,
              plan.inter,
              p,
              t,
              op,
              p <= 8 ? std::size_t{13} + seed % 7 : std::size_t{29},  // rarely a multiple of p
              seed % 2 == 0,
              1 + static_cast<int>(seed % 3),
              static_cast<int>(seed % static_cast<std::uint64_t>(p))};
          CAPTURE(static_cast<int>(c.coll));
          CAPTURE(to_string(c.algo));
          CAPTURE(to_string(c.inter));
          CAPTURE(p);
          CAPTURE(to_string(t));
          CAPTURE(to_string(op));
          CAPTURE(c.count);
          CAPTURE(c.in_place);
          CAPTURE(c.channels);
          CAPTURE(c.root);
          CHECK(run_case(c, seed) == 0);
          ++cases;
        }
      }
    }
  }
  MESSAGE(cases << " cases");
  CHECK(cases > 1000);
}

TEST_CASE("Counts smaller than the rank count, and zero") {
  for (const auto algo : {Algorithm::ring, Algorithm::rabenseifner, Algorithm::hierarchical}) {
    CHECK(run_case({Coll::all_reduce, algo, Algorithm::rabenseifner, 24, DataType::float32,
                    ReduceOp::sum, 3, false, 2, 0},
                   5) == 0);
    CHECK(run_case({Coll::all_reduce, algo, Algorithm::ring, 16, DataType::int32, ReduceOp::max, 0,
                    true, 1, 0},
                   6) == 0);
  }
  CHECK(run_case({Coll::broadcast, Algorithm::chain, Algorithm::ring, 5, DataType::uint8,
                  ReduceOp::sum, 2, false, 1, 4},
                 7) == 0);
}

TEST_CASE("Algorithms that do not apply, and uneven hosts, are refused") {
  SimBackend b(fabric64(), 12);  // one full host and half of another
  const BufferId buf = b.allocate(64);
  CHECK_THROWS_WITH_AS(all_reduce(b, CollectiveCall{16, buf, buf}, Algorithm::hierarchical),
                       doctest::Contains("every host needs the same number"), InputError);
  CHECK_THROWS_WITH_AS(all_reduce(b, CollectiveCall{16, buf, buf}, Algorithm::pairwise),
                       doctest::Contains("algorithm pairwise does not apply"), InputError);
  CHECK_THROWS_WITH_AS(all_to_all(b, CollectiveCall{1, buf, buf}),
                       doctest::Contains("in place is not supported"), InputError);
  CollectiveCall bad_root{4, buf, buf};
  bad_root.root = 12;
  CHECK_THROWS_WITH_AS(broadcast(b, bad_root), doctest::Contains("root 12 is not a rank"),
                       InputError);
}
