// tune/cost_model.hpp: the alpha-beta model reads the fabric's own numbers, predicts the
// closed forms, agrees with the simulator where the closed form is exact, chooses the
// cheapest applicable algorithm and never predicts below the bandwidth bound.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "check_contains.hpp"
#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/tune/cost_model.hpp"
#include "test_support.hpp"

using namespace railcc;
using railcc_test::error_of;
using railcc_test::one_leaf;

namespace {

const Fabric& colossus_2048() {
  static const Fabric f = [] {
    ColossusParams p;
    p.gpus = 2048;
    return colossus(p);
  }();
  return f;
}

}  // namespace

TEST_CASE("The model reads hosts, rates and latencies from the fabric") {
  const auto fabric = one_leaf(16, Picoseconds::ns(100));
  const SimConfig sim;
  const CostModel m = CostModel::of(fabric, 16, sim);
  CHECK(m.ranks == 16);
  CHECK(m.hosts == 16);
  CHECK(m.per_host == 1);
  CHECK(m.nic_Bps == doctest::Approx(Bandwidth::gbps(400).in_bytes_per_second() *
                                     fabric.link(0).usable().in_bytes_per_second() /
                                     fabric.link(0).capacity.in_bytes_per_second()));
  // GPU -> leaf -> GPU: two cables and one switch.
  CHECK(m.alpha_near == sim.message_overhead + Picoseconds::ns(200) + sim.switch_hop);
  // The leaf is the top tier: the far path is the near one.
  CHECK(m.alpha_far == m.alpha_near);
  CHECK_FALSE(m.switch_reduction);

  const CostModel c = CostModel::of(colossus_2048(), 2048, sim);
  CHECK(c.hosts == 256);
  CHECK(c.per_host == 8);
  CHECK(c.switch_reduction);
  CHECK(c.alpha_far > c.alpha_near);  // up to the spine and back
  CHECK(c.nvlink_Bps > c.nic_Bps);

  CHECK_CONTAINS(error_of([&] { (void)CostModel::of(fabric, 17, sim); }),
                 "17 ranks on a fabric of 16 GPUs");
  CHECK_CONTAINS(error_of([&] { (void)CostModel::of(fabric, 0, sim); }), "0 ranks");
}

TEST_CASE("Ring all-reduce: the model's closed form is the simulated time on one leaf") {
  const auto fabric = one_leaf(8, Picoseconds::ns(100));
  const CostModel m = CostModel::of(fabric, 8);
  const std::size_t bytes = std::size_t{1} << 24;
  const Picoseconds predicted =
      m.predict(Collective::all_reduce, Algorithm::ring, Algorithm::rabenseifner, bytes);
  // The collective's base latency once, then 14 steps.
  const Picoseconds closed =
      m.collective_base +
      (m.alpha_near + Picoseconds::seconds(static_cast<double>(bytes) / 8 / m.nic_Bps)) * 14;
  CHECK(predicted == closed);
  SimBackendConfig cfg;
  cfg.mode = SimMode::timing;
  SimBackend b(fabric, 8, cfg);
  b.set_reduction({DataType::float32, ReduceOp::sum});
  const BufferId buf = b.allocate(bytes);
  all_reduce(b, CollectiveCall{bytes / 4, buf, buf}, Algorithm::ring);
  const Picoseconds simulated = b.run().makespan;
  // The same 14 steps; each step's bytes round to a picosecond in both.
  CHECK(std::llabs(simulated.count() - predicted.count()) <= 14);
}

