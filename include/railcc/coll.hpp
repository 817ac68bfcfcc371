// railcc/coll.hpp: collectives: element types, reduction ops, the backend concept, the
// simulated backend, and the algorithms.
#pragma once

#include "railcc/coll/backend.hpp"
#include "railcc/coll/collective_kind.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/cost_model.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/phases.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/coll/sim_backend.hpp"
