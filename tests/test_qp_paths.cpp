// schedule/qp_paths.hpp: QPs chosen against the ECMP hash put a step's flows on different
// links where the fabric allows it, never make a step worse than blind hashing, report
// what a from-scratch count of the links confirms, and never change what a collective
// computes. schedule/qp_striping.hpp: without the hash, the QPs a connection stripes over.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "check_contains.hpp"
#include "railcc/backend/sim_backend.hpp"
#include "railcc/backend/sim_verified.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/fabric/failures.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/schedule/qp_paths.hpp"
#include "railcc/schedule/qp_striping.hpp"
#include "test_support.hpp"

using namespace railcc;
using railcc_test::error_of;

namespace {

/// The reference: every flow routed from scratch with its QP by a fresh router; per link
/// a QP can change (between switches, and a GPU's port where it has several), how many
/// flows cross it and their bytes.
struct LinkCount {
  std::size_t shared = 0;  ///< links with 2+ flows
  double worst = 0;        ///< the busiest link's bytes over capacity (seconds)
  int most = 0;            ///< the most flows on one link
};
LinkCount count_links(const Fabric& f, const std::vector<FlowSpec>& flows, std::uint64_t seed) {
  Router router(f, RoutingOptions{RoutingMode::ecmp, seed});
  std::map<LinkIndex, std::pair<int, double>> on;
  std::vector<ResourceIndex> path;
  for (const FlowSpec& s : flows) {
    path.clear();
    router.route(FlowKey{s.src, s.dst, s.qp}, path);
    auto ports = [&](NodeIndex e) {
      int n = 0;
      if (f.kind(e) != FabricNodeKind::endpoint) return n;
      for (LinkIndex l : f.up_links(e)) n += f.kind(f.link(l).to) != FabricNodeKind::nvswitch;
      return n;
    };
    for (ResourceIndex r : path) {
      const FabricLink& l = f.link(r);
      const bool a = f.kind(l.from) == FabricNodeKind::network_switch;
      const bool b = f.kind(l.to) == FabricNodeKind::network_switch;
      if (!(a && b) && !(b && ports(l.from) > 1) && !(a && ports(l.to) > 1)) continue;
      on[r].first += 1;
      on[r].second += static_cast<double>(s.size.count());
    }
  }
  LinkCount c;
  for (const auto& [l, v] : on) {
    if (v.first > 1) ++c.shared;
    c.most = std::max(c.most, v.first);
    c.worst = std::max(c.worst, v.second / f.link(l).usable().in_bytes_per_second());
  }
  return c;
}

QpChoiceStats choose(const Fabric& f, std::vector<FlowSpec>& flows, std::uint64_t seed,
                     QpChoiceOptions options = {}) {
  QpPathChooser chooser(f, RoutingOptions{RoutingMode::ecmp, seed}, options);
  std::vector<FlowSpec*> step;
  for (FlowSpec& s : flows) step.push_back(&s);
  return chooser.choose(step);
}

/// The reference chooser: the algorithm qp_paths.hpp describes, written plainly, with
/// every candidate routed to the end by a fresh router and loads kept in a map. Returns
/// the QP it leaves each flow with.
std::vector<std::uint32_t> reference_qps(const Fabric& f, std::vector<FlowSpec> flows,
                                         std::uint64_t seed, QpChoiceOptions options) {
  Router router(f, RoutingOptions{RoutingMode::ecmp, seed});
  auto ports = [&](NodeIndex e) {
    int n = 0;
    if (f.kind(e) != FabricNodeKind::endpoint) return n;
    for (LinkIndex l : f.up_links(e)) n += f.kind(f.link(l).to) != FabricNodeKind::nvswitch;
    return n;
  };
  auto chosen_links = [&](const FlowSpec& s, std::uint32_t qp) {
    std::vector<ResourceIndex> route;
    router.route(FlowKey{s.src, s.dst, qp}, route);
    std::vector<LinkIndex> out;
    for (ResourceIndex r : route) {
      const FabricLink& l = f.link(r);
      const bool a = f.kind(l.from) == FabricNodeKind::network_switch;
      const bool b = f.kind(l.to) == FabricNodeKind::network_switch;
      if ((a && b) || (b && ports(l.from) > 1) || (a && ports(l.to) > 1)) out.push_back(r);
    }
    return out;
  };
  std::map<LinkIndex, std::pair<int, double>> on;  // flows and bytes per link
  auto add = [&](const std::vector<LinkIndex>& path, double bytes) {
    for (LinkIndex l : path) {
      on[l].first += bytes > 0 ? 1 : -1;
      on[l].second += bytes;
    }
  };
  auto rate = [&](LinkIndex l) { return f.link(l).usable().in_bytes_per_second(); };
  auto bottleneck = [&](const std::vector<LinkIndex>& path, double bytes) {
    double w = 0;
    for (LinkIndex l : path) w = std::max(w, (on[l].second + bytes) / rate(l));
    return w;
  };
  auto worst = [&] {
    double w = 0;
    for (const auto& [l, v] : on)
      if (v.first > 0) w = std::max(w, v.second / rate(l));
    return w;
  };
  struct Flow {
    std::size_t index;
    double bytes;
    std::vector<LinkIndex> path;
  };
  std::vector<Flow> with_choice;
  for (std::size_t i = 0; i < flows.size(); ++i) {
    const FlowSpec& s = flows[i];
    if (s.src == s.dst || s.size == Bytes{} || over_nvlink(f, s.src, s.dst)) continue;
    auto path = chosen_links(s, s.qp);
    if (!path.empty())
      with_choice.push_back({i, static_cast<double>(s.size.count()), std::move(path)});
  }
  std::vector<std::uint32_t> qps;
  for (const FlowSpec& s : flows) qps.push_back(s.qp);
  const std::vector<std::uint32_t> original = qps;
  for (const Flow& x : with_choice) add(x.path, x.bytes);
  const double worst_before = worst();
  for (const Flow& x : with_choice) add(x.path, -x.bytes);
  // Largest first; among equals, by where the first choosable link starts (a leaf, or a
  // GPU with several ports), then in the flows' order.
  std::vector<std::size_t> order(with_choice.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const Flow& x = with_choice[a];
    const Flow& y = with_choice[b];
    if (x.bytes != y.bytes) return x.bytes > y.bytes;
    return f.link(x.path.front()).from < f.link(y.path.front()).from;
  });
  auto place = [&](Flow& x) {
    double best = -1;
    for (std::uint32_t qp = 0; qp < options.candidates; ++qp) {
      auto path = chosen_links(flows[x.index], qp);
      const bool free =
          std::all_of(path.begin(), path.end(), [&](LinkIndex l) { return on[l].first == 0; });
      const double cost = bottleneck(path, x.bytes);
      if (best < 0 || cost < best) {
        best = cost;
        qps[x.index] = qp;
        x.path = path;
      }
      if (free) break;
    }
  };
  for (std::size_t i : order) {
    place(with_choice[i]);
    add(with_choice[i].path, with_choice[i].bytes);
  }
  for (int round = 0; round < options.repair_rounds; ++round) {
    bool moved = false;
    for (std::size_t i : order) {
      Flow& x = with_choice[i];
      if (std::none_of(x.path.begin(), x.path.end(), [&](LinkIndex l) { return on[l].first > 1; }))
        continue;
      add(x.path, -x.bytes);
      const double before = bottleneck(x.path, x.bytes);
      const Flow kept = x;
      const std::uint32_t kept_qp = qps[x.index];
      place(x);
      if (bottleneck(x.path, x.bytes) < before) {
        moved = true;
      } else {
        x = kept;
        qps[x.index] = kept_qp;
      }
      add(x.path, x.bytes);
    }
    if (!moved) break;
  }
  if (worst() > worst_before) return original;
  return qps;
}