TEST_CASE("Randomized: choose() is the cheapest applicable prediction, never below the bound") {
  std::mt19937_64 rng(7);
  const SimConfig sim;
  const CostModel models[] = {CostModel::of(one_leaf(24, Picoseconds::ns(300)), 24, sim),
                              CostModel::of(colossus_2048(), 2048, sim),
                              CostModel::of(colossus_2048(), 8, sim),
                              CostModel::of(colossus_2048(), 64, sim)};
  const Collective collectives[] = {Collective::all_reduce, Collective::reduce_scatter,
                                    Collective::all_gather, Collective::broadcast,
                                    Collective::all_to_all};
  int checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const CostModel& m = models[rng() % 4];
    const Collective c = collectives[rng() % 5];
    const std::size_t bytes = std::size_t{1} << (10 + rng() % 21);  // 1 KiB .. 1 GiB
    CAPTURE(m.ranks);
    CAPTURE(to_string(c));
    CAPTURE(bytes);
    // The reference: every applicable algorithm (and inter-host algorithm) by brute force.
    Picoseconds best = Picoseconds::max();
    for (Algorithm a : algorithms_for(c)) {
      const bool hier = a == Algorithm::hierarchical || a == Algorithm::nvls;
      const bool whole_hosts = m.ranks == m.hosts * m.per_host && m.per_host > 1;
      if (a == Algorithm::hierarchical && (m.hosts < 2 || !whole_hosts)) continue;
      if (a == Algorithm::nvls && (!m.switch_reduction || !whole_hosts)) continue;
      for (Algorithm inter : {Algorithm::ring, Algorithm::rabenseifner, Algorithm::mixed_radix}) {
        if (!hier && inter != Algorithm::rabenseifner) continue;
        const Picoseconds t = m.predict(c, a, inter, bytes);
        best = std::min(best, t);
        // No prediction beats the bytes each GPU must move over its bottleneck.
        CHECK(t >= m.bandwidth_bound(c, bytes));
      }
    }
    const AlgorithmChoice choice = m.choose(c, bytes);
    CHECK(choice.predicted == best);
    CHECK(applies(c, choice.algorithm));
    ++checked;
  }
  CHECK(checked == 400);
}

TEST_CASE("Where each algorithm wins: logarithmic ones small, hierarchical large") {
  const CostModel m = CostModel::of(colossus_2048(), 2048);
  const AlgorithmChoice small = m.choose(Collective::all_reduce, 1024);
  const AlgorithmChoice large = m.choose(Collective::all_reduce, std::size_t{1} << 30);
  CHECK(small.algorithm != Algorithm::ring);  // 4,094 ring steps of latency
  CHECK((large.algorithm == Algorithm::hierarchical || large.algorithm == Algorithm::nvls));
  CHECK(large.across_hosts);
  CHECK(to_string(large).find('+') != std::string::npos);  // names the inter-host algorithm
}

TEST_CASE("The bandwidth bound: NVLS halves the NVLink bytes of an all-reduce in one host") {
  const CostModel m = CostModel::of(colossus_2048(), 8);
  REQUIRE(m.hosts == 1);
  const std::size_t n = std::size_t{1} << 30;
  const double with_nvls = m.bandwidth_bound(Collective::all_reduce, n).in_seconds();
  CHECK(with_nvls == doctest::Approx(static_cast<double>(n) / m.nvlink_Bps).epsilon(1e-9));
  CostModel without = m;
  without.switch_reduction = false;
  CHECK(without.bandwidth_bound(Collective::all_reduce, n).in_seconds() ==
        doctest::Approx(2.0 * 7 / 8 * static_cast<double>(n) / m.nvlink_Bps).epsilon(1e-9));
  const CostModel across = CostModel::of(colossus_2048(), 2048);
  CHECK(
      across.bandwidth_bound(Collective::all_reduce, n).in_seconds() ==
      doctest::Approx(2.0 * 255 / 256 * static_cast<double>(n) / 8 / across.nic_Bps).epsilon(1e-9));
}

TEST_CASE("Mixed radix: the model's closed form is the simulated time on one leaf") {
  const SimConfig sim;
  for (std::uint32_t p : {5u, 12u, 24u}) {
    CAPTURE(p);
    const auto fabric = one_leaf(p, Picoseconds::ns(15));
    const CostModel m = CostModel::of(fabric, p, sim);
    const std::size_t bytes = std::size_t{27720} * 64;
    SimBackendConfig cfg;
    cfg.mode = SimMode::timing;
    SimBackend b(fabric, static_cast<int>(p), cfg);
    b.set_reduction({DataType::float32, ReduceOp::sum});
    const BufferId buf = b.allocate(bytes);
    all_reduce(b, CollectiveCall{bytes / 4, buf, buf}, Algorithm::mixed_radix);
    const Picoseconds simulated = b.run().makespan;
    const Picoseconds predicted =
        m.predict(Collective::all_reduce, Algorithm::mixed_radix, Algorithm::mixed_radix, bytes);
    // One leaf has no top tier: the model's far step is its near one here.
    CHECK(std::llabs(predicted.count() - simulated.count()) <= static_cast<long long>(p) * 4);
  }
}

