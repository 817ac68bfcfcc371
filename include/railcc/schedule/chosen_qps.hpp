// railcc/schedule/chosen_qps.hpp: how many QPs a connection between hosts gets when the QP
// chooser (qp_paths.hpp) picks each one's path, and why.
//
// One QP per NIC port is enough where every flow of a step can have a path of its own:
// the chooser then finds one (colossus: 0.936 of the bandwidth bound at 100,000 GPUs).
// Where a switch has fewer up-links than flows to send up (a leaf built oversubscribed, a
// tier built with less capacity up than down: Llama 3's 1:7 aggregation layer), some link
// must carry two whole flows and the step lasts twice as long there. Halves of flows pack
// tighter: with two QPs per connection, each carrying half its bytes, the worst link
// carries three halves where it carried two wholes. Pipelined chunks (chunks in flight)
// also put two steps' flows on the links at once, which the chooser weighs one step at a
// time; halves collide at half the cost there, the likelier gain on healthy llama3, whose
// large steps the chooser already gives a path per flow. Measured on llama3 at 24,576
// GPUs, 1 GiB all-reduce: 6,800 us with one QP per connection, 6,099 with two (spraying:
// 6,084); four gave 6,313: more flows to start, no better packing (docs/scheduling.md).
//
// What counts is how the fabric is built, not which cables are down: a leaf or tier that
// lost a few is one the chooser mostly routes around. On colossus at 100,000 GPUs with 1%
// of the switch cables down, two QPs per connection gave 5,963 us against one's 5,975 (0.2%)
// and took 17.6 s to simulate against 4.3; on llama3 the short aggregation tier doubles
// them anyway. Where cables are down the chooser shares a connection's bytes unequally
// among its QPs (qp_paths.hpp); docs/scheduling.md has what is left of llama3's loss.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "railcc/config.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"

RAILCC_NAMESPACE_BEGIN

/// QPs per connection for the chooser, and what they came from.
struct ChosenQps {
  std::uint32_t qps = 1;
  std::uint32_t ports = 1;         ///< the most network ports of a GPU
  std::size_t short_leaves = 0;    ///< leaves built with fewer up-links than flows from below
  std::vector<int> short_tiers{};  ///< tiers above the leaves built with less up than down
  /// "one per NIC port", or "two per NIC port, as halves of flows pack where whole ones
  /// cannot: 240 leaves built with fewer up-links than flows from below, ...".
  [[nodiscard]] std::string why() const {
    if (short_leaves == 0 && short_tiers.empty()) return "one per NIC port";
    std::string parts;
    if (short_leaves > 0)
      parts =
          std::to_string(short_leaves) + " leaves built with fewer up-links than flows from below";
    for (int t : short_tiers)
      parts += (parts.empty() ? "" : ", ") + std::string("tier ") + std::to_string(t) +
               " built with less capacity up than down";
    return "two per NIC port, as halves of flows pack where whole ones cannot: " + parts;
  }
};

/// Whether leaf s is built without an up-link for each GPU port below it: an up-link
/// takes floor(its rate / the fastest port's) flows at full rate. Cables down do not count
/// (the header comment says why).
inline bool leaf_short_of_up_links(const Fabric& f, NodeIndex s) {
  double fastest = 0;
  for (LinkIndex l : f.down_links(s))
    fastest = std::max(fastest, f.link(l).capacity.in_bytes_per_second());
  if (f.down_links(s).empty() || !(fastest > 0)) return false;
  double slots = 0;
  for (LinkIndex l : f.up_links(s))
    slots += std::floor(f.link(l).capacity.in_bytes_per_second() / fastest);
  return slots < static_cast<double>(f.down_links(s).size());
}

/// QPs per connection for fabric `f`: one per NIC port, twice that where a leaf or a tier
/// is short (the header comment says why). A fabric of one tier has nothing to choose.
inline ChosenQps qps_to_choose(const Fabric& f) {
  ChosenQps c;
  std::size_t ports = 1;
  std::vector<double> up(static_cast<std::size_t>(f.tiers()) + 1, 0);
  std::vector<double> down(up.size(), 0);
  for (NodeIndex v = 0; v < f.node_count(); ++v) {
    if (f.kind(v) == FabricNodeKind::endpoint) {
      ports = std::max(ports, network_ports(f, v));
      continue;
    }
    if (f.kind(v) != FabricNodeKind::network_switch || f.up_links(v).empty()) continue;
    const auto t = static_cast<std::size_t>(f.tier(v));
    if (t == 1) {
      c.short_leaves += leaf_short_of_up_links(f, v) ? 1 : 0;
      continue;
    }
    for (LinkIndex l : f.up_links(v)) up[t] += f.link(l).capacity.in_bytes_per_second();
    for (LinkIndex l : f.down_links(v)) down[t] += f.link(l).capacity.in_bytes_per_second();
  }
  for (std::size_t t = 2; t < up.size(); ++t)
    if (up[t] < down[t] * (1 - 1e-9)) c.short_tiers.push_back(static_cast<int>(t));
  c.ports = static_cast<std::uint32_t>(ports);
  c.qps = c.ports * (c.short_leaves > 0 || !c.short_tiers.empty() ? 2 : 1);
  return c;
}

RAILCC_NAMESPACE_END