/// A random step on f: a random partial permutation, random sizes (half of them 1 MiB
/// where `some_equal`, so that ties in size are common), some connections twice.
std::vector<FlowSpec> random_step(const Fabric& f, std::mt19937_64& rng, bool some_equal = true) {
  const auto n = static_cast<std::uint32_t>(f.endpoint_count());
  std::vector<std::uint32_t> dst(n);
  std::iota(dst.begin(), dst.end(), 0u);
  std::shuffle(dst.begin(), dst.end(), rng);
  std::vector<FlowSpec> flows;
  for (std::uint32_t s = 0; s < n; ++s) {
    if (dst[s] == s || rng() % 3 == 0) continue;
    const Bytes size =
        Bytes::of(some_equal && rng() % 2 == 0 ? std::int64_t{1} << 20
                                               : static_cast<std::int64_t>(1 + rng() % (1 << 20)));
    flows.push_back({s, dst[s], size, static_cast<std::uint32_t>(rng() % 4), {}});
    if (rng() % 8 == 0) flows.push_back({s, dst[s], size, 0, {}});
  }
  return flows;
}

/// Host h of a k-ary fat tree (one GPU each) sends to the host one pod over, in the
/// same position: every edge switch's k/2 flows leave it, and an assignment exists that
/// puts each on its own aggregation and core link.
std::vector<FlowSpec> next_pod(std::uint32_t k, Bytes size) {
  const std::uint32_t hosts = k * k * k / 4, per_pod = k * k / 4;
  std::vector<FlowSpec> flows;
  for (std::uint32_t h = 0; h < hosts; ++h)
    flows.push_back({h, (h + per_pod) % hosts, size, 0, {}});
  return flows;
}

