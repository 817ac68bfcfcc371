// railcc/coll/algorithms/all_reduce.hpp: all-reduce: ring, Rabenseifner, double binary tree,
// hierarchical and NVLS (with the NVLS chunk policy).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "railcc/coll/capabilities.hpp"

#include "railcc/coll/algorithms/common.hpp"
#include "railcc/coll/backend.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/coll/phases.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// NCCL's NVLS chunk: 128 KiB (NCCL_NVLS_CHUNKSIZE's default, src/transport/nvls.cc) [pub].
inline constexpr std::size_t nvls_chunk_bytes = std::size_t{128} << 10;
/// At most this many chunks by default: the pipeline's fill and drain then cost under
/// 1/64 of the bandwidth term, and the simulation's cost stays bounded.
inline constexpr std::size_t max_default_phase_chunks = 64;
/// At most this many chunks between hosts at once by default: a connection's slots
/// (NCCL_STEPS, detail::phase::connection_slots) [pub].
inline constexpr std::size_t max_default_chunks_in_flight = detail::phase::connection_slots;

/// What the phases of a hierarchical all-reduce cost over the whole buffer, to choose
/// how many chunks to pipeline them in: seconds of NVLink (or NVLS) transfer for the
/// reduce-scatter and the all-gather together, seconds of network transfer for the
/// all-reduce across hosts, and the fixed latency each chunk pays in each.
struct PhaseCosts {
  double nvlink_seconds = 0;
  double network_seconds = 0;
  double nvlink_latency = 0;   ///< per chunk, reduce-scatter and all-gather together
  double network_latency = 0;  ///< per chunk, every step of the all-reduce across hosts
  /// Predicted time with K chunks, D of them between hosts at once: a chunk's three
  /// phases, then K - 1 periods of the busier resource (the network phase of one chunk
  /// runs under the NVLink phases of its neighbours). With D in flight the network takes
  /// a chunk every (its bytes' time + its latency) / D, but never faster than its bytes
  /// pass: D chunks' start-ups and path latencies run under each other's bytes.
  [[nodiscard]] double pipelined(std::size_t chunks, std::size_t in_flight = 1) const {
    const auto K = static_cast<double>(chunks);
    const auto D = static_cast<double>(std::max<std::size_t>(1, in_flight));
    const double nv = nvlink_seconds / K + nvlink_latency;
    const double bytes = network_seconds / K;
    const double net = bytes + network_latency;
    return nv + net + (K - 1) * std::max(nv, std::max(bytes, net / D));
  }
  /// Chunks between hosts at once that keep the network carrying bytes through each
  /// chunk's latency at K chunks: the bandwidth-delay product in chunks, ceil((bytes +
  /// latency) / bytes) of one chunk, at most K and max_default_chunks_in_flight.
  [[nodiscard]] std::size_t in_flight_for(std::size_t chunks) const {
    const double bytes = network_seconds / static_cast<double>(std::max<std::size_t>(1, chunks));
    std::size_t d = max_default_chunks_in_flight;
    if (bytes > 0) {
      const double need = std::ceil((bytes + network_latency) / bytes * (1 - 1e-12));
      d = need < static_cast<double>(d) ? static_cast<std::size_t>(need) : d;
    }
    return std::clamp<std::size_t>(d, 1, std::max<std::size_t>(1, chunks));
  }
  /// The chunk count, a power of two from 1 to max_default_phase_chunks, that minimises
  /// pipelined() with `in_flight` of them between hosts (0: in_flight_for() of them): more
  /// chunks hide more of the NVLink phases; each pays the latencies again, which chunks in
  /// flight hide under each other's bytes until the network's share of the buffer runs
  /// out. Powers of two keep the chunks of a power-of-two buffer equal to the element, so
  /// a chunk halves evenly in recursive halving.
  [[nodiscard]] std::size_t best_chunks(std::size_t in_flight = 0) const {
    const auto time = [&](std::size_t K) {
      return pipelined(K, in_flight > 0 ? std::min(in_flight, K) : in_flight_for(K));
    };
    std::size_t best = 1;
    for (std::size_t K = 2; K <= max_default_phase_chunks; K *= 2) {
      if (time(K) < time(best) * (1 - 1e-9)) best = K;
    }
    return best;
  }
};

