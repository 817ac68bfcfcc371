// railcc/coll/phases.hpp: the building blocks algorithms are made of.
//
// A phase runs over a *group*: positions 0..q-1, each a rank, operating on a span of
// `count` elements of one buffer (the same offset on every rank). The span is cut into q
// chunks of whole elements (chunk i: elements [i n / q, (i+1) n / q), so any count
// works), and `chunk_of[j]` says which chunk position j owns. Each phase takes, per
// position, the operations that must precede it there, and returns, per position, the
// operations after which its part of the span is final. Hierarchical algorithms chain
// phases over different groups (the GPUs of a host, the GPUs of a rail).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/capabilities.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// Elements [first, last) of part i when `count` elements are cut into `parts` parts.
constexpr std::pair<std::size_t, std::size_t> part_range(std::size_t count, std::size_t parts,
                                                         std::size_t i) {
  return {count * i / parts, count * (i + 1) / parts};
}

/// Part i of `count` elements cut into `parts` parts of the same whole number of grains
/// but the last, which also takes what is left (fewer than `parts` grains and a partial
/// one), where each part can hold one grain; otherwise part_range. A pipeline's chunks so
/// split evenly over the ranks that share them (grain: ranks x channels), and every chunk
/// but the last has the same size, as NCCL's chunks do. Shares that differ by a few bytes,
/// between ranks or between chunks, let transfers that overlap drift apart, and the
/// pipeline then settles into another overlap than its sizes call for (16 bytes more of
/// 128 MiB over 3 hosts in 32 chunks: 16% slower; chunks 8 elements apart: 4-7% either
/// way, docs/collectives.md).
constexpr std::pair<std::size_t, std::size_t> aligned_part_range(std::size_t count,
                                                                 std::size_t parts, std::size_t i,
                                                                 std::size_t grain) {
  const std::size_t units = grain == 0 ? 0 : count / grain;
  if (units < parts) return part_range(count, parts, i);
  const std::size_t each = grain * (units / parts);
  return {each * i, i + 1 == parts ? count : each * (i + 1)};
}

/// `count` elements at element offset `first` of `buffer`.
struct Span {
  BufferId buffer = 0;
  std::size_t first = 0;
  std::size_t count = 0;
};

struct Group {
  std::vector<int> ranks;             ///< position -> rank
  std::vector<std::size_t> chunk_of;  ///< position -> the chunk it owns (default: its position)
  /// The ring each channel of a ring pass runs, as positions in ring order: channel c
  /// runs channel_rings[c % size]. Empty: every channel runs positions 0, 1, ..., q - 1.
  /// Every channel's ring holds every position once; a chunk is owned by the same
  /// position on every channel, so what a phase returns per position means the same.
  std::vector<std::vector<std::uint32_t>> channel_rings;

  explicit Group(std::vector<int> r) : ranks(std::move(r)), chunk_of(ranks.size()) {
    std::iota(chunk_of.begin(), chunk_of.end(), std::size_t{0});
  }
  [[nodiscard]] std::size_t size() const { return ranks.size(); }
};

