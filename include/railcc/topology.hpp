// railcc/topology.hpp: node topology: model, path classes, affinity, matrix, health check.
#pragma once

#include "railcc/topology/affinity.hpp"
#include "railcc/topology/cpu_set.hpp"
#include "railcc/topology/device_catalog.hpp"
#include "railcc/topology/health_check.hpp"
#include "railcc/topology/node_topology.hpp"
#include "railcc/topology/path_class.hpp"
#include "railcc/topology/paths.hpp"
#include "railcc/topology/pci.hpp"
#include "railcc/topology/topo_matrix.hpp"
