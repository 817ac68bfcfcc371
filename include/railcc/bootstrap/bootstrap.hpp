// railcc/bootstrap/bootstrap.hpp: the few collectives a job needs before it has a
// communicator: exchanging small blobs (placements, NCCL's unique id, addresses) and
// waiting for each other.
//
// Two implementations: a TCP store (tcp_store.hpp: rank 0 listens at MASTER_ADDR:
// MASTER_PORT, as torchrun jobs expect) and MPI (with the host backend). Every wait has a
// timeout; when it runs out, or a peer leaves, the call throws a PeerError naming the
// ranks and the call, never hangs. Calls are collective: every rank makes the same calls
// in the same order, and a rank that calls another is named too.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

class Bootstrap {
 public:
  Bootstrap() = default;
  Bootstrap(const Bootstrap&) = delete;
  Bootstrap& operator=(const Bootstrap&) = delete;
  virtual ~Bootstrap() = default;

  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  /// Every rank's blob, in rank order; blobs may differ in size.
  virtual std::vector<std::string> all_gather(std::string_view mine) = 0;
  /// `root`'s blob, on every rank (the others' `blob` is ignored).
  virtual std::string broadcast(std::string_view blob, int root) = 0;
  /// Returns once every rank has called it.
  virtual void barrier() = 0;
};

RAILCC_NAMESPACE_END
