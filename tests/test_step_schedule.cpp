// The step schedule (steps mode): the compact timing path for 100k+ ranks, checked
// against the per-operation flow graph on cases small enough to run both ways.
#include <doctest/doctest.h>

#include <functional>
#include <vector>

#include "check_contains.hpp"
#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/sim/step_schedule.hpp"
#include "test_support.hpp"

using namespace railcc;

using railcc_test::error_of;
using railcc_test::one_leaf;

namespace {

struct BothWays {
  Picoseconds per_operation;
  Picoseconds steps;
  StepResult step_result;
};

/// Runs `post` on a timing-mode and a steps-mode backend over the same fabric and ranks.
/// `expansion`: SimBackendConfig::pipeline_expansion_flows of the steps-mode run.
BothWays both_ways(const Fabric& fabric, int ranks, ReductionSpec reduction,
                   const std::function<void(SimBackend&)>& post, std::uint32_t qps = 1,
                   std::size_t expansion = SimBackendConfig{}.pipeline_expansion_flows) {
  BothWays out;
  for (SimMode mode : {SimMode::timing, SimMode::steps}) {
    SimBackendConfig cfg;
    cfg.mode = mode;
    cfg.qps_per_connection = qps;
    cfg.pipeline_expansion_flows = expansion;
    SimBackend b(fabric, ranks, cfg);
    b.set_reduction(reduction);
    post(b);
    const auto r = b.run();
    if (mode == SimMode::timing) {
      out.per_operation = r.makespan;
    } else {
      out.steps = r.makespan;
      out.step_result = b.step_result();
    }
  }
  return out;
}

void all_reduce_of(SimBackend& b, std::size_t count, Algorithm algo, Algorithm inter, bool in_place,
                   int channels = 1) {
  const std::size_t elem = size_of(b.reduction().type);
  const BufferId in = b.allocate(count * elem);
  const BufferId out = in_place ? in : b.allocate(count * elem);
  all_reduce(b, CollectiveCall{count, in, out, channels}, algo, inter);
}

}  // namespace

TEST_CASE("Step schedule: items go in the step after their dependencies; repeats extend it") {
  StepSchedule s;
  const FlowSpec f{0, 1, Bytes::of(1000), 0, {}};
  const auto a = s.add(f, {});
  const auto b = s.add(f, {});
  CHECK(s.end_level(a) == 1);
  const std::vector<StepSchedule::Index> ab{a, b};
  const auto c = s.add(f, ab);
  CHECK(s.end_level(c) == 2);
  s.repeat(c, 5);  // c stands for steps 2..7
  CHECK(s.end_level(c) == 7);
  const std::vector<StepSchedule::Index> cc{c};
  const auto d = s.add(f, cc);
  CHECK(s.end_level(d) == 8);
  CHECK(s.steps() == 8);
  CHECK_CONTAINS(error_of([&] { s.repeat(c, 1); }), "depend on each other");
  const std::vector<StepSchedule::Index> missing{99};
  CHECK_CONTAINS(error_of([&] { s.add(f, missing); }), "dependency on item 99, not posted yet");
}

TEST_CASE("Step schedule: a repeated step is simulated once and counted every time") {
  const auto cable = Picoseconds::ns(15);
  const auto fabric = one_leaf(4, cable);
  SimConfig cfg;
  StepSchedule s;
  const FlowSpec f{0, 1, Bytes::of(1 << 20), 0, {}};
  s.add(f, {});
  s.repeat(0, 9);
  const auto r = s.evaluate(fabric, cfg);
  const Picoseconds one = cfg.message_overhead + cable * 2 + cfg.switch_hop +
                          transfer_time(Bytes::of(1 << 20), Bandwidth::gbps(400));
  CHECK(r.makespan == one * 10);
  CHECK(r.evaluations == 1);
  CHECK(r.steps == 10);
  REQUIRE(r.runs.size() == 1);
  CHECK(r.runs[0].steps == 10);
  CHECK(r.bytes_sent == doctest::Approx(10.0 * (1 << 20)));
}

