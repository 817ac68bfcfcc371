// railcc/coll/algorithms/common.hpp: what several algorithm families share: argument checks,
// the input copy, moving per-rank lists to ring positions and back, the rings of the channels,
// a ring all-reduce over a group, and runs of rank-indexed blocks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/capabilities.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/coll/phases.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::coll {

template <CollectiveBackend B>
void check_call(const B& b, const CollectiveCall& c, const char* what) {
  if (c.channels < 1) throw InputError(std::string(what) + ": channels must be at least 1");
  if (c.pipeline_chunks < 1)
    throw InputError(std::string(what) + ": pipeline_chunks must be at least 1");
  if (c.phase_chunks < 0)
    throw InputError(std::string(what) + ": phase_chunks must be 0 (automatic) or more");
  if (c.chunks_in_flight < 0)
    throw InputError(std::string(what) + ": chunks_in_flight must be 0 (automatic) or more");
  if (c.root < 0 || c.root >= b.ranks()) {
    throw InputError(std::string(what) + ": root " + std::to_string(c.root) + " is not a rank");
  }
}

/// Per rank: out-of-place copy of `bytes` from input to output (at the given offsets), as
/// an input copy (capabilities.hpp) that GPU collectives fold into their first step.
template <CollectiveBackend B>
std::vector<Deps> copy_in(B& b, BufferId from, std::size_t from_offset, BufferId to,
                          std::size_t to_offset, std::size_t bytes, bool per_rank_offset,
                          std::size_t stride) {
  std::vector<Deps> ready(static_cast<std::size_t>(b.ranks()));
  for (int r = 0; r < b.ranks(); ++r) {
    const std::size_t shift = per_rank_offset ? static_cast<std::size_t>(r) * stride : 0;
    ready[static_cast<std::size_t>(r)] = {copy_input(b, r, Region{to, to_offset + shift, bytes},
                                                     Region{from, from_offset, bytes}, {})};
  }
  return ready;
}

template <class T>
std::vector<T> by_position(const std::vector<T>& per_rank, const std::vector<int>& order) {
  std::vector<T> out;
  out.reserve(order.size());
  for (int r : order) out.push_back(per_rank[static_cast<std::size_t>(r)]);
  return out;
}

template <class T>
void to_ranks(std::vector<T>& per_rank, const std::vector<T>& per_position,
              const std::vector<int>& order) {
  for (std::size_t j = 0; j < order.size(); ++j)
    per_rank[static_cast<std::size_t>(order[j])] = per_position[j];
}

/// The group the ring algorithms run on over every rank: channel 0's rail-aligned ring
/// gives the positions, and each channel runs the ring of its own rotation
/// (channel_rotation), so `channels` channels leave and enter every host through
/// min(channels, GPUs per host) NICs. Only distinct rings are stored.
template <CollectiveBackend B>
Group rail_ring_group(const B& b, int channels) {
  Group g(rail_aligned_ring(b));
  const std::size_t p = g.size();
  std::vector<std::uint32_t> position(p);
  for (std::size_t j = 0; j < p; ++j)
    position[static_cast<std::size_t>(g.ranks[j])] = static_cast<std::uint32_t>(j);
  const auto C = static_cast<std::size_t>(std::max(1, channels));
  const std::size_t per_host = largest_host(b);
  const std::size_t distinct = std::min(C, std::max<std::size_t>(1, per_host));
  if (distinct == 1) return g;
  for (std::size_t c = 0; c < distinct; ++c) {
    const auto ring = rail_aligned_ring(b, channel_rotation(c, C, per_host));
    auto& at = g.channel_rings.emplace_back(p);
    for (std::size_t i = 0; i < p; ++i) at[i] = position[static_cast<std::size_t>(ring[i])];
  }
  return g;
}

/// Ring all-reduce of a group's span: reduce-scatter, finish, all-gather.
template <CollectiveBackend B>
std::vector<Deps> ring_all_reduce_group(B& b, const Group& g, const Span& span, int channels,
                                        const std::vector<Deps>& ready) {
  if (g.size() == 1) return finish_phase(b, g, span, ready);
  auto rs = ring_reduce_scatter_phase(b, g, span, channels, ready);
  auto fin = finish_phase(b, g, span, rs);
  return ring_all_gather_phase(b, g, span, channels, fin);
}

/// Ring all-reduce of a span over a group: reduce-scatter, finish, all-gather.
template <CollectiveBackend B>
std::vector<Deps> ring_all_reduce_group(B& b, const std::vector<int>& ranks, const Span& span,
                                        int channels, const std::vector<Deps>& ready) {
  return ring_all_reduce_group(b, Group(ranks), span, channels, ready);
}

/// Blocks indexed by rank, visited by position along a ring: which positions start runs
/// of consecutive ranks, so Bruck's steps move each run as one transfer.
class BlockRuns {
 public:
  /// `ring[j]`: the rank at position j.
  explicit BlockRuns(const std::vector<int>& ring) : ring_(ring), run_(ring.size(), 1) {
    // run_[j]: how many positions from j on hold consecutive ranks (found from the back;
    // a whole cycle of them cannot be: ranks are distinct).
    const std::size_t p = ring.size();
    for (std::size_t k = 2 * p; k-- > 0;) {
      const std::size_t j = k % p;
      const std::size_t n = (j + 1) % p;
      run_[j] = p > 1 && ring[n] == ring[j] + 1 ? std::min(p, run_[n] + 1) : 1;
    }
  }

  /// Calls fn(region) for the blocks of positions first, first + 1, ..., first + count - 1
  /// (mod p) of a buffer whose blocks are `block` bytes each, one region per run of
  /// consecutive ranks. Costs the runs, not the blocks (a step of Bruck over 100,000
  /// ranks sends up to 50,000 blocks from each rank, in a few runs).
  template <class Fn>
  void for_each(std::size_t first, std::size_t count, BufferId buffer, std::size_t block,
                Fn fn) const {
    const std::size_t p = ring_.size();
    std::size_t k = 0;
    while (k < count) {
      const std::size_t at = (first + k) % p;
      const std::size_t run = std::min(run_[at], count - k);
      fn(Region{buffer, static_cast<std::size_t>(ring_[at]) * block, run * block});
      k += run;
    }
  }

 private:
  const std::vector<int>& ring_;
  std::vector<std::size_t> run_;
};

}  // namespace detail::coll

RAILCC_NAMESPACE_END