/// A colossus of 512 GPUs in 8 arrays of 8 hosts, so rings and partners leave their leaf.
Fabric eight_arrays() {
  ColossusParams params;
  params.gpus = 512;
  params.hosts_per_array = 8;
  return colossus(params);
}

/// The count of wrong elements over ring, mixed radix and hierarchical all-reduces of
/// 4,099 int32 on every GPU of `f`, with `cfg`.
std::size_t wrong_over_three_algorithms(const Fabric& f, const SimBackendConfig& cfg) {
  std::size_t wrong = 0;
  for (Algorithm algo : {Algorithm::ring, Algorithm::mixed_radix, Algorithm::hierarchical}) {
    SimBackend b(f, static_cast<int>(f.endpoint_count()), cfg);
    b.set_reduction({DataType::int32, ReduceOp::sum});
    VerifiedCall call;
    call.algorithm = algo;
    call.inter_host = Algorithm::mixed_radix;
    call.count = 4099;
    wrong += run_verified(b, call, 5).wrong;
  }
  return wrong;
}

}  // namespace

TEST_CASE("Fat trees whose step has a collision-free assignment get one") {
  for (std::uint32_t k : {4u, 6u, 8u}) {
    for (std::uint64_t seed : {1u, 2u, 3u}) {
      CAPTURE(k);
      CAPTURE(seed);
      const Fabric f = fat_tree(k);
      auto flows = next_pod(k, Bytes::of(1 << 20));
      const LinkCount blind = count_links(f, flows, seed);
      const QpChoiceStats s = choose(f, flows, seed);
      const LinkCount chosen = count_links(f, flows, seed);
      CHECK(blind.shared > 0);  // hashed blindly, flows collide
      CHECK(s.shared_before == blind.shared);
      CHECK(chosen.shared == 0);
      CHECK(chosen.most == 1);
      CHECK(s.shared_after == 0);
      CHECK(s.flows == flows.size());
    }
  }
}

TEST_CASE("Randomized: the chooser's report is what a fresh count finds, never worse than blind") {
  std::mt19937_64 rng(11);
  ColossusParams small;
  small.gpus = 1024;  // 2 arrays of 64 hosts... 128 hosts, 16 leaves, one pod
  // The same four with 3% of their switch cables down: the router's backtracking takes
  // flows around them, and the chooser's count of the links must follow it.
  const Fabric whole[] = {fat_tree(4), fat_tree(8), colossus(small), hpn({2, 16})};
  std::vector<Fabric> fabrics(std::begin(whole), std::end(whole));
  std::size_t failed = 0;
  for (const Fabric& w : whole) {
    fabrics.push_back(w);
    failed += fail_switch_cables(fabrics.back(), 0.03, 5);
  }
  CHECK(failed > 0);
  for (int trial = 0; trial < 48; ++trial) {
    const Fabric& f = fabrics[static_cast<std::size_t>(trial) % fabrics.size()];
    std::vector<FlowSpec> flows = random_step(f, rng, false);
    const std::uint64_t seed = rng();
    CAPTURE(trial);
    const LinkCount blind = count_links(f, flows, seed);
    QpChoiceOptions options;
    options.candidates = 1 + static_cast<std::uint32_t>(rng() % 64);
    options.repair_rounds = static_cast<int>(rng() % 4);
    const QpChoiceStats s = choose(f, flows, seed, options);
    const LinkCount chosen = count_links(f, flows, seed);
    CHECK(s.shared_before == blind.shared);
    CHECK(s.shared_after == chosen.shared);
    CHECK(s.worst_before == doctest::Approx(blind.worst));
    CHECK(s.worst_after == doctest::Approx(chosen.worst));
    CHECK(chosen.worst <= blind.worst * (1 + 1e-12));
    for (const FlowSpec& x : flows) CHECK(x.qp < std::max(options.candidates, 4u));
  }
}

TEST_CASE("Randomized: the chooser picks the QPs the plain reference picks") {
  // The chooser gives a candidate up at the first link already as loaded as the best
  // path's busiest one, and keeps loads in arrays; the reference routes every candidate
  // to the end. On fabrics with every cable up the two must agree QP for QP.
  std::mt19937_64 rng(23);
  ColossusParams small;
  small.gpus = 1024;
  const Fabric fabrics[] = {fat_tree(4), fat_tree(8), colossus(small), hpn({2, 16})};
  std::size_t moved = 0, compared = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const Fabric& f = fabrics[static_cast<std::size_t>(trial) % std::size(fabrics)];
    std::vector<FlowSpec> flows = random_step(f, rng);
    const std::uint64_t seed = rng();
    QpChoiceOptions options;
    options.candidates = 1 + static_cast<std::uint32_t>(rng() % 64);
    options.repair_rounds = static_cast<int>(rng() % 3);
    CAPTURE(trial);
    const std::vector<std::uint32_t> expected = reference_qps(f, flows, seed, options);
    const std::vector<FlowSpec> before = flows;
    choose(f, flows, seed, options);
    for (std::size_t i = 0; i < flows.size(); ++i) {
      CHECK(flows[i].qp == expected[i]);
      moved += flows[i].qp != before[i].qp ? 1 : 0;
    }
    compared += flows.size();
  }
  CHECK(compared > 5000);
  CHECK(moved > compared / 4);
}

