// railcc/launch/communicator.hpp: a Communicator set up from the job's environment, as
// every railcc job sets one up: the launcher, railcc's settings (docs/env.md), the files
// they name (RAILCC_FABRIC, RAILCC_TOPO_FILE), and a transport.
//
// tcp_communicator() is the host backend for jobs without MPI (torchrun, or any launcher
// that sets RANK, WORLD_SIZE and a store address): the ranks meet at the TCP store
// (bootstrap/start.hpp), connect every pair (comm/tcp_mesh.hpp), and run their programs
// over those connections (comm/tcp_transport.hpp). mpi_communicator()
// (mpi/communicator.hpp) is the same over MPI.
#pragma once

#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <utility>

#include "railcc/bootstrap/env.hpp"
#include "railcc/bootstrap/start.hpp"
#include "railcc/comm/communicator.hpp"
#include "railcc/comm/tcp_transport.hpp"
#include "railcc/comm/transport.hpp"
#include "railcc/config.hpp"
#include "railcc/formats/job_inputs.hpp"
#include "railcc/log.hpp"
#include "railcc/topology/node_topology.hpp"

RAILCC_NAMESPACE_BEGIN

/// A communicator over `transport` with the job's settings: reads what RAILCC_FABRIC and
/// RAILCC_TOPO_FILE name. `topology`: this node's topology where the program discovered
/// it (railcc::discover_node_topology or read_hwloc_xml, from railcc::hwloc); it takes
/// the place of RAILCC_TOPO_FILE.
inline Communicator job_communicator(std::unique_ptr<Transport> transport, RailccSettings settings,
                                     Logger log,
                                     std::optional<NodeTopology> topology = std::nullopt) {
  CommunicatorOptions o;
  if (topology) settings.topo_file.reset();  // the program's own topology wins
  JobInputs in = read_job_inputs(settings, static_cast<std::uint64_t>(transport->size()));
  o.settings = std::move(settings);
  o.log = log;
  o.fabric = std::move(in.fabric);
  o.fabric_name = in.fabric_name;
  o.topology = topology ? std::move(topology) : std::move(in.topology);
  return Communicator(std::move(transport), std::move(o));
}

/// A communicator over TCP for the job `env` describes (collective over the job's ranks).
/// Logs at INFO how the job was launched and where its ranks meet.
inline Communicator tcp_communicator(const Environment& env = Environment::process(),
                                     std::ostream* log_sink = &std::cerr,
                                     std::optional<NodeTopology> topology = std::nullopt) {
  Job job = start_job(env, log_sink);
  std::unique_ptr<Transport> transport;
  if (job.launch.world_size == 1) {
    transport = std::make_unique<LocalTransport>();
  } else {
    transport = std::make_unique<TcpHostTransport>(*job.bootstrap, job.address,
                                                   job.settings.bootstrap_timeout, job.log);
  }
  job.bootstrap.reset();  // the store is needed only until the ranks are connected
  return job_communicator(std::move(transport), std::move(job.settings), job.log,
                          std::move(topology));
}

RAILCC_NAMESPACE_END
