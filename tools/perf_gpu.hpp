// perf_gpu.hpp: railcc-perf's GPU backends, compiled by nvcc in their own files
// (perf_nccl.cu, perf_cuda_local.cu) and called from railcc_perf.cpp through these
// declarations, so the rest of the tool builds with the host compiler.
#pragma once

#include "perf_report.hpp"
#include "railcc/bootstrap/bootstrap.hpp"
#include "railcc/bootstrap/env.hpp"
#include "railcc/comm/communicator.hpp"

namespace railcc_tools::perf {

/// -B nccl: a communicator over NCCL for this job. `bootstrap`: MPI's where mpirun
/// started the job, or null to meet at the TCP store as torchrun's jobs do.
railcc::Communicator nccl_communicator(railcc::Bootstrap* bootstrap,
                                       const railcc::Environment& env);

/// -B cuda-local: every rank in this process on one GPU; prints the table. Returns the
/// exit status (1 if an element was wrong).
int run_cuda_local(const Options& o);

}  // namespace railcc_tools::perf
