// railcc/railcc.hpp: everything in railcc::core (standard library only).
#pragma once

#include "railcc/backend.hpp"
#include "railcc/coll.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric.hpp"
#include "railcc/sim.hpp"
#include "railcc/topology.hpp"
#include "railcc/tune.hpp"
#include "railcc/units.hpp"
