// Every collective and algorithm in data mode, against a straightforward reference:
// integers bit-exact, floats within the rounding a reduction over p ranks can add.
// Inputs are random per case; outputs are poisoned first so an unwritten element fails.
#include <doctest/doctest.h>

#include <iterator>
#include <random>
#include <vector>

#include "check_contains.hpp"
#include "correctness_matrix.hpp"
#include "railcc/backend/sim_verified.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/plan.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/fabric/presets.hpp"
#include "test_support.hpp"

using namespace railcc;
using railcc_test::error_of;
using railcc_test::fabric64;

namespace {

struct Case {
  Collective coll;
  Algorithm algo;
  Algorithm inter = Algorithm::rabenseifner;
  int p;
  DataType type;
  ReduceOp op;
  std::size_t count;
  bool in_place;
  int channels;
  int root;
  int phase_chunks = 0;   ///< hierarchical and nvls: 0 is the algorithm's default
  std::uint32_t qps = 1;  ///< QPs per connection between hosts
};

/// Runs one case and returns the number of wrong elements.
int run_case(const Case& c, std::uint64_t seed) {
  SimBackendConfig cfg;
  cfg.qps_per_connection = c.qps;
  SimBackend b(fabric64(), c.p, cfg);
  b.set_reduction({c.type, c.op});
  const VerifiedCall call{c.coll,     c.algo, c.inter, c.count,       c.in_place,
                          c.channels, c.root, 3,       c.phase_chunks};
  return static_cast<int>(run_verified(b, call, seed).wrong);
}

}  // namespace

TEST_CASE("The correctness matrix: collectives x algorithms x types x ops x rank counts") {
  const std::size_t cases = railcc_test::for_each_matrix_case([](const railcc_test::MatrixCase& m) {
    const Case c{m.coll,  m.algo,     m.inter,    m.p,    m.type,         m.op,
                 m.count, m.in_place, m.channels, m.root, m.phase_chunks, m.qps};
    CHECK(run_case(c, m.seed) == 0);
  });
  MESSAGE(cases << " cases");
  CHECK(cases > 1000);
}

