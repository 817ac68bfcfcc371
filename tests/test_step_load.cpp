// tune/step_load.hpp: a step's slowdown is its busiest link's seconds against the NIC rate,
// as a plain per-flow count finds it; the closed cases (one port of a dual-plane NIC,
// spraying over a full or a halved tier, a collision-free fat tree step) come out exact;
// and the cost model that knows them predicts what the simulator times where it did not.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/fabric/clos.hpp"
#include "railcc/fabric/failures.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/tune/cost_model.hpp"
#include "railcc/tune/step_load.hpp"

using namespace railcc;

namespace {

using Pairs = std::vector<std::pair<NodeIndex, NodeIndex>>;

/// Every GPU to the GPU of its rail `hops` hosts on (mod the GPUs given).
Pairs hosts_on(const Fabric& f, std::size_t gpus, std::size_t hops) {
  std::size_t G = 0;  // GPUs per host
  while (G < f.endpoint_count() && f.host(static_cast<NodeIndex>(G)) == f.host(0)) ++G;
  Pairs p;
  for (std::size_t e = 0; e < gpus; ++e)
    p.emplace_back(static_cast<NodeIndex>(e), static_cast<NodeIndex>((e + hops * G) % gpus));
  return p;
}

/// The slowdown by the definition, written out: each flow (1 byte, cut in equal parts over
/// its QPs) routed by a router of its own, bytes summed per resource in a map, the busiest
/// resource's seconds over the NIC's for one flow. Pairs inside a host count nothing;
/// past `max_flows` crossing pairs the rest are left out.
double reference_slowdown(const Fabric& f, const Pairs& pairs, RoutingOptions routing,
                          std::uint32_t qps, std::size_t max_flows, double nic_Bps) {
  // A resource by what it is: a link, or a spraying pool by its links (each router
  // numbers its pools as it meets them).
  std::map<std::pair<bool, std::vector<LinkIndex>>, double> seconds;
  std::size_t flows = 0;
  for (const auto& [src, dst] : pairs) {
    if (src == dst || f.host(src) == f.host(dst)) continue;
    if (flows++ == max_flows) break;
    for (std::uint32_t i = 0; i < qps; ++i) {
      Router router(f, routing);
      std::vector<ResourceIndex> route;
      (void)router.route(FlowKey{src, dst, i}, route);
      for (ResourceIndex r : route) {
        std::vector<LinkIndex> links{r};
        if (router.is_pool(r))
          links.assign(router.pool_links(r).begin(), router.pool_links(r).end());
        std::sort(links.begin(), links.end());
        seconds[{router.is_pool(r), links}] += 1.0 / qps / router.capacity(r);
      }
    }
  }
  double worst = 0;
  for (const auto& [r, s] : seconds) worst = std::max(worst, s);
  return flows == 0 ? 1.0 : std::max(1.0, worst * nic_Bps);
}

double nic_rate(const Fabric& f) { return CostModel::of(f, 1).nic_Bps; }

/// A k-ary fat tree whose edge switches' up-links run at half the rate: 1:2 above the leaves.
Fabric halved_fat_tree(std::uint32_t k) {
  ClosSpec s;
  s.hosts = k * k * k / 4;
  s.gpus_per_host = 1;
  s.nic_port = Bandwidth::gbps(400);
  s.nic_latency = cable::in_rack;
  s.rail_optimized = false;
  s.leaf_down = k / 2;
  s.radix = k;
  s.up.push_back({k / 2, Bandwidth::gbps(200), cable::in_row});
  s.block_down.push_back(k / 2);
  s.up.push_back({k / 2, Bandwidth::gbps(200), cable::across_hall});
  return build_clos(s);
}

}  // namespace

TEST_CASE("Step slowdown: one QP takes one port of a dual-plane NIC; chosen QPs take both") {
  const Fabric f = hpn({2, 16});  // 32 hosts of 8 GPUs, two planes of 200G ports
  const double nic = nic_rate(f);
  const Pairs step = hosts_on(f, f.endpoint_count(), 1);
  StepRouting one;
  StepLoadMeter blind(f, one);
  CHECK(blind.slowdown(step, nic) == doctest::Approx(2.0));
  StepRouting two_chosen;
  two_chosen.qps = 2;
  two_chosen.choose_qps = true;
  StepLoadMeter chosen(f, two_chosen);
  CHECK(chosen.slowdown(step, nic) == doctest::Approx(1.0));
  // Inside hosts nothing crosses a NIC.
  const Pairs local = {{0, 1}, {9, 8}, {3, 3}};
  CHECK(blind.slowdown(local, nic) == 1.0);
}

TEST_CASE(
    "Step slowdown: spraying runs at the NIC rate on a full tree, at half over a halved tier") {
  RoutingOptions spray;
  spray.mode = RoutingMode::spray;
  StepRouting r;
  r.routing = spray;
  for (std::uint32_t k : {4u, 8u}) {
    CAPTURE(k);
    const Fabric full = fat_tree(k);
    // Every host to the host a pod on: each flow climbs to the core.
    const std::size_t hosts = full.endpoint_count();
    const Pairs step = hosts_on(full, hosts, k * k / 4);
    StepLoadMeter meter(full, r);
    CHECK(meter.slowdown(step, nic_rate(full)) == doctest::Approx(1.0));
    const Fabric halved = halved_fat_tree(k);
    StepLoadMeter half(halved, r);
    CHECK(half.slowdown(step, nic_rate(halved)) == doctest::Approx(2.0));
  }
}