TEST_CASE("Steps mode equals the per-operation schedule on lockstep algorithms") {
  const auto cable = Picoseconds::ns(15);
  const ReductionSpec f32{DataType::float32, ReduceOp::sum};
  SUBCASE("ring, one rank per host, in and out of place, avg's finish") {
    for (std::uint32_t p : {2u, 3u, 8u, 16u}) {
      CAPTURE(p);
      const auto fabric = one_leaf(p, cable);
      for (bool in_place : {true, false}) {
        const auto t = both_ways(
            fabric, static_cast<int>(p), {DataType::float32, ReduceOp::avg}, [&](SimBackend& b) {
              all_reduce_of(b, std::size_t{p} << 16, Algorithm::ring, Algorithm::ring, in_place, 2);
            });
        CHECK(t.steps == t.per_operation);
        CHECK(t.step_result.evaluations <= 5);  // copy, reduce-scatter, finish, all-gather
      }
    }
  }
  SUBCASE("ring inside one 8-GPU host over NVLink") {
    ColossusParams params;
    params.gpus = 8;
    const auto fabric = colossus(params);
    const auto t = both_ways(fabric, 8, f32, [&](SimBackend& b) {
      all_reduce_of(b, 1 << 20, Algorithm::ring, Algorithm::ring, true);
    });
    CHECK(t.steps == t.per_operation);
  }
  SUBCASE("Rabenseifner, powers of two and not") {
    for (std::uint32_t p : {2u, 4u, 6u, 8u, 13u}) {
      CAPTURE(p);
      const auto fabric = one_leaf(p, cable);
      const auto t = both_ways(fabric, static_cast<int>(p), f32, [&](SimBackend& b) {
        all_reduce_of(b, 1 << 20, Algorithm::rabenseifner, Algorithm::ring, true);
      });
      CHECK(t.steps == t.per_operation);
    }
  }
  SUBCASE("Rabenseifner over 8-GPU hosts: equal for powers of two, never faster otherwise") {
    // With p a power of two every step's partners are all inside hosts (NVLink) or all
    // across (network). Otherwise the fold pairs ranks inside the first hosts while the
    // others' partners map across hosts, so a step can mix NVLink and network flows and
    // wait for its slowest: on 40 GPUs steps mode is 12% slower than per operation.
    for (std::uint32_t p = 16; p <= 128; p += 8) {
      CAPTURE(p);
      ColossusParams params;
      params.gpus = p;
      const auto fabric = colossus(params);
      const auto t = both_ways(fabric, static_cast<int>(p), f32, [&](SimBackend& b) {
        all_reduce_of(b, 1 << 18, Algorithm::rabenseifner, Algorithm::ring, true);
      });
      if ((p & (p - 1)) == 0) {
        CHECK(t.steps == t.per_operation);
      } else {
        CHECK(t.steps >= t.per_operation);
      }
    }
  }
  SUBCASE("hierarchical over 4 and 16 hosts, ring and Rabenseifner across hosts") {
    for (std::uint32_t gpus : {32u, 128u}) {
      ColossusParams params;
      params.gpus = gpus;
      const auto fabric = colossus(params);
      for (Algorithm inter : {Algorithm::ring, Algorithm::rabenseifner}) {
        CAPTURE(gpus);
        CAPTURE(to_string(inter));
        const auto t = both_ways(fabric, static_cast<int>(gpus), f32, [&](SimBackend& b) {
          all_reduce_of(b, std::size_t{1} << 20, Algorithm::hierarchical, inter, false);
        });
        CHECK(t.steps == t.per_operation);
      }
    }
  }
  SUBCASE("Bruck all-gather") {
    for (std::uint32_t p : {5u, 8u}) {
      const auto fabric = one_leaf(p, cable);
      const auto t = both_ways(fabric, static_cast<int>(p), f32, [&](SimBackend& b) {
        const BufferId buf = b.allocate(std::size_t{4} * 4096 * p);
        all_gather(b, CollectiveCall{4096, buf, buf}, Algorithm::bruck);
      });
      CHECK(t.steps == t.per_operation);
    }
  }
}