TEST_CASE("Far steps climb only to the tier where the job's GPUs meet") {
  // 64 GPUs fill 8 hosts of one colossus array: every rail has one leaf, so partners on
  // one rail meet there, and GPUs on different rails meet one tier up. The model once
  // charged every far step the way to the top tier and back: 3.3 us a step too many here,
  // enough to pick NVLS at 32 us over mixed radix at 19 us (railcc-sim --explain simulated).
  const SimConfig sim;
  const CostModel small = CostModel::of(colossus_2048(), 64, sim);
  CHECK(small.alpha_far == small.alpha_near);
  CHECK(small.alpha_cross > small.alpha_near);
  // 2,048 GPUs span 4 arrays: one rail's leaves meet at the spines.
  const CostModel big = CostModel::of(colossus_2048(), 2048, sim);
  CHECK(big.alpha_far == small.alpha_cross);
  // Rabenseifner at 1 KiB on the 64: the prediction is the simulated time.
  SimBackend b(colossus_2048(), 64, SimBackendConfig{});
  b.set_reduction({DataType::float32, ReduceOp::sum});
  const BufferId buf = b.allocate(1024);
  all_reduce(b, CollectiveCall{256, buf, buf}, Algorithm::rabenseifner);
  const Picoseconds simulated = b.run().makespan;
  const Picoseconds predicted =
      small.predict(Collective::all_reduce, Algorithm::rabenseifner, Algorithm::ring, 1024);
  CHECK(std::llabs(predicted.count() - simulated.count()) <= 64);
  CHECK(small.choose(Collective::all_reduce, 1024).algorithm != Algorithm::nvls);
}

TEST_CASE("Across a host count that is not a power of two the tuner leaves Rabenseifner's fold") {
  ColossusParams params;
  params.gpus = 8 * 48;  // 48 hosts: 32 + a fold of 16
  const CostModel m = CostModel::of(colossus(params), 8 * 48);
  const AlgorithmChoice large = m.choose(Collective::all_reduce, std::size_t{1} << 30);
  CHECK(large.inter_host != Algorithm::rabenseifner);
  const auto fold = m.predict(Collective::all_reduce, Algorithm::hierarchical,
                              Algorithm::rabenseifner, std::size_t{1} << 30);
  const auto mixed = m.predict(Collective::all_reduce, Algorithm::hierarchical,
                               Algorithm::mixed_radix, std::size_t{1} << 30);
  CHECK(mixed.in_seconds() < 0.8 * fold.in_seconds());
}

TEST_CASE("The tuner's candidates: each prediction, the reason where one cannot run") {
  const CostModel one_host = CostModel::of(colossus_2048(), 8);
  const auto on_one = one_host.candidates(Collective::all_reduce, 1 << 20);
  // Every algorithm of the table once (one host: the inter-host choice is moot).
  CHECK(on_one.size() == algorithms_for(Collective::all_reduce).size());
  for (const auto& k : on_one) {
    CAPTURE(to_string(k.choice));
    if (k.choice.algorithm == Algorithm::hierarchical) {
      CHECK_FALSE(k.runs());
      CHECK_CONTAINS(k.excluded, "one host");
    } else {
      CHECK(k.runs());
      CHECK(k.choice.predicted == one_host.predict(Collective::all_reduce, k.choice.algorithm,
                                                   k.choice.inter_host, 1 << 20));
    }
  }
  // Across hosts, hierarchical and nvls once per inter-host algorithm.
  const CostModel many = CostModel::of(colossus_2048(), 2048);
  const auto across = many.candidates(Collective::all_reduce, 1 << 30);
  CHECK(across.size() ==
        algorithms_for(Collective::all_reduce).size() - 2 + 2 * inter_host_algorithms().size());
  Picoseconds least = Picoseconds::max();
  for (const auto& k : across) {
    CHECK(k.runs());
    least = std::min(least, k.choice.predicted);
  }
  CHECK(many.choose(Collective::all_reduce, 1 << 30).predicted == least);
  // Ranks that do not fill their hosts: neither hierarchical nor nvls, and why.
  const CostModel ragged = CostModel::of(colossus_2048(), 12);
  for (const auto& k : ragged.candidates(Collective::all_reduce, 1 << 20)) {
    const bool hier =
        k.choice.algorithm == Algorithm::hierarchical || k.choice.algorithm == Algorithm::nvls;
    CHECK(k.runs() == !hier);
    if (hier) CHECK_CONTAINS(k.excluded, "do not fill their hosts evenly");
  }
}