/// The rates and per-step latencies PhaseCosts are computed from. The defaults are what
/// NCCL's model uses for an H100 node (NVLink 370.8 GB/s per GPU, NVLS at 0.85 of it,
/// 0.6 us per NVLink step, 3.4 us per NVLS step) and a 400G NIC as NCCL sees it (48 GB/s),
/// with a network step's start-up of 0.8 us and 0.5 us per switch: 1.3 us through one
/// leaf, 3.3 us through three tiers (docs/facts.md sections 2 and 3).
struct PhaseRates {
  double nvlink_Bps = 370.8e9;  ///< per GPU, each way
  double nic_Bps = 48e9;        ///< per GPU, each way
  double nvls_efficiency = 0.85;
  double nvlink_step = 0.6e-6;
  double nvls_step = 3.4e-6;
  double near_step = 1.3e-6;  ///< a network step between neighbouring hosts (a ring)
  double far_step = 3.3e-6;   ///< a network step through the top tier (Rabenseifner)
};

/// What hierarchical (or nvls, `algo`) all-reduce of `bytes` over `hosts` hosts of
/// `gpus_per_host` GPUs costs per phase, with `inter_host` (ring, rabenseifner or
/// mixed_radix) across hosts: reduce-scatter and all-gather inside the hosts (2 (G - 1)
/// ring steps, or an NVLS reduction and multicast), and the all-reduce of a GPU's share
/// across hosts (2 (H - 1) ring steps; 2 log2 H halving and doubling steps, plus a fold
/// and an unfold of the whole share when H is not a power of two; or mixed_radix_steps(H)).
inline PhaseCosts hierarchical_phase_costs(Algorithm algo, Algorithm inter_host, std::size_t bytes,
                                           std::size_t hosts, std::size_t gpus_per_host,
                                           const PhaseRates& r = {}) {
  const auto n = static_cast<double>(bytes);
  const auto G = static_cast<double>(std::max<std::size_t>(1, gpus_per_host));
  const auto H = static_cast<double>(std::max<std::size_t>(1, hosts));
  PhaseCosts c;
  if (algo == Algorithm::nvls) {
    c.nvlink_seconds = 2 * n / (r.nvlink_Bps * r.nvls_efficiency);
    c.nvlink_latency = 2 * r.nvls_step;
  } else {
    c.nvlink_seconds = 2 * (G - 1) / G * n / r.nvlink_Bps;
    c.nvlink_latency = 2 * (G - 1) * r.nvlink_step;
  }
  if (hosts > 1) {
    c.network_seconds = 2 * (H - 1) / H * n / G / r.nic_Bps;
    if (inter_host == Algorithm::rabenseifner) {
      double steps = 0, pow2 = 1;
      for (; pow2 * 2 <= H; pow2 *= 2) steps += 2;
      if (pow2 != H) {
        steps += 2;  // fold the hosts past the power of two in, and out: a whole share each
        c.network_seconds += 2 * n / G / r.nic_Bps;
      }
      c.network_latency = steps * r.far_step;
    } else if (inter_host == Algorithm::mixed_radix) {
      c.network_latency = static_cast<double>(mixed_radix_steps(hosts)) * r.far_step;
    } else {
      c.network_latency = 2 * (H - 1) * r.near_step;
    }
  }
  return c;
}

