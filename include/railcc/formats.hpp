// railcc/formats.hpp: file formats (target railcc::formats: pugixml, nlohmann-json).
#pragma once

#include "railcc/formats/fabric_json.hpp"
#include "railcc/formats/fabric_spec.hpp"
#include "railcc/formats/job_inputs.hpp"
#include "railcc/formats/nccl_topo_xml.hpp"
#include "railcc/formats/topology_json.hpp"
