// railcc/fabric.hpp: the network between GPUs: fabric graph, Clos builder, presets, failures,
// routing.
#pragma once

#include "railcc/fabric/clos.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/fabric/failures.hpp"
#include "railcc/fabric/node_shape.hpp"
#include "railcc/fabric/presets.hpp"
#include "railcc/fabric/routing.hpp"
