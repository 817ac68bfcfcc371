// railcc/bootstrap.hpp: starting a job: the environment, the launcher, the bootstrap and
// its TCP store.
#pragma once

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/env.hpp"
#include "railcc/bootstrap/launcher.hpp"
#include "railcc/bootstrap/start.hpp"
#include "railcc/bootstrap/tcp_store.hpp"
#include "railcc/bootstrap/wire.hpp"
