// Collective scale figures on the colossus preset, in the simulator's steps mode.
//
//   Hierarchical/<gpus>/<inter>: 1 GiB bf16 all-reduce, NVLink ring reduce-scatter, all-
//     reduce across hosts on every rail (0: ring, 1: Rabenseifner), NVLink ring all-gather.
//   FlatRing/<gpus>: 1 GiB bf16 ring all-reduce over every GPU in placement order: the
//     latency cliff of docs/facts.md section 4.
//   ProjectOneRank/<gpus>: the last rank's projection of the same hierarchical all-reduce
//     (Rabenseifner across hosts, every step posted, as a real backend runs it), built
//     straight from the algorithm without the whole plan (project_posted).
// Counters: wall_s (fabric build + posting + evaluation), peak_rss_MB (process high-water
// mark: one case per process, as bench/coll_scaling.sh runs them), sim_ms (simulated
// time), busbw_GBps (nccl-tests' bus bandwidth), steps, evaluations (distinct steps
// simulated), posted (operations posted). The benchmark's time is the simulated time
// (manual time).
#include <benchmark/benchmark.h>

#include <chrono>
#include <numeric>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/fabric/presets.hpp"

namespace {

using namespace railcc;

using railcc_bench::peak_rss_mb;

void run(benchmark::State& state, Algorithm algo) {
  const auto gpus = static_cast<std::uint64_t>(state.range(0));
  const Algorithm inter = state.range(1) == 0 ? Algorithm::ring : Algorithm::rabenseifner;
  const std::size_t bytes = std::size_t{1} << 30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const Fabric f = colossus({.gpus = gpus});
    SimBackendConfig cfg;
    cfg.mode = SimMode::steps;
    SimBackend b(f, static_cast<int>(gpus), cfg);
    b.set_reduction({DataType::bfloat16, ReduceOp::sum});
    const BufferId buf = b.allocate(bytes);
    all_reduce(b, CollectiveCall{bytes / 2, buf, buf}, algo, inter);
    const std::size_t posted = b.posted();
    const SimResult r = b.run();
    const auto t1 = std::chrono::steady_clock::now();
    const double seconds = r.makespan.in_seconds();
    state.SetIterationTime(seconds);
    const auto n = static_cast<double>(gpus);
    state.counters["wall_s"] = std::chrono::duration<double>(t1 - t0).count();
    state.counters["peak_rss_MB"] = peak_rss_mb();
    state.counters["sim_ms"] = r.makespan.in_ms();
    state.counters["busbw_GBps"] = static_cast<double>(bytes) / seconds / 1e9 * 2 * (n - 1) / n;
    state.counters["steps"] = static_cast<double>(b.step_result().steps);
    state.counters["evaluations"] = static_cast<double>(b.step_result().evaluations);
    state.counters["posted"] = static_cast<double>(posted);
  }
}

void Hierarchical(benchmark::State& state) { run(state, Algorithm::hierarchical); }

/// Args: GPUs, and whether the program carries levels (what the NCCL transport asks for:
/// 4 more bytes per plan operation while projecting).
void ProjectOneRank(benchmark::State& state) {
  const auto gpus = static_cast<std::uint64_t>(state.range(0));
  const bool levels = state.range(1) != 0;
  const std::size_t bytes = std::size_t{1} << 30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const Fabric f = colossus({.gpus = gpus});
    std::vector<NodeIndex> endpoints(gpus);
    std::iota(endpoints.begin(), endpoints.end(), NodeIndex{0});
    const PlanTarget target = SimBackend::target_of(f, endpoints, false);
    const double before_mb = peak_rss_mb();  // the fabric and the target
    const auto t1 = std::chrono::steady_clock::now();
    std::size_t posted = 0;
    const RankProgram program = project_posted(
        target, {DataType::bfloat16, ReduceOp::sum}, static_cast<int>(gpus - 1),
        [&](PlanBuilder& b) {
          const BufferId buf = b.allocate(bytes);
          auto done = all_reduce(b, CollectiveCall{bytes / 2, buf, buf}, Algorithm::hierarchical,
                                 Algorithm::rabenseifner);
          posted = b.posted();
          return done;
        },
        levels);
    const auto t2 = std::chrono::steady_clock::now();
    state.SetIterationTime(std::chrono::duration<double>(t2 - t1).count());
    state.counters["project_s"] = std::chrono::duration<double>(t2 - t1).count();
    state.counters["wall_s"] = std::chrono::duration<double>(t2 - t0).count();
    state.counters["peak_rss_MB"] = peak_rss_mb();
    state.counters["fabric_MB"] = before_mb;
    state.counters["program_KB"] = static_cast<double>(program.memory_bytes()) / 1024;
    state.counters["rank_steps"] = static_cast<double>(program.steps().size());
    state.counters["plan_ops"] = static_cast<double>(posted);
  }
}
void FlatRing(benchmark::State& state) { run(state, Algorithm::ring); }

}  // namespace

BENCHMARK(Hierarchical)
    ->ArgsProduct({{8192, 100'000, 200'000, 1'000'000}, {0, 1}})
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(ProjectOneRank)
    ->ArgsProduct({{8192, 100'000}, {0, 1}})
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(FlatRing)
    ->ArgsProduct({{8192, 100'000}, {0}})
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
