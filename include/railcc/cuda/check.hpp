// railcc/cuda/check.hpp: every CUDA runtime call checked, its failure an exception that
// names the call.
//
// A CUDA error is sticky for a launch and surfaces at the next call that looks: a
// kernel launched on a bad pointer fails at the next synchronisation, which without the
// call's name reads as a failure of whatever came next. So every call goes through
// check(), launches are followed by cudaGetLastError(), and the message carries the
// call as written, CUDA's error name and its description.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

namespace cuda {

/// A CUDA runtime call failed. `code()` is CUDA's error; `what()` names the call.
class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  [[nodiscard]] cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

/// Throws CudaError naming `call` unless `rc` is cudaSuccess.
inline void check(cudaError_t rc, const char* call) {
  if (rc == cudaSuccess) return;
  // The runtime also keeps the error as its last one; clear it (where it is not sticky),
  // so that the next launch's cudaGetLastError() does not report it as its own.
  (void)cudaGetLastError();
  throw CudaError(rc, std::string("CUDA: ") + call + " failed: " + cudaGetErrorName(rc) + " (" +
                          cudaGetErrorString(rc) + ")");
}

/// The GPUs this process sees; 0 where there is no GPU or no driver (an error CUDA
/// reports for this first call is the answer, not a failure).
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: the next call must not see it
    return 0;
  }
  return n;
}

}  // namespace cuda

RAILCC_NAMESPACE_END

/// Checks a CUDA runtime call: RAILCC_CUDA_CHECK(cudaMemcpyAsync(...)).
#define RAILCC_CUDA_CHECK(call) ::railcc::cuda::check((call), #call)
