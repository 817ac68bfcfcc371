// The flow simulator against closed forms.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "check_contains.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/sim/engine.hpp"
#include "test_support.hpp"

using namespace railcc;

namespace {

constexpr Bandwidth gbps400 = Bandwidth::gbps(400);

using railcc_test::error_of;
using railcc_test::one_leaf;

/// A random permutation of fat-tree hosts in which nobody sends inside its own pod.
FlowGraph cross_pod_permutation(const Fabric& f, std::uint32_t hosts_per_pod, Bytes size,
                                std::uint64_t seed) {
  const auto n = static_cast<std::uint32_t>(f.endpoint_count());
  std::vector<std::uint32_t> dst(n);
  std::iota(dst.begin(), dst.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(dst.begin(), dst.end(), rng);
  for (std::uint32_t i = 0; i < n; ++i) {
    while (dst[i] / hosts_per_pod == i / hosts_per_pod) {
      const std::uint32_t j = static_cast<std::uint32_t>(rng() % n);
      if (dst[j] / hosts_per_pod != i / hosts_per_pod &&
          dst[i] / hosts_per_pod != j / hosts_per_pod) {
        std::swap(dst[i], dst[j]);
      }
    }
  }
  FlowGraph g;
  for (std::uint32_t i = 0; i < n; ++i) g.add({i, dst[i], size, 0, {}});
  return g;
}

}  // namespace

TEST_CASE("One flow: overhead + latency + size / bandwidth, to the picosecond") {
  const auto cable = Picoseconds::ns(15);
  const auto f = one_leaf(2, cable);
  FlowGraph g;
  const Bytes size = Bytes::MiB(64);
  g.add({0, 1, size, 0, {}});
  SimConfig cfg;
  const auto r = simulate(f, g, cfg);
  const Picoseconds expected =
      cfg.message_overhead + transfer_time(size, gbps400) + cable * 2 + cfg.switch_hop;
  CHECK(r.makespan == expected);
  CHECK(r.flows[0].start == cfg.message_overhead);
  CHECK(r.flows[0].delivered == expected);
  CHECK(expected.count() == 800'000 + 1'342'177'280 + 30'000 + 500'000);
  CHECK(r.bytes_sent == r.bytes_delivered);
  CHECK(r.link_bytes[0] == static_cast<double>(size.count()));  // GPU 0's NIC, up
  // Its bytes leave from its start-up to its start-up plus size / bandwidth.
  CHECK(r.first_byte_sent == cfg.message_overhead);
  CHECK(r.last_byte_sent == cfg.message_overhead + transfer_time(size, gbps400));
  // A second flow a microsecond later, from GPU 1 to GPU 0: the stretch runs from the
  // first flow's first byte to the later one's last.
  g.add({1, 0, size, 0, Picoseconds::us(1)});
  const auto two = simulate(f, g, cfg);
  CHECK(two.first_byte_sent == cfg.message_overhead);
  CHECK(two.last_byte_sent ==
        Picoseconds::us(1) + cfg.message_overhead + transfer_time(size, gbps400));
  // Nothing sent: both zero.
  FlowGraph tasks;
  tasks.add(local_task(0, Picoseconds::us(3)));
  const auto none = simulate(f, tasks, cfg);
  CHECK(none.first_byte_sent == Picoseconds{});
  CHECK(none.last_byte_sent == Picoseconds{});
}

TEST_CASE("n flows into one NIC each get 1/n of it") {
  for (std::uint32_t n : {2u, 3u, 7u}) {
    CAPTURE(n);
    const auto f = one_leaf(n + 1, {});
    FlowGraph g;
    const Bytes size = Bytes::MiB(8);
    for (std::uint32_t i = 1; i <= n; ++i) g.add({i, 0, size, 0, {}});
    SimConfig cfg;
    cfg.message_overhead = {};
    cfg.switch_hop = {};
    const auto r = simulate(f, g, cfg);
    const Picoseconds alone = transfer_time(size, gbps400);
    for (const auto& t : r.flows) {
      CHECK(std::llabs(t.delivered.count() - (alone * n).count()) <= static_cast<long long>(n));
    }
    CHECK(r.bytes_delivered == static_cast<double>(size.count() * n));
  }
}

TEST_CASE("Max-min: the parking lot and a two-level case give the textbook rates") {
  MaxMinSolver solver;
  // Parking lot: a long flow over links 0..2, one short flow per link; all capacities 1.
  {
    const std::vector<std::uint32_t> offsets{0, 3, 4, 5, 6};
    const std::vector<std::uint32_t> res{0, 1, 2, 0, 1, 2};
    std::vector<double> rates(4);
    solver.solve(
        3, offsets, res, [](std::uint32_t) { return 1.0; }, rates);
    for (double x : rates) CHECK(x == doctest::Approx(0.5));
  }
  // L0 (cap 1): A, B. L1 (cap 2): A, C, D. A and B get 1/2; C and D share the 3/2 left.
  {
    const std::vector<std::uint32_t> offsets{0, 2, 3, 4, 5};
    const std::vector<std::uint32_t> res{0, 1, 0, 1, 1};
    std::vector<double> rates(4);
    solver.solve(
        2, offsets, res, [](std::uint32_t r) { return r == 0 ? 1.0 : 2.0; }, rates);
    CHECK(rates[0] == doctest::Approx(0.5));
    CHECK(rates[1] == doctest::Approx(0.5));
    CHECK(rates[2] == doctest::Approx(0.75));
    CHECK(rates[3] == doctest::Approx(0.75));
  }
  // Keeping the flows below a level gives the same answer when it is valid.
  {
    const std::vector<std::uint32_t> offsets{0, 2, 3, 4, 5};
    const std::vector<std::uint32_t> res{0, 1, 0, 1, 1};
    std::vector<double> rates{0.5, 0.5, 1e9, 1e9};
    solver.solve_above(
        2, offsets, res, [](std::uint32_t r) { return r == 0 ? 1.0 : 2.0; }, rates, 0.6);
    CHECK(rates[2] == doctest::Approx(0.75));
    CHECK(rates[3] == doctest::Approx(0.75));
  }
}

TEST_CASE(
    "ECMP on a permutation: about 1 - 1/e of core links busy, paced by the most loaded link") {
  const auto f = fat_tree(16);  // 1024 hosts, 16 pods of 64
  const Bytes size = Bytes::MiB(64);
  const auto g = cross_pod_permutation(f, 64, size, 7);
  SimConfig cfg;
  const auto r = simulate(f, g, cfg);
  // Flows per link from the routes the simulator used.
  Router router(f, cfg.routing);
  std::vector<std::uint32_t> load(f.link_count(), 0);
  Picoseconds max_latency;
  for (FlowId i = 0; i < g.size(); ++i) {
    std::vector<ResourceIndex> p;
    const auto info = router.route({g.flow(i).src, g.flow(i).dst, 0}, p);
    for (auto l : p) ++load[l];
    max_latency =
        std::max(max_latency,
                 info.link_latency + cfg.switch_hop * static_cast<std::int64_t>(info.switch_hops));
  }
  std::uint32_t max_load = 0;
  std::size_t core_used = 0;
  std::size_t core_links = 0;
  for (LinkIndex l = 0; l < f.link_count(); ++l) {
    max_load = std::max(max_load, load[l]);
    if (f.link(l).level == 3 && f.link(l).up) {
      ++core_links;
      core_used += load[l] > 0 ? 1 : 0;
    }
  }
  const double used = static_cast<double>(core_used) / static_cast<double>(core_links);
  MESSAGE("core links used: " << used << ", most loaded link: " << max_load << " flows");
  CHECK(used == doctest::Approx(1 - 1 / std::exp(1.0)).epsilon(0.08));
  // The flows of the most loaded link share it from start to end.
  const Picoseconds paced = cfg.message_overhead + transfer_time(size, gbps400) * max_load;
  CHECK(r.makespan >= paced);
  CHECK(r.makespan <= paced + max_latency + Picoseconds::ps(max_load));
  CHECK(r.bytes_sent == r.bytes_delivered);
  CHECK(r.bytes_delivered == static_cast<double>(g.total_bytes().count()));
}

TEST_CASE("Spraying the same permutation reaches the bisection bound") {
  const auto f = fat_tree(16);
  const Bytes size = Bytes::MiB(64);
  const auto g = cross_pod_permutation(f, 64, size, 7);
  SimConfig cfg;
  cfg.routing.mode = RoutingMode::spray;
  const auto r = simulate(f, g, cfg);
  const auto bound = transfer_time(size, gbps400);
  CHECK(r.makespan >= bound);
  CHECK(bound.in_seconds() / r.makespan.in_seconds() > 0.99);
  // Every core link carries the same load.
  const auto& core_up = r.link_classes[3 * 2 + 1];
  CHECK(core_up.used_links == core_up.links);
  CHECK(core_up.max_utilization == doctest::Approx(core_up.mean_utilization).epsilon(1e-9));
}

TEST_CASE("1:7 oversubscription caps cross-pod throughput at 1/7 of injection") {
  ColossusParams p;
  p.leaves_per_pod = 56;            // 7 arrays x 8 rails per pod
  p.gpus = 2 * 7 * 512;             // two pods
  p.oversubscription = {1.0, 7.0};  // tier 2: 56 down, 8 up
  const auto f = colossus(p);
  const std::uint32_t half = 7 * 512;
  FlowGraph g;
  const Bytes size = Bytes::MiB(16);
  for (std::uint32_t i = 0; i < half; ++i) g.add({i, i + half, size, 0, {}});
  SimConfig cfg;
  cfg.routing.mode = RoutingMode::spray;
  const auto r = simulate(f, g, cfg);
  const double transfer = r.makespan.in_seconds() - cfg.message_overhead.in_seconds();
  const double cross_pod = static_cast<double>(g.total_bytes().count()) / transfer;
  const double injection = half * gbps400.in_bytes_per_second();
  CHECK(cross_pod / injection == doctest::Approx(1.0 / 7.0).epsilon(0.01));
}

TEST_CASE("A failed link moves its flows to the surviving paths; bytes are conserved") {
  auto f = fat_tree(8);
  const auto g = cross_pod_permutation(f, 16, Bytes::MiB(4), 3);
  const auto before = simulate(f, g, {});
  // Fail the busiest core up-link.
  LinkIndex busiest = 0;
  for (LinkIndex l = 0; l < f.link_count(); ++l) {
    if (f.link(l).level == 3 && before.link_bytes[l] > before.link_bytes[busiest]) busiest = l;
  }
  REQUIRE(before.link_bytes[busiest] > 0);
  f.set_cable_health(busiest, 0.0f);
  const auto after = simulate(f, g, {});
  CHECK(after.link_bytes[busiest] == 0);
  CHECK(after.link_bytes[Fabric::reverse(busiest)] == 0);
  CHECK(after.bytes_delivered == before.bytes_delivered);
  CHECK(after.bytes_sent == after.bytes_delivered);
  // Every byte still crosses exactly one NIC up-link.
  double nic_up = 0;
  for (LinkIndex l = 0; l < f.link_count(); ++l) {
    if (f.link(l).level == 1 && f.link(l).up) nic_up += after.link_bytes[l];
  }
  CHECK(nic_up == after.bytes_delivered);
  // A degraded link keeps its flows at a fraction of the rate.
  auto d = one_leaf(2, {});
  d.set_cable_health(0, 0.5f);
  FlowGraph one;
  one.add({0, 1, Bytes::MiB(1), 0, {}});
  SimConfig bare;
  bare.message_overhead = {};
  bare.switch_hop = {};
  CHECK(simulate(d, one, bare).makespan == transfer_time(Bytes::MiB(1), gbps400 * 0.5));
}

TEST_CASE("Dependencies: a flow starts after its predecessors are delivered, plus its delay") {
  const auto f = one_leaf(3, Picoseconds::ns(10));
  FlowGraph g;
  const auto a = g.add({0, 1, Bytes::KiB(64), 0, {}});
  const auto b = g.add({1, 2, Bytes::KiB(64), 0, Picoseconds::us(2)});  // e.g. a local reduction
  const auto c = g.add({2, 0, Bytes::KiB(64), 0, {}});
  g.depends_on(b, a);
  g.depends_on(c, b);
  SimConfig cfg;
  const auto r = simulate(f, g, cfg);
  CHECK(r.flows[b].ready == r.flows[a].delivered);
  CHECK(r.flows[b].start == r.flows[b].ready + Picoseconds::us(2) + cfg.message_overhead);
  CHECK(r.flows[c].start == r.flows[b].delivered + cfg.message_overhead);
  const Picoseconds one = cfg.message_overhead + transfer_time(Bytes::KiB(64), gbps400) +
                          Picoseconds::ns(20) + cfg.switch_hop;
  CHECK(r.makespan == one * 3 + Picoseconds::us(2));
}

TEST_CASE("Bad flow graphs are refused before anything runs") {
  const auto f = one_leaf(3, {});
  FlowGraph cyc;
  const auto a = cyc.add({0, 1, Bytes::KiB(1), 0, {}});
  const auto b = cyc.add({1, 2, Bytes::KiB(1), 0, {}});
  const auto c = cyc.add({2, 0, Bytes::KiB(1), 0, {}});
  cyc.depends_on(b, a);
  cyc.depends_on(c, b);
  cyc.depends_on(a, c);
  CHECK_CONTAINS(error_of([&] { simulate(f, cyc); }), "the dependencies have a cycle through flow");
  FlowGraph self;
  const auto s = self.add({0, 1, Bytes::KiB(1), 0, {}});
  CHECK_CONTAINS(error_of([&] { self.depends_on(s, s); }), "depends on itself");
  CHECK_CONTAINS(error_of([&] { self.depends_on(s, 9); }), "names a flow that does not exist");
  FlowGraph missing;
  missing.add({0, 7, Bytes::KiB(1), 0, {}});
  CHECK_CONTAINS(error_of([&] { simulate(f, missing); }), "names endpoint 7, but the fabric has 3");
}

TEST_CASE("The partial re-solve equals the plain evaluation, flow by flow") {
  for (const auto mode : {RoutingMode::ecmp, RoutingMode::spray}) {
    const auto f = fat_tree(8);
    auto g = cross_pod_permutation(f, 16, Bytes::MiB(2), 11);
    // Add a second wave that depends on the first, with mixed sizes, so flows arrive
    // while others run.
    const auto first = g.size();
    std::mt19937_64 rng(5);
    for (FlowId i = 0; i < first; ++i) {
      const auto src = static_cast<NodeIndex>(rng() % f.endpoint_count());
      auto dst = static_cast<NodeIndex>(rng() % f.endpoint_count());
      if (dst == src) dst = (dst + 1) % static_cast<NodeIndex>(f.endpoint_count());
      const auto id = g.add(
          {src, dst, Bytes::KiB(64 + rng() % 4096), static_cast<std::uint32_t>(rng() % 4), {}});
      g.depends_on(id, static_cast<FlowId>(rng() % first));
    }
    SimConfig fast;
    fast.routing.mode = mode;
    SimConfig plain = fast;
    plain.exact_rate_solves = true;
    const auto a = simulate(f, g, fast);
    const auto b = simulate(f, g, plain);
    CHECK(a.makespan == b.makespan);
    for (FlowId i = 0; i < g.size(); ++i) {
      CHECK(a.flows[i].start == b.flows[i].start);
      CHECK(a.flows[i].delivered == b.flows[i].delivered);
    }
    CHECK(a.link_bytes == b.link_bytes);
  }
}

TEST_CASE("A failed switch: flows go around it; a node cut off is an error naming a flow") {
  auto f = fat_tree(4);
  const auto g = cross_pod_permutation(f, 4, Bytes::MiB(1), 5);
  // Take down one core switch: its four cables carry nothing, everything is delivered.
  NodeIndex core = no_node;
  for (NodeIndex s = 0; s < f.node_count(); ++s) {
    if (f.kind(s) == FabricNodeKind::network_switch && f.tier(s) == 3) core = s;
  }
  REQUIRE(core != no_node);
  f.set_switch_down(core);
  for (const auto mode : {RoutingMode::ecmp, RoutingMode::spray}) {
    SimConfig cfg;
    cfg.routing.mode = mode;
    const auto r = simulate(f, g, cfg);
    for (LinkIndex l : f.down_links(core)) {
      CHECK(r.link_bytes[l] == 0);
      CHECK(r.link_bytes[Fabric::reverse(l)] == 0);
    }
    CHECK(r.bytes_delivered == static_cast<double>(g.total_bytes().count()));
  }
  // Take down the leaf of hosts 0 and 1: their flows have no path.
  NodeIndex leaf = f.link(f.up_links(0)[0]).to;
  f.set_switch_down(leaf);
  CHECK_CONTAINS(error_of([&] { simulate(f, g); }), "has no live path");
}

TEST_CASE("Local tasks take their duration and move no bytes") {
  const auto f = one_leaf(2, {});
  FlowGraph g;
  const auto reduce = g.add(local_task(0, Picoseconds::us(3)));
  const auto send = g.add({0, 1, Bytes::KiB(64), 0, {}});
  g.depends_on(send, reduce);
  SimConfig cfg;
  const auto r = simulate(f, g, cfg);
  CHECK(r.flows[reduce].delivered == Picoseconds::us(3));
  CHECK(r.flows[send].start == Picoseconds::us(3) + cfg.message_overhead);
  // `ready` means the same for a task as for a flow: its last dependency delivered.
  const auto after = g.add(local_task(1, Picoseconds::us(5)));
  g.depends_on(after, send);
  const auto r2 = simulate(f, g, cfg);
  CHECK(r2.flows[reduce].ready == Picoseconds{});
  CHECK(r2.flows[send].ready == r2.flows[reduce].delivered);
  CHECK(r2.flows[after].ready == r2.flows[send].delivered);
  CHECK(r2.flows[after].start == r2.flows[after].ready);
  CHECK(r2.flows[after].delivered == r2.flows[after].ready + Picoseconds::us(5));
  CHECK(r.bytes_delivered == 65536.0);
  FlowGraph bad;
  bad.add(local_task(9, Picoseconds::us(1)));
  CHECK_CONTAINS(error_of([&] { simulate(f, bad); }), "task 0 runs on endpoint 9");
}

TEST_CASE("Flows into and out of an NVSwitch take the GPU's NVLink; others are refused") {
  ColossusParams params;
  params.gpus = 16;  // two hosts of 8
  auto fabric = colossus(params);
  const NodeIndex nvs0 = fabric.nvswitch_of(0);
  const NodeIndex nvs1 = fabric.nvswitch_of(8);
  REQUIRE(nvs0 != no_node);
  REQUIRE(nvs1 != no_node);
  CHECK(nvs0 != nvs1);
  CHECK(fabric.nvswitch_of(3) == nvs0);
  // Eight GPUs into their switch and the switch out to one: each flow alone on its link.
  FlowGraph g;
  const Bytes size = Bytes::of(std::int64_t{1} << 20);
  for (NodeIndex e = 0; e < 8; ++e) g.add({e, nvs0, size, 0, {}});
  g.add({nvs0, 5, size, 0, {}});
  const SimConfig cfg;
  const auto r = simulate(fabric, g, cfg);
  CHECK(r.makespan ==
        cfg.nvls_message_overhead + nvlink_latency + transfer_time(size, h100_nvlink_usable));
  // Into another host's switch, or switch to switch: a clear error before simulating.
  FlowGraph other;
  other.add({0, nvs1, size, 0, {}});
  CHECK_CONTAINS(error_of([&] { simulate(fabric, other); }),
                 "has no NVLink to the NVSwitch of host 1");
  FlowGraph between;
  between.add({nvs0, nvs1, size, 0, {}});
  CHECK_CONTAINS(error_of([&] { simulate(fabric, between); }), "from an NVSwitch to an NVSwitch");
  // A dead NVLink.
  for (LinkIndex l : fabric.up_links(2)) {
    if (fabric.link(l).to == nvs0) fabric.set_cable_health(l, 0.0f);
  }
  FlowGraph dead;
  dead.add({2, nvs0, size, 0, {}});
  CHECK_CONTAINS(error_of([&] { simulate(fabric, dead); }), "is down");
}

TEST_CASE("Simulated time past what integer picoseconds hold is an InputError, not a wrap") {
  // 2^62 bytes over the slowest link railcc takes (1 Mb/s) ends 3.7e13 s in: far past
  // the 106 days of int64 picoseconds. Unchecked, the finish time wrapped negative and
  // the event queue ran backwards (a crash in data mode).
  Fabric slow;
  slow.add_endpoint(0, 0, 0);
  slow.add_endpoint(1, 0, 0);
  const NodeIndex leaf = slow.add_switch(1);
  slow.connect(0, leaf, min_link_bandwidth, Picoseconds{});
  slow.connect(1, leaf, min_link_bandwidth, Picoseconds{});
  slow.finalize();
  FlowGraph g;
  g.add({0, 1, Bytes::of(std::uint64_t{1} << 62), 0, {}});
  CHECK_CONTAINS(error_of([&] { simulate(slow, g); }),
                 "would end more than 106 days into the simulation");
  // One byte less than the limit's worth of time is still simulated exactly: 1 GiB at
  // 1 Mb/s is 8589.934592 s.
  FlowGraph ok;
  ok.add({0, 1, Bytes::GiB(1), 0, {}});
  SimConfig exact;
  exact.message_overhead = exact.nvlink_message_overhead = exact.nvls_message_overhead =
      exact.switch_hop = Picoseconds{};
  CHECK(simulate(slow, ok, exact).makespan == Picoseconds::ps(8'589'934'592'000'000));
  // A cable degraded to almost nothing is the same error.
  Fabric degraded = one_leaf(2, Picoseconds{});
  degraded.set_cable_health(0, 1e-30f);
  FlowGraph one;
  one.add({0, 1, Bytes::MiB(1), 0, {}});
  CHECK_CONTAINS(error_of([&] { simulate(degraded, one); }), "a link on its path is too slow");
}

TEST_CASE("Time conversions saturate instead of overflowing") {
  CHECK(Picoseconds::seconds(1e300) == Picoseconds::max());
  CHECK(Picoseconds::seconds(std::numeric_limits<double>::quiet_NaN()) == Picoseconds::max());
  CHECK(Picoseconds::seconds(-1e300).count() == std::numeric_limits<std::int64_t>::min());
  CHECK(Picoseconds::us(1.5).count() == 1'500'000);
  CHECK(transfer_time(Bytes::of(std::uint64_t{1} << 62), Bandwidth::mbps(1)) == Picoseconds::max());
}

TEST_CASE("Pinned paths: a loop is refused; over NVLink and out a NIC starts as RDMA (PXN)") {
  ColossusParams params;
  params.gpus = 16;  // two hosts of 8
  const auto fabric = colossus(params);
  const NodeIndex nvs0 = fabric.nvswitch_of(0);
  auto link_to = [&](NodeIndex from, auto&& wanted) {
    for (LinkIndex l : fabric.up_links(from)) {
      if (wanted(fabric.link(l).to)) return l;
    }
    FAIL("no such link");
    return LinkIndex{};
  };
  auto is_nvswitch = [&](NodeIndex n) { return n == nvs0; };
  const LinkIndex gpu0_nvlink = link_to(0, is_nvswitch);
  const LinkIndex gpu1_nvlink = link_to(1, is_nvswitch);
  const LinkIndex gpu1_nic =
      link_to(1, [&](NodeIndex n) { return fabric.kind(n) == FabricNodeKind::network_switch; });
  const NodeIndex leaf = fabric.link(gpu1_nic).to;
  const LinkIndex gpu9_nic = link_to(9, [&](NodeIndex n) { return n == leaf; });  // same rail
  const Bytes size = Bytes::KiB(256);
  const SimConfig cfg;

  // GPU 0 -> NVSwitch -> GPU 1 -> rail 1's leaf -> GPU 9: data that changes rails over
  // NVLink first. Its start-up is an RDMA message's, not NVLink's.
  FlowGraph pxn;
  const LinkIndex pxn_path[] = {gpu0_nvlink, Fabric::reverse(gpu1_nvlink), gpu1_nic,
                                Fabric::reverse(gpu9_nic)};
  pxn.add_pinned({0, 9, size, 0, {}}, pxn_path);
  const auto r = simulate(fabric, pxn, cfg);
  CHECK(r.flows[0].start == cfg.message_overhead);
  // GPU 0 -> NVSwitch -> GPU 1 stays on NVLink: NVLink's start-up.
  FlowGraph local;
  const LinkIndex nvlink_path[] = {gpu0_nvlink, Fabric::reverse(gpu1_nvlink)};
  local.add_pinned({0, 1, size, 0, {}}, nvlink_path);
  CHECK(simulate(fabric, local, cfg).flows[0].start == cfg.nvlink_message_overhead);

  // Up to the leaf, back down to GPU 1, and over the same cable again: charged twice
  // before; refused now, naming the link.
  FlowGraph loop;
  const LinkIndex loop_path[] = {gpu1_nic, Fabric::reverse(gpu1_nic), gpu1_nic,
                                 Fabric::reverse(gpu9_nic)};
  loop.add_pinned({1, 9, size, 0, {}}, loop_path);
  CHECK_CONTAINS(error_of([&] { simulate(fabric, loop); }),
                 "pinned path crosses link " + std::to_string(gpu1_nic) + " twice");
}

TEST_CASE("Randomized: a large graph's route table is the one flow-by-flow routing builds") {
  // Past 65,536 flows under ECMP the table is routed in shares on several threads; the
  // reference routes every flow in order with one router and numbers resources by first
  // use. Pinned paths and local tasks are mixed in; the first failing flow's error wins.
  std::mt19937_64 rng(17);
  ColossusParams p;
  p.gpus = 8192;
  const Fabric f = colossus(p);
  const auto n = static_cast<std::uint32_t>(f.endpoint_count());
  const RoutingOptions routing{RoutingMode::ecmp, 99};
  FlowGraph g;
  Router pinner(f, routing);
  for (int i = 0; i < 90000; ++i) {
    const auto src = static_cast<NodeIndex>(rng() % n);
    auto dst = static_cast<NodeIndex>(rng() % n);
    if (dst == src) dst = (dst + 1) % n;
    const auto qp = static_cast<std::uint32_t>(rng() % 8);
    if (rng() % 16 == 0) {
      g.add(local_task(src, Picoseconds::ns(5)));
    } else if (rng() % 16 == 0) {
      std::vector<ResourceIndex> path;
      pinner.route({src, dst, qp + 100}, path);
      g.add_pinned({src, dst, Bytes::of(4096), qp, {}},
                   std::vector<LinkIndex>(path.begin(), path.end()));
    } else {
      g.add({src, dst, Bytes::of(4096), qp, {}});
    }
  }
  const RouteTable table(f, g, routing, Picoseconds::ns(500));
  Router reference(f, routing);
  std::map<LinkIndex, ResourceIndex> number;  // link -> resource, by first use
  std::size_t mismatches = 0;
  for (FlowId i = 0; i < g.size(); ++i) {
    std::vector<ResourceIndex> expected;
    if (!g.is_task(i)) {
      const FlowSpec& s = g.flow(i);
      const auto pinned = g.pinned_path(i);
      const PathInfo info = pinned.empty()
                                ? reference.route({s.src, s.dst, s.qp}, expected)
                                : reference.pinned({s.src, s.dst, s.qp}, pinned, expected);
      mismatches += table.latency(i) != info.link_latency + Picoseconds::ns(500) * info.switch_hops;
    }
    const auto path = table.path(i);
    mismatches += path.size() != expected.size();
    for (std::size_t k = 0; k < std::min(path.size(), expected.size()); ++k) {
      const auto [it, fresh] =
          number.try_emplace(expected[k], static_cast<ResourceIndex>(number.size()));
      mismatches += path[k] != it->second || table.link(path[k]) != expected[k];
    }
  }
  CHECK(mismatches == 0);
  CHECK(table.resource_count() == number.size());
  // Flows 60,000 and 80,000 go nowhere: the error is the first one's.
  FlowGraph bad;
  for (std::uint32_t i = 0; i < 90000; ++i) {
    const NodeIndex dst = i == 60000 ? n + 5 : i == 80000 ? n + 6 : (i + 8) % n;
    bad.add({i % n, dst, Bytes::of(64), 0, {}});
  }
  const std::string error = railcc_test::error_of([&] { RouteTable(f, bad, routing, {}); });
  CHECK_CONTAINS(error, "flow " + std::to_string(60000 % n) + " -> " + std::to_string(n + 5));
}
