// railcc/coll/ring.hpp: ring all-reduce (kept for its direct callers; all_reduce in
// collectives.hpp with Algorithm::ring is the same schedule).
#pragma once

#include <vector>

#include "railcc/coll/collectives.hpp"
#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

template <CollectiveBackend B>
std::vector<Deps> ring_all_reduce(B& b, const CollectiveCall& call) {
  return all_reduce(b, call, Algorithm::ring);
}

RAILCC_NAMESPACE_END
