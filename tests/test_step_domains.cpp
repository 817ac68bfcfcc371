// Steps mode's two domains and its pipeline units (sim/step_schedule.hpp): the evaluation
// against a plain reference of the same model, a pipeline unit against its closed form,
// and pipelined hierarchical and NVLS all-reduce against the per-operation schedule.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/sim/step_schedule.hpp"
#include "railcc/tune/cost_model.hpp"

using namespace railcc;

namespace {

/// The model of StepSchedule::evaluate written plainly, for schedules without pipeline
/// units: every repeat expanded into its steps, every (step, domain, host) simulated
/// afresh, a finish time kept per item.
///  - The network's step starts when its previous step has completed and when every
///    dependency of an item starting in it has completed everywhere in its domain.
///  - In the hosts' domain each host keeps its own clock: its step starts when its own
///    previous step has completed, when the network steps its new items depend on have,
///    and, for an item with a foreign dependency, when the last hosts' step any of its
///    host dependencies is in has completed in every host. A dependency in its own host
///    is in its clock already. Foreign: a host item in another host, or a task that
///    takes no time that is in another host and stands for a host item, or has a
///    foreign dependency itself.
///  - A repeated item's later steps follow its domain's (its host's) previous step; a
///    posting segment with both domains keeps one barrier over both and over the hosts
///    taking part.
/// A task that takes no time stands for its own dependencies.
struct ReferenceItem {
  FlowSpec spec;
  std::vector<std::size_t> deps;
  std::uint32_t repeats = 0;
};

Picoseconds reference_makespan(const Fabric& fabric, const SimConfig& config,
                               const std::vector<ReferenceItem>& items) {
  const std::size_t n = items.size();
  auto is_free = [&](std::size_t i) {
    return items[i].spec.src == items[i].spec.dst && items[i].spec.delay == Picoseconds{};
  };
  auto domain = [&](std::size_t i) -> int {
    const FlowSpec& f = items[i].spec;
    if (f.src == f.dst) return 1;
    return over_nvlink(fabric, f.src, f.dst) ? 1 : 0;
  };
  auto host = [&](std::size_t i) { return fabric.host(items[i].spec.src); };
  // Levels, as StepSchedule::add places them.
  std::vector<std::uint32_t> level(n), last(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t l = 1;
    for (std::size_t d : items[i].deps) l = std::max(l, last[d] + (is_free(i) ? 0 : 1));
    level[i] = l;
    last[i] = l + items[i].repeats;
  }
  // The items that take time a dependency list stands for, and whether it has a
  // foreign dependency.
  std::vector<std::vector<std::size_t>> leaves(n);
  std::vector<bool> foreign(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t d : items[i].deps) {
      if (is_free(d)) {
        leaves[i].insert(leaves[i].end(), leaves[d].begin(), leaves[d].end());
        bool stands_for_host_item = false;
        for (std::size_t e : leaves[d])
          stands_for_host_item = stands_for_host_item || domain(e) == 1;
        if (foreign[d] || (stands_for_host_item && host(d) != host(i))) foreign[i] = true;
      } else {
        leaves[i].push_back(d);
        if (domain(d) == 1 && host(d) != host(i)) foreign[i] = true;
      }
    }
  }
  // Which items share a posting segment (same levels, consecutive): a segment with both
  // domains keeps one barrier over both.
  std::vector<std::size_t> segment(n, 0);
  for (std::size_t i = 1; i < n; ++i) {
    segment[i] = level[i] == level[i - 1] && last[i] == last[i - 1] ? segment[i - 1] : i;
  }
  std::uint32_t levels = 0;
  for (std::size_t i = 0; i < n; ++i) levels = std::max(levels, last[i]);
  // Per level: when the network's clock and the latest host's clock stood after it.
  std::vector<std::int64_t> network_after(levels + 1, 0), hosts_after(levels + 1, 0);
  std::int64_t network_clock = 0;
  std::vector<std::int64_t> host_clock(64, 0);
  const auto ready_of = [&](std::size_t i) {
    std::int64_t t = 0;
    std::uint32_t host_level = 0;
    for (std::size_t d : leaves[i]) {
      if (domain(d) == 0)
        t = std::max(t, network_after[last[d]]);
      else
        host_level = std::max(host_level, last[d]);
    }
    // A network item waits for its host dependencies' step in every host.
    if (domain(i) == 0 || foreign[i]) t = std::max(t, hosts_after[host_level]);
    return t;
  };
  for (std::uint32_t l = 1; l <= levels; ++l) {
    FlowGraph network;
    std::int64_t network_start = network_clock;
    std::vector<FlowGraph> in_host(64);
    std::vector<std::int64_t> host_start(host_clock);
    std::vector<bool> busy(64, false);
    bool mixed = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (level[i] > l || last[i] < l || is_free(i)) continue;
      for (std::size_t j = segment[i]; j < n && segment[j] == segment[i]; ++j) {
        if (!is_free(j) && domain(j) != domain(i)) mixed = true;
      }
      if (domain(i) == 0) {
        if (level[i] == l) network_start = std::max(network_start, ready_of(i));
        network.add(items[i].spec);
        continue;
      }
      const std::uint32_t h = host(i);
      if (level[i] == l) host_start[h] = std::max(host_start[h], ready_of(i));
      in_host[h].add(items[i].spec);
      busy[h] = true;
    }
    std::int64_t network_took = 0;
    std::vector<std::int64_t> host_took(64, 0);
    if (network.size() > 0) network_took = simulate(fabric, network, config).makespan.count();
    bool any_host = false;
    for (std::size_t h = 0; h < 64; ++h) {
      if (!busy[h]) continue;
      any_host = true;
      host_took[h] = simulate(fabric, in_host[h], config).makespan.count();
    }
    if (mixed && network.size() > 0 && any_host) {
      std::int64_t t = network_start, took = network_took;
      for (std::size_t h = 0; h < 64; ++h) {
        if (!busy[h]) continue;
        t = std::max(t, host_start[h]);
        took = std::max(took, host_took[h]);
      }
      network_start = t;
      network_took = took;
      for (std::size_t h = 0; h < 64; ++h) {
        host_start[h] = t;
        host_took[h] = took;
      }
    }
    if (network.size() > 0) network_clock = network_start + network_took;
    std::int64_t latest = l > 1 ? hosts_after[l - 1] : 0;
    for (std::size_t h = 0; h < 64; ++h) {
      if (!busy[h]) continue;
      host_clock[h] = host_start[h] + host_took[h];
      latest = std::max(latest, host_clock[h]);
    }
    network_after[l] = network_clock;
    hosts_after[l] = latest;
  }
  std::int64_t end = network_clock;
  for (const std::int64_t t : host_clock) end = std::max(end, t);
  return Picoseconds::ps(end);
}

}  // namespace

