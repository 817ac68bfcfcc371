// railcc/coll/backend.hpp: what a collective algorithm needs from a backend.
//
// Algorithms are written once against this concept and run unchanged on every backend:
// the plan builder (plan.hpp, which records them), the simulated backend and the
// in-process backend. An algorithm posts operations on symmetric buffers (the same buffer
// id names each rank's own copy) and says, for each, which earlier operations it must
// wait for:
//  - transfer(src, from, dst, to, action, deps, channel): `from` on rank src goes to `to`
//    on rank dst, which either takes it (copy) or reduces it into what it holds (reduce,
//    with the collective's op and type); `channel` is the connection it travels on (the
//    algorithm's parallel ring, tree or step), which also seeds its QP;
//  - local(rank, to, from, action, deps): the same within one rank's memory;
//  - finish(rank, region, deps): the reduction's last step on a fully reduced region (avg
//    divides by the rank count; the other ops have none).
// Each returns an OpId. Reads happen when an operation starts and writes when it ends,
// so a missing dependency shows up as wrong data in the simulated backend's data mode,
// exactly as a race would on hardware. Placement tells algorithms where ranks sit
// (host, local index, rail) so hierarchical and rail-aligned algorithms can use it.
// What only some backends can do (in-switch reduction, evaluating a run of identical
// steps once) is not here but in capabilities.hpp: a backend that cannot do it declares
// nothing, and algorithms ask with `if constexpr`.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "railcc/coll/data_type.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

using BufferId = std::uint32_t;
using OpId = std::uint32_t;

/// Bytes [offset, offset + bytes) of one of a rank's buffers.
struct Region {
  BufferId buffer = 0;
  std::size_t offset = 0;
  std::size_t bytes = 0;
};

/// Whether two regions share a byte of one buffer.
constexpr bool overlaps(const Region& a, const Region& b) {
  return a.buffer == b.buffer && a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
}

enum class RecvAction : std::uint8_t { copy, reduce };

struct RankPlacement {
  std::uint32_t host = 0;
  std::uint32_t local = 0;  ///< index within the host (0 .. ranks_per_host - 1)
  std::uint32_t rail = 0;
};

/// The collective being run: every reduction of the call uses this type and op.
struct ReductionSpec {
  DataType type = DataType::float32;
  ReduceOp op = ReduceOp::sum;
};

template <class B>
concept CollectiveBackend = requires(B& b, const B& cb, int rank, Region r, RecvAction a,
                                     std::span<const OpId> deps, std::uint32_t channel) {
  /// Ranks 0 .. ranks() - 1 take part.
  { cb.ranks() } -> std::convertible_to<int>;
  /// Where a rank sits; ring orders and hierarchical phases are built from it.
  { cb.placement(rank) } -> std::same_as<RankPlacement>;
  /// The element type and operator every reduce and finish of the call uses.
  { cb.reduction() } -> std::same_as<ReductionSpec>;
  /// A transfer between ranks (or within one, where src == dst).
  { b.transfer(rank, r, rank, r, a, deps, channel) } -> std::same_as<OpId>;
  /// A copy or reduction within one rank's memory.
  { b.local(rank, r, r, a, deps) } -> std::same_as<OpId>;
  /// The reduction's last step on a fully reduced region.
  { b.finish(rank, r, deps) } -> std::same_as<OpId>;
  /// A symmetric scratch buffer (algorithms that must not touch the caller's input).
  { b.allocate(std::size_t{}) } -> std::same_as<BufferId>;
};

/// A convenience for algorithms: the dependency list of one operation.
using Deps = std::vector<OpId>;

RAILCC_NAMESPACE_END
