// Fabric presets, blocks, routing and bad fabrics.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <set>

#include "check_contains.hpp"
#include "railcc/fabric/failures.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/fabric/routing.hpp"
#include "test_support.hpp"

using namespace railcc;

namespace {

std::size_t switches_at(const Fabric& f, int tier) {
  std::size_t n = 0;
  for (NodeIndex i = 0; i < f.node_count(); ++i) {
    n += f.kind(i) == FabricNodeKind::network_switch && f.tier(i) == tier ? 1 : 0;
  }
  return n;
}

using railcc_test::error_of;

/// Checks a route is a chain of live links from src to dst (links only, ECMP/pinned).
void check_chain(const Fabric& f, const FlowKey& k, const std::vector<ResourceIndex>& path) {
  REQUIRE_FALSE(path.empty());
  NodeIndex at = k.src;
  for (ResourceIndex r : path) {
    REQUIRE(r < f.link_count());
    CHECK(f.link(r).from == at);
    CHECK(f.link(r).alive());
    at = f.link(r).to;
  }
  CHECK(at == k.dst);
}

ColossusParams params(std::uint64_t gpus, std::vector<double> oversubscription = {}) {
  ColossusParams p;
  p.gpus = gpus;
  p.oversubscription = std::move(oversubscription);
  return p;
}

}  // namespace

TEST_CASE("The k-ary fat tree has the textbook shape") {
  const auto f = fat_tree(8);
  CHECK(f.endpoint_count() == 128);  // k^3/4
  CHECK(switches_at(f, 1) == 32);    // k pods x k/2 edge
  CHECK(switches_at(f, 2) == 32);    // k pods x k/2 aggregation
  CHECK(switches_at(f, 3) == 16);    // (k/2)^2 core
  CHECK(f.link_count() == 2 * (128 + 32 * 4 + 32 * 4));
  for (NodeIndex s = 0; s < f.node_count(); ++s) {
    if (f.kind(s) != FabricNodeKind::network_switch) continue;
    CHECK(f.up_links(s).size() + f.down_links(s).size() == 8);  // every port of radix k used
  }
  // Blocks: one per edge switch, one per pod at tier 2, one at the top.
  std::set<BlockIndex> t2;
  std::set<BlockIndex> t3;
  for (NodeIndex s = 0; s < f.node_count(); ++s) {
    if (f.kind(s) != FabricNodeKind::network_switch) continue;
    if (f.tier(s) == 2) t2.insert(f.block_of(s));
    if (f.tier(s) == 3) t3.insert(f.block_of(s));
  }
  CHECK(t2.size() == 8);
  CHECK(t3.size() == 1);
}

TEST_CASE("Colossus at 100k: rail-optimized 3-tier Clos of 128-port switches") {
  const auto f = colossus();
  CHECK(f.endpoint_count() == 100000);
  CHECK(f.tiers() == 3);
  // 12,500 hosts in 196 arrays of 64 hosts: 8 rail leaves each.
  CHECK(switches_at(f, 1) == 196 * 8);
  // 25 pods of 64 leaves: 64 tier-2 switches each.
  CHECK(switches_at(f, 2) == 25 * 64);
  // 64 groups of ceil-fitting top switches: 13 each so no switch exceeds 128 ports.
  CHECK(switches_at(f, 3) == 64 * 13);
  for (NodeIndex s = 0; s < f.node_count(); ++s) {
    if (f.kind(s) == FabricNodeKind::network_switch) {
      CHECK(f.up_links(s).size() + f.down_links(s).size() <= 128);
    }
  }
  // NIC i of every host is on rail i: its leaf serves only rail i.
  for (NodeIndex e : {NodeIndex{0}, NodeIndex{13}, NodeIndex{99999}}) {
    NodeIndex leaf = no_node;
    for (LinkIndex l : f.up_links(e)) {
      if (f.kind(f.link(l).to) == FabricNodeKind::network_switch) leaf = f.link(l).to;
      if (f.kind(f.link(l).to) == FabricNodeKind::nvswitch) {
        CHECK(f.link(l).capacity == h100_nvlink_usable);  // NCCL's 18 x 20.6 GB/s
      } else {
        CHECK(f.link(l).capacity == nic_400g_usable);  // 48 GB/s of the port's 50
      }
    }
    REQUIRE(leaf != no_node);
    for (LinkIndex l : f.down_links(leaf)) CHECK(f.rail(f.link(l).to) == f.rail(e));
  }
}

