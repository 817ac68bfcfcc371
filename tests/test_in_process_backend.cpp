// backend/in_process_backend.hpp: ranks as threads, each running only its projection of
// the plan. The whole correctness matrix of the simulated data mode gives the same bytes
// here; a broken program is reported as a deadlock, never a hang.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "check_contains.hpp"
#include "correctness_matrix.hpp"
#include "plan_races.hpp"
#include "railcc/backend/in_process_backend.hpp"
#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/fabric/presets.hpp"
#include "test_support.hpp"

using namespace railcc;
using railcc_test::error_of;
using railcc_test::fabric64;

namespace {

struct Compared {
  std::size_t differ = 0;  ///< output bytes that differ between the two backends
  std::size_t wrong = 0;   ///< elements the reference finds wrong on the in-process backend
  std::string race;        ///< the plan's first race, or ""
};

/// One plan, built on the fabric's target, run in the simulator's data mode and on the
/// in-process backend from the same inputs.
Compared compare(const railcc_test::MatrixCase& c) {
  SimBackendConfig cfg;
  cfg.qps_per_connection = c.qps;
  SimBackend sim(fabric64(), c.p, cfg);
  sim.set_reduction({c.type, c.op});
  InProcessBackend threads(sim.target());
  threads.set_reduction({c.type, c.op});
  const VerifiedCall call{c.coll,     c.algo, c.inter, c.count,       c.in_place,
                          c.channels, c.root, 3,       c.phase_chunks};
  const VerifiedInputs in_sim = fill_verified(sim, call, c.seed);
  const VerifiedInputs in_threads = fill_verified(threads, call, c.seed);
  PlanBuilder builder(sim.target(), {c.type, c.op});
  const CollectiveBuffers buffers =
      allocate_buffers(builder, c.coll, c.count, size_of(c.type), c.in_place);
  const auto done =
      post_collective(builder, c.coll, verified_collective_call(call, buffers), c.algo, c.inter);
  const Plan plan = builder.build(done);
  sim.run(plan);
  threads.run(plan);
  Compared out;
  for (int r = 0; r < c.p; ++r) {
    const auto a = sim.buffer(r, buffers.output);
    const auto b = threads.buffer(r, buffers.output);
    for (std::size_t i = 0; i < a.size(); ++i) out.differ += a[i] != b[i] ? 1 : 0;
  }
  out.wrong = count_wrong(threads, call, in_threads);
  // Every read and write the plan makes on one rank is ordered by its dependencies: the
  // simulator's lockstep timing cannot hide a race that threads (or GPUs) would lose.
  out.race = railcc_test::first_race(plan);
  return out;
}

}  // namespace

TEST_CASE("In-process ranks give the simulated data mode's bytes on the whole matrix") {
  const std::size_t cases = railcc_test::for_each_matrix_case([](const railcc_test::MatrixCase& c) {
    const Compared got = compare(c);
    CHECK(got.differ == 0);
    CHECK(got.wrong == 0);
    CHECK(got.race == "");
  });
  MESSAGE(cases << " cases");
  CHECK(cases > 1000);
}

TEST_CASE("The in-process backend is a CollectiveBackend users post on directly") {
  InProcessBackend b(16, 8);
  b.set_reduction({DataType::int32, ReduceOp::sum});
  CHECK(b.placement(9).host == 1);
  CHECK(b.placement(9).local == 1);
  VerifiedCall c;
  c.collective = Collective::all_reduce;
  c.algorithm = Algorithm::hierarchical;
  c.count = 1000;
  const VerifiedInputs v = fill_verified(b, c, 5);
  post_collective(b, c.collective, verified_collective_call(c, v.buffers), c.algorithm,
                  c.inter_host);
  std::size_t between_ranks = 0;  // transfers whose source and destination differ
  for (OpId id = 0; id < b.plan().size(); ++id) {
    const PlanOp& o = b.plan().op(id);
    between_ranks += o.kind == OpKind::transfer && o.src != o.dst ? 1 : 0;
  }
  const InProcessResult result = b.run();
  CHECK(count_wrong(b, c, v) == 0);
  REQUIRE(between_ranks > 0);
  // Every transfer between ranks is its data and its acknowledgement; nothing else.
  CHECK(result.messages == 2 * between_ranks);
  // NVLS is not offered to algorithms: a host backend has no switch to reduce in.
  CHECK_CONTAINS(
      error_of([&] {
        all_reduce(b, CollectiveCall{16, v.buffers.input, v.buffers.output}, Algorithm::nvls);
      }),
      "is not on an NVSwitch that reduces in the switch");
}

