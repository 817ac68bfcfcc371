// railcc/backend/call_time.hpp: the time the simulator gives one collective call: what a
// real backend prints beside its measured time (railcc-perf's model column).
#pragma once

#include <cstddef>
#include <vector>

#include "railcc/backend/sim_backend.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/config.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/units.hpp"

RAILCC_NAMESPACE_BEGIN

/// A call's plan: what the tuner (or the caller) chose.
struct PlannedCall {
  Algorithm algorithm = Algorithm::ring;
  Algorithm inter_host = Algorithm::rabenseifner;
  int channels = 1;
  int phase_chunks = 0;
  int chunks_in_flight = 0;
};

/// The call that runs `plan` on `count` elements of `buffers`, rooted at `root`.
inline CollectiveCall planned_call(const PlannedCall& plan, std::size_t count,
                                   const CollectiveBuffers& buffers, int root) {
  CollectiveCall call;
  call.count = count;
  call.input = buffers.input;
  call.output = buffers.output;
  call.channels = plan.channels;
  call.root = root;
  call.phase_chunks = plan.phase_chunks;
  call.chunks_in_flight = plan.chunks_in_flight;
  return call;
}

/// The simulated time (timing mode, the collective's base included) of `c` of `count`
/// elements of `type` on `ranks` ranks of `fabric` placed at `endpoints` (empty: its
/// first endpoints), run as `plan` says.
inline Picoseconds simulated_call_time(const Fabric& fabric, int ranks,
                                       std::vector<NodeIndex> endpoints, Collective c,
                                       std::size_t count, DataType type, ReduceOp op, int root,
                                       bool in_place, const PlannedCall& plan) {
  SimBackendConfig cfg;
  cfg.mode = SimMode::timing;
  SimBackend sim(fabric, ranks, cfg, std::move(endpoints));
  sim.set_reduction({type, op});
  const CollectiveBuffers b = allocate_buffers(sim, c, count, size_of(type), in_place);
  post_collective(sim, c, planned_call(plan, count, b, root), plan.algorithm, plan.inter_host);
  return sim.run().makespan;
}

RAILCC_NAMESPACE_END