TEST_CASE("Step slowdown: chosen QPs give a collision-free fat tree step 1, hashing blindly more") {
  for (std::uint32_t k : {4u, 6u, 8u}) {
    CAPTURE(k);
    const Fabric f = fat_tree(k);
    const Pairs step = hosts_on(f, f.endpoint_count(), k * k / 4);
    StepRouting blind;
    StepRouting chosen;
    chosen.choose_qps = true;
    StepLoadMeter a(f, blind), b(f, chosen);
    CHECK(a.slowdown(step, nic_rate(f)) >= 2.0);  // some link carries two flows
    CHECK(b.slowdown(step, nic_rate(f)) == doctest::Approx(1.0));
  }
}

TEST_CASE("Randomized: a meter's slowdowns are the per-flow count's, step after step") {
  std::mt19937_64 rng(23);
  ColossusParams small;
  small.gpus = 1024;
  Llama3Params tiny;
  tiny.pods = 2;
  tiny.racks_per_pod = 16;
  tiny.aggregation_ports = 16;
  std::vector<Fabric> fabrics = {fat_tree(4),  fat_tree(8),  colossus(small),
                                 hpn({2, 16}), llama3(tiny), halved_fat_tree(6)};
  fabrics.push_back(colossus(small));
  CHECK(fail_switch_cables(fabrics.back(), 0.03, 7) > 0);
  for (int trial = 0; trial < 36; ++trial) {
    const Fabric& f = fabrics[static_cast<std::size_t>(trial) % fabrics.size()];
    CAPTURE(trial);
    StepRouting r;
    r.routing.mode = rng() % 3 == 0 ? RoutingMode::spray : RoutingMode::ecmp;
    r.routing.seed = rng();
    r.qps = 1 + static_cast<std::uint32_t>(rng() % 3);
    r.max_flows = 1 + rng() % 600;
    StepLoadMeter meter(f, r);
    const double nic = nic_rate(f);
    // Several steps through one meter: what one leaves behind must not leak into the next.
    for (int s = 0; s < 3; ++s) {
      const auto n = static_cast<std::size_t>(f.endpoint_count());
      Pairs step;
      const std::size_t count = 1 + rng() % (2 * n);
      for (std::size_t i = 0; i < count; ++i)
        step.emplace_back(static_cast<NodeIndex>(rng() % n), static_cast<NodeIndex>(rng() % n));
      CAPTURE(s);
      CHECK(meter.slowdown(step, nic) ==
            doctest::Approx(reference_slowdown(f, step, r.routing, r.qps, r.max_flows, nic)));
      if (r.routing.mode == RoutingMode::ecmp) {
        // Chosen QPs are never worse than the same QPs hashed blindly.
        StepRouting c = r;
        c.choose_qps = true;
        c.max_chosen_flows = r.max_flows;  // the same connections
        StepLoadMeter chooser(f, c);
        CHECK(chooser.slowdown(step, nic) <= meter.slowdown(step, nic) * (1 + 1e-12));
      }
    }
  }
}

TEST_CASE("The model that knows the step slowdowns predicts the simulated mixed radix") {
  // 32 dual-plane hosts, one QP per connection: every step between hosts runs on one
  // 200G port of each NIC. The rates alone predict it twice as fast as it runs.
  const Fabric f = hpn({2, 16});
  const std::size_t ranks = f.endpoint_count();
  SimBackendConfig cfg;
  cfg.mode = SimMode::steps;
  CostModel m = CostModel::of(f, ranks, cfg.sim);
  const std::size_t bytes = std::size_t{64} << 20;
  SimBackend b(f, static_cast<int>(ranks), cfg);
  b.set_reduction({DataType::float32, ReduceOp::sum});
  const BufferId buf = b.allocate(bytes);
  all_reduce(b, CollectiveCall{bytes / 4, buf, buf}, Algorithm::mixed_radix);
  const double simulated = b.run().makespan.in_us();
  auto predicted = [&] {
    return m.predict(Collective::all_reduce, Algorithm::mixed_radix, Algorithm::mixed_radix, bytes)
        .in_us();
  };
  const double rates_alone = predicted();
  StepRouting r;
  r.routing = cfg.sim.routing;
  m.slowdowns = measure_step_slowdowns(f, m, r);
  CHECK(m.slowdowns.mixed_radix.size() == 8);  // 256 = 2^8: three levels inside hosts
  CHECK(m.slowdowns.mixed_radix[0] == 1.0);
  CHECK(m.slowdowns.mixed_radix[7] == doctest::Approx(2.0));
  CHECK(m.slowdowns.hosts_mixed_radix.size() == 5);
  CHECK(m.hosts_slowdown(Algorithm::mixed_radix) == doctest::Approx(2.0));
  // Within 2% (the model's steps are in lockstep; the simulator's local reductions and
  // latencies are not quite), where the rates alone are a third short.
  CHECK(rates_alone < 0.75 * simulated);
  CHECK(predicted() == doctest::Approx(simulated).epsilon(0.02));
}
