// railcc/coll/collectives.hpp: the collectives, each with its algorithms, written once
// against the CollectiveBackend concept.
//
// Semantics follow NCCL's (buffer sizes per rank, for `count` elements of the backend's
// reduction type):
//   all_reduce      input n, output n: every rank gets the reduction of all inputs
//   reduce_scatter  input p n, output n: rank r gets the reduction of chunk r
//   all_gather      input n, output p n: rank r's input lands at output chunk r
//   broadcast       input n (root), output n: the root's input everywhere
//   reduce          input n, output n (root): the reduction at the root only
//   all_to_all      input p n, output p n: chunk j of rank r goes to chunk r of rank j
//   send_recv       one rank's region to another's
// In place: output == input (for all_gather, the rank's input is then expected at its
// chunk of the output, as NCCL's in-place all-gather expects). Algorithms:
//   ring (channels), rabenseifner (recursive halving-doubling, any rank count),
//   hierarchical (ring reduce-scatter inside each host over NVLink, all-reduce of each
//   GPU's share across hosts on its rail with ring or rabenseifner, ring all-gather inside
//   the host), chain (pipelined broadcast / reduce along the ring), pairwise (direct
//   all-to-all), bruck (all-gather and reduce-scatter in ceil(log2 p) steps), nvls
//   (hierarchical with the host's phases in the NVSwitch), tree (double binary tree
//   all-reduce, pipelined). Each returns, per rank, the operations
//   after which its output is final.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/capabilities.hpp"
#include "railcc/coll/phases.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// Arguments of one collective call on symmetric buffers.
struct CollectiveCall {
  std::size_t count = 0;  ///< elements (see the semantics above)
  BufferId input = 0;
  BufferId output = 0;      ///< == input: in place
  int channels = 1;         ///< parallel rings (ring-based algorithms)
  int root = 0;             ///< broadcast and reduce
  int pipeline_chunks = 8;  ///< chunks a chain or tree pipelines (broadcast, reduce, tree)
  /// Chunks the phases of hierarchical and nvls all-reduce are pipelined in: chunk k's
  /// inter-host phase overlaps chunk k + 1's intra-host reduce-scatter and chunk k - 1's
  /// all-gather. 0: the algorithm's default (hierarchical_phase_chunks).
  int phase_chunks = 0;
};

enum class Algorithm : std::uint8_t {
  ring,
  rabenseifner,
  hierarchical,
  chain,
  pairwise,
  bruck,
  tree,
  nvls
};

constexpr std::string_view to_string(Algorithm a) {
  switch (a) {
    case Algorithm::ring: return "ring";
    case Algorithm::rabenseifner: return "rabenseifner";
    case Algorithm::hierarchical: return "hierarchical";
    case Algorithm::chain: return "chain";
    case Algorithm::pairwise: return "pairwise";
    case Algorithm::bruck: return "bruck";
    case Algorithm::tree: return "tree";
    case Algorithm::nvls: return "nvls";
  }
  return "?";
}

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

/// NCCL's NVLS chunk: 128 KiB (NCCL_NVLS_CHUNKSIZE's default, src/transport/nvls.cc) [pub].
inline constexpr std::size_t nvls_chunk_bytes = std::size_t{128} << 10;
/// At most this many chunks by default: the pipeline's fill and drain then cost under
/// 1/64 of the bandwidth term, and the simulation's cost stays bounded.
inline constexpr std::size_t max_default_phase_chunks = 64;

/// Chunks hierarchical or nvls all-reduce pipelines `bytes` in over hosts of `gpus_per_host`
/// GPUs when the call leaves it to the algorithm. NVLS on one host pipelines as NCCL does
/// (a chunk per 128 KiB per GPU, up to 64): its reduce-scatter and all-gather overlap only
/// so. Across hosts the phases run one after another (1), because the steps mode's cost
/// grows with the chunks in flight; set CollectiveCall::phase_chunks to pipeline them.
inline std::size_t hierarchical_phase_chunks(Algorithm algo, std::size_t bytes, std::size_t hosts,
                                             std::size_t gpus_per_host) {
  if (algo != Algorithm::nvls || hosts > 1) return 1;
  const std::size_t per_chunk = nvls_chunk_bytes * std::max<std::size_t>(1, gpus_per_host);
  return std::clamp<std::size_t>((bytes + per_chunk - 1) / per_chunk, 1, max_default_phase_chunks);
}