/// Chunks hierarchical or nvls all-reduce pipelines `bytes` in over hosts of `gpus_per_host`
/// GPUs when the call leaves it to the algorithm.
///  - NVLS on one host pipelines as NCCL does (a chunk per 128 KiB per GPU, up to 64): its
///    reduce-scatter and all-gather overlap only so.
///  - Across hosts: the count that minimises the pipeline's predicted time with
///    PhaseRates' defaults and `in_flight` chunks between hosts at once (0: the
///    bandwidth-delay product of each count; PhaseCosts::best_chunks). A caller that knows its
///    fabric (CostModel::phase_chunks_for) sets CollectiveCall::phase_chunks instead.
inline std::size_t hierarchical_phase_chunks(Algorithm algo, std::size_t bytes, std::size_t hosts,
                                             std::size_t gpus_per_host,
                                             Algorithm inter_host = Algorithm::rabenseifner,
                                             std::size_t in_flight = 0) {
  if (hosts <= 1) {
    if (algo != Algorithm::nvls) return 1;
    const std::size_t per_chunk = nvls_chunk_bytes * std::max<std::size_t>(1, gpus_per_host);
    return std::clamp<std::size_t>((bytes + per_chunk - 1) / per_chunk, 1,
                                   max_default_phase_chunks);
  }
  return hierarchical_phase_costs(algo, inter_host, bytes, hosts, gpus_per_host)
      .best_chunks(in_flight);
}

/// Of `chunks` phase chunks, how many hierarchical or nvls all-reduce has between hosts at
/// once when the call leaves it to the algorithm: 1 on one host, else the bandwidth-delay
/// product with PhaseRates' defaults (PhaseCosts::in_flight_for). A caller that knows its
/// fabric sets CollectiveCall::chunks_in_flight (CostModel::chunks_in_flight_for).
inline std::size_t hierarchical_chunks_in_flight(Algorithm algo, std::size_t bytes,
                                                 std::size_t hosts, std::size_t gpus_per_host,
                                                 Algorithm inter_host, std::size_t chunks) {
  if (hosts <= 1) return 1;
  return hierarchical_phase_costs(algo, inter_host, bytes, hosts, gpus_per_host)
      .in_flight_for(chunks);
}

