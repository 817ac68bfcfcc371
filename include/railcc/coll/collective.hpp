// railcc/coll/collective.hpp: the collectives by name, how nccl-tests accounts for them,
// which algorithms serve each (the applicability table) and their buffer sizes.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "railcc/coll/call.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

enum class Collective : std::uint8_t {
  all_reduce,
  reduce_scatter,
  all_gather,
  broadcast,
  reduce,
  all_to_all,
  send_recv
};

constexpr std::string_view to_string(Collective c) {
  switch (c) {
    case Collective::all_reduce: return "all_reduce";
    case Collective::reduce_scatter: return "reduce_scatter";
    case Collective::all_gather: return "all_gather";
    case Collective::broadcast: return "broadcast";
    case Collective::reduce: return "reduce";
    case Collective::all_to_all: return "all_to_all";
    case Collective::send_recv: return "send_recv";
  }
  return "?";
}

/// Accepts nccl-tests' spellings too (allreduce, all_reduce, all-reduce, sendrecv, alltoall).
inline std::optional<Collective> parse_collective(std::string_view s) {
  std::string k;
  for (char c : s) {
    if (c != '_' && c != '-')
      k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  for (auto c :
       {Collective::all_reduce, Collective::reduce_scatter, Collective::all_gather,
        Collective::broadcast, Collective::reduce, Collective::all_to_all, Collective::send_recv}) {
    std::string name;
    for (char ch : to_string(c)) {
      if (ch != '_') name.push_back(ch);
    }
    if (k == name) return c;
  }
  return std::nullopt;
}

/// nccl-tests' bus bandwidth factor (docs/facts.md section 4).
inline double bus_factor(Collective c, std::size_t ranks) {
  const auto n = static_cast<double>(ranks);
  switch (c) {
    case Collective::all_reduce: return 2.0 * (n - 1) / n;
    case Collective::reduce_scatter:
    case Collective::all_gather:
    case Collective::all_to_all: return (n - 1) / n;
    default: return 1.0;
  }
}

/// The applicability table, the one place that says which algorithm serves which
/// collective; the first is the default.
inline std::vector<Algorithm> algorithms_for(Collective c) {
  switch (c) {
    case Collective::all_reduce:
      return {Algorithm::ring,         Algorithm::rabenseifner, Algorithm::tree,
              Algorithm::hierarchical, Algorithm::nvls,         Algorithm::mixed_radix};
    case Collective::reduce_scatter: return {Algorithm::ring, Algorithm::bruck};
    case Collective::all_gather: return {Algorithm::ring, Algorithm::bruck};
    case Collective::broadcast:
    case Collective::reduce: return {Algorithm::chain};
    case Collective::all_to_all: return {Algorithm::pairwise, Algorithm::pxn};
    case Collective::send_recv: return {Algorithm::pairwise};
  }
  return {};
}

/// The algorithms hierarchical and nvls all-reduce may run across hosts, in the order the
/// tuner prefers them on a tie. Mixed radix comes first: over a power of two of hosts it
/// moves Rabenseifner's bytes in as many steps, so the alpha-beta model ties them, but its
/// largest steps go to the nearest hosts, through the fewest tiers, where ECMP collisions
/// (which the model does not price yet) cost least: at 4,096 colossus GPUs and 2 GiB it
/// simulates 4.5 times faster (bench/tuner_sweep.sh, docs/scheduling.md).
inline std::vector<Algorithm> inter_host_algorithms() {
  return {Algorithm::mixed_radix, Algorithm::rabenseifner, Algorithm::ring};
}

/// Whether `a` can run across hosts inside hierarchical or nvls all-reduce.
inline bool runs_across_hosts(Algorithm a) {
  const auto algos = inter_host_algorithms();
  return std::find(algos.begin(), algos.end(), a) != algos.end();
}

/// Whether `a` is one of the collective's algorithms.
inline bool applies(Collective c, Algorithm a) {
  const auto algos = algorithms_for(c);
  return std::find(algos.begin(), algos.end(), a) != algos.end();
}

/// Throws the InputError every collective gives for an algorithm that is not its own.
inline void check_applies(Collective c, Algorithm a) {
  if (!applies(c, a))
    throw InputError(std::string(to_string(c)) + ": algorithm " + std::string(to_string(a)) +
                     " does not apply");
}

/// Elements of each rank's input and output buffers for `count` elements (the count
/// collectives.hpp's functions take).
inline std::pair<std::size_t, std::size_t> buffer_elements(Collective c, std::size_t count,
                                                           std::size_t ranks) {
  switch (c) {
    case Collective::reduce_scatter: return {count * ranks, count};
    case Collective::all_gather: return {count, count * ranks};
    case Collective::all_to_all: return {count * ranks, count * ranks};
    default: return {count, count};
  }
}

/// nccl-tests' size in bytes of a call of `count` elements (the inverse of
/// count_for_size): the per-rank buffer for all-reduce, broadcast, reduce and send/recv,
/// the whole p-rank buffer for the others.
inline std::size_t size_for_count(Collective c, std::size_t count, std::size_t elem,
                                  std::size_t ranks) {
  const auto [in_elems, out_elems] = buffer_elements(c, count, ranks);
  return (c == Collective::reduce_scatter ? in_elems : out_elems) * elem;
}

/// Whether the collective combines the ranks' data with a reduction operator.
constexpr bool reduces(Collective c) {
  return c == Collective::all_reduce || c == Collective::reduce_scatter || c == Collective::reduce;
}

/// nccl-tests' `count` for a size in bytes: elements per rank for all-reduce, broadcast,
/// reduce and send/recv, per rank and peer for the others (their size is the whole
/// p-rank buffer).
inline std::size_t count_for_size(Collective c, std::size_t bytes, std::size_t elem,
                                  std::size_t ranks) {
  switch (c) {
    case Collective::reduce_scatter:
    case Collective::all_gather:
    case Collective::all_to_all: return bytes / elem / ranks;
    default: return bytes / elem;
  }
}

RAILCC_NAMESPACE_END
