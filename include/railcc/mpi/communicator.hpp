// railcc/mpi/communicator.hpp: a Communicator for a job mpirun or srun started, over the
// host backend (host_transport.hpp), set up from the environment as every railcc job is
// (launch/communicator.hpp).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "railcc/bootstrap/env.hpp"
#include "railcc/bootstrap/launcher.hpp"
#include "railcc/comm/communicator.hpp"
#include "railcc/config.hpp"
#include "railcc/launch/communicator.hpp"
#include "railcc/log.hpp"
#include "railcc/mpi/host_transport.hpp"
#include "railcc/topology/node_topology.hpp"

RAILCC_NAMESPACE_BEGIN

/// Whether this job's host backend runs over MPI: true when mpirun or srun started it (or
/// the process started alone), false under torchrun, whose processes each see an MPI job
/// of one (their communicator is tcp_communicator's). A program calls MPI_Init only then.
[[nodiscard]] inline bool launched_for_mpi(const Environment& env = Environment::process()) {
  return detect_launch(env).launcher != Launcher::torchrun;
}

/// A communicator over `comm`'s ranks (MPI must be initialised), with railcc's settings
/// from `env` (docs/env.md). Collective over `comm`. Logs at INFO how the job was
/// launched, where the ranks sit and which fabric the tuner assumes. `topology`: this
/// node's topology where the program discovered it (railcc::discover_node_topology or
/// read_hwloc_xml, from railcc::hwloc); it takes the place of RAILCC_TOPO_FILE.
inline Communicator mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD,
                                     const Environment& env = Environment::process(),
                                     std::ostream* log_sink = &std::cerr,
                                     std::optional<NodeTopology> topology = std::nullopt) {
  RailccSettings settings = RailccSettings::from(env);
  Logger log(settings.debug, log_sink);
  auto transport = std::make_unique<MpiHostTransport>(comm, settings.bootstrap_timeout, log);
  log.set_rank(transport->rank());
  std::string how = "an MPI communicator handed in: rank " + std::to_string(transport->rank()) +
                    " of " + std::to_string(transport->size());
  std::optional<LaunchInfo> launch;
  try {
    launch = detect_launch(env);
  } catch (const InputError& e) {  // a launcher's variables that do not add up: say so
    log.warn(std::string("the launcher's environment is not understood: ") + e.what());
  }
  if (launch && launch->launcher != Launcher::none) {
    how += "; launched by " + launch->describe();
    // torchrun starts each process alone: MPI then sees a job of one per process.
    if (comm == MPI_COMM_WORLD && launch->world_size != transport->size())
      throw InputError(
          "launched by " + launch->describe() + ", but MPI sees a job of " +
          std::to_string(transport->size()) +
          ": this is the host backend over MPI, so start the job with mpirun or srun, or "
          "use tcp_communicator (railcc-perf: --transport tcp)");
  }
  log.info(how);
  return job_communicator(std::move(transport), std::move(settings), log, std::move(topology));
}

RAILCC_NAMESPACE_END