TEST_CASE("Step domains: the evaluation equals a plain reference on random schedules") {
  // Two hosts of four GPUs on one leaf each: flows inside a host (NVLink), between hosts
  // (network), local tasks, tasks that take no time, dependencies, repeats.
  ColossusParams params;
  params.gpus = 16;
  const Fabric fabric = colossus(params);
  const SimConfig config;
  std::mt19937_64 rng(20261201);
  int mismatches = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int count = 2 + static_cast<int>(rng() % 24);
    std::vector<ReferenceItem> ref;
    StepSchedule s(fabric);
    std::size_t segment_start = 0;
    for (int i = 0; i < count; ++i) {
      ReferenceItem it;
      const auto src = static_cast<NodeIndex>(rng() % 16);
      const int kind = static_cast<int>(rng() % 10);
      NodeIndex dst = src;
      if (kind < 4)
        dst = static_cast<NodeIndex>((src / 8) * 8 + (src + 1 + rng() % 7) % 8);
      else if (kind < 8)
        dst = static_cast<NodeIndex>((src + 8) % 16);
      const auto bytes = Bytes::of(1024 * (1 + rng() % 4096));
      it.spec = kind < 8 ? FlowSpec{src, dst, bytes, 0, {}}
                : kind == 8
                    ? local_task(src, Picoseconds::ns(static_cast<std::int64_t>(rng() % 5000)))
                    : local_task(src, Picoseconds{});
      const std::size_t deps = ref.empty() ? 0 : rng() % 3;
      for (std::size_t k = 0; k < deps; ++k) it.deps.push_back(rng() % ref.size());
      std::sort(it.deps.begin(), it.deps.end());
      it.deps.erase(std::unique(it.deps.begin(), it.deps.end()), it.deps.end());
      std::vector<StepSchedule::Index> sdeps(it.deps.begin(), it.deps.end());
      // Repeat a step of items that depend on nothing posted since it began.
      bool independent = true;
      for (std::size_t d : it.deps) independent = independent && d < segment_start;
      if (!independent) segment_start = ref.size();
      s.add(it.spec, sdeps);
      ref.push_back(it);
      if (rng() % 5 == 0) {
        const auto more = static_cast<std::uint32_t>(1 + rng() % 4);
        s.repeat(static_cast<StepSchedule::Index>(segment_start), more);
        for (std::size_t k = segment_start; k < ref.size(); ++k) ref[k].repeats += more;
        segment_start = ref.size();
      }
    }
    const Picoseconds got = s.evaluate(fabric, config).makespan;
    const Picoseconds want = reference_makespan(fabric, config, ref);
    if (got != want) {
      ++mismatches;
      if (mismatches <= 3)
        MESSAGE("trial " << trial << ": " << got.in_us() << " us, reference " << want.in_us());
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE(
    "Step domains: hosts of the same content are simulated once, the slowest host sets the step") {
  // 32 hosts of 8 GPUs. One step in the hosts' domain: in every host each GPU sends 8 MiB
  // to the next GPU over NVLink, and in host 5 GPU 0 also sends 64 MiB to GPU 3. The
  // step's time is host 5's, simulated once; the other 31 hosts are one content.
  ColossusParams params;
  params.gpus = 256;
  const Fabric fabric = colossus(params);
  const SimConfig config;
  StepSchedule s(fabric);
  FlowGraph whole;
  for (NodeIndex h = 0; h < 32; ++h) {
    for (NodeIndex g = 0; g < 8; ++g) {
      const FlowSpec f{h * 8 + g, h * 8 + (g + 1) % 8, Bytes::MiB(8), 0, {}};
      s.add(f, {});
      whole.add(f);
    }
    if (h == 5) {
      const FlowSpec big{h * 8, h * 8 + 3, Bytes::MiB(64), 0, {}};
      s.add(big, {});
      whole.add(big);
    }
  }
  const StepResult got = s.evaluate(fabric, config);
  const SimResult want = simulate(fabric, whole, config);
  CHECK(got.makespan == want.makespan);
  // Host 5's bigger flow makes it the slowest: 72 MiB leave GPU 0 over its NVLink.
  FlowGraph host5;
  for (FlowId f = 0; f < whole.size(); ++f) {
    if (fabric.host(whole.flow(f).src) == 5) host5.add(whole.flow(f));
  }
  CHECK(got.makespan == simulate(fabric, host5, config).makespan);
  FlowGraph host0;
  for (FlowId f = 0; f < whole.size(); ++f) {
    if (fabric.host(whole.flow(f).src) == 0) host0.add(whole.flow(f));
  }
  CHECK(got.makespan > simulate(fabric, host0, config).makespan);
  // Two contents, two simulations: the 31 plain hosts' and host 5's (the whole step
  // solves every flow of every host).
  CHECK(got.flows_solved == simulate(fabric, host0, config).flows_solved +
                                simulate(fabric, host5, config).flows_solved);
  CHECK(got.flows_solved < want.flows_solved / 10);
}

TEST_CASE("Step domains: a pipeline unit lasts one unit plus a period per further unit") {
  // Two hosts of eight GPUs. The unit: a copy over NVLink in host 0, a transfer to host 1,
  // a copy over NVLink in host 1, each after the one before. Every stage takes the units
  // one after another: the end is at least one unit plus `more` of the longest stage.
  // The network has one stage: it ends one unit plus `more` transfers after the start.
  // The hosts' domain has two, in different hosts, so a unit's two copies overlap the
  // next unit's: it ends after both copies plus `more` times the longer. What depends on
  // the unit starts after the last unit.
  ColossusParams params;
  params.gpus = 16;
  const Fabric fabric = colossus(params);
  const SimConfig config;
  const FlowSpec a{0, 1, Bytes::MiB(3), 0, {}};
  const FlowSpec b{1, 9, Bytes::MiB(1), 0, {}};
  const FlowSpec c{9, 10, Bytes::MiB(8), 0, {}};
  const FlowSpec d{10, 11, Bytes::MiB(2), 0, {}};
  auto alone = [&](const FlowSpec& f) {
    FlowGraph g;
    g.add(f);
    return simulate(fabric, g, config).makespan;
  };
  const Picoseconds ta = alone(a), tb = alone(b), tc = alone(c), td = alone(d);
  for (const std::uint32_t more : {0u, 1u, 7u, 63u}) {
    CAPTURE(more);
    StepSchedule s(fabric);
    const auto ia = s.add(a, {});
    const std::vector<StepSchedule::Index> after_a{ia};
    const auto ib = s.add(b, after_a);
    const std::vector<StepSchedule::Index> after_b{ib};
    const auto ic = s.add(c, after_b);
    s.repeat_block(ia, more);
    CHECK(s.domain(ia) == StepSchedule::host_domain);
    CHECK(s.domain(ib) == StepSchedule::network_domain);
    const Picoseconds network_end = ta + tb + tc + tb * more;
    const Picoseconds hosts_end = ta + tc + std::max(ta, tc) * more;
    const Picoseconds stages_end = ta + tb + tc + std::max({ta, tb, tc}) * more;
    const Picoseconds end = std::max({network_end, hosts_end, stages_end});
    const auto r = s.evaluate(fabric, config);
    CHECK(r.makespan == end);
    CHECK(r.bytes_sent == doctest::Approx(static_cast<double>((3 + 1 + 8) << 20) * (more + 1)));
    const std::vector<StepSchedule::Index> after_c{ic};
    s.add(d, after_c);
    CHECK(s.evaluate(fabric, config).makespan == end + td);
  }
}

TEST_CASE("Step domains: pipeline units in flight at once share the network as their flows do") {
  // Three hosts of eight GPUs. The unit: a copy over NVLink in host 0, a transfer from
  // GPU 1 to host 1 (1 MiB), then one from GPU 1 to host 2 (3 MiB), a copy over NVLink in
  // host 2. Up to D units are between the hosts at once: a unit's first transfer waits for
  // the second transfer of the unit D before it. The reference is every unit's flows in
  // one flow graph with those dependencies, where the units' transfers to different hosts
  // share GPU 1's NIC at max-min rates and those to one host queue on their connection;
  // steps mode simulates each of its network steps once and stands a flow in for it per
  // unit (StepSchedule::NetworkStandIn). Each stage in the hosts takes the units one after
  // another.
  ColossusParams params;
  params.gpus = 24;
  const Fabric fabric = colossus(params);
  const SimConfig config;
  const FlowSpec a{0, 1, Bytes::MiB(2), 0, {}};
  const FlowSpec b1{1, 9, Bytes::MiB(1), 0, {}};
  const FlowSpec b2{1, 17, Bytes::MiB(3), 0, {}};
  const FlowSpec c{17, 18, Bytes::MiB(6), 0, {}};
  for (const std::uint32_t in_flight : {1u, 2u, 3u}) {
    std::vector<Picoseconds> ends;
    for (const std::uint32_t more : {0u, 1u, 5u, 20u}) {
      CAPTURE(in_flight);
      CAPTURE(more);
      StepSchedule s(fabric);
      const auto ia = s.add(a, {});
      const std::vector<StepSchedule::Index> after_a{ia};
      const auto i1 = s.add(b1, after_a);
      const std::vector<StepSchedule::Index> after_1{i1};
      const auto i2 = s.add(b2, after_1);
      const std::vector<StepSchedule::Index> after_2{i2};
      s.add(c, after_2);
      s.repeat_block(ia, more, in_flight);
      FlowGraph g;
      std::vector<FlowId> fa, f2, fc;
      for (std::uint32_t u = 0; u <= more; ++u) {
        fa.push_back(g.add(a));
        if (u > 0) g.depends_on(fa[u], fa[u - 1]);
        const FlowId f1 = g.add(b1);
        g.depends_on(f1, fa[u]);
        if (u >= in_flight) g.depends_on(f1, f2[u - in_flight]);
        f2.push_back(g.add(b2));
        g.depends_on(f2[u], f1);
        fc.push_back(g.add(c));
        g.depends_on(fc[u], f2[u]);
        if (u > 0) g.depends_on(fc[u], fc[u - 1]);
      }
      const Picoseconds want = simulate(fabric, g, config).makespan;
      const Picoseconds got = s.evaluate(fabric, config).makespan;
      CHECK(std::abs(got.in_seconds() / want.in_seconds() - 1) < 1e-6);
      ends.push_back(got);
    }
    // One unit is the same whatever may be in flight; twenty-one are faster with more.
    if (in_flight > 1) CHECK(ends.back() < ends.front() * 21);
  }
  // Refused: a pipeline with no unit in flight.
  StepSchedule s(fabric);
  const auto ia = s.add(a, {});
  CHECK_THROWS_WITH_AS(s.repeat_block(ia, 3, 0),
                       "step schedule: a pipeline needs at least one unit in flight", InputError);
}

TEST_CASE(
    "Step domains: pipelined hierarchical and NVLS all-reduce in steps mode against the "
    "per-operation schedule") {
  // Random host counts, chunk counts, chunks in flight between hosts, sizes (most not a
  // multiple of the chunks) and inter-host algorithms. Steps mode posts one chunk and simulates the
  // units' steps overlapping (StepSchedule::expanded_pipeline_end); the per-operation schedule
  // posts every chunk. They agree within 2%, whether the network or NVLink bounds the pipeline, and
  // for Rabenseifner across a host count that is not a power of two too, where the hosts outside
  // the fold start their all-gathers a step before the fold's host does (each host keeps its own
  // clock in the hosts' domain).
  std::mt19937_64 rng(1201);
  double worst = 0, worst_odd_rabenseifner = 0, worst_fold_in_flight = 0;
  int nvlink_bound = 0, odd_rabenseifner_cases = 0, in_flight_cases = 0, fold_in_flight_cases = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int hosts = 2 + static_cast<int>(rng() % 15);
    const int K = 1 + static_cast<int>(rng() % 64);
    const bool nvls = rng() % 2 == 0;
    const Algorithm inter =
        std::array{Algorithm::ring, Algorithm::rabenseifner, Algorithm::mixed_radix}[rng() % 3];
    const std::string inter_name(to_string(inter));
    const int in_flight = 1 + static_cast<int>(rng() % std::min(K, 4));
    const bool in_place = rng() % 2 == 0;
    const std::size_t count = (std::size_t{1} << (21 + rng() % 8)) + 8 * (rng() % 1000);
    ColossusParams params;
    params.gpus = static_cast<std::uint32_t>(hosts * 8);
    const Fabric fabric = colossus(params);
    std::array<Picoseconds, 2> t{};
    for (const SimMode mode : {SimMode::timing, SimMode::steps}) {
      SimBackendConfig cfg;
      cfg.mode = mode;
      SimBackend b(fabric, hosts * 8, cfg);
      b.set_reduction({DataType::bfloat16, ReduceOp::sum});
      const BufferId in = b.allocate(count * 2);
      const BufferId out = in_place ? in : b.allocate(count * 2);
      CollectiveCall call{count, in, out};
      call.phase_chunks = K;
      call.chunks_in_flight = in_flight;
      all_reduce(b, call, nvls ? Algorithm::nvls : Algorithm::hierarchical, inter);
      t[mode == SimMode::steps ? 1 : 0] = b.run().makespan;
    }
    const double gap = std::abs(t[1].in_seconds() / t[0].in_seconds() - 1);
    const auto model = CostModel::of(fabric, static_cast<std::size_t>(hosts * 8));
    const PhaseCosts pc =
        model.phase_costs(nvls ? Algorithm::nvls : Algorithm::hierarchical, inter, count * 2);
    if (in_flight > 1) ++in_flight_cases;
    const double nv = pc.nvlink_seconds / K + pc.nvlink_latency;
    const double net = pc.network_seconds / K + pc.network_latency;
    if (K > 1 && nv > net) ++nvlink_bound;
    const bool odd_rabenseifner =
        inter == Algorithm::rabenseifner && !std::has_single_bit(static_cast<unsigned>(hosts));
    // Chunks in flight through Rabenseifner's fold: steps mode stands one NIC in for every
    // step, the fold's too, where only the folding hosts send and the per-operation
    // schedule runs other chunks' steps on the others. So it is slower there, never faster.
    const bool folds_in_flight = odd_rabenseifner && in_flight > 1;
    if (folds_in_flight) {
      worst_fold_in_flight = std::max(worst_fold_in_flight, gap);
      ++fold_in_flight_cases;
    } else if (odd_rabenseifner) {
      worst_odd_rabenseifner = std::max(worst_odd_rabenseifner, gap);
      ++odd_rabenseifner_cases;
    } else {
      worst = std::max(worst, gap);
    }
    CAPTURE(hosts);
    CAPTURE(K);
    CAPTURE(nvls);
    CAPTURE(inter_name);
    CAPTURE(in_flight);
    CAPTURE(in_place);
    CAPTURE(count);
    if (folds_in_flight) {
      CHECK(t[1].in_seconds() >= t[0].in_seconds() * 0.98);
      CHECK(gap <= 0.40);
    } else {
      CHECK(gap <= 0.02);
    }
  }
  // The draw must hold pipelines that NVLink bounds, where the old bounds were 10-33% off,
  // and Rabenseifner over host counts that fold, where one barrier over the hosts was up
  // to 23% off.
  CHECK(nvlink_bound >= 10);
  CHECK(odd_rabenseifner_cases >= 3);
  CHECK(in_flight_cases >= 20);
  MESSAGE("largest steps/per-operation gap: "
          << worst * 100
          << "%; Rabenseifner over a host count not a "
             "power of two: "
          << worst_odd_rabenseifner * 100 << "% (" << odd_rabenseifner_cases
          << " cases); the same with chunks in flight: " << worst_fold_in_flight * 100 << "% ("
          << fold_in_flight_cases << " cases, steps mode "
          << "slower); " << in_flight_cases << " with chunks in flight; " << nvlink_bound
          << " of 60 bound by NVLink");
}

TEST_CASE("Step domains: a pipeline too large to simulate whole is extrapolated from its units") {
  // The units' graph holds at most set_pipeline_expansion_flows entries: past that, fewer
  // units and a period; past eight units' worth, the bounds. The extrapolation from a
  // steady state is the whole simulation's end; the bounds are above it, within 45% (they
  // take one NVLink ring step at a time; a connection's queue keeps several going).
  // Two hosts, 128 MiB, 64 chunks: NVLink bounds the pipeline.
  ColossusParams params;
  params.gpus = 16;
  const Fabric fabric = colossus(params);
  const std::size_t count = std::size_t{1} << 26;
  auto steps_time = [&](std::size_t limit) {
    SimBackendConfig cfg;
    cfg.mode = SimMode::steps;
    if (limit > 0) cfg.pipeline_expansion_flows = limit;
    SimBackend b(fabric, 16, cfg);
    b.set_reduction({DataType::bfloat16, ReduceOp::sum});
    const BufferId buf = b.allocate(count * 2);
    CollectiveCall call{count, buf, buf};
    call.phase_chunks = 64;
    call.chunks_in_flight = 1;  // the bounds' documented case
    all_reduce(b, call, Algorithm::hierarchical, Algorithm::ring);
    return b.run().makespan;
  };
  const Picoseconds whole = steps_time(0);
  const Picoseconds extrapolated = steps_time(20'000);
  const Picoseconds bounds = steps_time(100);
  CHECK(std::abs(extrapolated.in_seconds() / whole.in_seconds() - 1) < 1e-3);
  CHECK(bounds != whole);
  CHECK(bounds > whole);
  CHECK(bounds.in_seconds() / whole.in_seconds() - 1 < 0.45);
  MESSAGE("64 chunks over 2 hosts: whole " << whole.in_us() << " us, extrapolated "
                                           << extrapolated.in_us() << " us, bounds "
                                           << bounds.in_us() << " us");
}
