// railcc/coll/algorithms/all_to_all.hpp: all-to-all (pairwise) and send/recv.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "railcc/coll/algorithms/common.hpp"
#include "railcc/coll/backend.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/coll/phases.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

/// Direct all-to-all: every pair exchanges its chunk at once; each rank copies its own.
template <CollectiveBackend B>
std::vector<Deps> all_to_all(B& b, const CollectiveCall& call,
                             Algorithm algo = Algorithm::pairwise) {
  using namespace detail::coll;
  check_call(b, call, "all_to_all");
  check_applies(Collective::all_to_all, algo);
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