namespace detail::phase {

inline std::size_t mod(long long x, std::size_t p) {
  const auto m = static_cast<long long>(p);
  return static_cast<std::size_t>(((x % m) + m) % m);
}

/// Region of slice `channel` (of `channels`) of chunk `chunk` (of `parts`) of a span.
inline Region slice(const Span& s, std::size_t elem, std::size_t parts, std::size_t chunk,
                    std::size_t channels, std::size_t channel) {
  const auto [c0, c1] = part_range(s.count, parts, chunk);
  const auto [s0, s1] = part_range(c1 - c0, channels, channel);
  return {s.buffer, (s.first + c0 + s0) * elem, (s1 - s0) * elem};
}

/// Every position's dependencies in one list (for operations that touch every position).
inline Deps all_of(const std::vector<Deps>& per_position) {
  Deps all;
  for (const auto& d : per_position) all.insert(all.end(), d.begin(), d.end());
  return all;
}

inline Region whole(const Span& s, std::size_t elem) {
  return {s.buffer, s.first * elem, s.count * elem};
}

/// Chunks a ring connection holds at once: NCCL's NCCL_STEPS, 8 slots per connection
/// buffer (src/include/device.h) [pub]. A sender may run this many chunks ahead of the
/// receiver, and no more.
inline constexpr std::size_t connection_slots = 8;

/// After step s of a ring's q - 1 steps (all of one shape: each position sends one chunk
/// to the next): on a backend that repeats steps, the step just posted stands for all
/// q - 1 and the caller stops posting.
template <CollectiveBackend B>
bool repeat_rest(B& b, const std::vector<OpId>& step, std::size_t s, std::size_t q) {
  if constexpr (StepRepeatingBackend<B>) {
    if (s != 0 || !b.repeats_steps() || q < 3) return false;
    b.repeat_step(*std::min_element(step.begin(), step.end()), static_cast<std::uint32_t>(q - 2));
    return true;
  } else {
    (void)b, (void)step, (void)s, (void)q;
    return false;
  }
}

/// The q - 1 steps of a ring pass, on every channel: at step s ring position j sends
/// chunk chunk_of[j - s - 1] (reduce-scatter, `reduce`) or chunk_of[j - s] (all-gather) to
/// j + 1, which reduces it in or copies it (ring positions are the channel's ring, see
/// Group::channel_rings). A reduction waits at every step for the destination's `ready`
/// (its data is in place before it is reduced into); a copy only at the first. Returns, per
/// position, the operations after which every write into it (and, for an all-gather, every read of
/// it) is done.
template <CollectiveBackend B>
std::vector<Deps> ring_pass(B& b, const Group& g, const Span& span, int channels,
                            const std::vector<Deps>& ready, bool reduce) {
  const std::size_t q = g.size();
  const std::size_t elem = size_of(b.reduction().type);
  const auto C = static_cast<std::size_t>(channels);
  const long long shift = reduce ? 1 : 0;
  std::vector<Deps> done(q);
  std::vector<std::uint32_t> identity(q);
  std::iota(identity.begin(), identity.end(), std::uint32_t{0});
  for (std::size_t ch = 0; ch < C; ++ch) {
    // Ring position i is group position at[i]; `ready`, `done` and chunk_of stay indexed
    // by group position.
    const auto& at =
        g.channel_rings.empty() ? identity : g.channel_rings[ch % g.channel_rings.size()];
    if (at.size() != q) {
      throw LogicError("ring pass: channel " + std::to_string(ch) + "'s ring has " +
                       std::to_string(at.size()) + " positions, the group " + std::to_string(q));
    }
    std::vector<OpId> prev(q);
    // Per position: its last connection_slots transfers to the next, by step mod slots.
    std::vector<std::array<OpId, connection_slots>> in_flight(q);
    std::size_t posted_steps = 0;
    for (std::size_t s = 0; s + 1 < q; ++s) {
      std::vector<OpId> cur(q);
      for (std::size_t j = 0; j < q; ++j) {
        const std::size_t here = at[j];
        const std::size_t next = at[(j + 1) % q];
        const std::size_t chunk =
            g.chunk_of[at[mod(static_cast<long long>(j) - static_cast<long long>(s) - shift, q)]];
        const OpId arrived = prev[mod(static_cast<long long>(j) - 1, q)];  // the chunk at j
        Deps deps;
        if (reduce) {
          deps = ready[next];
          if (s == 0) {
            deps.insert(deps.end(), ready[here].begin(), ready[here].end());
          } else {
            deps.push_back(arrived);
          }
        } else if (s == 0) {
          deps = ready[here];
          deps.insert(deps.end(), ready[next].begin(), ready[next].end());
        } else {
          deps = {arrived};
        }
        // A connection has connection_slots slots: the chunk of step s waits for the
        // chunk of step s - slots to be delivered. So the last `slots` writes into a
        // position (returned below) stand for every write into it.
        if (s >= connection_slots) deps.push_back(in_flight[j][s % connection_slots]);
        const Region r = slice(span, elem, q, chunk, C, ch);
        cur[j] = b.transfer(g.ranks[here], r, g.ranks[next], r,
                            reduce ? RecvAction::reduce : RecvAction::copy, deps,
                            static_cast<std::uint32_t>(ch));
      }
      for (std::size_t j = 0; j < q; ++j) in_flight[j][s % connection_slots] = cur[j];
      ++posted_steps;
      prev = cur;
      if (repeat_rest(b, cur, s, q)) break;
    }
    // Every write into j: the last slots' worth of transfers from j - 1. An all-gather
    // also returns every read of j (its own last transfers to j + 1): the phase after it
    // may overwrite what j sent. A reduce-scatter's reads of j are of chunks the
    // all-gather that follows rewrites only after j + 1 has them (they are writes into
    // j + 1, which its `done` covers).
    const std::size_t last = std::min(posted_steps, connection_slots);
    for (std::size_t j = 0; j < q; ++j) {
      const auto& from_prev = in_flight[mod(static_cast<long long>(j) - 1, q)];
      for (std::size_t k = 0; k < last; ++k)
        done[at[j]].push_back(from_prev[(posted_steps - 1 - k) % connection_slots]);
      if (reduce) continue;
      for (std::size_t k = 0; k < last; ++k)
        done[at[j]].push_back(in_flight[j][(posted_steps - 1 - k) % connection_slots]);
    }
  }
  return done;
}

}  // namespace detail::phase

