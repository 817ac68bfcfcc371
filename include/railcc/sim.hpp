// railcc/sim.hpp: the flow-level simulator: flow graphs, max-min sharing, engine, traces.
#pragma once

#include "railcc/sim/engine.hpp"
#include "railcc/sim/flow_graph.hpp"
#include "railcc/sim/max_min.hpp"
#include "railcc/sim/trace.hpp"