TEST_CASE("Steps chosen side by side: the same QPs on any number of threads; the first failure") {
  std::mt19937_64 rng(31);
  ColossusParams small;
  small.gpus = 1024;
  const Fabric f = colossus(small);
  std::vector<std::vector<FlowSpec>> steps;
  for (int s = 0; s < 7; ++s) steps.push_back(random_step(f, rng));
  auto run = [&](unsigned threads) {
    std::vector<std::vector<FlowSpec>> copy = steps;
    std::vector<std::vector<FlowSpec*>> pointers(copy.size());
    for (std::size_t s = 0; s < copy.size(); ++s)
      for (FlowSpec& x : copy[s]) pointers[s].push_back(&x);
    QpChoiceOptions options;
    options.threads = threads;
    const auto stats =
        choose_qps_of_steps(f, RoutingOptions{RoutingMode::ecmp, 3}, options, pointers);
    return std::pair{copy, stats};
  };
  const auto [one, one_stats] = run(1);
  for (unsigned threads : {2u, 3u, 0u}) {
    CAPTURE(threads);
    const auto [many, many_stats] = run(threads);
    REQUIRE(many_stats.size() == steps.size());
    for (std::size_t s = 0; s < steps.size(); ++s) {
      CHECK(many_stats[s].moved == one_stats[s].moved);
      CHECK(many_stats[s].shared_after == one_stats[s].shared_after);
      for (std::size_t i = 0; i < steps[s].size(); ++i) CHECK(many[s][i].qp == one[s][i].qp);
    }
  }
  // Each step on its own chooser gives what one chooser gives step after step.
  std::vector<std::vector<FlowSpec>> alone = steps;
  for (auto& step : alone) choose(f, step, 3);
  for (std::size_t s = 0; s < steps.size(); ++s)
    for (std::size_t i = 0; i < steps[s].size(); ++i) CHECK(alone[s][i].qp == one[s][i].qp);
  // Steps 2 and 5 hold a flow out of a GPU whose leaf is cut off: the error is step 2's.
  Fabric cut = colossus(small);
  NodeIndex leaf = 0;
  for (LinkIndex l : cut.up_links(9))
    if (cut.kind(cut.link(l).to) == FabricNodeKind::network_switch) leaf = cut.link(l).to;
  REQUIRE(leaf != 0);
  for (LinkIndex l : cut.up_links(leaf)) cut.set_cable_health(l, 0.0f);
  std::vector<std::vector<FlowSpec>> bad(6, std::vector<FlowSpec>{{0, 1000, Bytes::of(64), 0, {}}});
  bad[2].push_back({9, 1001, Bytes::of(64), 0, {}});
  bad[5].push_back({9, 1002, Bytes::of(64), 0, {}});
  std::vector<std::vector<FlowSpec*>> pointers(bad.size());
  for (std::size_t s = 0; s < bad.size(); ++s)
    for (FlowSpec& x : bad[s]) pointers[s].push_back(&x);
  QpChoiceOptions two;
  two.threads = 2;
  CHECK_CONTAINS(error_of([&] { (void)choose_qps_of_steps(cut, RoutingOptions{}, two, pointers); }),
                 "flow 9 -> 1001 (qp 0) has no live path");
}

TEST_CASE("A step of flows on their own links runs at the link rate; blind hashing is slower") {
  // 16 hosts of a 4-ary fat tree, each sending 4 MiB one pod over, in one step.
  const Fabric f = fat_tree(4);
  Picoseconds times[2];
  for (int on = 0; on < 2; ++on) {
    SimBackendConfig cfg;
    cfg.mode = SimMode::timing;
    cfg.choose_qps = on == 1;
    SimBackend b(f, 16, cfg);
    b.set_reduction({DataType::uint8, ReduceOp::sum});
    const std::size_t bytes = std::size_t{4} << 20;
    const BufferId buf = b.allocate(bytes);
    for (int h = 0; h < 16; ++h)
      b.transfer(h, {buf, 0, bytes}, (h + 4) % 16, {buf, 0, bytes}, RecvAction::copy, {});
    times[on] = b.run().makespan;
    if (on == 1) {
      CHECK(b.qp_choice_summary().shared_links_after == 0);
      CHECK(b.qp_choice_summary().flows == 16);
      // One flow per link: a message's start-up, five links' latency, four switches,
      // then 4 MiB at 400 Gb/s.
      const Picoseconds closed = cfg.collective_base + cfg.sim.message_overhead +
                                 cable::in_rack * 2 + cable::in_row * 2 + cable::across_hall * 2 +
                                 cfg.sim.switch_hop * 5 +
                                 transfer_time(Bytes::of(bytes), Bandwidth::gbps(400));
      CHECK(times[1] == closed);
    }
  }
  CHECK(times[0] > times[1]);
}