namespace detail::coll {

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
/// hosts on its rail (ring, rabenseifner or mixed_radix), all-gather inside the host (ring, or NVLS
/// multicast). With K phase chunks each phase runs chunk after chunk, so chunk k's
/// network phase overlaps the NVLink phases of its neighbours; D of the chunks may be in
/// their network phase at once (CollectiveCall::chunks_in_flight), so that a chunk's
/// many small steps (a step's start-up and path latency, 44 of them over 12,500 hosts in
/// mixed radix) run under the bytes of the others instead of one after another.
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
  if (!runs_across_hosts(inter_host)) {
    throw InputError(std::string(what) +
                     ": the inter-host algorithm must be ring, rabenseifner or mixed_radix");
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
  const std::size_t K = std::min(
      call.count, call.phase_chunks > 0 ? static_cast<std::size_t>(call.phase_chunks)
                                        : hierarchical_phase_chunks(
                                              algo, call.count * elem, hosts.size(), G, inter_host,
                                              static_cast<std::size_t>(call.chunks_in_flight)));
  // Chunks between hosts at once: chunk k's inter-host phase waits for chunk k - D's.
  const std::size_t D = std::clamp<std::size_t>(
      call.chunks_in_flight > 0
          ? static_cast<std::size_t>(call.chunks_in_flight)
          : hierarchical_chunks_in_flight(algo, call.count * elem, hosts.size(), G, inter_host,
                                          std::max<std::size_t>(1, K)),
      1, std::max<std::size_t>(1, K));
  // Every chunk but the last holds a whole number of grains: a grain splits evenly over
  // the host's GPUs, each GPU's part over its channels' rings, and each GPU's share
  // over the parts the inter-host algorithm cuts it in (H for ring and mixed radix, the
  // largest power of two up to H for Rabenseifner's halving). Parts a few elements apart
  // let chunks that overlap drift out of lockstep (aligned_part_range).
  std::size_t inter_parts = hosts.size();
  if (inter_host == Algorithm::rabenseifner) inter_parts = std::bit_floor(hosts.size());
  const std::size_t chunk_grain = G * static_cast<std::size_t>(call.channels) * inter_parts;
  // Across hosts, a backend that times steps by their shape gets one chunk, the
  // pipeline's unit, and how many identical units follow: its cost does not grow with the
  // chunks. (There the network phase parts the unit's stages inside the hosts, which is
  // how the backend tells them apart; on one host the chunks are all posted.)
  const bool one_unit = K > 1 && hosts.size() > 1 && repeats_steps(b);
  // The ring phases work in place on the output; NVLS reads the input directly.
  std::vector<Deps> ready(p);
  if (!nvls && call.input != call.output)
    ready = copy_in(b, call.input, 0, call.output, 0, call.count * elem, false, 0);
  [[maybe_unused]] const auto unit_first = static_cast<OpId>(posted_count(b));
  std::vector<Deps> rs_prev(p), ag_prev(p), done(p);
  // The inter-host phase's last operations per rank of the last D chunks (chunk k's in
  // slot k mod D); one slot where one unit stands for every chunk (a million ranks' lists
  // times D would be hundreds of MB of empty lists).
  std::vector<std::vector<Deps>> inter_prev(one_unit ? 1 : D, std::vector<Deps>(p));
  auto merged = [](const Deps& a, const Deps& c) {
    Deps d = a;
    d.insert(d.end(), c.begin(), c.end());
    return d;
  };
  for (std::size_t k = 0; k < (one_unit ? 1 : K); ++k) {
    const auto [e0, e1] = aligned_part_range(call.count, K, k, chunk_grain);
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
    for (std::size_t r = 0; r < p; ++r)
      state[r] = merged(state[r], inter_prev[k % inter_prev.size()][r]);
    for (std::size_t gi = 0; gi < G; ++gi) {
      std::vector<int> rail;
      for (const auto& [h, rs] : hosts) rail.push_back(rs[gi]);
      const auto [c0, c1] = part_range(span.count, G, gi);
      const Span share{call.output, span.first + c0, c1 - c0};
      std::vector<Deps> rail_done;
      switch (inter_host) {
        case Algorithm::ring:
          rail_done =
              ring_all_reduce_group(b, rail, share, call.channels, by_position(state, rail));
          break;
        case Algorithm::mixed_radix:
          rail_done = mixed_radix_all_reduce_phase(b, rail, share, by_position(state, rail));
          break;
        default:
          rail_done = rabenseifner_all_reduce_phase(b, rail, share, by_position(state, rail));
      }
      to_ranks(state, rail_done, rail);
    }
    inter_prev[k % inter_prev.size()] = state;
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
  if constexpr (StepRepeatingBackend<B>) {
    if (one_unit)
      b.repeat_pipeline_unit(unit_first, static_cast<std::uint32_t>(K - 1),
                             static_cast<std::uint32_t>(D));
  }
  return done;
}

/// Tree all-reduce in NCCL's shape (ncclTopoPostset's trees): inside each host a chain of
/// its GPUs, and between hosts a double binary tree over the chains' heads. Channel c's
/// chains start at local index channel_rotation(c): its head, which talks to the other
/// hosts, so the channels cross hosts on different NICs, and each host's head sits on the
/// same rail (the tree between hosts stays under one leaf per channel). Each channel's
/// part of the data is cut in two halves, one per binary tree of the pair; tree 1 is tree
/// 0 over the hosts shifted by one, so a host that is inner in one is mostly a leaf in the
/// other. Each half runs `pipeline_chunks` chunks: up the chain to the head, up the tree
/// (a second child's data lands in scratch and is added locally, so both children send
/// at once), finished at the root, broadcast down the tree and down each chain.
template <CollectiveBackend B>
std::vector<Deps> tree_all_reduce(B& b, const CollectiveCall& call,
                                  const std::vector<Deps>& ready) {
  const std::size_t elem = size_of(b.reduction().type);
  const std::size_t p = static_cast<std::size_t>(b.ranks());
  constexpr OpId no_op = ~OpId{0};
  const std::vector<std::vector<int>> hosts = placement_hosts(b);
  const std::size_t H = hosts.size();
  const std::size_t per_host = largest_host(b);
  const BufferId scratch = b.allocate(call.count * elem);
  const auto C = static_cast<std::size_t>(call.channels);
  const auto K = static_cast<std::size_t>(call.pipeline_chunks);
  std::vector<Deps> done = ready;  // what each rank's completion waits for
  auto add = [](Deps& to, const Deps& from) { to.insert(to.end(), from.begin(), from.end()); };
  auto at = [](const std::vector<Deps>& per_rank, int r) -> const Deps& {
    return per_rank[static_cast<std::size_t>(r)];
  };
  for (std::size_t c = 0; c < C; ++c) {
    const std::size_t rotation = channel_rotation(c, C, per_host);
    // chain[h]: host h's GPUs from the head (local index `rotation`) onwards.
    std::vector<std::vector<int>> chain = hosts;
    for (auto& ch : chain)
      std::rotate(ch.begin(), ch.begin() + static_cast<std::ptrdiff_t>(rotation % ch.size()),
                  ch.end());
    const auto [p0, p1] = part_range(call.count, C, c);
    for (std::size_t t = 0; t < 2; ++t) {
      const BinaryTree tree(H);
      auto host_of = [&](std::size_t v) { return (v + t) % H; };  // tree node -> host
      const auto [h0, h1] = part_range(p1 - p0, 2, t);
      const auto channel = static_cast<std::uint32_t>(2 * c + t);
      // A connection carries its chunks in order, one after the other (NCCL's FIFO of
      // slots): chunk k on an edge waits for chunk k - 1 on it, which is what pipelines
      // the chunks instead of running them all at once. Every rank has one edge of each
      // kind in a tree, so each kind's last transfer is kept by its sending (up) or
      // receiving (down) rank.
      std::vector<OpId> last_up(p, no_op), last_down(p, no_op);
      auto after_last = [&](Deps deps, const std::vector<OpId>& last, int r) {
        const OpId l = last[static_cast<std::size_t>(r)];
        if (l != no_op) deps.push_back(l);
        return deps;
      };
      for (std::size_t k = 0; k < K; ++k) {
        const auto [c0, c1] = part_range(h1 - h0, K, k);
        const std::size_t first = (p0 + h0 + c0) * elem;
        const std::size_t bytes = (c1 - c0) * elem;
        if (bytes == 0) continue;
        const Region r{call.output, first, bytes};
        const Region tmp{scratch, first, bytes};
        // 1. Up each chain, tail to head: after head_sum[h], host h's head holds its
        // host's sum; up_sent[h][i] read GPU i's chunk.
        std::vector<Deps> head_sum(H);
        std::vector<std::vector<OpId>> up_sent(H);
        for (std::size_t h = 0; h < H; ++h) {
          const auto& ch = chain[h];
          up_sent[h].assign(ch.size(), 0);
          Deps carried = at(ready, ch.back());
          for (std::size_t i = ch.size() - 1; i > 0; --i) {
            Deps deps = carried;
            add(deps, at(ready, ch[i - 1]));
            const OpId op = b.transfer(ch[i], r, ch[i - 1], r, RecvAction::reduce,
                                       after_last(deps, last_up, ch[i]), channel);
            last_up[static_cast<std::size_t>(ch[i])] = op;
            up_sent[h][i] = op;
            carried = {op};
          }
          head_sum[h] = carried;
        }
        // 2. Up the tree between heads, children before parents (post-order).
        std::vector<std::size_t> order;
        std::vector<std::pair<std::size_t, bool>> stack{{tree.root, false}};
        while (H > 0 && !stack.empty()) {
          auto [v, seen] = stack.back();
          stack.pop_back();
          if (seen) {
            order.push_back(v);
            continue;
          }
          stack.push_back({v, true});
          for (std::size_t kid : tree.children[v]) stack.push_back({kid, false});
        }
        std::vector<Deps> subtree_sum(H);  // by tree node: its head holds its subtree's sum
        std::vector<Deps> tree_sent(H);    // by tree node: its up-send (the read of its chunk)
        for (std::size_t v : order) {
          const int head = chain[host_of(v)].front();
          const auto& kids = tree.children[v];
          if (kids.empty()) {
            subtree_sum[v] = head_sum[host_of(v)];
            continue;
          }
          Deps arrived;
          for (std::size_t i = 0; i < kids.size(); ++i) {
            Deps deps = subtree_sum[kids[i]];
            if (i == 0) add(deps, head_sum[host_of(v)]);  // reduced into what the chain left
            const int kid_head = chain[host_of(kids[i])].front();
            const OpId op = b.transfer(kid_head, r, head, i == 0 ? r : tmp,
                                       i == 0 ? RecvAction::reduce : RecvAction::copy,
                                       after_last(deps, last_up, kid_head), channel);
            last_up[static_cast<std::size_t>(kid_head)] = op;
            tree_sent[kids[i]].push_back(op);
            arrived.push_back(op);
          }
          if (kids.size() == 2) {
            subtree_sum[v] = {b.local(head, r, tmp, RecvAction::reduce, arrived)};
          } else {
            subtree_sum[v] = arrived;
          }
        }
        // 3. Finish at the root; down the tree (pre-order), then down each chain.
        std::vector<OpId> final_at(H);  // by tree node: its head's chunk is final
        final_at[tree.root] =
            b.finish(chain[host_of(tree.root)].front(), r, subtree_sum[tree.root]);
        std::vector<std::size_t> pre{tree.root};
        while (!pre.empty()) {
          const std::size_t v = pre.back();
          pre.pop_back();
          const int head = chain[host_of(v)].front();
          for (std::size_t kid : tree.children[v]) {
            Deps deps{final_at[v]};
            add(deps, tree_sent[kid]);  // the child's chunk was read before it is overwritten
            const int kid_head = chain[host_of(kid)].front();
            final_at[kid] = b.transfer(head, r, kid_head, r, RecvAction::copy,
                                       after_last(deps, last_down, kid_head), channel);
            last_down[static_cast<std::size_t>(kid_head)] = final_at[kid];
            done[static_cast<std::size_t>(head)].push_back(final_at[kid]);  // a read of head's
            pre.push_back(kid);
          }
        }
        for (std::size_t v = 0; v < H; ++v) {
          const auto& ch = chain[host_of(v)];
          OpId prev = final_at[v];
          done[static_cast<std::size_t>(ch.front())].push_back(prev);
          for (std::size_t i = 1; i < ch.size(); ++i) {
            const Deps deps{prev, up_sent[host_of(v)][i]};
            const OpId op = b.transfer(ch[i - 1], r, ch[i], r, RecvAction::copy,
                                       after_last(deps, last_down, ch[i]), channel);
            last_down[static_cast<std::size_t>(ch[i])] = op;
            done[static_cast<std::size_t>(ch[i - 1])].push_back(op);  // read
            done[static_cast<std::size_t>(ch[i])].push_back(op);      // written
            prev = op;
          }
        }
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
  check_applies(Collective::all_reduce, algo);
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
      const Group g = rail_ring_group(b, call.channels);
      to_ranks(done, ring_all_reduce_group(b, g, span, call.channels, by_position(ready, g.ranks)),
               g.ranks);
      return done;
    }
    case Algorithm::rabenseifner:
      to_ranks(done, rabenseifner_all_reduce_phase(b, ring, span, by_position(ready, ring)), ring);
      return done;
    case Algorithm::mixed_radix:
      to_ranks(done, mixed_radix_all_reduce_phase(b, ring, span, by_position(ready, ring)), ring);
      return done;
    case Algorithm::tree: return tree_all_reduce(b, call, ready);
    default:
      throw LogicError("all_reduce: algorithm " + std::string(to_string(algo)) +
                       " is in the applicability table but has no case here");
  }
}

RAILCC_NAMESPACE_END
