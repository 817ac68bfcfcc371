// railcc/schedule/qp_striping.hpp: how many QPs a connection stripes over when the
// switches' ECMP hash is not known, so no QP can be chosen (qp_paths.hpp needs the hash).
//
// Striping splits each connection's bytes over k QPs; the hash places each piece on its
// own, and more pieces even out the links' loads. A synchronous step finishes with its most
// loaded link: on 64 equal paths the mean over the maximum load is about 0.26 with one QP
// per connection, 0.43 with 4 and 0.62 with 16 (docs/facts.md, section 5). Each QP is also
// a queue pair on both NICs, a message stream to post, and a flow to simulate, so k stops
// at 16, the QPs per GPU pair Llama 3's RoCE fabric used (docs/facts.md, section 1), and
// below that at the most equal-cost links a flow can hash onto as it leaves its leaf:
// more pieces than first hops spread no further there. A GPU with several NIC ports
// (HPN's dual plane) gets at least one QP per port, or the hash could leave a port idle.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "railcc/config.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/routing.hpp"

RAILCC_NAMESPACE_BEGIN

/// The most QPs a connection stripes over without the hash (Llama 3's 16 per GPU pair).
inline constexpr std::uint32_t max_striping_qps = 16;

/// QPs per connection for an unknown hash, and what they came from.
struct StripingChoice {
  std::uint32_t qps = 1;
  std::uint32_t first_hops = 0;  ///< the most live up-links of a tier-1 switch
  std::uint32_t ports = 1;       ///< the most network ports of a GPU
  /// "min(64 first hops out of a leaf, 16) = 16 QPs" and the like.
  [[nodiscard]] std::string why() const {
    std::string s = "min(" + std::to_string(first_hops) + " first hops out of a leaf, " +
                    std::to_string(max_striping_qps) + ")";
    if (ports > 1) s = "max(" + s + ", " + std::to_string(ports) + " NIC ports)";
    return s + " = " + std::to_string(qps) + (qps == 1 ? " QP" : " QPs");
  }
};

/// k for fabric `f`: see the header comment. A fabric of one tier (no up-links above its
/// leaves) has no choice to spread over: one QP per port.
inline StripingChoice blind_striping(const Fabric& f) {
  StripingChoice c;
  std::size_t ports = 1, hops = 0;
  for (NodeIndex v = 0; v < f.node_count(); ++v) {
    if (f.kind(v) == FabricNodeKind::endpoint) {
      ports = std::max(ports, network_ports(f, v));
    } else if (f.kind(v) == FabricNodeKind::network_switch && f.tier(v) == 1) {
      std::size_t live = 0;
      for (LinkIndex l : f.up_links(v)) live += f.link(l).alive() ? 1 : 0;
      hops = std::max(hops, live);
    }
  }
  c.ports = static_cast<std::uint32_t>(ports);
  c.first_hops = static_cast<std::uint32_t>(hops);
  c.qps = std::max<std::uint32_t>(std::min<std::uint32_t>(c.first_hops, max_striping_qps), c.ports);
  return c;
}

RAILCC_NAMESPACE_END