/// Ring reduce-scatter over a group: q - 1 steps; at step s position j sends chunk
/// chunk_of[j - s - 1] to j + 1, which reduces it in. Position j ends owning chunk_of[j]
/// reduced over the group (not finished). Returns, per position, the last writes of its
/// chunk.
template <CollectiveBackend B>
std::vector<Deps> ring_reduce_scatter_phase(B& b, const Group& g, const Span& span, int channels,
                                            const std::vector<Deps>& ready) {
  if (g.size() == 1) return ready;
  return detail::phase::ring_pass(b, g, span, channels, ready, true);
}

/// Ring all-gather over a group: q - 1 steps; at step s position j sends chunk
/// chunk_of[j - s] to j + 1, which copies it. `ready[j]` must cover position j's own
/// chunk and (for write-after-read) every earlier reader of the chunks it will receive.
template <CollectiveBackend B>
std::vector<Deps> ring_all_gather_phase(B& b, const Group& g, const Span& span, int channels,
                                        const std::vector<Deps>& ready) {
  if (g.size() == 1) return ready;
  auto done = detail::phase::ring_pass(b, g, span, channels, ready, false);
  for (std::size_t j = 0; j < g.size(); ++j)
    done[j].insert(done[j].end(), ready[j].begin(), ready[j].end());
  return done;
}

/// NVLS reduce-scatter over a group on one NVSwitch: position j asks the switch for chunk
/// chunk_of[j] of `from`, reduced over the group, and gets it in the same chunk of `to`
/// (not finished). All positions at once, after every position's `ready` (the switch
/// reads everyone). Returns, per position, every operation of the phase: its chunk's
/// write and the reads of its data.
template <SwitchReduceBackend B>
std::vector<Deps> nvls_reduce_scatter_phase(B& b, const Group& g, const Span& from, const Span& to,
                                            const std::vector<Deps>& ready) {
  using namespace detail::phase;
  const std::size_t q = g.size();
  const std::size_t elem = size_of(b.reduction().type);
  const Deps all_ready = all_of(ready);
  Deps ops;
  for (std::size_t j = 0; j < q; ++j) {
    ops.push_back(b.switch_reduce(g.ranks, slice(from, elem, q, g.chunk_of[j], 1, 0), g.ranks[j],
                                  slice(to, elem, q, g.chunk_of[j], 1, 0), all_ready));
  }
  return std::vector<Deps>(q, ops);
}

