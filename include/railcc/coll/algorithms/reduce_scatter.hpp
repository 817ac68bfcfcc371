// railcc/coll/algorithms/reduce_scatter.hpp: reduce-scatter: ring and Bruck.
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

namespace detail::coll {

/// Bruck reduce-scatter, the all-gather's dual with the far distances first (as NCCL's
/// PAT orders them): position j starts holding its own contribution to every block
/// (block b at offset b - j mod p). At the step of distance h (the largest power of two
/// below p, then halving to 1) it sends its partial sums at offsets [h, h + min(h, p - h))
/// to position j + h, which reduces them into the same blocks (its offsets [0, ...)), and
/// keeps offsets [0, h). Every contribution to block b reaches position b exactly once:
/// the steps are the all-gather's broadcast tree run backwards. ceil(log2 p) steps
/// carrying (p - 1) blocks in all (docs/facts.md section 4). Blocks are indexed by rank
/// (`ring[j]`'s block), `block` bytes each, in `buffer`; returns per position the last
/// write of its own block.
template <CollectiveBackend B>
std::vector<Deps> bruck_reduce_scatter_phase(B& b, const std::vector<int>& ring, BufferId buffer,
                                             std::size_t block, const std::vector<Deps>& ready) {
  const std::size_t p = ring.size();
  std::vector<Deps> state = ready;
  const BlockRuns runs(ring);
  std::size_t h = 1;
  while (h * 2 < p) h *= 2;
  for (; p > 1 && h >= 1; h /= 2) {
    const std::size_t send = std::min(h, p - h);
    std::vector<Deps> next = state;
    for (std::size_t j = 0; j < p; ++j) {
      const std::size_t to = (j + h) % p;
      Deps deps = state[j];
      deps.insert(deps.end(), state[to].begin(), state[to].end());
      // Offsets h .. h + send - 1 of j are the blocks of positions j + h ...
      runs.for_each(j + h, send, buffer, block, [&](const Region& r) {
        const OpId op = b.transfer(ring[j], r, ring[to], r, RecvAction::reduce, deps, 0);
        next[j].push_back(op);   // read
        next[to].push_back(op);  // written
      });
    }
    state = std::move(next);
    if (h == 1) break;
  }
  return state;
}

}  // namespace detail::coll

template <CollectiveBackend B>
std::vector<Deps> reduce_scatter(B& b, const CollectiveCall& call,
                                 Algorithm algo = Algorithm::ring) {
  using namespace detail::coll;
  check_call(b, call, "reduce_scatter");
  check_applies(Collective::reduce_scatter, algo);
  const std::size_t elem = size_of(b.reduction().type);
  const std::size_t p = static_cast<std::size_t>(b.ranks());
  const std::size_t total = call.count * p;
  // Work on a copy: the input stays as it was (out of place) and chunk r ends on rank r.
  const BufferId work = b.allocate(total * elem);
  const auto ready = copy_in(b, call.input, 0, work, 0, total * elem, false, 0);
  Group g = algo == Algorithm::bruck ? Group(placement_ring(b)) : rail_ring_group(b, call.channels);
  const auto& ring = g.ranks;
  for (std::size_t j = 0; j < p; ++j) g.chunk_of[j] = static_cast<std::size_t>(ring[j]);
  const Span span{work, 0, total};
  const auto rs =
      algo == Algorithm::bruck
          ? bruck_reduce_scatter_phase(b, ring, work, call.count * elem, by_position(ready, ring))
          : ring_reduce_scatter_phase(b, g, span, call.channels, by_position(ready, ring));
  const auto fin = finish_phase(b, g, span, rs);
  std::vector<Deps> done(p);
  for (std::size_t j = 0; j < p; ++j) {
    const auto r = static_cast<std::size_t>(ring[j]);
    const Region from{work, r * call.count * elem, call.count * elem};
    const Region to{call.output, call.output == call.input ? r * call.count * elem : 0,
                    call.count * elem};
    done[r] = {b.local(ring[j], to, from, RecvAction::copy, fin[j])};
  }
  return done;
}

RAILCC_NAMESPACE_END