namespace detail::coll {

template <CollectiveBackend B>
void check_call(const B& b, const CollectiveCall& c, const char* what) {
  if (c.channels < 1) throw InputError(std::string(what) + ": channels must be at least 1");
  if (c.pipeline_chunks < 1)
    throw InputError(std::string(what) + ": pipeline_chunks must be at least 1");
  if (c.phase_chunks < 0)
    throw InputError(std::string(what) + ": phase_chunks must be 0 (automatic) or more");
  if (c.root < 0 || c.root >= b.ranks()) {
    throw InputError(std::string(what) + ": root " + std::to_string(c.root) + " is not a rank");
  }
}

/// Per rank: out-of-place copy of `bytes` from input to output (at the given offsets).
template <CollectiveBackend B>
std::vector<Deps> copy_in(B& b, BufferId from, std::size_t from_offset, BufferId to,
                          std::size_t to_offset, std::size_t bytes, bool per_rank_offset,
                          std::size_t stride) {
  std::vector<Deps> ready(static_cast<std::size_t>(b.ranks()));
  for (int r = 0; r < b.ranks(); ++r) {
    const std::size_t shift = per_rank_offset ? static_cast<std::size_t>(r) * stride : 0;
    ready[static_cast<std::size_t>(r)] = {b.local(r, Region{to, to_offset + shift, bytes},
                                                  Region{from, from_offset, bytes},
                                                  RecvAction::copy, {})};
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

/// Ring all-reduce of a span over a group: reduce-scatter, finish, all-gather.
template <CollectiveBackend B>
std::vector<Deps> ring_all_reduce_group(B& b, const std::vector<int>& ranks, const Span& span,
                                        int channels, const std::vector<Deps>& ready) {
  Group g(ranks);
  if (g.size() == 1) return finish_phase(b, g, span, ready);
  auto rs = ring_reduce_scatter_phase(b, g, span, channels, ready);
  auto fin = finish_phase(b, g, span, rs);
  return ring_all_gather_phase(b, g, span, channels, fin);
}

/// Calls fn(region) for the blocks of positions first, first + 1, ..., first + count - 1
/// (mod p) of a buffer whose blocks are indexed by rank (`block` bytes each), one region
/// per run of consecutive ranks: Bruck's steps move runs as single transfers.
template <class Fn>
void for_each_block_run(const std::vector<int>& ring, std::size_t first, std::size_t count,
                        BufferId buffer, std::size_t block, Fn fn) {
  const std::size_t p = ring.size();
  std::size_t k = 0;
  while (k < count) {
    const std::size_t at = (first + k) % p;
    std::size_t run = 1;
    while (k + run < count && ring[(at + run) % p] == ring[at] + static_cast<int>(run)) ++run;
    fn(Region{buffer, static_cast<std::size_t>(ring[at]) * block, run * block});
    k += run;
  }
}

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
      for_each_block_run(ring, j + h, send, buffer, block, [&](const Region& r) {
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

/// An in-order binary tree over positions [0, q): the root of [lo, hi) is its middle.
/// parent[v] is v's parent (q for the root); children[v] its 0-2 children.
struct BinaryTree {
  std::vector<std::size_t> parent;
  std::vector<std::vector<std::size_t>> children;
  std::size_t root = 0;
  explicit BinaryTree(std::size_t q) : parent(q, q), children(q) {
    if (q > 0) root = build(0, q, q);
  }

 private:
  std::size_t build(std::size_t lo, std::size_t hi, std::size_t up) {
    const std::size_t mid = lo + (hi - lo) / 2;
    parent[mid] = up;
    if (lo < mid) children[mid].push_back(build(lo, mid, mid));
    if (mid + 1 < hi) children[mid].push_back(build(mid + 1, hi, mid));
    return mid;
  }
};

/// Hierarchical all-reduce (algorithm hierarchical or nvls): reduce-scatter inside each
/// host (a ring over NVLink, or NVLS in the switch), all-reduce of each GPU's share across
/// hosts on its rail (ring or rabenseifner), all-gather inside the host (ring, or NVLS
/// multicast). With K phase chunks each phase runs chunk after chunk, so chunk k's
/// network phase overlaps the NVLink phases of its neighbours.
template <CollectiveBackend B>
std::vector<Deps> hierarchical_all_reduce(B& b, const CollectiveCall& call, Algorithm algo,
                                          Algorithm inter_host) {
  const char* what = algo == Algorithm::nvls ? "all_reduce nvls" : "all_reduce hierarchical";
  const std::size_t elem = size_of(b.reduction().type);
  const std::size_t p = static_cast<std::size_t>(b.ranks());
  const auto ring = placement_ring(b);
  // Hosts in order, each with its ranks in local order; every host must have as many.
  std::map<std::uint32_t, std::vector<int>> hosts;
  for (int r : ring) hosts[b.placement(r).host].push_back(r);
  const std::size_t G = hosts.begin()->second.size();
  for (const auto& [h, rs] : hosts) {
    if (rs.size() != G) {
      throw InputError(std::string(what) + ": host " + std::to_string(h) + " has " +
                       std::to_string(rs.size()) + " ranks, host " +
                       std::to_string(hosts.begin()->first) + " has " + std::to_string(G) +
                       "; every host needs the same number");
    }
  }
  if (inter_host != Algorithm::ring && inter_host != Algorithm::rabenseifner) {
    throw InputError(std::string(what) + ": the inter-host algorithm must be ring or rabenseifner");
  }
  const bool nvls = algo == Algorithm::nvls;
  if (nvls) {
    for (int r = 0; r < b.ranks(); ++r) {
      if (!switch_reduces(b, r)) {
        throw InputError("all_reduce nvls: rank " + std::to_string(r) +
                         " is not on an NVSwitch that reduces in the switch (NVLS needs one, "
                         "as on H100 HGX nodes); use hierarchical");
      }
    }
  }
  const std::size_t K = call.phase_chunks > 0
                            ? static_cast<std::size_t>(call.phase_chunks)
                            : hierarchical_phase_chunks(algo, call.count * elem, hosts.size(), G);
  // The ring phases work in place on the output; NVLS reads the input directly.
  std::vector<Deps> ready(p);
  if (!nvls && call.input != call.output)
    ready = copy_in(b, call.input, 0, call.output, 0, call.count * elem, false, 0);
  std::vector<Deps> rs_prev(p), inter_prev(p), ag_prev(p), done(p);
  auto merged = [](const Deps& a, const Deps& c) {
    Deps d = a;
    d.insert(d.end(), c.begin(), c.end());
    return d;
  };
  for (std::size_t k = 0; k < K; ++k) {
    const auto [e0, e1] = part_range(call.count, K, k);
    const Span span{call.output, e0, e1 - e0};
    [[maybe_unused]] const Span source{nvls ? call.input : call.output, e0, e1 - e0};
    std::vector<Deps> state(p);
    for (std::size_t r = 0; r < p; ++r) state[r] = merged(ready[r], rs_prev[r]);
    // 1. Reduce-scatter inside each host: local index g ends with chunk g of the span.
    for (const auto& [h, rs] : hosts) {
      Group g(rs);
      const auto local = by_position(state, rs);
      std::vector<Deps> reduced;
      if constexpr (SwitchReduceBackend<B>) {
        if (nvls) reduced = nvls_reduce_scatter_phase(b, g, source, span, local);
      }
      if (!nvls) reduced = ring_reduce_scatter_phase(b, g, span, call.channels, local);
      to_ranks(state, reduced, rs);
    }
    rs_prev = state;
    // 2. All-reduce of share g across hosts, on rail g.
    for (std::size_t r = 0; r < p; ++r) state[r] = merged(state[r], inter_prev[r]);
    for (std::size_t gi = 0; gi < G; ++gi) {
      std::vector<int> rail;
      for (const auto& [h, rs] : hosts) rail.push_back(rs[gi]);
      const auto [c0, c1] = part_range(span.count, G, gi);
      const Span share{call.output, span.first + c0, c1 - c0};
      const auto rail_done =
          inter_host == Algorithm::ring
              ? ring_all_reduce_group(b, rail, share, call.channels, by_position(state, rail))
              : rabenseifner_all_reduce_phase(b, rail, share, by_position(state, rail));
      to_ranks(state, rail_done, rail);
    }
    inter_prev = state;
    // 3. All-gather inside each host.
    for (std::size_t r = 0; r < p; ++r) state[r] = merged(state[r], ag_prev[r]);
    for (const auto& [h, rs] : hosts) {
      Group g(rs);
      const auto local = by_position(state, rs);
      std::vector<Deps> out;
      if constexpr (SwitchReduceBackend<B>) {
        if (nvls) out = nvls_all_gather_phase(b, g, span, local);
      }
      if (!nvls) out = ring_all_gather_phase(b, g, span, call.channels, local);
      for (std::size_t j = 0; j < rs.size(); ++j) {
        const auto r = static_cast<std::size_t>(rs[j]);
        done[r] = merged(done[r], out[j]);
        // The next chunk's all-gather waits for this one's operations only (the phase
        // returns them followed by `local[j]`): chaining the whole lists would grow them
        // with every chunk.
        if (out[j].size() >= local[j].size() &&
            std::equal(local[j].begin(), local[j].end(),
                       out[j].end() - static_cast<std::ptrdiff_t>(local[j].size()))) {
          out[j].resize(out[j].size() - local[j].size());
        }
        ag_prev[r] = std::move(out[j]);
      }
    }
  }
  return done;
}

}  // namespace detail::coll

template <CollectiveBackend B>
std::vector<Deps> all_reduce(B& b, const CollectiveCall& call, Algorithm algo = Algorithm::ring,
                             Algorithm inter_host = Algorithm::rabenseifner) {
  using namespace detail::coll;
  check_call(b, call, "all_reduce");
  // These copy the input themselves, or not at all (NVLS reads it directly).
  if (algo == Algorithm::hierarchical || algo == Algorithm::nvls)
    return hierarchical_all_reduce(b, call, algo, inter_host);
  const std::size_t elem = size_of(b.reduction().type);
  const std::size_t p = static_cast<std::size_t>(b.ranks());
  std::vector<Deps> ready(p);
  if (call.input != call.output)
    ready = copy_in(b, call.input, 0, call.output, 0, call.count * elem, false, 0);
  const Span span{call.output, 0, call.count};
  const auto ring = placement_ring(b);
  std::vector<Deps> done(p);
  switch (algo) {
    case Algorithm::ring: {
      const auto rail_ring = rail_aligned_ring(b);
      to_ranks(
          done,
          ring_all_reduce_group(b, rail_ring, span, call.channels, by_position(ready, rail_ring)),
          rail_ring);
      return done;
    }
    case Algorithm::rabenseifner:
      to_ranks(done, rabenseifner_all_reduce_phase(b, ring, span, by_position(ready, ring)), ring);
      return done;
    case Algorithm::tree: {
      // Double binary tree (NCCL's Tree): two in-order binary trees over the ring order,
      // the second shifted by one position, so the leaves of one (most positions) are
      // internal in the other and no rank forwards for both. Tree t reduces half t of the
      // data up to its root and broadcasts it back down, in `pipeline_chunks` chunks. A
      // node's second child sends into scratch and the node adds it locally, so both
      // children send at once.
      const BufferId scratch = b.allocate(call.count * elem);
      const auto K = static_cast<std::size_t>(call.pipeline_chunks);
      // Chunks and trees touch disjoint regions: each depends only on the initial state,
      // so they pipeline; `state` collects what each rank's completion waits for.
      const std::vector<Deps> initial = by_position(ready, ring);
      std::vector<Deps> state = initial;
      for (std::size_t t = 0; t < 2; ++t) {
        const BinaryTree tree(p);
        auto pos = [&](std::size_t v) { return (v + t) % p; };  // tree node -> ring position
        const auto [h0, h1] = part_range(call.count, 2, t);
        for (std::size_t k = 0; k < K; ++k) {
          const auto [c0, c1] = part_range(h1 - h0, K, k);
          const Region r{call.output, (h0 + c0) * elem, (c1 - c0) * elem};
          const Region tmp{scratch, (h0 + c0) * elem, (c1 - c0) * elem};
          // Up: post-order, so children are posted before their parent.
          std::vector<std::size_t> order;
          std::vector<std::pair<std::size_t, bool>> stack{{tree.root, false}};
          while (!stack.empty()) {
            auto [v, seen] = stack.back();
            stack.pop_back();
            if (seen) {
              order.push_back(v);
              continue;
            }
            stack.push_back({v, true});
            for (std::size_t c : tree.children[v]) stack.push_back({c, false});
          }
          // ready_up[v]: after these, node v's chunk holds the sum over its subtree.
          std::vector<Deps> ready_up(p);
          std::vector<Deps> sent(p);  // node v's up-send: the read of its chunk
          for (std::size_t v : order) {
            const auto& kids = tree.children[v];
            if (kids.empty()) {
              ready_up[v] = initial[pos(v)];
              continue;
            }
            Deps arrived;
            for (std::size_t i = 0; i < kids.size(); ++i) {
              const std::size_t c = kids[i];
              Deps deps = ready_up[c];
              deps.insert(deps.end(), initial[pos(v)].begin(), initial[pos(v)].end());
              // First child reduces straight in; the second lands in scratch.
              const OpId op = b.transfer(ring[pos(c)], r, ring[pos(v)], i == 0 ? r : tmp,
                                         i == 0 ? RecvAction::reduce : RecvAction::copy, deps,
                                         static_cast<std::uint32_t>(t));
              sent[c].push_back(op);
              arrived.push_back(op);
            }
            ready_up[v] = kids.size() == 2
                              ? Deps{b.local(ring[pos(v)], r, tmp, RecvAction::reduce, arrived)}
                              : arrived;
          }
          // Root: finish, then broadcast down in pre-order.
          const std::size_t root = tree.root;
          const OpId fin = b.finish(ring[pos(root)], r, ready_up[root]);
          std::vector<OpId> down(p);
          down[root] = fin;
          std::vector<std::size_t> pre{root};
          while (!pre.empty()) {
            const std::size_t v = pre.back();
            pre.pop_back();
            for (std::size_t c : tree.children[v]) {
              Deps deps{down[v]};
              deps.insert(deps.end(), sent[c].begin(), sent[c].end());  // c's chunk was read
              down[c] = b.transfer(ring[pos(v)], r, ring[pos(c)], r, RecvAction::copy, deps,
                                   static_cast<std::uint32_t>(t));
              pre.push_back(c);
            }
          }
          for (std::size_t v = 0; v < p; ++v) state[pos(v)].push_back(down[v]);
        }
      }
      to_ranks(done, state, ring);
      return done;
    }
    default:
      throw InputError("all_reduce: algorithm " + std::string(to_string(algo)) + " does not apply");
  }
}

template <CollectiveBackend B>
std::vector<Deps> reduce_scatter(B& b, const CollectiveCall& call,
                                 Algorithm algo = Algorithm::ring) {
  using namespace detail::coll;
  check_call(b, call, "reduce_scatter");
  if (algo != Algorithm::ring && algo != Algorithm::bruck)
    throw InputError("reduce_scatter: algorithm " + std::string(to_string(algo)) +
                     " does not apply");
  const std::size_t elem = size_of(b.reduction().type);
  const std::size_t p = static_cast<std::size_t>(b.ranks());
  const std::size_t total = call.count * p;
  // Work on a copy: the input stays as it was (out of place) and chunk r ends on rank r.
  const BufferId work = b.allocate(total * elem);
  const auto ready = copy_in(b, call.input, 0, work, 0, total * elem, false, 0);
  const auto ring = algo == Algorithm::bruck ? placement_ring(b) : rail_aligned_ring(b);
  Group g(ring);
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

template <CollectiveBackend B>
std::vector<Deps> all_gather(B& b, const CollectiveCall& call, Algorithm algo = Algorithm::ring) {
  using namespace detail::coll;
  check_call(b, call, "all_gather");
  if (algo != Algorithm::ring && algo != Algorithm::bruck) {
    throw InputError("all_gather: algorithm " + std::string(to_string(algo)) + " does not apply");
  }
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
    for (std::size_t have = 1; have < p; have *= 2) {
      const std::size_t send = std::min(have, p - have);
      std::vector<Deps> next = state;
      for (std::size_t j = 0; j < p; ++j) {
        const std::size_t to = (j + p - have) % p;
        Deps deps = state[j];
        deps.insert(deps.end(), state[to].begin(), state[to].end());
        for_each_block_run(ring, j, send, call.output, block, [&](const Region& r) {
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
  const auto ring = rail_aligned_ring(b);
  Group g(ring);
  for (std::size_t j = 0; j < p; ++j) g.chunk_of[j] = static_cast<std::size_t>(ring[j]);
  // Chunks of p n elements cut in p parts are exactly the n-element blocks.
  const Span span{call.output, 0, call.count * p};
  std::vector<Deps> done(p);
  to_ranks(done, ring_all_gather_phase(b, g, span, call.channels, by_position(ready, ring)), ring);
  return done;
}

/// Broadcast along the ring from the root, pipelined in `pipeline_chunks` chunks.
template <CollectiveBackend B>
std::vector<Deps> broadcast(B& b, const CollectiveCall& call, Algorithm algo = Algorithm::chain) {
  using namespace detail::coll;
  check_call(b, call, "broadcast");
  if (algo != Algorithm::chain)
    throw InputError("broadcast: algorithm " + std::string(to_string(algo)) + " does not apply");
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
  if (algo != Algorithm::chain)
    throw InputError("reduce: algorithm " + std::string(to_string(algo)) + " does not apply");
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

/// Direct all-to-all: every pair exchanges its chunk at once; each rank copies its own.
template <CollectiveBackend B>
std::vector<Deps> all_to_all(B& b, const CollectiveCall& call,
                             Algorithm algo = Algorithm::pairwise) {
  using namespace detail::coll;
  check_call(b, call, "all_to_all");
  if (algo != Algorithm::pairwise)
    throw InputError("all_to_all: algorithm " + std::string(to_string(algo)) + " does not apply");
  if (call.input == call.output)
    throw InputError("all_to_all: in place is not supported; give an output buffer");
  const std::size_t elem = size_of(b.reduction().type);
  const int p = b.ranks();
  const std::size_t chunk = call.count * elem;
  std::vector<Deps> done(static_cast<std::size_t>(p));
  for (int s = 0; s < p; ++s) {
    for (int r = 0; r < p; ++r) {
      const int to = (r + s) % p;  // step s: rank r sends to r + s (pairwise order)
      const Region from{call.input, static_cast<std::size_t>(to) * chunk, chunk};
      const Region into{call.output, static_cast<std::size_t>(r) * chunk, chunk};
      const OpId op = s == 0 ? b.local(r, into, from, RecvAction::copy, {})
                             : b.transfer(r, from, to, into, RecvAction::copy, {},
                                          static_cast<std::uint32_t>(s));
      done[static_cast<std::size_t>(to)].push_back(op);
    }
  }
  return done;
}

/// One rank's region to another's.
template <CollectiveBackend B>
OpId send_recv(B& b, int src, Region from, int dst, Region to) {
  return b.transfer(src, from, dst, to, RecvAction::copy, {}, 0);
}

RAILCC_NAMESPACE_END