/// NVLS all-gather over a group on one NVSwitch: position j multicasts chunk chunk_of[j]
/// of the span to the whole group. Each multicast writes on every position, so it waits
/// for every position's `ready` (which must cover the earlier readers of what it
/// overwrites, as for the ring all-gather).
template <SwitchReduceBackend B>
std::vector<Deps> nvls_all_gather_phase(B& b, const Group& g, const Span& span,
                                        const std::vector<Deps>& ready) {
  using namespace detail::phase;
  const std::size_t q = g.size();
  const std::size_t elem = size_of(b.reduction().type);
  const Deps all_ready = all_of(ready);
  Deps ops;
  for (std::size_t j = 0; j < q; ++j) {
    const Region r = slice(span, elem, q, g.chunk_of[j], 1, 0);
    ops.push_back(b.multicast(g.ranks[j], r, g.ranks, r, all_ready));
  }
  std::vector<Deps> done(q, ops);
  for (std::size_t j = 0; j < q; ++j)
    done[j].insert(done[j].end(), ready[j].begin(), ready[j].end());
  return done;
}

/// The reduction's finish (avg's division) on each position's own chunk.
template <CollectiveBackend B>
std::vector<Deps> finish_phase(B& b, const Group& g, const Span& span,
                               const std::vector<Deps>& ready) {
  using namespace detail::phase;
  const std::size_t elem = size_of(b.reduction().type);
  std::vector<Deps> done(g.size());
  for (std::size_t j = 0; j < g.size(); ++j) {
    const auto [c0, c1] = part_range(span.count, g.size(), g.chunk_of[j]);
    const Region own{span.buffer, (span.first + c0) * elem, (c1 - c0) * elem};
    done[j] = {b.finish(g.ranks[j], own, ready[j])};
  }
  return done;
}

