// railcc/coll/collective_kind.hpp: the collectives by name, how nccl-tests accounts for
// them, and one entry point that posts any of them.
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "railcc/coll/backend.hpp"
#include "railcc/coll/collectives.hpp"
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

inline std::optional<Algorithm> parse_algorithm(std::string_view s) {
  for (auto a :
       {Algorithm::ring, Algorithm::rabenseifner, Algorithm::hierarchical, Algorithm::chain,
        Algorithm::pairwise, Algorithm::bruck, Algorithm::tree, Algorithm::nvls}) {
    if (s == to_string(a)) return a;
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

/// The algorithms railcc has for a collective; the first is the default.
inline std::vector<Algorithm> algorithms_for(Collective c) {
  switch (c) {
    case Collective::all_reduce:
      return {Algorithm::ring, Algorithm::rabenseifner, Algorithm::tree, Algorithm::hierarchical,
              Algorithm::nvls};
    case Collective::reduce_scatter: return {Algorithm::ring, Algorithm::bruck};
    case Collective::all_gather: return {Algorithm::ring, Algorithm::bruck};
    case Collective::broadcast:
    case Collective::reduce: return {Algorithm::chain};
    case Collective::all_to_all: return {Algorithm::pairwise};
    case Collective::send_recv: return {Algorithm::pairwise};
  }
  return {};
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

/// A collective's symmetric buffers on a backend; `in_place` is false where the collective
/// has no in-place form (all-to-all, send/recv) even if it was asked for.
struct CollectiveBuffers {
  BufferId input = 0;
  BufferId output = 0;
  bool in_place = false;
};

/// Allocates the input and output buffers for `count` elements of `elem` bytes (in place:
/// one buffer large enough for both).
template <CollectiveBackend B>
CollectiveBuffers allocate_buffers(B& b, Collective c, std::size_t count, std::size_t elem,
                                   bool in_place) {
  const auto [in_elems, out_elems] = buffer_elements(c, count, static_cast<std::size_t>(b.ranks()));
  CollectiveBuffers buf;
  buf.in_place = in_place && c != Collective::all_to_all && c != Collective::send_recv;
  buf.input = b.allocate((buf.in_place ? std::max(in_elems, out_elems) : in_elems) * elem);
  buf.output = buf.in_place ? buf.input : b.allocate(out_elems * elem);
  return buf;
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

/// Posts one collective. send_recv is nccl-tests' sendrecv: every rank sends its buffer to
/// the next rank of the placement ring and receives the previous one's.
template <CollectiveBackend B>
std::vector<Deps> post_collective(B& b, Collective c, const CollectiveCall& call, Algorithm algo,
                                  Algorithm inter_host = Algorithm::rabenseifner) {
  switch (c) {
    case Collective::all_reduce: return all_reduce(b, call, algo, inter_host);
    case Collective::reduce_scatter: return reduce_scatter(b, call, algo);
    case Collective::all_gather: return all_gather(b, call, algo);
    case Collective::broadcast: return broadcast(b, call, algo);
    case Collective::reduce: return reduce(b, call, algo);
    case Collective::all_to_all: return all_to_all(b, call, algo);
    case Collective::send_recv: {
      if (algo != Algorithm::pairwise)
        throw InputError("send_recv: algorithm " + std::string(to_string(algo)) +
                         " does not apply");
      if (call.input == call.output)
        throw InputError("send_recv: in place is not supported; give an output buffer");
      const std::size_t bytes = call.count * size_of(b.reduction().type);
      const auto ring = placement_ring(b);
      std::vector<Deps> done(ring.size());
      for (std::size_t j = 0; j < ring.size(); ++j) {
        const int to = ring[(j + 1) % ring.size()];
        const OpId op =
            send_recv(b, ring[j], Region{call.input, 0, bytes}, to, Region{call.output, 0, bytes});
        done[static_cast<std::size_t>(to)].push_back(op);
      }
      return done;
    }
  }
  throw InputError("unknown collective");
}

RAILCC_NAMESPACE_END
