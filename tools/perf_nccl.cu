// railcc-perf -B nccl: the NCCL transport's communicator for this job (perf_gpu.hpp).
#include "perf_gpu.hpp"
#include "railcc/bootstrap/launcher.hpp"
#include "railcc/nccl/communicator.cuh"

namespace railcc_tools::perf {

railcc::Communicator nccl_communicator(railcc::Bootstrap* bootstrap,
                                       const railcc::Environment& env) {
  if (bootstrap == nullptr) return railcc::nccl::nccl_communicator(env);
  railcc::RailccSettings settings = railcc::RailccSettings::from(env);
  railcc::Logger log(settings.debug, &std::cerr);
  log.set_rank(bootstrap->rank());
  const railcc::LaunchInfo launch = railcc::detect_launch(env);
  const int device = railcc::nccl::default_device(launch.local_rank);
  return railcc::nccl::nccl_communicator(*bootstrap, device, std::move(settings), log);
}

}  // namespace railcc_tools::perf