TEST_CASE("On a dual-plane fabric a connection's two QPs take both planes") {
  // HPN: each GPU's NIC is two 200G ports, one per plane; the hash picks the plane. Each
  // of 32 GPUs sends 8 MiB to the GPU of its rail in the other segment, over 2 QPs.
  const Fabric f = hpn({2, 16});
  Picoseconds times[2];
  for (int on = 0; on < 2; ++on) {
    SimBackendConfig cfg;
    cfg.mode = SimMode::timing;
    cfg.qps_per_connection = 2;
    cfg.choose_qps = on == 1;
    SimBackend b(f, 256, cfg);
    b.set_reduction({DataType::uint8, ReduceOp::sum});
    const std::size_t bytes = std::size_t{8} << 20;
    const BufferId buf = b.allocate(bytes);
    for (int r = 0; r < 128; r += 4)
      b.transfer(r, {buf, 0, bytes}, r + 128, {buf, 0, bytes}, RecvAction::copy, {});
    times[on] = b.run().makespan;
    if (on == 1) {
      CHECK(b.qp_choice_summary().flows == 64);
      // (A ToR's 400G up-link may carry two 200G flows at their full rate: links shared
      // by two flows are no slower here, the time says so.) Half the bytes on each
      // plane's port at once: 4 MiB at 200 Gb/s, after the
      // start-up, the cables (NIC, ToR up, down, NIC) and two switches.
      const HpnParams p;
      const Picoseconds closed = cfg.collective_base + cfg.sim.message_overhead +
                                 cable::in_rack * 2 + cable::in_row * 2 + cfg.sim.switch_hop * 3 +
                                 transfer_time(Bytes::of(bytes / 2), p.port);
      CHECK(times[1] == closed);
    }
  }
  CHECK(times[0] > times[1]);  // blind, some connections put both QPs on one plane
}

TEST_CASE("Choosing QPs never changes what a collective computes") {
  ColossusParams params;
  params.gpus = 64;
  const Fabric f = colossus(params);
  for (Algorithm algo : {Algorithm::ring, Algorithm::rabenseifner, Algorithm::mixed_radix,
                         Algorithm::hierarchical, Algorithm::tree}) {
    for (int p : {16, 24, 64}) {
      CAPTURE(to_string(algo));
      CAPTURE(p);
      SimBackendConfig cfg;
      cfg.choose_qps = true;
      cfg.qps_per_connection = p == 24 ? 3 : 1;
      SimBackend b(f, p, cfg);
      b.set_reduction({DataType::int32, ReduceOp::sum});
      VerifiedCall call;
      call.algorithm = algo;
      call.inter_host = Algorithm::mixed_radix;
      call.count = 1000 + static_cast<std::size_t>(p);
      call.channels = 2;
      CHECK(run_verified(b, call, 99).wrong == 0);
    }
  }
}

TEST_CASE("With switch cables down, chosen QPs still give the right data, or name a cut-off flow") {
  Fabric f = eight_arrays();
  CHECK(fail_switch_cables(f, 0.05, 7) > 0);
  SimBackendConfig chosen;
  chosen.choose_qps = true;
  CHECK(wrong_over_three_algorithms(f, chosen) == 0);
  // Striped over QPs, whose parts the chooser shares unequally where cables are down.
  for (std::uint32_t qps : {2u, 3u}) {
    CAPTURE(qps);
    chosen.qps_per_connection = qps;
    CHECK(wrong_over_three_algorithms(f, chosen) == 0);
  }
  // Every up-link of GPU 0's leaf down: its flows to other leaves have no path, and the
  // error names one of them rather than choosing a QP for it.
  NodeIndex leaf = 0;
  for (LinkIndex l : f.up_links(0))
    if (f.kind(f.link(l).to) == FabricNodeKind::network_switch) leaf = f.link(l).to;
  REQUIRE(leaf != 0);
  for (LinkIndex l : f.up_links(leaf)) f.set_cable_health(l, 0.0f);
  SimBackendConfig cfg;
  cfg.choose_qps = true;
  SimBackend b(f, 512, cfg);
  b.set_reduction({DataType::int32, ReduceOp::sum});
  VerifiedCall call;
  call.algorithm = Algorithm::ring;
  call.count = 4099;
  CHECK_CONTAINS(error_of([&] { (void)run_verified(b, call, 5); }), "has no live path between");
}