TEST_CASE("Counts smaller than the rank count, and zero") {
  for (const auto algo :
       {Algorithm::ring, Algorithm::rabenseifner, Algorithm::hierarchical, Algorithm::nvls}) {
    CHECK(run_case({Collective::all_reduce, algo, Algorithm::rabenseifner, 24, DataType::float32,
                    ReduceOp::sum, 3, false, 2, 0},
                   5) == 0);
    CHECK(run_case({Collective::all_reduce, algo, Algorithm::ring, 16, DataType::int32,
                    ReduceOp::max, 0, true, 1, 0},
                   6) == 0);
  }
  CHECK(run_case({Collective::broadcast, Algorithm::chain, Algorithm::ring, 5, DataType::uint8,
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

TEST_CASE("Products in half precision over 512 ranks check as correct IEEE results") {
  // Inputs in [0.5, 1.5) made partial products of 512 halves underflow, in a different
  // order per algorithm: the checker counted 452,608 correct outputs as wrong.
  ColossusParams params;
  params.gpus = 512;
  const Fabric f = colossus(params);
  for (DataType t : {DataType::float16, DataType::bfloat16, DataType::float32}) {
    SimBackend b(f, 512, {});
    b.set_reduction({t, ReduceOp::prod});
    VerifiedCall c;
    c.algorithm = Algorithm::ring;
    c.count = 1024;
    CAPTURE(to_string(t));
    CHECK(run_verified(b, c, 7).wrong == 0);
  }
}

TEST_CASE("Product inputs keep every partial product of any order in the normal range") {
  // Randomized against the definition: for rank counts from 2 to 4M, the range's ends to
  // the p-th power (the extremes of any partial product) stay within the type's normal
  // numbers, and the range is never empty.
  std::mt19937_64 rng(11);
  for (DataType t : {DataType::float16, DataType::bfloat16, DataType::float32, DataType::float64}) {
    for (int i = 0; i < 200; ++i) {
      const auto p =
          static_cast<std::size_t>(std::exp2(std::uniform_real_distribution<double>(1, 22)(rng)));
      const auto [lo, hi] = product_input_range(t, p);
      CAPTURE(p);
      CHECK(lo < 1.0);
      CHECK(hi > 1.0);
      CHECK(lo >= 0.5);
      CHECK(hi <= 1.5);
      const double n = static_cast<double>(p);
      CHECK(n * std::log2(lo) >= std::log2(min_normal_of(t)));
      CHECK(n * std::log2(hi) <= std::log2(max_finite_of(t)));
    }
  }
}

TEST_CASE("Data mode refuses a call over its memory cap before allocating anything") {
  SimBackendConfig cfg;
  cfg.max_data_bytes = 1 << 20;
  SimBackend b(fabric64(), 64, cfg);
  b.set_reduction({DataType::float32, ReduceOp::sum});
  VerifiedCall c;
  c.collective = Collective::all_gather;
  c.count = 1024;  // 64 ranks x (4 KiB in, 256 KiB out, 4 KiB copy): 16.5 MiB
  CHECK_CONTAINS(error_of([&] { run_verified(b, c, 1); }),
                 "data mode would need 17301504 bytes of buffers, over the 1048576 allowed");
  // Nothing was allocated: a buffer of the whole cap still fits.
  CHECK_NOTHROW(b.allocate((1 << 20) / 64));
  CHECK_THROWS_AS(b.allocate(1), InputError);
  // A size whose product with the rank count wraps 64 bits is over the cap, not under it.
  CHECK_THROWS_AS(b.allocate(std::numeric_limits<std::size_t>::max() / 32), InputError);
  CHECK(verified_call_bytes(Collective::all_to_all, std::size_t{1} << 62, 8, 1 << 20, false) ==
        std::numeric_limits<std::size_t>::max());
}

TEST_CASE("Timing and data modes refuse a collective past max_flows while it is posted") {
  SimBackendConfig cfg;
  cfg.mode = SimMode::timing;
  cfg.max_flows = 1000;
  SimBackend b(fabric64(), 64, cfg);
  b.set_reduction({DataType::float32, ReduceOp::sum});
  const auto buffers = allocate_buffers(b, Collective::all_reduce, 1 << 16, 4, false);
  CollectiveCall call{1 << 16, buffers.input, buffers.output, 1, 0};
  // A 64-rank ring posts 2 x 63 steps of 64 transfers: 8,064 flows.
  CHECK_CONTAINS(error_of([&] { all_reduce(b, call, Algorithm::ring); }),
                 "the collective posts more than 1000 flows, more than timing mode simulates");
  cfg.max_flows = 10000;
  SimBackend ok(fabric64(), 64, cfg);
  ok.set_reduction({DataType::float32, ReduceOp::sum});
  const auto buffers2 = allocate_buffers(ok, Collective::all_reduce, 1 << 16, 4, false);
  CollectiveCall call2{1 << 16, buffers2.input, buffers2.output, 1, 0};
  CHECK_NOTHROW(all_reduce(ok, call2, Algorithm::ring));
}

TEST_CASE("Randomized: mixed radix against the reference at any rank and host count") {
  // Rank counts with every kind of factorisation (primes above and below the radices the
  // hosts have, powers of two, products), flat and across hosts, on random data.
  std::mt19937_64 rng(2026);
  const DataType types[] = {DataType::float32, DataType::int32, DataType::bfloat16, DataType::uint8,
                            DataType::float64};
  const ReduceOp ops[] = {ReduceOp::sum, ReduceOp::max, ReduceOp::avg, ReduceOp::prod};
  for (int i = 0; i < 60; ++i) {
    const bool hierarchical = i % 2 == 1;
    const int p = hierarchical ? 8 * static_cast<int>(1 + rng() % 8)  // 1 to 8 hosts of 8
                               : static_cast<int>(1 + rng() % 64);
    Case c{Collective::all_reduce,
           hierarchical ? Algorithm::hierarchical : Algorithm::mixed_radix,
           Algorithm::mixed_radix,
           p,
           types[rng() % std::size(types)],
           ops[rng() % std::size(ops)],
           static_cast<std::size_t>(rng() % 200),
           rng() % 2 == 0,
           1 + static_cast<int>(rng() % 3),
           0,
           static_cast<int>(rng() % 4),
           rng() % 3 == 0 ? 3u : 1u};
    CAPTURE(p);
    CAPTURE(hierarchical);
    CAPTURE(to_string(c.type));
    CAPTURE(to_string(c.op));
    CAPTURE(c.count);
    CAPTURE(c.phase_chunks);
    CHECK(run_case(c, rng()) == 0);
  }
}

TEST_CASE("Mixed radix factors: primes smallest first, and the steps they take") {
  CHECK(mixed_radix_factors(1).empty());
  CHECK(mixed_radix_factors(2) == std::vector<std::size_t>{2});
  CHECK(mixed_radix_factors(12) == std::vector<std::size_t>{2, 2, 3});
  CHECK(mixed_radix_factors(12500) == std::vector<std::size_t>{2, 2, 5, 5, 5, 5, 5});
  CHECK(mixed_radix_factors(125000) == std::vector<std::size_t>{2, 2, 2, 5, 5, 5, 5, 5, 5});
  CHECK(mixed_radix_factors(97) == std::vector<std::size_t>{97});
  CHECK(mixed_radix_steps(1) == 0);
  CHECK(mixed_radix_steps(1024) == 20);  // 2 log2 q: recursive halving and doubling
  CHECK(mixed_radix_steps(12500) == 2 * (1 + 1 + 4 * 5));
  // Whatever the count, the ranks put 2 (q - 1) x n bytes on the wire together, as a
  // ring does: each level's ring moves (f - 1) of the span its group holds.
  for (int q : {2, 3, 6, 7, 12, 30, 64}) {
    for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{13}, std::size_t{1000}}) {
      CAPTURE(q);
      CAPTURE(count);
      PlanBuilder b(PlanTarget::hosts(q, 1), {DataType::int32, ReduceOp::sum});
      const BufferId buf = b.allocate(count * 4);
      const auto done = all_reduce(b, CollectiveCall{count, buf, buf}, Algorithm::mixed_radix);
      const Plan plan = b.build(done);
      std::size_t wire = 0;
      for (OpId id = 0; id < plan.size(); ++id) {
        if (plan.op(id).kind == OpKind::transfer && plan.op(id).src != plan.op(id).dst)
          wire += plan.op(id).from.bytes;
      }
      CHECK(wire == 2 * static_cast<std::size_t>(q - 1) * count * 4);
    }
  }
}
