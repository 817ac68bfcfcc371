// railcc/coll/order.hpp: rank orders as data: the rings algorithms run on.
//
// An order is a vector of ranks (position -> rank), computed from the backend's placement
// alone, as NCCL computes its rings from the topology graph (ncclTopoGraph) before any
// kernel runs. Schedule passes may later choose others; algorithms take them as given.
#pragma once

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

/// The default ring: ranks in placement order (host, local index), so the hops inside a
/// host are NVLink and consecutive hosts are joined once, as NCCL's rings are.
template <CollectiveBackend B>
std::vector<int> placement_ring(const B& b) {
  std::vector<int> ring(static_cast<std::size_t>(b.ranks()));
  std::iota(ring.begin(), ring.end(), 0);
  std::stable_sort(ring.begin(), ring.end(), [&](int x, int y) {
    const auto px = b.placement(x);
    const auto py = b.placement(y);
    return px.host != py.host ? px.host < py.host : px.local < py.local;
  });
  return ring;
}

/// The ring the ring-based algorithms (ring, chain) run on: the placement ring with every
/// second host's GPUs reversed, so each hop between hosts joins two GPUs of the same local
/// index, hence the same rail, under one leaf. NCCL keeps a ring on one NIC index from
/// node to node the same way (NCCL_CROSS_NIC=0). With an odd number of hosts the hop that
/// closes the ring crosses rails. Logarithmic algorithms keep the placement ring: their
/// partners at a distance of one host must stay on their rail.
///
/// `rotation` starts every host at local index `rotation` (mod its size): the ring then
/// leaves the first host on rail rotation - 1 and enters the next on it, and leaves that
/// one on rail `rotation`. Rings of different rotations cross hosts on different NICs.
template <CollectiveBackend B>
std::vector<int> rail_aligned_ring(const B& b, std::size_t rotation = 0) {
  std::vector<int> ring = placement_ring(b);
  std::size_t begin = 0;
  bool reverse = false;
  while (begin < ring.size()) {
    const std::uint32_t host = b.placement(ring[begin]).host;
    std::size_t end = begin;
    while (end < ring.size() && b.placement(ring[end]).host == host) ++end;
    const auto first = ring.begin() + static_cast<std::ptrdiff_t>(begin);
    const auto last = ring.begin() + static_cast<std::ptrdiff_t>(end);
    std::rotate(first, first + static_cast<std::ptrdiff_t>(rotation % (end - begin)), last);
    if (reverse) std::reverse(first, last);
    reverse = !reverse;
    begin = end;
  }
  return ring;
}

/// The rotation of channel `channel` of `channels` on hosts of `per_host` GPUs: spread
/// evenly over the local indices, so `channels` >= `per_host` channels enter and leave
/// every host through every NIC, as NCCL's channels do (each channel's ring or tree
/// crosses nodes on a different NIC).
inline std::size_t channel_rotation(std::size_t channel, std::size_t channels,
                                    std::size_t per_host) {
  if (per_host == 0 || channels == 0) return 0;
  return channels >= per_host ? channel % per_host : channel * per_host / channels;
}

/// The hosts in placement order, each with its ranks in local order.
template <CollectiveBackend B>
std::vector<std::vector<int>> placement_hosts(const B& b) {
  std::vector<std::vector<int>> hosts;
  for (int r : placement_ring(b)) {
    if (hosts.empty() || b.placement(hosts.back().front()).host != b.placement(r).host)
      hosts.emplace_back();
    hosts.back().push_back(r);
  }
  return hosts;
}

/// The GPUs of the largest host (the rotation base for channel_rotation).
template <CollectiveBackend B>
std::size_t largest_host(const B& b) {
  std::size_t best = 0;
  for (const auto& host : placement_hosts(b)) best = std::max(best, host.size());
  return best;
}

RAILCC_NAMESPACE_END