TEST_CASE("QP choice is for ECMP: spraying and zero candidates are refused") {
  const Fabric f = fat_tree(4);
  CHECK_CONTAINS(error_of([&] {
                   QpPathChooser(f, RoutingOptions{RoutingMode::spray, 0});
                 }),
                 "there is no hash to steer");
  CHECK_CONTAINS(error_of([&] {
                   QpChoiceOptions o;
                   o.candidates = 0;
                   QpPathChooser(f, RoutingOptions{}, o);
                 }),
                 "candidates must be at least 1");
  SimBackendConfig cfg;
  cfg.choose_qps = true;
  cfg.sim.routing.mode = RoutingMode::spray;
  CHECK_CONTAINS(error_of([&] { SimBackend(f, 4, cfg); }), "choose_qps needs ECMP routing");
}

TEST_CASE(
    "Without the hash, a connection stripes over min(first hops, 16) QPs, one per port at least") {
  // A k-ary fat tree's edge switch has k / 2 up-links.
  for (std::uint32_t k : {4u, 8u}) {
    const StripingChoice c = blind_striping(fat_tree(k));
    CHECK(c.first_hops == k / 2);
    CHECK(c.ports == 1);
    CHECK(c.qps == k / 2);
  }
  // Colossus' rail leaf: 64 hosts down, 64 up; capped at 16.
  ColossusParams small;
  small.gpus = 1024;
  const StripingChoice col = blind_striping(colossus(small));
  CHECK(col.first_hops == 64);
  CHECK(col.qps == max_striping_qps);
  CHECK(col.why() == "min(64 first hops out of a leaf, 16) = 16 QPs");
  // HPN's dual-plane NIC: two ports.
  CHECK(blind_striping(hpn({2, 16})).ports == 2);
  // One tier (every GPU under one leaf per rail): nothing to spread over, one QP a port.
  ColossusParams one_leaf;
  one_leaf.gpus = 64;
  Fabric f = colossus(one_leaf);
  for (LinkIndex l = 0; l < f.link_count(); ++l)
    if (f.link(l).level > 1) f.set_cable_health(l, 0.0f);
  const StripingChoice none = blind_striping(f);
  CHECK(none.first_hops == 0);
  CHECK(none.qps == 1);
  // Dead up-links are not hops: a fat tree of k = 4 with one of every edge's two up-links
  // down stripes over one.
  Fabric half = fat_tree(4);
  for (NodeIndex v = 0; v < half.node_count(); ++v) {
    if (half.kind(v) != FabricNodeKind::network_switch || half.tier(v) != 1) continue;
    half.set_cable_health(half.up_links(v).front(), 0.0f);
  }
  CHECK(blind_striping(half).first_hops == 1);
  CHECK(blind_striping(half).qps == 1);
}

TEST_CASE("Striping over the blind choice's QPs never changes what a collective computes") {
  const Fabric f = eight_arrays();
  SimBackendConfig cfg;
  cfg.qps_per_connection = blind_striping(f).qps;
  REQUIRE(cfg.qps_per_connection == 8);  // 8 arrays: a leaf has 8 up-links
  CHECK(wrong_over_three_algorithms(f, cfg) == 0);
}

namespace {

/// Connections of `step`, striped over k QPs as the simulated backend stripes a transfer
/// (QP c * k + i, the bytes cut as evenly as whole bytes allow).
std::vector<FlowSpec> striped(const std::vector<FlowSpec>& step, std::uint32_t k) {
  std::vector<FlowSpec> flows;
  for (const FlowSpec& c : step) {
    for (std::uint32_t i = 0; i < k; ++i) {
      const std::uint64_t b0 = c.size.count() * i / k, b1 = c.size.count() * (i + 1) / k;
      flows.push_back({c.src, c.dst, Bytes::of(b1 - b0), c.qp * k + i, {}});
    }
  }
  return flows;
}

/// A llama3 pod of eight racks of 16 GPUs, every GPU of rack 0 sending 1 MiB to its peer in
/// rack 1 over two QPs, with the first `down` up-links of rack 0's switch down.
struct ShortRack {
  Fabric fabric;
  std::vector<FlowSpec> flows;
};
ShortRack short_rack(int down) {
  Llama3Params p;
  p.pods = 1;
  p.racks_per_pod = 8;  // the smallest a 32-port rack switch allows
  ShortRack r{llama3(p), {}};
  const NodeIndex leaf = r.fabric.link(r.fabric.up_links(0).back()).to;
  for (int i = 0; i < down; ++i)
    r.fabric.set_cable_health(r.fabric.up_links(leaf)[static_cast<std::size_t>(i)], 0.0f);
  std::vector<FlowSpec> step;
  for (std::uint32_t g = 0; g < 16; ++g) step.push_back({g, g + 16, Bytes::MiB(1), 0, {}});
  r.flows = striped(step, 2);
  return r;
}

}  // namespace

