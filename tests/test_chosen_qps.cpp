// How many QPs a connection gets when the chooser picks them (schedule/chosen_qps.hpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "railcc/fabric/clos.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/schedule/chosen_qps.hpp"

using namespace railcc;

TEST_CASE("The chooser gets one QP per NIC port, two where a leaf or tier is built short") {
  // Full bisection: one per port.
  for (std::uint32_t k : {4u, 8u}) {
    const ChosenQps c = qps_to_choose(fat_tree(k));
    CHECK(c.qps == 1);
    CHECK(c.short_leaves == 0);
    CHECK(c.short_tiers.empty());
    CHECK(c.why() == "one per NIC port");
  }
  ColossusParams small;
  small.gpus = 1024;
  CHECK(qps_to_choose(colossus(small)).qps == 1);

  // Llama 3's aggregation tier is 1:7 (its racks are 1:1).
  Llama3Params two_pods;
  two_pods.pods = 2;
  two_pods.racks_per_pod = 32;
  two_pods.aggregation_ports = 4;
  const ChosenQps l = qps_to_choose(llama3(two_pods));
  CHECK(l.qps == 2);
  CHECK(l.short_leaves == 0);
  CHECK(l.short_tiers == std::vector<int>{2});
  CHECK(l.why() ==
        "two per NIC port, as halves of flows pack where whole ones cannot: tier 2 built with "
        "less capacity up than down");

  // HPN: two ports a GPU; a full segment's ToR takes 128 x 200G ports under 60 x 400G
  // up-links (120 flows at full rate): short. A segment of 16 hosts is not.
  const ChosenQps h = qps_to_choose(hpn());
  CHECK(h.ports == 2);
  CHECK(h.short_leaves == 240);
  CHECK(h.qps == 4);
  const ChosenQps h16 = qps_to_choose(hpn({2, 16}));
  CHECK(h16.short_leaves == 0);
  CHECK(h16.qps == 2);

  // Cables down do not count: a leaf that lost one is routed around by the chooser.
  Fabric cut = colossus(small);
  for (NodeIndex v = 0; v < cut.node_count(); ++v)
    if (cut.kind(v) == FabricNodeKind::network_switch && cut.tier(v) == 1)
      cut.set_cable_health(cut.up_links(v).front(), 0.0f);
  CHECK(qps_to_choose(cut).qps == 1);
}

namespace {

/// What the rule says, from a Clos specification's numbers alone: a leaf is short where
/// up_ports x floor(up rate / NIC port rate) is under its ports below; tier t >= 2 where
/// its switches' up capacity is under what the tier below sends up (each of its switches'
/// up-links, counted from the specification).
struct Expected {
  std::size_t short_leaves = 0;
  std::vector<int> short_tiers;
};
Expected expected_from_spec(const ClosSpec& s, const Fabric& f) {
  Expected e;
  std::vector<double> switches(static_cast<std::size_t>(s.tiers()) + 1, 0);
  for (NodeIndex v = 0; v < f.node_count(); ++v) {
    if (f.kind(v) != FabricNodeKind::network_switch) continue;
    switches[static_cast<std::size_t>(f.tier(v))] += 1;
    if (f.tier(v) != 1 || s.up.empty()) continue;
    const double per_link =
        std::floor(s.up[0].bandwidth.in_bytes_per_second() / s.nic_port.in_bytes_per_second());
    if (s.up[0].up_ports * per_link < static_cast<double>(f.down_links(v).size())) ++e.short_leaves;
  }
  for (int t = 2; t < s.tiers(); ++t) {
    const ClosTierLinks& mine = s.up[static_cast<std::size_t>(t - 1)];
    const ClosTierLinks& below = s.up[static_cast<std::size_t>(t - 2)];
    const double up = switches[static_cast<std::size_t>(t)] * mine.up_ports *
                      mine.bandwidth.in_bytes_per_second();
    const double down = switches[static_cast<std::size_t>(t - 1)] * below.up_ports *
                        below.bandwidth.in_bytes_per_second();
    if (up < down * (1 - 1e-9)) e.short_tiers.push_back(t);
  }
  return e;
}

}  // namespace

TEST_CASE("Randomized: the QP count agrees with the rule computed from the Clos specification") {
  std::mt19937 rng(20261202);
  const auto pick = [&](std::vector<std::uint32_t> xs) {
    return xs[std::uniform_int_distribution<std::size_t>(0, xs.size() - 1)(rng)];
  };
  int built = 0, doubled = 0;
  for (int trial = 0; trial < 200; ++trial) {
    ClosSpec s;
    s.gpus_per_host = pick({1, 2, 4});
    s.rail_optimized = true;
    s.leaf_down = pick({2, 4, 8});
    s.nic_port = Bandwidth::gbps(pick({200, 400}));
    s.radix = 64;
    const bool three = pick({0, 1}) == 1;
    s.up.push_back({pick({1, 2, 3, 4, 6, 8, 10}), Bandwidth::gbps(pick({200, 400, 800})), {}});
    std::uint32_t leaves_per_block = 1;
    if (three) {
      leaves_per_block = pick({2, 3, 4});
      s.block_down.push_back(leaves_per_block);
      s.up.push_back({pick({1, 2, 4, 6}), Bandwidth::gbps(pick({200, 400, 800})), {}});
    }
    s.hosts = s.leaf_down * leaves_per_block * pick({1, 2, 3});
    Fabric f;
    try {
      f = build_clos(s);
    } catch (const InputError&) {
      continue;  // a radix the specification cannot meet: not this rule's concern
    }
    ++built;
    const Expected want = expected_from_spec(s, f);
    const ChosenQps got = qps_to_choose(f);
    INFO("trial " << trial << ": leaf_down " << s.leaf_down << ", up " << s.up[0].up_ports);
    CHECK(got.short_leaves == want.short_leaves);
    CHECK(got.short_tiers == want.short_tiers);
    const bool short_anywhere = want.short_leaves > 0 || !want.short_tiers.empty();
    CHECK(got.qps == (short_anywhere ? 2u : 1u));
    doubled += short_anywhere ? 1 : 0;
  }
  // The draws reach both answers.
  CHECK(built > 100);
  CHECK(doubled > 10);
  CHECK(doubled < built - 10);
}
