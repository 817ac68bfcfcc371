// railcc/backend.hpp: the backends that execute plans: the simulated backend (and its
// data-mode harness) and the in-process backend (ranks as threads).
#pragma once

#include "railcc/backend/call_time.hpp"
#include "railcc/backend/in_process_backend.hpp"
#include "railcc/backend/sim_backend.hpp"
#include "railcc/backend/sim_verified.hpp"