TEST_CASE("A rack switch short of an up-link: sharing a connection's bytes over its QPs") {
  // 16 connections, 32 halves, over the 15 up-links left: equal halves put three on some
  // link (1.5 MiB); the capacity left allows 16/15 MiB on each.
  for (int down : {1, 3}) {
    CAPTURE(down);
    ShortRack r = short_rack(down);
    const NodeIndex leaf = r.fabric.link(r.fabric.up_links(0).back()).to;
    const double rate =
        r.fabric.link(r.fabric.up_links(leaf).back()).usable().in_bytes_per_second();
    const double mib = 1 << 20;
    const double live = 16.0 - down;
    QpChoiceOptions equal_parts;  // one QP per connection as far as the chooser knows
    std::vector<FlowSpec> halves = r.flows;
    const QpChoiceStats h = choose(r.fabric, halves, 3, equal_parts);
    // Whole halves cannot do better than ceil(32 / live) of them on a link.
    CHECK(h.worst_after * rate >= std::ceil(32 / live) * mib / 2 * (1 - 1e-9));
    // The default visits and many more both reach the bound: levelling must pass along
    // the chain of up-links the connections join (with rounds over every connection and
    // no over-relaxation, 8 rounds ended 3% over it).
    for (int rounds : {QpChoiceOptions{}.share_rounds, 200}) {
      CAPTURE(rounds);
      QpChoiceOptions shared;
      shared.qps_per_connection = 2;
      shared.share_rounds = rounds;
      std::vector<FlowSpec> flows = r.flows;
      const QpChoiceStats s = choose(r.fabric, flows, 3, shared);
      const LinkCount count = count_links(r.fabric, flows, 3);
      CHECK(s.worst_after == doctest::Approx(count.worst));
      CHECK(count.worst < h.worst_after * 0.95);
      CHECK(count.worst * rate <= 16 / live * mib * 1.01);
      for (std::size_t c = 0; c < 16; ++c)
        CHECK(flows[2 * c].size.count() + flows[2 * c + 1].size.count() == 1u << 20);
    }
  }
  // With every cable up, halves pack as well as the fabric allows: no sharing.
  ShortRack whole = short_rack(0);
  QpChoiceOptions shared;
  shared.qps_per_connection = 2;
  choose(whole.fabric, whole.flows, 3, shared);
  for (const FlowSpec& x : whole.flows) CHECK(x.size == Bytes::of(1 << 19));
}

TEST_CASE("Randomized: shared bytes keep each connection's total and never make a step worse") {
  // The reference: the chooser's paths counted from scratch with the parts as posted.
  // Sharing may only lower that step's busiest link, and must keep every connection's
  // bytes; the chooser's report must be what a fresh count of its output finds.
  std::mt19937_64 rng(41);
  ColossusParams small;
  small.gpus = 1024;
  Llama3Params two_pods;
  two_pods.pods = 2;
  two_pods.racks_per_pod = 8;
  const Fabric whole[] = {fat_tree(4), fat_tree(8), colossus(small), hpn({2, 16}),
                          llama3(two_pods)};
  std::vector<Fabric> fabrics;
  for (const Fabric& w : whole) {
    fabrics.push_back(w);
    fail_switch_cables(fabrics.back(), 0.02 + 0.06 * static_cast<double>(rng() % 4) / 3, rng());
  }
  std::size_t unequal = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const Fabric& f = fabrics[static_cast<std::size_t>(trial) % fabrics.size()];
    const auto k = static_cast<std::uint32_t>(1 + rng() % 3);
    std::vector<FlowSpec> step = random_step(f, rng);
    for (FlowSpec& c : step) c.qp %= 2;  // a few connections twice, on QPs 0 and 1
    std::vector<FlowSpec> flows = striped(step, k);
    const std::vector<FlowSpec> posted = flows;
    const std::uint64_t seed = rng();
    QpChoiceOptions options;
    options.qps_per_connection = k;
    options.candidates = 1 + static_cast<std::uint32_t>(rng() % 64);
    options.share_rounds = static_cast<int>(rng() % 10);
    CAPTURE(trial);
    CAPTURE(k);
    const QpChoiceStats s = choose(f, flows, seed, options);
    const LinkCount chosen = count_links(f, flows, seed);
    CHECK(s.worst_after == doctest::Approx(chosen.worst));
    CHECK(s.shared_after == chosen.shared);
    std::vector<FlowSpec> as_posted = flows;
    for (std::size_t i = 0; i < flows.size(); ++i) as_posted[i].size = posted[i].size;
    CHECK(chosen.worst <= count_links(f, as_posted, seed).worst * (1 + 1e-12));
    CHECK(chosen.worst <= count_links(f, posted, seed).worst * (1 + 1e-12));
    std::map<std::tuple<NodeIndex, NodeIndex, std::uint32_t>,
             std::pair<std::uint64_t, std::uint64_t>>
        totals;
    for (std::size_t i = 0; i < flows.size(); ++i) {
      auto& t = totals[{posted[i].src, posted[i].dst, posted[i].qp / k}];
      t.first += posted[i].size.count();
      t.second += flows[i].size.count();
      unequal += flows[i].size != posted[i].size ? 1 : 0;
    }
    for (const auto& [key, t] : totals) CHECK(t.first == t.second);
  }
  CHECK(unequal > 0);  // sharing happened somewhere
}