TEST_CASE("Colossus grows a fourth tier past 524,288 GPUs, and honours oversubscription") {
  ColossusParams small;
  small.gpus = 8192;
  small.oversubscription = {1.0, 4.0};
  const auto f = colossus(small);
  CHECK(f.tiers() == 3);
  for (NodeIndex s = 0; s < f.node_count(); ++s) {
    if (f.kind(s) == FabricNodeKind::network_switch && f.tier(s) == 2) {
      CHECK(f.down_links(s).size() == 64);
      CHECK(f.up_links(s).size() == 16);  // 64:16 = 4:1
    }
  }
  CHECK_CONTAINS(error_of([] { colossus(params(8192, {0.5})); }),
                 "oversubscription of tier 1 must be >= 1");
  CHECK_CONTAINS(error_of([] { colossus(params(0)); }), "gpus must be at least 1");
}

TEST_CASE("Llama 3 and HPN presets have their published shapes") {
  const auto l = llama3();
  CHECK(l.endpoint_count() == 24576);
  CHECK(switches_at(l, 1) == 1536);  // 16 GPUs per rack switch
  CHECK(switches_at(l, 2) == 8 * 16);
  // The aggregation layer carries 1/7 of a pod's injection bandwidth.
  double up = 0;
  for (NodeIndex s = 0; s < l.node_count(); ++s) {
    if (l.kind(s) == FabricNodeKind::network_switch && l.tier(s) == 2 && s < l.node_count()) {
      for (LinkIndex k : l.up_links(s)) up += l.link(k).capacity.in_bytes_per_second();
    }
  }
  CHECK(up / 8 == doctest::Approx(3072 * Bandwidth::gbps(400).in_bytes_per_second() / 7));

  const auto h = hpn();
  CHECK(h.endpoint_count() == 15360);
  CHECK(switches_at(h, 1) == 2 * 15 * 8);  // two planes of rail ToRs
  CHECK(switches_at(h, 2) == 2 * 60);
  for (NodeIndex e : {NodeIndex{0}, NodeIndex{15359}}) {
    std::set<std::uint32_t> planes;
    for (LinkIndex k : h.up_links(e)) {
      if (h.kind(h.link(k).to) == FabricNodeKind::network_switch) {
        planes.insert(h.plane_of(h.link(k).to));
        CHECK(h.link(k).capacity == nic_400g_usable * 0.5);  // half the NIC on each plane
      }
    }
    CHECK(planes.size() == 2);  // one 200G port in each plane
  }
}

TEST_CASE("Impossible fabrics are refused with the reason") {
  CHECK_CONTAINS(error_of([] { fat_tree(3); }), "k must be even");
  ClosSpec s;
  s.hosts = 64;
  s.nic_port = Bandwidth::gbps(400);
  s.leaf_down = 100;
  s.radix = 128;
  s.up = {{64, Bandwidth::gbps(400), {}}};
  CHECK_CONTAINS(error_of([&] { build_clos(s); }), "more than radix 128");
  ClosSpec big;
  big.hosts = 200;
  big.gpus_per_host = 1;
  big.nic_port = Bandwidth::gbps(400);
  big.rail_optimized = false;
  big.leaf_down = 1;
  big.radix = 4;
  big.up = {{2, Bandwidth::gbps(400), {}}};
  CHECK_CONTAINS(error_of([&] { build_clos(big); }), "add a tier or raise the radix");

  Fabric f;
  const auto a = f.add_endpoint(0, 0, 0);
  const auto b = f.add_endpoint(1, 0, 0);
  const auto t1 = f.add_switch(1);
  const auto t3 = f.add_switch(3);
  CHECK_CONTAINS(error_of([&] { f.connect(a, t3, Bandwidth::gbps(400), {}); }),
                 "does not join adjacent tiers");
  CHECK_CONTAINS(error_of([&] { f.connect(a, t1, Bandwidth{}, {}); }), "has no bandwidth");
  CHECK_CONTAINS(error_of([&] { f.connect(a, t1, Bandwidth::gbps(1), Picoseconds::ns(-1)); }),
                 "negative latency");
  CHECK_CONTAINS(error_of([&] { f.add_endpoint(2, 0, 0); }),
                 "endpoints must be added before switches");
  f.connect(a, t1, Bandwidth::gbps(400), {});
  CHECK_CONTAINS(error_of([&] { f.finalize(); }), "endpoint 1 (host 1 GPU 0) is not connected");
  (void)b;
}