TEST_CASE("Chunks in flight: the bandwidth-delay product, priced as the pipeline runs") {
  // A chunk's network phase: 1/K s of bytes and 0.5 s of start-ups and latency. D chunks
  // keep the network carrying bytes through one chunk's latency when D/K >= 1/K + 0.5:
  // D = ceil(1 + K/2), at most K and 8 (a connection's slots).
  PhaseCosts pc;
  pc.nvlink_seconds = 0.8;
  pc.network_seconds = 1.0;
  pc.nvlink_latency = 0.01;
  pc.network_latency = 0.5;
  CHECK(pc.in_flight_for(1) == 1);
  CHECK(pc.in_flight_for(2) == 2);
  CHECK(pc.in_flight_for(4) == 3);
  CHECK(pc.in_flight_for(8) == 5);
  CHECK(pc.in_flight_for(16) == 8);
  // K = 8: a chunk's NVLink phases 0.11 s, its network phase 0.625 s. One in flight: 7
  // more network phases after the first chunk's three. Five: a period of 0.125 s (the
  // chunk's bytes), the latency under the others'.
  CHECK(pc.pipelined(8, 1) == doctest::Approx(0.11 + 0.625 + 7 * 0.625));
  CHECK(pc.pipelined(8, 5) == doctest::Approx(0.11 + 0.625 + 7 * 0.125));
  CHECK(pc.pipelined(8, 2) == doctest::Approx(0.11 + 0.625 + 7 * 0.3125));
  CHECK(pc.pipelined(8) == pc.pipelined(8, 1));
  // best_chunks weighs each K with its own D (or the D it is given).
  std::size_t best = 1;
  for (std::size_t K = 2; K <= 64; K *= 2)
    if (pc.pipelined(K, pc.in_flight_for(K)) < pc.pipelined(best, pc.in_flight_for(best))) best = K;
  CHECK(pc.best_chunks() == best);
  CHECK(pc.best_chunks(1) <= pc.best_chunks());

  // On a fabric: the model's chunks in flight, or the ones it is told.
  const std::size_t GiB = std::size_t{1} << 30;
  CostModel model = CostModel::of(colossus_2048(), 2048);
  const int K = model.phase_chunks_for(Algorithm::hierarchical, Algorithm::mixed_radix, GiB);
  const int D = model.chunks_in_flight_for(Algorithm::hierarchical, Algorithm::mixed_radix, GiB);
  CHECK(D > 1);
  CHECK(static_cast<std::size_t>(D) ==
        model.phase_costs(Algorithm::hierarchical, Algorithm::mixed_radix, GiB)
            .in_flight_for(static_cast<std::size_t>(K)));
  const Picoseconds with =
      model.predict(Collective::all_reduce, Algorithm::hierarchical, Algorithm::mixed_radix, GiB);
  model.chunks_in_flight = 1;  // asked for: taken as given, and the chunks chosen for it
  CHECK(model.chunks_in_flight_for(Algorithm::hierarchical, Algorithm::mixed_radix, GiB) == 1);
  CHECK(model.predict(Collective::all_reduce, Algorithm::hierarchical, Algorithm::mixed_radix,
                      GiB) > with);
  CHECK(model.chunks_in_flight_for(Algorithm::ring, Algorithm::mixed_radix, GiB) == 0);
  SimConfig spray;
  spray.routing.mode = RoutingMode::spray;
  const CostModel sprayed = CostModel::of(colossus_2048(), 2048, spray);

  // Calibrated: at 1 and 4 GiB over 2,048 sprayed GPUs the prediction is the simulated
  // time (steps mode, the chunks and chunks in flight the model chose) within 3%.
  for (const std::size_t bytes : {GiB, 4 * GiB}) {
    CAPTURE(bytes);
    SimBackendConfig cfg;
    cfg.mode = SimMode::steps;
    cfg.sim.routing.mode = RoutingMode::spray;
    SimBackend b(colossus_2048(), 2048, cfg);
    b.set_reduction({DataType::bfloat16, ReduceOp::sum});
    const BufferId buf = b.allocate(bytes);
    CollectiveCall call{bytes / 2, buf, buf};
    call.phase_chunks =
        sprayed.phase_chunks_for(Algorithm::hierarchical, Algorithm::mixed_radix, bytes);
    call.chunks_in_flight =
        sprayed.chunks_in_flight_for(Algorithm::hierarchical, Algorithm::mixed_radix, bytes);
    all_reduce(b, call, Algorithm::hierarchical, Algorithm::mixed_radix);
    const double simulated = b.run().makespan.in_seconds();
    const double predicted =
        sprayed
            .predict(Collective::all_reduce, Algorithm::hierarchical, Algorithm::mixed_radix, bytes)
            .in_seconds();
    CHECK(std::abs(predicted / simulated - 1) < 0.03);
  }
}
