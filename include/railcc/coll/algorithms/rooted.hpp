// railcc/coll/algorithms/rooted.hpp: the rooted collectives: broadcast and reduce, pipelined
// chains along the rail-aligned ring.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "railcc/coll/algorithms/common.hpp"
#include "railcc/coll/backend.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/coll/phases.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// Broadcast along the ring from the root, pipelined in `pipeline_chunks` chunks.
template <CollectiveBackend B>
std::vector<Deps> broadcast(B& b, const CollectiveCall& call, Algorithm algo = Algorithm::chain) {
  using namespace detail::coll;
  check_call(b, call, "broadcast");
  check_applies(Collective::broadcast, algo);
  const std::size_t elem = size_of(b.reduction().type);
  const std::size_t p = static_cast<std::size_t>(b.ranks());
  auto ring = rail_aligned_ring(b);
  std::rotate(ring.begin(), std::find(ring.begin(), ring.end(), call.root),
              ring.end());  // root first
  const auto K = static_cast<std::size_t>(call.pipeline_chunks);
  std::vector<Deps> done(p);
  const auto root = static_cast<std::size_t>(call.root);
  if (call.input != call.output) {
    done[root] = {b.local(call.root, Region{call.output, 0, call.count * elem},
                          Region{call.input, 0, call.count * elem}, RecvAction::copy, {})};
  }
  for (std::size_t k = 0; k < K; ++k) {
    const auto [e0, e1] = part_range(call.count, K, k);
    OpId prev = 0;
    for (std::size_t h = 0; h + 1 < p; ++h) {
      // The root sends from its input; everyone else forwards what it received.
      const Region from{h == 0 ? call.input : call.output, e0 * elem, (e1 - e0) * elem};
      const Region to{call.output, e0 * elem, (e1 - e0) * elem};
      const Deps deps = h == 0 ? Deps{} : Deps{prev};
      prev = b.transfer(ring[h], from, ring[h + 1], to, RecvAction::copy, deps, 0);
      done[static_cast<std::size_t>(ring[h + 1])].push_back(prev);
      if (h > 0) done[static_cast<std::size_t>(ring[h])].push_back(prev);  // read before done
    }
  }
  return done;
}

/// Reduce to the root along the ring, pipelined: each rank adds its data to the partial
/// result on its way to the root.
template <CollectiveBackend B>
std::vector<Deps> reduce(B& b, const CollectiveCall& call, Algorithm algo = Algorithm::chain) {
  using namespace detail::coll;
  check_call(b, call, "reduce");
  check_applies(Collective::reduce, algo);
  const std::size_t elem = size_of(b.reduction().type);
  const std::size_t p = static_cast<std::size_t>(b.ranks());
  auto ring = rail_aligned_ring(b);
  // Root last: the chain runs root+1, root+2, ..., root.
  std::rotate(ring.begin(), std::find(ring.begin(), ring.end(), call.root) + 1, ring.end());
  const BufferId work = b.allocate(call.count * elem);
  const auto ready = copy_in(b, call.input, 0, work, 0, call.count * elem, false, 0);
  const auto K = static_cast<std::size_t>(call.pipeline_chunks);
  std::vector<Deps> done(p);
  Deps at_root = ready[static_cast<std::size_t>(call.root)];
  for (std::size_t k = 0; k < K; ++k) {
    const auto [e0, e1] = part_range(call.count, K, k);
    const Region r{work, e0 * elem, (e1 - e0) * elem};
    OpId prev = 0;
    for (std::size_t h = 0; h + 1 < p; ++h) {
      Deps deps = ready[static_cast<std::size_t>(ring[h + 1])];
      if (h == 0)
        deps.insert(deps.end(), ready[static_cast<std::size_t>(ring[0])].begin(),
                    ready[static_cast<std::size_t>(ring[0])].end());
      else
        deps.push_back(prev);
      prev = b.transfer(ring[h], r, ring[h + 1], r, RecvAction::reduce, deps, 0);
      done[static_cast<std::size_t>(ring[h])].push_back(prev);
    }
    if (p > 1) at_root.push_back(prev);
  }
  const Region whole{work, 0, call.count * elem};
  const OpId fin = b.finish(call.root, whole, at_root);
  const OpId out = b.local(call.root, Region{call.output, 0, call.count * elem}, whole,
                           RecvAction::copy, Deps{fin});
  done[static_cast<std::size_t>(call.root)] = {out};
  return done;
}

RAILCC_NAMESPACE_END
