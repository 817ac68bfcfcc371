// Simulator scale and fidelity figures on the colossus preset.
//
//   Permutation/<gpus>/<routing>: every GPU sends 64 MiB to a random GPU in another
//     512-GPU array (a permutation), ECMP (0) or spraying (1).
//   RailExchange/<gpus>: every GPU sends 64 MiB to the GPU of its rail on the next host
//     (one step of a rail-aligned ring), ECMP.
// Counters: wall_s (wall time of build + simulation), build_s, peak_rss_MB (process
// high-water mark: run one size per process for per-size figures, as
// bench/sim_scaling.sh does), fabric_MB, links, sim_us (simulated makespan),
// efficiency (bound / makespan, the bound being 64 MiB at 400 Gb/s), rate_solves.
// The benchmark's time is the simulated makespan (manual time): that is the figure the
// simulation produces; the wall time is a counter.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>

#include "bench_support.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/sim/engine.hpp"

namespace {

using namespace railcc;

using railcc_bench::peak_rss_mb;

FlowGraph permutation(const Fabric& f, Bytes size, std::uint64_t seed) {
  const auto n = static_cast<std::uint32_t>(f.endpoint_count());
  constexpr std::uint32_t array = 512;
  std::vector<std::uint32_t> dst(n);
  std::iota(dst.begin(), dst.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(dst.begin(), dst.end(), rng);
  // Repair the few that landed in their own array by swapping with a random partner.
  for (std::uint32_t i = 0; i < n; ++i) {
    while (dst[i] / array == i / array) {
      const auto j = static_cast<std::uint32_t>(rng() % n);
      if (dst[j] / array != i / array && dst[i] / array != j / array) std::swap(dst[i], dst[j]);
    }
  }
  FlowGraph g;
  for (std::uint32_t i = 0; i < n; ++i) g.add({i, dst[i], size, 0, {}});
  return g;
}

FlowGraph rail_exchange(const Fabric& f, Bytes size) {
  const auto n = static_cast<std::uint32_t>(f.endpoint_count());
  FlowGraph g;
  for (std::uint32_t i = 0; i < n; ++i) g.add({i, (i + 8) % n, size, 0, {}});
  return g;
}

void run(benchmark::State& state, bool rail) {
  const auto gpus = static_cast<std::uint64_t>(state.range(0));
  const bool spray = state.range(1) != 0;
  const Bytes size = Bytes::MiB(64);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    ColossusParams p;
    p.gpus = gpus;
    const Fabric f = colossus(p);
    const auto t1 = std::chrono::steady_clock::now();
    const FlowGraph g = rail ? rail_exchange(f, size) : permutation(f, size, 1);
    SimConfig cfg;
    cfg.routing.mode = spray ? RoutingMode::spray : RoutingMode::ecmp;
    const SimResult r = simulate(f, g, cfg);
    const auto t2 = std::chrono::steady_clock::now();
    state.SetIterationTime(r.makespan.in_seconds());
    const double bound = transfer_time(size, Bandwidth::gbps(400)).in_seconds();
    state.counters["wall_s"] = std::chrono::duration<double>(t2 - t0).count();
    state.counters["build_s"] = std::chrono::duration<double>(t1 - t0).count();
    state.counters["peak_rss_MB"] = peak_rss_mb();
    state.counters["fabric_MB"] = static_cast<double>(f.memory_bytes()) / 1e6;
    state.counters["links"] = static_cast<double>(f.link_count());
    state.counters["sim_us"] = r.makespan.in_us();
    state.counters["efficiency"] = bound / r.makespan.in_seconds();
    state.counters["rate_solves"] = static_cast<double>(r.rate_solves);
  }
}

void Permutation(benchmark::State& state) { run(state, false); }
void RailExchange(benchmark::State& state) { run(state, true); }

}  // namespace

BENCHMARK(Permutation)
    ->ArgsProduct({{8192, 100'000, 200'000, 1'000'000}, {0, 1}})
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(RailExchange)
    ->ArgsProduct({{8192, 100'000, 200'000, 1'000'000}, {0}})
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