TEST_CASE("A program that never sends what another waits for is a reported deadlock") {
  PlanBuilder builder(PlanTarget::hosts(3, 3), {DataType::int32, ReduceOp::sum});
  const BufferId buf = builder.allocate(16);
  const OpId t = builder.transfer(0, {buf, 0, 16}, 1, {buf, 0, 16}, RecvAction::copy, {});
  builder.transfer(1, {buf, 0, 16}, 2, {buf, 0, 16}, RecvAction::copy, std::vector<OpId>{t});
  const Plan plan = builder.take();
  std::vector<RankProgram> programs;
  for (int r = 0; r < 3; ++r) programs.push_back(project(plan, r));
  programs[0] = RankProgram(0, plan);  // rank 0 lost its send
  InProcessBackend b(3);
  b.allocate(16);
  std::string why;
  try {
    b.run(programs);
  } catch (const LogicError& e) {
    why = e.what();
  }
  CHECK_CONTAINS(why, "no rank can go on (a deadlock)");
  CHECK_CONTAINS(why, "waits for piece 0 of operation");
  // The intact programs run.
  for (int r = 0; r < 3; ++r) programs[static_cast<std::size_t>(r)] = project(plan, r);
  CHECK_NOTHROW(b.run(programs));
}

TEST_CASE("The race check finds writes no dependency orders") {
  PlanBuilder b(PlanTarget::hosts(3, 3));
  const BufferId buf = b.allocate(16);
  const OpId a = b.transfer(0, {buf, 0, 8}, 1, {buf, 0, 8}, RecvAction::copy, {});
  b.transfer(2, {buf, 0, 8}, 1, {buf, 4, 8}, RecvAction::copy, {});
  CHECK(railcc_test::first_race(b.plan()) ==
        "operations 0 and 1 touch rank 1's buffer 0 at bytes 4 unordered");
  b.take();
  const OpId first = b.transfer(0, {buf, 0, 8}, 1, {buf, 0, 8}, RecvAction::copy, {});
  b.transfer(2, {buf, 0, 8}, 1, {buf, 4, 8}, RecvAction::copy, std::vector<OpId>{first});
  CHECK(railcc_test::first_race(b.plan()) == "");
  (void)a;
}

TEST_CASE("A plan runs only on a backend of its ranks whose buffers it fits") {
  PlanBuilder builder(PlanTarget::hosts(4, 4), {DataType::int32, ReduceOp::sum});
  const BufferId buf = builder.allocate(16);
  builder.transfer(0, {buf, 0, 16}, 1, {buf, 0, 16}, RecvAction::copy, {});
  const Plan plan = builder.take();
  InProcessBackend three(3);
  CHECK_CONTAINS(error_of([&] { three.run(plan); }),
                 "in-process backend: a plan over 4 ranks on a backend of 3");
  InProcessBackend smaller(4);
  smaller.allocate(8);
  CHECK_CONTAINS(error_of([&] { smaller.run(plan); }),
                 "the plan's buffer 0 has 16 bytes, the backend's 8");
  SimBackend sim(fabric64(), 4);
  sim.allocate(32);
  CHECK_CONTAINS(error_of([&] { sim.run(plan); }),
                 "sim backend: the plan's buffer 0 has 16 bytes, the backend's 32");
  // A backend without the buffer gets it.
  InProcessBackend fresh(4);
  CHECK_NOTHROW(fresh.run(plan));
  CHECK(fresh.buffer_bytes(buf) == 16);
}

