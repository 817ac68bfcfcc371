// railcc/comm.hpp: the communicator users hold and what it runs on (transports).
#pragma once

#include "railcc/comm/communicator.hpp"
#include "railcc/comm/host_steps.hpp"
#include "railcc/comm/placement.hpp"
#include "railcc/comm/tcp_mesh.hpp"
#include "railcc/comm/tcp_transport.hpp"
#include "railcc/comm/transport.hpp"
#include "railcc/comm/wave_transport.hpp"
#include "railcc/comm/waves.hpp"
