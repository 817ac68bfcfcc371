// railcc/railcc.hpp: everything in railcc::core (the standard library, and POSIX sockets
// for the bootstrap's TCP store).
#pragma once

#include "railcc/backend.hpp"
#include "railcc/bootstrap.hpp"
#include "railcc/coll.hpp"
#include "railcc/comm.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric.hpp"
#include "railcc/log.hpp"
#include "railcc/schedule.hpp"
#include "railcc/sim.hpp"
#include "railcc/topology.hpp"
#include "railcc/tune.hpp"
#include "railcc/units.hpp"
