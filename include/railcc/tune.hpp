// railcc/tune.hpp: costing plans and choosing among algorithms.
#pragma once

#include "railcc/tune/cost_model.hpp"
#include "railcc/tune/step_load.hpp"