TEST_CASE("Steps mode: a ring pass crossing hosts runs as the per-operation schedule does") {
  // A ring over hosts mixes NVLink hops and network hops in every step. A barrier per
  // step made each step as slow as a network hop, start-up included (16 GPUs, 16 MiB:
  // 701.9 us against 672.1 per operation; 16 hosts, 1 KiB: 1.33 us a step against 0.87).
  // Where the run's flows fit the expansion budget they are simulated with each hop
  // waiting for the one before it (16 hosts, 64 MiB, 8 channels: the bounds below gave
  // +20.5%, with every channel's hops sharing NVLinks at once), and the all-gather
  // together with the reduce-scatter before it (2 hosts, 1 MiB, one channel: 53.2 us
  // with a barrier between them, 56.0 per operation); where only 64 steps or more fit,
  // those are simulated and the rest extrapolated; where fewer fit (100k GPUs), the run
  // is bounded by its slowest chain of hops and its busiest connection. Each takes what
  // the per-operation schedule does within 2% on these cases, whether latency or
  // bandwidth bounds them, and never less than the network hops' bytes at the NIC rate.
  struct Case {
    std::uint32_t gpus;
    std::size_t count;  // floats
    int channels;
    bool bounds_hold;  // the bounds alone are within 2% too
  };
  const Case cases[] = {{16, std::size_t{1} << 18, 1, false},
                        {16, std::size_t{1} << 22, 1, true},
                        {24, std::size_t{1} << 18, 1, false},
                        {32, 256, 1, true},
                        {32, 256, 8, true},
                        {32, std::size_t{1} << 28, 1, true},
                        {32, std::size_t{1} << 28, 8, true},
                        {64, std::size_t{1} << 28, 8, true},
                        {128, 256, 1, true},
                        {128, std::size_t{1} << 24, 8, false},
                        {128, std::size_t{1} << 28, 8, true}};
  const std::size_t whole = SimBackendConfig{}.pipeline_expansion_flows;
  for (const Case& c : cases) {
    // The budget: every step, 64 steps of 128 GPUs' flows (an extrapolated run where
    // 128 GPUs' steps are longer than that), or none (the bounds).
    const std::size_t window = std::size_t{64} * c.gpus * static_cast<std::size_t>(c.channels);
    for (const std::size_t expansion : {whole, window, std::size_t{0}}) {
      if (expansion == 0 && !c.bounds_hold) continue;
      CAPTURE(c.gpus);
      CAPTURE(c.count);
      CAPTURE(c.channels);
      CAPTURE(expansion);
      ColossusParams params;
      params.gpus = c.gpus;
      const auto fabric = colossus(params);
      const auto t = both_ways(
          fabric, static_cast<int>(c.gpus), {DataType::float32, ReduceOp::sum},
          [&](SimBackend& b) {
            all_reduce_of(b, c.count, Algorithm::ring, Algorithm::ring, true, c.channels);
          },
          1, expansion);
      MESSAGE(c.gpus << " GPUs, " << c.count * 4 << " B, " << c.channels << " channels, budget "
                     << expansion << ": per operation " << t.per_operation.in_us() << " us, steps "
                     << t.steps.in_us() << " us");
      CHECK(std::abs(t.steps.in_seconds() / t.per_operation.in_seconds() - 1) <= 0.02);
      // Each of the 2 (p - 1) steps moves a chunk of count / p floats per channel over one
      // NIC per channel at most at the NIC's rate.
      const std::size_t p = c.gpus;
      const std::size_t chunk = c.count * 4 / p / static_cast<std::size_t>(c.channels);
      CHECK(t.steps >= transfer_time(Bytes::of(chunk), nic_400g_usable) *
                           static_cast<std::int64_t>(2 * (p - 1)));
      // What was simulated: each pass's every step (the all-gather's again together with
      // the reduce-scatter's where their chunks are the same size); 64 steps of each and
      // the three simulations of one step the bounds take; or those three only.
      const std::size_t flows = p * static_cast<std::size_t>(c.channels);
      const std::size_t steps = p - 1;
      const std::size_t least = expansion >= steps * flows ? 2 * steps * flows
                                : expansion >= window      ? 2 * 67 * flows
                                                           : 2 * 3 * flows;
      const std::size_t most = expansion >= 2 * steps * flows ? 3 * steps * flows : least;
      CHECK(t.step_result.flows_evaluated >= least);
      CHECK(t.step_result.flows_evaluated < most + 4 * flows);
    }
  }
}

TEST_CASE("Steps mode evaluates a 2,048-GPU hierarchical all-reduce in a handful of steps") {
  ColossusParams params;
  params.gpus = 2048;
  const auto fabric = colossus(params);
  SimBackendConfig cfg;
  cfg.mode = SimMode::steps;
  SimBackend b(fabric, 2048, cfg);
  b.set_reduction({DataType::bfloat16, ReduceOp::sum});
  const std::size_t count = std::size_t{1} << 29;  // 1 GiB of bf16
  const BufferId buf = b.allocate(count * 2);
  all_reduce(b, CollectiveCall{count, buf, buf}, Algorithm::hierarchical, Algorithm::ring);
  const auto r = b.run();
  const auto& s = b.step_result();
  // 7 NVLink steps, 2 x 255 rail steps, 7 NVLink steps (a sum's finish takes no step).
  CHECK(s.steps == 7 + 255 + 255 + 7);
  // (With chunks in flight, three more: the stand-in's route and two one-flow probes.)
  CHECK(s.evaluations <= 5 + 3);
  // Never below the hierarchical bound: the rail phase alone moves 2 (H-1)/H of n/8 per NIC.
  const double rail_bound = 2.0 * 255 / 256 * static_cast<double>(count * 2) / 8 /
                            Bandwidth::gbps(400).in_bytes_per_second();
  CHECK(r.makespan.in_seconds() > rail_bound);
}

TEST_CASE("Steps mode repeats every QP of a transfer, not only the last") {
  // Eight single-GPU hosts on one leaf: a ring step over 4 QPs per connection takes as
  // long as over 1 (the QPs share each cable), in both modes. A repeated step must carry
  // all four QPs' bytes: repeating only the last would make steps mode 4x too fast.
  const auto fabric = railcc_test::one_leaf(8, Picoseconds::ns(100));
  const std::size_t count = std::size_t{1} << 20;
  const ReductionSpec f32{DataType::float32, ReduceOp::sum};
  auto ring = [&](SimBackend& b) {
    all_reduce_of(b, count, Algorithm::ring, Algorithm::ring, true);
  };
  const auto one = both_ways(fabric, 8, f32, ring, 1);
  const auto four = both_ways(fabric, 8, f32, ring, 4);
  CHECK(four.steps == four.per_operation);
  CHECK(std::llabs(four.steps.count() - one.steps.count()) <= 14 * 4);  // byte rounding per QP
  CHECK(four.step_result.bytes_sent == doctest::Approx(one.step_result.bytes_sent));
}
