// railcc/coll/post.hpp: one entry point that allocates and posts any collective.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "railcc/coll/algorithms/all_gather.hpp"
#include "railcc/coll/algorithms/all_reduce.hpp"
#include "railcc/coll/algorithms/all_to_all.hpp"
#include "railcc/coll/algorithms/reduce_scatter.hpp"
#include "railcc/coll/algorithms/rooted.hpp"
#include "railcc/coll/backend.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

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
      check_applies(Collective::send_recv, algo);
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
