// railcc/formats/job_inputs.hpp: the files and presets a communicator's settings name
// (RAILCC_FABRIC, RAILCC_TOPO_FILE), read before the communicator is built. An hwloc
// topology (live, or an hwloc XML) needs railcc::hwloc: a program that links it discovers
// the node and hands the topology to the communicator itself.
#pragma once

#include <optional>
#include <string>

#include "railcc/bootstrap/env.hpp"
#include "railcc/config.hpp"
#include "railcc/error.hpp"
#include "railcc/fabric/fabric.hpp"
#include "railcc/formats/fabric_spec.hpp"
#include "railcc/formats/nccl_topo_xml.hpp"
#include "railcc/topology/node_topology.hpp"

RAILCC_NAMESPACE_BEGIN

/// What RAILCC_FABRIC and RAILCC_TOPO_FILE name, read.
struct JobInputs {
  /// RAILCC_FABRIC's fabric, sized for `gpus` where the preset scales; nothing when unset.
  std::optional<Fabric> fabric;
  std::string fabric_name;
  /// RAILCC_TOPO_FILE's node topology; nothing when unset.
  std::optional<NodeTopology> topology;
};

/// Reads what `settings` names. `gpus`: the job's ranks, which a scaling preset must hold.
/// A file that cannot be read or parsed is an InputError naming the variable and the file.
inline JobInputs read_job_inputs(const RailccSettings& settings, std::uint64_t gpus) {
  JobInputs in;
  if (settings.fabric) {
    in.fabric_name = *settings.fabric;
    in.fabric = fabric_from_spec(*settings.fabric, gpus, nullptr, "RAILCC_FABRIC");
  }
  if (settings.topo_file) {
    try {
      in.topology = read_nccl_topology_xml(*settings.topo_file);
    } catch (const InputError& e) {
      std::string why = std::string("RAILCC_TOPO_FILE: ") + e.what();
      // An hwloc XML: hwloc reads it (railcc::hwloc), and the program hands it in.
      if (why.find("<topology>") != std::string::npos)
        why +=
            " (it looks like an hwloc XML: read it with railcc::read_hwloc_xml from "
            "railcc::hwloc and pass it as the communicator's topology: mpi_communicator or "
            "tcp_communicator)";
      throw InputError(why);
    }
  }
  return in;
}

RAILCC_NAMESPACE_END
