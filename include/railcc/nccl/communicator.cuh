// railcc/nccl/communicator.cuh: a Communicator over NCCL, set up as every railcc job
// sets one up (launch/communicator.hpp): the launcher, railcc's settings and the files
// they name, here with the NCCL transport (WaveTransport over nccl::NcclDevice).
//
//   railcc::Communicator comm = railcc::nccl::nccl_communicator();   // torchrun, or
//   railcc::Communicator comm = railcc::nccl::nccl_communicator(mpi_bootstrap, gpu);
//   comm.all_reduce(d_send, d_recv, n, railcc::DataType::float32, railcc::ReduceOp::sum);
//
// Buffers are device memory. A communicator per rail is comm.split(rail, rank): an
// ncclCommSplit. RAILCC_LANES=N runs a call's channels on N streams, each with an NCCL
// communicator of its own (nccl/device.cuh).
//
// Needs nvcc and NCCL: include it from .cu files (target railcc::nccl).
#pragma once

#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>

#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/env.hpp"
#include "railcc/bootstrap/start.hpp"
#include "railcc/comm/communicator.hpp"
#include "railcc/comm/wave_transport.hpp"
#include "railcc/config.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/error.hpp"
#include "railcc/launch/communicator.hpp"
#include "railcc/log.hpp"
#include "railcc/nccl/device.cuh"
#include "railcc/topology/node_topology.hpp"

RAILCC_NAMESPACE_BEGIN

namespace nccl {

/// The GPU a rank uses when none is named: its local rank, modulo the GPUs it sees (one
/// GPU per process, as launchers place them, or all of a node's GPUs visible to each).
inline int default_device(int local_rank) {
  const int gpus = cuda::device_count();
  if (gpus == 0)
    throw InputError("NCCL transport: no GPU is visible to this process (CUDA reports none)");
  return local_rank % gpus;
}

/// A communicator over NCCL between `bootstrap`'s ranks (an MpiBootstrap, or a job's
/// store), on GPU `device`, with `settings` (RailccSettings::from the environment).
inline Communicator nccl_communicator(Bootstrap& bootstrap, int device, RailccSettings settings,
                                      Logger log,
                                      std::optional<NodeTopology> topology = std::nullopt) {
  auto nccl =
      NcclDevice::create(bootstrap, device, settings.bootstrap_timeout, log, settings.lanes);
  return job_communicator(std::make_unique<WaveTransport>(std::move(nccl)), std::move(settings),
                          log, std::move(topology));
}

/// A communicator over NCCL for the job `env` describes, as torchrun starts one (the
/// ranks meet at the TCP store, then over NCCL). `device`: the GPU, by default the local
/// rank's (default_device).
inline Communicator nccl_communicator(const Environment& env = Environment::process(),
                                      std::optional<int> device = std::nullopt,
                                      std::ostream* log_sink = &std::cerr,
                                      std::optional<NodeTopology> topology = std::nullopt) {
  Job job = start_job(env, log_sink);
  const int gpu = device ? *device : default_device(job.launch.local_rank);
  auto nccl = NcclDevice::create(*job.bootstrap, gpu, job.settings.bootstrap_timeout, job.log,
                                 job.settings.lanes);
  job.bootstrap.reset();  // the store is needed only until NCCL is up
  return job_communicator(std::make_unique<WaveTransport>(std::move(nccl)), std::move(job.settings),
                          job.log, std::move(topology));
}

}  // namespace nccl

RAILCC_NAMESPACE_END
