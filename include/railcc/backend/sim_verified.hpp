// railcc/backend/sim_verified.hpp: the simulated backend's data-mode harness: run one
// collective on random inputs and count what differs from the reference (coll/reference.hpp).
#pragma once

#include <cstdint>

#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

struct VerifiedResult {
  std::size_t wrong = 0;  ///< output elements (blocks, for copies) that differ from the reference
  SimResult sim;
};

/// Fills the inputs on a data-mode simulated backend, posts and runs the collective and
/// counts what differs from the reference.
inline VerifiedResult run_verified(SimBackend& b, const VerifiedCall& c, std::uint64_t seed) {
  if (b.mode() != SimMode::data) throw InputError("run_verified: needs a data-mode backend");
  const VerifiedInputs v = fill_verified(b, c, seed);
  post_collective(b, c.collective, verified_collective_call(c, v.buffers), c.algorithm,
                  c.inter_host);
  VerifiedResult result;
  result.sim = b.run();
  result.wrong = count_wrong(b, c, v);
  return result;
}

RAILCC_NAMESPACE_END
