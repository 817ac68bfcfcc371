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
template <CollectiveBackend B>
std::vector<int> rail_aligned_ring(const B& b) {
  std::vector<int> ring = placement_ring(b);
  std::size_t begin = 0;
  bool reverse = false;
  while (begin < ring.size()) {
    const std::uint32_t host = b.placement(ring[begin]).host;
    std::size_t end = begin;
    while (end < ring.size() && b.placement(ring[end]).host == host) ++end;
    if (reverse)
      std::reverse(ring.begin() + static_cast<std::ptrdiff_t>(begin),
                   ring.begin() + static_cast<std::ptrdiff_t>(end));
    reverse = !reverse;
    begin = end;
  }
  return ring;
}

RAILCC_NAMESPACE_END
