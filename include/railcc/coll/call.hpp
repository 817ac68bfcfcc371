// railcc/coll/call.hpp: the arguments of one collective call, and the algorithms by name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "railcc/coll/backend.hpp"
#include "railcc/config.hpp"

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
  /// all-gather. 0: the algorithm's default (hierarchical_phase_chunks; a caller that
  /// knows its fabric passes CostModel::phase_chunks_for instead).
  int phase_chunks = 0;
  /// Of those chunks, how many may be between hosts at once: chunk k's inter-host phase
  /// starts once chunk k - chunks_in_flight's has ended on its ranks, so one chunk's
  /// start-ups and path latency run under the others' bytes. 1: one after another. 0: the
  /// algorithm's default (hierarchical_chunks_in_flight; a caller that knows its fabric
  /// passes CostModel::chunks_in_flight_for).
  int chunks_in_flight = 0;
};

/// The algorithms, with their cost in the alpha-beta model (p ranks, n bytes per rank,
/// alpha a step's latency, beta seconds per byte at the bottleneck; docs/facts.md
/// section 4 has the forms and their sources) and where each wins.
enum class Algorithm : std::uint8_t {
  /// Ring over every rank (rail-aligned), `channels` rings side by side: 2 (p - 1) steps of
  /// n / p; 2 (p - 1) alpha + 2 (p - 1) / p n beta. Wins on bandwidth at large sizes within
  /// a host or over few hosts; its latency term grows with p.
  ring,
  /// Recursive halving-doubling (Rabenseifner), any p: 2 log2 p steps (+2 when p is not a
  /// power of two), 2 (p - 1) / p n beta. Wins at small and medium sizes over many ranks.
  rabenseifner,
  /// Ring reduce-scatter over NVLink in each host, all-reduce of each GPU's 1/G share
  /// across hosts on its rail (ring or Rabenseifner), ring all-gather over NVLink: the
  /// network carries 2 (H - 1) / H n / G per NIC. Wins at scale whenever hosts have
  /// several GPUs: it is the rail-optimised fabric's algorithm.
  hierarchical,
  /// Pipelined chain along the ring (broadcast, reduce): p - 1 + K - 1 steps of n / K for
  /// K pipeline chunks. The only rooted algorithm railcc has.
  chain,
  /// Every pair at once (all-to-all, send/recv): one step, (p - 1) / p n beta, limited by
  /// the fabric's bisection and ECMP collisions.
  pairwise,
  /// Bruck (all-gather, reduce-scatter): ceil(log2 p) steps carrying (p - 1) / p n in all.
  /// Wins at small sizes over many ranks, where the ring's p - 1 latencies dominate.
  bruck,
  /// Double binary tree (NCCL's Tree), pipelined in K chunks: about 2 log2 p alpha plus
  /// ~2 n beta. Wins at small sizes over many ranks, loses to the ring at large ones.
  tree,
  /// Hierarchical with the host's phases in the NVSwitch (NVLS: the switch reduces and
  /// multicasts, each byte crosses a GPU's NVLink once each way). Wins inside H100/H200
  /// hosts whose NVSwitches reduce; needs a SwitchReduceBackend.
  nvls,
  /// Mixed-radix reduce-scatter and all-gather over p's prime factors f1 x ... x fm, a
  /// ring over each factor's groups, nearest positions first: 2 (f1 - 1 + ... + fm - 1)
  /// steps, 2 (p - 1) / p n beta for any p (no fold). Rabenseifner's bandwidth where p is
  /// not a power of two (12,500 hosts of 100,000 GPUs), at a few more latencies where p
  /// has large prime factors.
  mixed_radix,
  /// All-to-all with NCCL's PXN: a chunk for another host crosses NVLink first, to the GPU
  /// of its host on the destination's rail, which sends its host's chunks for that
  /// destination as one message: (G - 1) / G n over NVLink, then (H - 1) / H n over the
  /// NIC, every network byte on its rail.
  pxn
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
    case Algorithm::mixed_radix: return "mixed_radix";
    case Algorithm::pxn: return "pxn";
  }
  return "?";
}

inline std::optional<Algorithm> parse_algorithm(std::string_view s) {
  for (auto a : {Algorithm::ring, Algorithm::rabenseifner, Algorithm::hierarchical,
                 Algorithm::chain, Algorithm::pairwise, Algorithm::bruck, Algorithm::tree,
                 Algorithm::nvls, Algorithm::mixed_radix, Algorithm::pxn}) {
    if (s == to_string(a)) return a;
  }
  return std::nullopt;
}

RAILCC_NAMESPACE_END