/// Recursive halving-doubling all-reduce (Rabenseifner) over a group of any size. With
/// q' the largest power of two <= q and r = q - q': positions 2k and 2k+1 (k < r) first
/// fold (2k sends its whole span to 2k+1, which reduces it), the q' remaining positions
/// reduce-scatter by recursive halving (log2 q' steps, each exchanging half of the current
/// range with the partner at distance q'/2, q'/4, ..., 1), finish their block, all-gather
/// by recursive doubling, and 2k+1 sends the result back to 2k. 2 log2 q' steps, plus 2
/// when q is not a power of two (docs/facts.md section 4).
template <CollectiveBackend B>
std::vector<Deps> rabenseifner_all_reduce_phase(B& b, const std::vector<int>& ranks,
                                                const Span& span, const std::vector<Deps>& ready) {
  using namespace detail::phase;
  const std::size_t q = ranks.size();
  const std::size_t elem = size_of(b.reduction().type);
  if (q == 1) {
    Group g(ranks);
    return finish_phase(b, g, span, ready);
  }
  std::size_t pow2 = 1;
  while (pow2 * 2 <= q) pow2 *= 2;
  const std::size_t extra = q - pow2;
  std::vector<Deps> state = ready;  // per position: ops after which its span is as it should be
  // Fold.
  for (std::size_t k = 0; k < extra; ++k) {
    Deps deps = state[2 * k];
    deps.insert(deps.end(), state[2 * k + 1].begin(), state[2 * k + 1].end());
    const OpId op = b.transfer(ranks[2 * k], whole(span, elem), ranks[2 * k + 1], whole(span, elem),
                               RecvAction::reduce, deps, 0);
    state[2 * k] = {op};  // its data has been read: later writes into 2k wait for this
    state[2 * k + 1] = {op};
  }
  // Active positions: the odd ones of the folded pairs, then everyone after them.
  std::vector<std::size_t> active;
  for (std::size_t k = 0; k < extra; ++k) active.push_back(2 * k + 1);
  for (std::size_t j = 2 * extra; j < q; ++j) active.push_back(j);
  // Recursive halving: each active index i keeps range [lo, hi) of pow2 blocks.
  std::vector<std::size_t> lo(pow2, 0);
  std::vector<std::size_t> hi(pow2, pow2);
  auto region = [&](std::size_t b0, std::size_t b1) {
    const std::size_t e0 = part_range(span.count, pow2, b0).first;
    const std::size_t e1 = b1 == pow2 ? span.count : part_range(span.count, pow2, b1).first;
    return Region{span.buffer, (span.first + e0) * elem, (e1 - e0) * elem};
  };
  for (std::size_t d = pow2 / 2; d >= 1; d /= 2) {
    std::vector<Deps> next(pow2);
    for (std::size_t i = 0; i < pow2; ++i) {
      const std::size_t partner = i ^ d;
      const std::size_t mid = (lo[i] + hi[i]) / 2;
      const bool upper = (i & d) != 0;
      const Region send = upper ? region(lo[i], mid) : region(mid, hi[i]);
      Deps deps = state[active[i]];
      deps.insert(deps.end(), state[active[partner]].begin(), state[active[partner]].end());
      const OpId op = b.transfer(ranks[active[i]], send, ranks[active[partner]], send,
                                 RecvAction::reduce, deps, 0);
      next[i].push_back(op);        // i's sent half has been read
      next[partner].push_back(op);  // partner's kept half has been written
    }
    for (std::size_t i = 0; i < pow2; ++i) {
      const std::size_t mid = (lo[i] + hi[i]) / 2;
      if ((i & d) != 0)
        lo[i] = mid;
      else
        hi[i] = mid;
      state[active[i]] = next[i];
    }
    if (d == 1) break;
  }
  // Finish each active position's block (lo == i).
  for (std::size_t i = 0; i < pow2; ++i) {
    state[active[i]] = {b.finish(ranks[active[i]], region(lo[i], hi[i]), state[active[i]])};
  }
  // Recursive doubling.
  for (std::size_t d = 1; d < pow2; d *= 2) {
    std::vector<Deps> next(pow2);
    for (std::size_t i = 0; i < pow2; ++i) {
      const std::size_t partner = i ^ d;
      const Region mine = region(lo[i], hi[i]);
      Deps deps = state[active[i]];
      deps.insert(deps.end(), state[active[partner]].begin(), state[active[partner]].end());
      const OpId op = b.transfer(ranks[active[i]], mine, ranks[active[partner]], mine,
                                 RecvAction::copy, deps, 0);
      next[i].push_back(op);
      next[partner].push_back(op);
    }
    for (std::size_t i = 0; i < pow2; ++i) {
      const std::size_t partner = i ^ d;
      const std::size_t nlo = std::min(lo[i], lo[partner]);
      const std::size_t nhi = std::max(hi[i], hi[partner]);
      state[active[i]] = next[i];
      lo[i] = nlo;
      hi[i] = nhi;
    }
    // lo/hi of partners updated symmetrically above (each i computed from the old values
    // of both, which are equal-sized neighbours, so the union is the same for both).
  }
  // Unfold.
  for (std::size_t k = 0; k < extra; ++k) {
    Deps deps = state[2 * k + 1];
    deps.insert(deps.end(), state[2 * k].begin(), state[2 * k].end());
    const OpId op = b.transfer(ranks[2 * k + 1], whole(span, elem), ranks[2 * k], whole(span, elem),
                               RecvAction::copy, deps, 0);
    state[2 * k] = {op};
    state[2 * k + 1].push_back(op);
  }
  return state;
}

/// The factors mixed_radix_all_reduce_phase works through for a group of q positions: q's
/// prime factors, smallest first (2 x 2 x 5 x 5 x 5 x 5 x 5 for 12,500). Empty for q = 1.
inline std::vector<std::size_t> mixed_radix_factors(std::size_t q) {
  std::vector<std::size_t> f;
  for (std::size_t d = 2; d * d <= q; ++d) {
    while (q % d == 0) {
      f.push_back(d);
      q /= d;
    }
  }
  if (q > 1) f.push_back(q);
  return f;
}

