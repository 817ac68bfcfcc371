// railcc/coll/algorithms/all_gather.hpp: all-gather: ring and Bruck.
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

template <CollectiveBackend B>
std::vector<Deps> all_gather(B& b, const CollectiveCall& call, Algorithm algo = Algorithm::ring) {
  using namespace detail::coll;
  check_call(b, call, "all_gather");
  check_applies(Collective::all_gather, algo);
  const std::size_t elem = size_of(b.reduction().type);
  const std::size_t p = static_cast<std::size_t>(b.ranks());
  std::vector<Deps> ready(p);
  if (call.input != call.output)
    ready = copy_in(b, call.input, 0, call.output, 0, call.count * elem, true, call.count * elem);
  if (algo == Algorithm::bruck) {
    // Bruck: after the steps so far, position j holds the blocks of positions j .. j +
    // have - 1 (mod p); it sends min(have, p - have) of them to position j - have, which
    // then holds twice as many. Blocks are indexed by rank, so a run of consecutive
    // positions whose ranks are also consecutive goes as one transfer. ceil(log2 p)
    // steps carrying (p - 1) blocks in all (docs/facts.md section 4).
    const auto ring = placement_ring(b);
    const std::size_t block = call.count * elem;
    std::vector<Deps> state = by_position(ready, ring);
    const BlockRuns runs(ring);
    for (std::size_t have = 1; have < p; have *= 2) {
      const std::size_t send = std::min(have, p - have);
      std::vector<Deps> next = state;
      for (std::size_t j = 0; j < p; ++j) {
        const std::size_t to = (j + p - have) % p;
        Deps deps = state[j];
        deps.insert(deps.end(), state[to].begin(), state[to].end());
        runs.for_each(j, send, call.output, block, [&](const Region& r) {
          const OpId op = b.transfer(ring[j], r, ring[to], r, RecvAction::copy, deps, 0);
          next[j].push_back(op);   // read
          next[to].push_back(op);  // written
        });
      }
      state = std::move(next);
    }
    std::vector<Deps> done(p);
    to_ranks(done, state, ring);
    return done;
  }
  Group g = rail_ring_group(b, call.channels);
  const auto& ring = g.ranks;
  for (std::size_t j = 0; j < p; ++j) g.chunk_of[j] = static_cast<std::size_t>(ring[j]);
  // Chunks of p n elements cut in p parts are exactly the n-element blocks.
  const Span span{call.output, 0, call.count * p};
  std::vector<Deps> done(p);
  to_ranks(done, ring_all_gather_phase(b, g, span, call.channels, by_position(ready, ring)), ring);
  return done;
}

RAILCC_NAMESPACE_END