TEST_CASE("Randomized: PXN all-to-all against the reference on any placement") {
  // Hosts of different sizes, rails shared or missing, ranks numbered out of host order
  // (the relay then sends chunk by chunk): every output against the definition, and no
  // race between what a rank reads and writes.
  std::mt19937_64 rng(77);
  const DataType types[] = {DataType::float32, DataType::int32, DataType::bfloat16, DataType::uint8,
                            DataType::float64};
  for (int trial = 0; trial < 40; ++trial) {
    const auto hosts = static_cast<std::uint32_t>(1 + rng() % 5);
    PlanTarget target;
    for (std::uint32_t h = 0; h < hosts; ++h) {
      const auto g = static_cast<std::uint32_t>(1 + rng() % 6);
      for (std::uint32_t l = 0; l < g; ++l) {
        // Mostly rail = local index; sometimes two GPUs share a rail (a NIC per pair).
        const std::uint32_t rail = trial % 4 == 3 ? l / 2 : l;
        target.placement.push_back({h, l, rail});
      }
    }
    if (trial % 2 == 1) std::shuffle(target.placement.begin(), target.placement.end(), rng);
    const int p = static_cast<int>(target.placement.size());
    InProcessBackend b(target);
    VerifiedCall c;
    c.collective = Collective::all_to_all;
    c.algorithm = Algorithm::pxn;
    c.count = rng() % 40;
    b.set_reduction({types[rng() % std::size(types)], ReduceOp::sum});
    CAPTURE(trial);
    CAPTURE(p);
    CAPTURE(c.count);
    const VerifiedInputs v = fill_verified(b, c, rng());
    post_collective(b, c.collective, verified_collective_call(c, v.buffers), c.algorithm,
                    c.inter_host);
    const Plan plan = b.plan();
    CHECK(railcc_test::first_race(plan) == "");
    b.run();
    CHECK(count_wrong(b, c, v) == 0);
  }
}

TEST_CASE("Randomized: hierarchical all-reduce with chunks in flight against the reference") {
  // Chunk k's inter-host phase waits for chunk k - D's only (CollectiveCall::
  // chunks_in_flight), so D chunks cross hosts at once: every output against the
  // definition on threads that run the plan as fast as they can, and no race between
  // what a rank reads and writes (the chunks' regions are disjoint, and each chunk's
  // all-gather follows its own inter-host phase).
  std::mt19937_64 rng(404);
  const DataType types[] = {DataType::float32, DataType::int32, DataType::bfloat16, DataType::uint8,
                            DataType::float64};
  const ReduceOp ops[] = {ReduceOp::sum, ReduceOp::max, ReduceOp::avg, ReduceOp::prod};
  const Algorithm inters[] = {Algorithm::ring, Algorithm::rabenseifner, Algorithm::mixed_radix};
  int several_in_flight = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const auto hosts = static_cast<std::uint32_t>(2 + rng() % 6);
    const auto per_host = static_cast<std::uint32_t>(1 + rng() % 4);
    InProcessBackend b(static_cast<int>(hosts * per_host), static_cast<int>(per_host));
    b.set_reduction({types[rng() % std::size(types)], ops[rng() % std::size(ops)]});
    VerifiedCall c;
    c.collective = Collective::all_reduce;
    c.algorithm = Algorithm::hierarchical;
    c.inter_host = inters[rng() % std::size(inters)];
    c.count = rng() % 300;
    c.in_place = rng() % 2 == 0;
    c.channels = 1 + static_cast<int>(rng() % 2);
    c.phase_chunks = 1 + static_cast<int>(rng() % 8);
    c.chunks_in_flight = 1 + static_cast<int>(rng() % 8);
    several_in_flight += c.chunks_in_flight > 1 && c.phase_chunks > 1 ? 1 : 0;
    CAPTURE(trial);
    CAPTURE(hosts);
    CAPTURE(per_host);
    CAPTURE(c.count);
    CAPTURE(c.phase_chunks);
    CAPTURE(c.chunks_in_flight);
    const VerifiedInputs v = fill_verified(b, c, rng());
    post_collective(b, c.collective, verified_collective_call(c, v.buffers), c.algorithm,
                    c.inter_host);
    CHECK(railcc_test::first_race(b.plan()) == "");
    b.run();
    CHECK(count_wrong(b, c, v) == 0);
  }
  CHECK(several_in_flight >= 20);
}