TEST_CASE("A fabric that is not a tiered Clos is refused") {
  // Two leaves; one spine reaches both, another only the first: the first leaf's block
  // would have two different parents.
  Fabric f;
  const auto a = f.add_endpoint(0, 0, 0);
  const auto b = f.add_endpoint(1, 0, 0);
  const auto l1 = f.add_switch(1);
  const auto l2 = f.add_switch(1);
  const auto s1 = f.add_switch(2);
  const auto s2 = f.add_switch(2);
  const auto bw = Bandwidth::gbps(400);
  f.connect(a, l1, bw, {});
  f.connect(b, l2, bw, {});
  f.connect(l1, s1, bw, {});
  f.connect(l2, s1, bw, {});
  f.connect(l1, s2, bw, {});
  CHECK_CONTAINS(error_of([&] { f.finalize(); }), "not a tiered Clos");
}

TEST_CASE("Routes: NVLink inside a host, up/down chains across the fabric") {
  auto f = colossus(params(8192));
  Router router(f, {});
  std::vector<ResourceIndex> path;
  const auto nv = router.route({0, 5, 0}, path);  // host 0, GPU 0 -> GPU 5
  CHECK(nv.nvlink);
  CHECK(path.size() == 2);
  CHECK(f.kind(f.link(path[0]).to) == FabricNodeKind::nvswitch);
  path.clear();
  // Same rail, same array: NIC, leaf, NIC.
  const FlowKey same_leaf{0, 8, 0};
  const auto p1 = router.route(same_leaf, path);
  check_chain(f, same_leaf, path);
  CHECK(path.size() == 2);
  CHECK(p1.switch_hops == 1);
  path.clear();
  // Other pod: up three tiers and down again.
  const FlowKey far{0, 8191, 0};
  const auto p2 = router.route(far, path);
  check_chain(f, far, path);
  CHECK(path.size() == 6);
  CHECK(p2.switch_hops == 5);
  CHECK(p2.link_latency == 2 * (cable::in_rack + cable::in_row + cable::across_hall));
}

TEST_CASE("ECMP hashes the QP: more QPs, more distinct paths; the seed changes them") {
  auto f = fat_tree(8);
  Router router(f, {});
  std::set<std::vector<ResourceIndex>> paths;
  for (std::uint32_t qp = 0; qp < 64; ++qp) {
    std::vector<ResourceIndex> p;
    router.route({0, 127, qp}, p);
    paths.insert(p);
  }
  CHECK(paths.size() >= 12);  // 16 equal-cost paths between pods
  CHECK(paths.size() <= 16);
  std::vector<ResourceIndex> a;
  std::vector<ResourceIndex> b;
  router.route({0, 127, 3}, a);
  router.route({0, 127, 3}, b);
  CHECK(a == b);  // deterministic
  int differ = 0;
  Router other(f, {RoutingMode::ecmp, 42});
  for (std::uint32_t qp = 0; qp < 16; ++qp) {
    std::vector<ResourceIndex> x;
    std::vector<ResourceIndex> y;
    router.route({0, 127, qp}, x);
    other.route({0, 127, qp}, y);
    differ += x != y ? 1 : 0;
  }
  CHECK(differ > 0);
}

TEST_CASE("Routing avoids dead links and names a flow left without a path") {
  auto f = fat_tree(4);
  Router healthy(f, {});
  std::vector<ResourceIndex> before;
  const FlowKey key{0, 15, 0};
  healthy.route(key, before);
  // Kill the first fabric link of that path (leaf up-link): the route moves.
  f.set_cable_health(before[1], 0.0f);
  Router router(f, {});
  std::vector<ResourceIndex> after;
  router.route(key, after);
  check_chain(f, key, after);
  CHECK(std::find(after.begin(), after.end(), before[1]) == after.end());
  // Kill every up-link of the source's leaf: no path.
  const NodeIndex leaf = f.link(before[0]).to;
  for (LinkIndex l : f.up_links(leaf)) f.set_cable_health(l, 0.0f);
  Router dead(f, {});
  std::vector<ResourceIndex> none;
  CHECK_CONTAINS(error_of([&] { dead.route(key, none); }), "flow 0 -> 15 (qp 0) has no live path");
  CHECK_CONTAINS(error_of([&] {
                   dead.route({0, 99, 0}, none);
                 }),
                 "names endpoint 99, but the fabric has 16");
  CHECK_CONTAINS(error_of([&] { dead.route({3, 3, 0}, none); }), "from an endpoint to itself");
  CHECK_CONTAINS(error_of([&] { f.set_cable_health(0, 1.5f); }), "must be in [0, 1]");
}

