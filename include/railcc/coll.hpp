// railcc/coll.hpp: collectives: element types, reduction ops, the backend concept and its
// optional capabilities, the algorithms, plans and their projection onto one rank.
#pragma once

#include "railcc/coll/backend.hpp"
#include "railcc/coll/call.hpp"
#include "railcc/coll/capabilities.hpp"
#include "railcc/coll/collective.hpp"
#include "railcc/coll/collectives.hpp"
#include "railcc/coll/data_type.hpp"
#include "railcc/coll/order.hpp"
#include "railcc/coll/phases.hpp"
#include "railcc/coll/plan.hpp"
#include "railcc/coll/post.hpp"
#include "railcc/coll/projection.hpp"
#include "railcc/coll/reduce_op.hpp"
#include "railcc/coll/reference.hpp"
#include "railcc/coll/step_tracker.hpp"