/// Network steps of mixed_radix_all_reduce_phase over q positions: 2 (f1 - 1 + ... +
/// fm - 1) for q = f1 x ... x fm.
inline std::size_t mixed_radix_steps(std::size_t q) {
  std::size_t steps = 0;
  for (std::size_t f : mixed_radix_factors(q)) steps += 2 * (f - 1);
  return steps;
}

/// Mixed-radix all-reduce over a group of any size q = f1 x f2 x ... x fm (its prime
/// factors, smallest first): bandwidth-optimal whatever q is, where Rabenseifner folds a
/// whole span in and out when q is not a power of two. Position j has digits
/// d1 = j mod f1 (the nearest positions differ in it), d2 = (j / f1) mod f2, ...
/// Reduce-scatter: at level i the fi positions that differ only in digit i run a ring
/// reduce-scatter over the span they hold, cut in fi parts; each keeps part di. Each
/// position finishes the part it ends with (a q-th of the span); then the levels run
/// backwards as ring all-gathers over the same groups and parts. Each position sends and
/// receives (q - 1) / q of the span each way, as a ring does, in 2 (f1 - 1 + ... + fm - 1)
/// steps: 2 log2 q for a power of two, where it is recursive halving and doubling with the
/// nearest partner first. The largest parts move between the nearest positions; a q-th of
/// the span travels between the farthest.
template <CollectiveBackend B>
std::vector<Deps> mixed_radix_all_reduce_phase(B& b, const std::vector<int>& ranks,
                                               const Span& span, const std::vector<Deps>& ready) {
  const std::size_t q = ranks.size();
  if (q == 1) return finish_phase(b, Group(ranks), span, ready);
  const auto factors = mixed_radix_factors(q);
  std::vector<Deps> state = ready;
  // held[i][j]: the span position j holds when level i starts (level i's group span).
  std::vector<std::vector<Span>> held(factors.size() + 1);
  held[0].assign(q, span);
  // Runs level i's ring pass in every group of it: the positions base + e x stride, e < fi,
  // with base's digit i zero.
  auto run_level = [&](std::size_t i, bool reduce) {
    std::size_t stride = 1;
    for (std::size_t k = 0; k < i; ++k) stride *= factors[k];
    const std::size_t f = factors[i];
    if (reduce) held[i + 1].resize(q);
    std::vector<int> group_ranks(f);
    std::vector<Deps> local(f);
    for (std::size_t base = 0; base < q; ++base) {
      if ((base / stride) % f != 0) continue;
      for (std::size_t e = 0; e < f; ++e) {
        group_ranks[e] = ranks[base + e * stride];
        local[e] = std::move(state[base + e * stride]);
      }
      const Group g(group_ranks);
      const Span group_span = held[i][base];  // every member holds the same span
      auto out = reduce ? ring_reduce_scatter_phase(b, g, group_span, 1, local)
                        : ring_all_gather_phase(b, g, group_span, 1, local);
      for (std::size_t e = 0; e < f; ++e) {
        state[base + e * stride] = std::move(out[e]);
        if (reduce) {
          const auto [c0, c1] = part_range(group_span.count, f, e);
          held[i + 1][base + e * stride] = Span{span.buffer, group_span.first + c0, c1 - c0};
        }
      }
    }
  };
  for (std::size_t i = 0; i < factors.size(); ++i) run_level(i, true);
  for (std::size_t j = 0; j < q; ++j) {
    const Span& part = held[factors.size()][j];
    state[j] = {b.finish(ranks[j],
                         Region{span.buffer, part.first * size_of(b.reduction().type),
                                part.count * size_of(b.reduction().type)},
                         state[j])};
  }
  for (std::size_t i = factors.size(); i-- > 0;) run_level(i, false);
  return state;
}

RAILCC_NAMESPACE_END