TEST_CASE("Shared parts never change what a collective computes") {
  // A pod whose first rack switch lost an up-link: the steps between its racks share
  // parts unequally (checked on the flows simulated), and every result is right.
  const ShortRack r = short_rack(1);
  for (std::uint32_t qps : {2u, 3u}) {
    CAPTURE(qps);
    SimBackendConfig cfg;
    cfg.choose_qps = true;
    cfg.qps_per_connection = qps;
    CHECK(wrong_over_three_algorithms(r.fabric, cfg) == 0);
    SimBackend b(r.fabric, static_cast<int>(r.fabric.endpoint_count()), cfg);
    b.set_reduction({DataType::int32, ReduceOp::sum});
    VerifiedCall call;
    call.algorithm = Algorithm::mixed_radix;
    call.count = 1 << 18;
    CHECK(run_verified(b, call, 5).wrong == 0);
    std::size_t unequal = 0;
    const FlowGraph& g = b.last_graph();
    for (FlowId i = 0; i + 1 < g.size(); ++i) {
      const FlowSpec& x = g.flow(i);
      const FlowSpec& y = g.flow(i + 1);
      if (x.src == x.dst || r.fabric.host(x.src) == r.fabric.host(x.dst)) continue;
      // Consecutive QPs of one transfer (posted as parts at most a byte apart).
      if (y.src == x.src && y.dst == x.dst &&
          std::max(x.size, y.size).count() > std::min(x.size, y.size).count() + 1)
        ++unequal;
    }
    CHECK(unequal > 0);
  }
}

TEST_CASE("A step that repeats an earlier one gets the choice it would get on its own") {
  // choose_qps_of_steps chooses a step whose flows equal an earlier step's once; the
  // reference is every step chosen alone. Repeats exact, and near-repeats (one flow's
  // bytes or QP differ) that must be chosen afresh; with cables down and two QPs per
  // connection, sizes are copied too.
  std::mt19937_64 rng(53);
  ColossusParams small;
  small.gpus = 1024;
  Fabric down = colossus(small);
  fail_switch_cables(down, 0.05, 9);
  const ShortRack rack = short_rack(1);
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    const Fabric& f = variant == 0 ? down : variant == 1 ? colossus(small) : rack.fabric;
    std::vector<std::vector<FlowSpec>> steps;
    for (int s = 0; s < 4; ++s)
      steps.push_back(variant == 2 ? rack.flows : striped(random_step(f, rng), 2));
    steps.push_back(steps[1]);
    steps.push_back(steps[0]);
    steps.push_back(steps[1]);
    steps.back().back().size = Bytes::of(steps.back().back().size.count() + 1);
    steps.push_back(steps[0]);
    steps.back().front().qp += 1;
    std::vector<std::vector<FlowSpec>> together = steps;
    std::vector<std::vector<FlowSpec*>> pointers(together.size());
    for (std::size_t s = 0; s < together.size(); ++s)
      for (FlowSpec& x : together[s]) pointers[s].push_back(&x);
    QpChoiceOptions options;
    options.qps_per_connection = 2;
    options.threads = 2;
    const auto stats =
        choose_qps_of_steps(f, RoutingOptions{RoutingMode::ecmp, 3}, options, pointers);
    std::size_t unequal = 0;
    for (std::size_t s = 0; s < steps.size(); ++s) {
      CAPTURE(s);
      std::vector<FlowSpec> alone = steps[s];
      const QpChoiceStats a = choose(f, alone, 3, options);
      CHECK(stats[s].moved == a.moved);
      CHECK(stats[s].worst_after == a.worst_after);
      for (std::size_t i = 0; i < alone.size(); ++i) {
        CHECK(together[s][i].qp == alone[i].qp);
        CHECK(together[s][i].size == alone[i].size);
        unequal += alone[i].size != steps[s][i].size ? 1 : 0;
      }
    }
    if (variant == 2) CHECK(unequal > 0);
  }
}