TEST_CASE("Randomized: route_while is route() until the first link it refuses") {
  // The reference is route() itself: a route that avoids every refused link comes back
  // whole and the same; one that meets one stops there, having shown `keep` exactly the
  // links before it, in order, and leaves the output as it found it. Where cables are
  // down, a `keep` that refuses nothing gives route()'s answer.
  std::mt19937_64 rng(5);
  ColossusParams small = params(1024);
  Fabric failed = colossus(small);
  REQUIRE(fail_switch_cables(failed, 0.03, 9) > 0);
  const Fabric fabrics[] = {fat_tree(4), fat_tree(8), colossus(small), hpn({2, 16}), failed};
  std::size_t refused = 0, whole = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const Fabric& f = fabrics[static_cast<std::size_t>(trial) % std::size(fabrics)];
    const bool links_down = &f == &fabrics[4];
    const auto n = static_cast<std::uint32_t>(f.endpoint_count());
    const FlowKey key{static_cast<NodeIndex>(rng() % n), static_cast<NodeIndex>(rng() % n),
                      static_cast<std::uint32_t>(rng() % 64)};
    if (key.src == key.dst) continue;
    CAPTURE(trial);
    Router reference(f, {RoutingMode::ecmp, 7});
    Router router(f, {RoutingMode::ecmp, 7});
    std::vector<ResourceIndex> expected;
    const PathInfo info = reference.route(key, expected);
    // Refuse each link with probability 1/8 (none where cables are down).
    const std::uint64_t salt = rng();
    const auto refuses = [&](LinkIndex l) { return !links_down && fmix64(salt ^ l) % 8 == 0; };
    std::vector<LinkIndex> shown;
    std::vector<ResourceIndex> out{11, 22};  // what the caller had there already
    PathInfo got;
    const bool kept = router.route_while(
        key, out,
        [&](LinkIndex l) {
          shown.push_back(l);
          return !refuses(l);
        },
        got);
    if (info.nvlink) {  // inside a host: no network link to show, nothing to refuse
      CHECK(kept);
      CHECK(shown.empty());
      CHECK(std::vector<ResourceIndex>(out.begin() + 2, out.end()) == expected);
      continue;
    }
    const auto first_refused = std::find_if(expected.begin(), expected.end(), refuses);
    if (first_refused == expected.end()) {
      ++whole;
      REQUIRE(kept);
      CHECK(std::vector<ResourceIndex>(out.begin() + 2, out.end()) == expected);
      CHECK(got.link_latency == info.link_latency);
      CHECK(got.switch_hops == info.switch_hops);
      // Where cables are down, `keep` also sees the links of branches ECMP backed out of.
      if (!links_down) CHECK(std::vector<ResourceIndex>(shown.begin(), shown.end()) == expected);
    } else {
      ++refused;
      CHECK_FALSE(kept);
      CHECK(out == std::vector<ResourceIndex>{11, 22});
      CHECK(std::vector<ResourceIndex>(shown.begin(), shown.end()) ==
            std::vector<ResourceIndex>(expected.begin(), first_refused + 1));
    }
  }
  CHECK(refused > 50);
  CHECK(whole > 50);
}

TEST_CASE("Pinned paths are checked link by link") {
  auto f = fat_tree(4);
  Router router(f, {});
  std::vector<ResourceIndex> p;
  router.route({0, 15, 0}, p);
  std::vector<LinkIndex> links(p.begin(), p.end());
  std::vector<ResourceIndex> out;
  const auto info = router.pinned({0, 15, 0}, links, out);
  CHECK(out == p);
  CHECK(info.switch_hops == 5);
  std::vector<LinkIndex> broken(links.begin(), links.end() - 1);
  CHECK_CONTAINS(error_of([&] { router.pinned({0, 15, 0}, broken, out); }), "pinned path ends at");
  std::swap(links[1], links[2]);
  CHECK_CONTAINS(error_of([&] { router.pinned({0, 15, 0}, links, out); }), "starts at");
}

TEST_CASE("Spraying routes through pools of all equal-cost links") {
  auto f = fat_tree(4);
  Router router(f, {RoutingMode::spray, 0});
  std::vector<ResourceIndex> p;
  router.route({0, 15, 0}, p);
  REQUIRE(p.size() == 6);
  CHECK_FALSE(router.is_pool(p.front()));
  CHECK_FALSE(router.is_pool(p.back()));
  // Leaf up (2 links), pod up (4 links), into the destination pod (4), into its leaf (2).
  const std::size_t sizes[] = {2, 4, 4, 2};
  for (int i = 0; i < 4; ++i) {
    REQUIRE(router.is_pool(p[static_cast<std::size_t>(i + 1)]));
    CHECK(router.pool_links(p[static_cast<std::size_t>(i + 1)]).size() == sizes[i]);
    CHECK(router.capacity(p[static_cast<std::size_t>(i + 1)]) ==
          doctest::Approx(static_cast<double>(sizes[i]) *
                          Bandwidth::gbps(400).in_bytes_per_second()));
  }
}
