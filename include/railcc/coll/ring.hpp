// railcc/coll/ring.hpp: ring reduce-scatter, all-gather and all-reduce, with channels.
//
// p ranks in a ring (by default in placement order: host, then local index, which puts
// the NVLink hops inside hosts and one network hop between consecutive hosts, as NCCL's
// rings do). The buffer is cut into p chunks of whole elements (chunk i is elements
// [i n / p, (i+1) n / p), so counts that do not divide evenly work), and each chunk into
// `channels` slices; every channel runs its own ring on its slices with its own QP, as
// NCCL runs several rings in parallel.
//  - reduce-scatter: p - 1 steps; at step s position j sends chunk j - s - 1 to j + 1,
//    which reduces it in; position j ends with chunk j reduced over all ranks;
//  - all-gather: p - 1 steps; at step s position j sends chunk j - s to j + 1, which
//    copies it;
//  - all-reduce: reduce-scatter, the reduction's finish (avg's division) on each rank's
//    own chunk, then all-gather. 2 (p - 1) steps of n / p bytes: bandwidth-optimal,
//    latency linear in p (FACTS.md section 4).
// Every dependency is explicit, including the write-after-read one in the all-gather (a
// chunk is overwritten only after the reduce-scatter has sent it on), so the schedule is
// correct on any backend that honours dependencies. Removing a needed one shows up as
// wrong data in the simulated backend's data mode (tested). Cost: O(p^2 channels) operations,
// fine for data mode; rings over 100k ranks need the compact step descriptions the
// timing mode will add.
#pragma once

#include <numeric>
#include <string>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// Arguments of one collective call on symmetric buffers.
struct CollectiveCall {
  std::size_t count =
      0;  ///< elements per rank (all-reduce: the vector; all-gather: each rank's share)
  BufferId input = 0;
  BufferId output = 0;  ///< == input: in place
  int channels = 1;
};

/// Elements [first, last) of part i when `count` elements are cut into `parts` parts.
constexpr std::pair<std::size_t, std::size_t> part_range(std::size_t count, std::size_t parts,
                                                         std::size_t i) {
  return {count * i / parts, count * (i + 1) / parts};
}

/// The default ring: ranks in placement order (host, local index).
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

namespace detail::ring {

/// Region of slice `channel` of chunk `chunk` (p chunks) of a buffer of `count` elements.
inline Region slice(BufferId buffer, std::size_t count, std::size_t elem, std::size_t p,
                    std::size_t chunk, std::size_t channels, std::size_t channel) {
  const auto [c0, c1] = part_range(count, p, chunk);
  const auto [s0, s1] = part_range(c1 - c0, channels, channel);
  return {buffer, (c0 + s0) * elem, (s1 - s0) * elem};
}

inline std::size_t mod(long long x, std::size_t p) {
  const auto m = static_cast<long long>(p);
  return static_cast<std::size_t>(((x % m) + m) % m);
}

}  // namespace detail::ring

/// Ring all-reduce of `call.count` elements of the backend's reduction type. Returns, per
/// rank, the operations after which its output is complete.
template <CollectiveBackend B>
std::vector<Deps> ring_all_reduce(B& b, const CollectiveCall& call, std::vector<int> ring = {}) {
  using detail::ring::mod;
  using detail::ring::slice;
  const int ranks = b.ranks();
  if (ring.empty()) ring = placement_ring(b);
  if (ring.size() != static_cast<std::size_t>(ranks))
    throw InputError("ring all-reduce: the ring must list every rank once");
  if (call.channels < 1) throw InputError("ring all-reduce: channels must be at least 1");
  const std::size_t p = ring.size();
  const std::size_t elem = size_of(b.reduction().type);
  const auto C = static_cast<std::size_t>(call.channels);
  const BufferId buf = call.output;

  // Out of place: each rank first copies its input into its output.
  std::vector<Deps> ready(p);
  if (call.input != call.output) {
    for (std::size_t j = 0; j < p; ++j) {
      const Region in{call.input, 0, call.count * elem};
      const Region out{call.output, 0, call.count * elem};
      ready[j] = {b.local(ring[j], out, in, RecvAction::copy, {})};
    }
  }
  std::vector<Deps> done(p);
  if (p == 1) {
    const Region all{buf, 0, call.count * elem};
    done[0] = {b.finish(ring[0], all, ready[0])};
    return done;
  }
  for (std::size_t ch = 0; ch < C; ++ch) {
    // rs[s][j]: reduce-scatter transfer of step s from position j.
    std::vector<std::vector<OpId>> rs(p - 1, std::vector<OpId>(p));
    for (std::size_t s = 0; s + 1 < p; ++s) {
      for (std::size_t j = 0; j < p; ++j) {
        const std::size_t next = (j + 1) % p;
        const std::size_t chunk = static_cast<std::size_t>(
            ring[mod(static_cast<long long>(j) - static_cast<long long>(s) - 1, p)]);
        Deps deps = ready[next];  // the destination's initial copy precedes the reduction
        if (s == 0) {
          deps.insert(deps.end(), ready[j].begin(), ready[j].end());
        } else {
          deps.push_back(rs[s - 1][mod(static_cast<long long>(j) - 1, p)]);  // chunk arrived at j
        }
        const Region r = slice(buf, call.count, elem, p, chunk, C, ch);
        rs[s][j] = b.transfer(ring[j], r, ring[next], r, RecvAction::reduce, deps,
                              static_cast<std::uint32_t>(ch));
      }
    }
    // Finish each rank's own chunk (avg), then all-gather.
    std::vector<OpId> fin(p);
    for (std::size_t j = 0; j < p; ++j) {
      const Region own = slice(buf, call.count, elem, p, static_cast<std::size_t>(ring[j]), C, ch);
      const OpId last = rs[p - 2][mod(static_cast<long long>(j) - 1, p)];
      fin[j] = b.finish(ring[j], own, Deps{last});
    }
    std::vector<OpId> prev(p);
    for (std::size_t s = 0; s + 1 < p; ++s) {
      std::vector<OpId> cur(p);
      for (std::size_t j = 0; j < p; ++j) {
        const std::size_t next = (j + 1) % p;
        const std::size_t chunk = static_cast<std::size_t>(
            ring[mod(static_cast<long long>(j) - static_cast<long long>(s), p)]);
        Deps deps{s == 0 ? fin[j] : prev[mod(static_cast<long long>(j) - 1, p)]};
        // Overwrite the chunk at `next` only after next's reduce-scatter sent it on (step s
        // there read it). The chain of steps implies it too; stated, it survives changes.
        deps.push_back(rs[s][next]);
        const Region r = slice(buf, call.count, elem, p, chunk, C, ch);
        cur[j] = b.transfer(ring[j], r, ring[next], r, RecvAction::copy, deps,
                            static_cast<std::uint32_t>(ch));
      }
      prev = cur;
    }
    for (std::size_t j = 0; j < p; ++j) {
      // Position j's last write is the all-gather step p-2 from j-1; its own chunk is final at
      // fin[j].
      done[j].push_back(prev[mod(static_cast<long long>(j) - 1, p)]);
      done[j].push_back(fin[j]);
    }
  }
  return done;
}

RAILCC_NAMESPACE_END
