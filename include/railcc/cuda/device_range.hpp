// railcc/cuda/device_range.hpp: whether a caller's buffer is device memory that holds the
// bytes a call will touch, checked before anything is queued.
//
// A pointer alone does not say how much memory follows it; the driver does:
// cuMemGetAddressRange gives the allocation that holds an address. railcc reaches it
// through the runtime (cudaGetDriverEntryPointByVersion), so nothing links the driver
// library. A buffer too small for its call is then an InputError naming the call, the
// buffer and both sizes, instead of a kernel that writes past its allocation.
//
// Compiles with the host compiler (the CUDA runtime's C API).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "railcc/config.hpp"
#include "railcc/cuda/check.hpp"
#include "railcc/error.hpp"

RAILCC_NAMESPACE_BEGIN

namespace cuda {

namespace detail {

/// cuMemGetAddressRange's type (CUresult, CUdeviceptr written as the integers they are).
using AddressRangeFn = int (*)(unsigned long long* base, std::size_t* size,
                               unsigned long long address);

/// The driver's cuMemGetAddressRange, or null where the driver does not offer it.
inline AddressRangeFn address_range_fn() {
  static const AddressRangeFn fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &p, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return AddressRangeFn{nullptr};
    }
    return reinterpret_cast<AddressRangeFn>(p);
  }();
  return fn;
}

}  // namespace detail

/// `p` is device (or managed) memory with at least `bytes` bytes from `p` to the end of
/// its allocation; otherwise an InputError saying "CALL: WHAT ...". Where the driver
/// cannot say how large the allocation is, only the kind of memory is checked.
inline void require_device_bytes(const void* p, std::size_t bytes, const std::string& what,
                                 const std::string& call) {
  if (bytes == 0) return;
  if (p == nullptr) throw InputError(call + ": " + what + " is null");
  cudaPointerAttributes a{};
  const cudaError_t rc = cudaPointerGetAttributes(&a, p);
  if (rc != cudaSuccess) {
    (void)cudaGetLastError();
    throw InputError(call + ": CUDA cannot tell what memory " + what + " is (" +
                     cudaGetErrorString(rc) + ")");
  }
  if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
    throw InputError(call + ": " + what +
                     " is host memory; this transport takes device memory (cudaMalloc, or "
                     "managed memory)");
  const detail::AddressRangeFn range = detail::address_range_fn();
  if (range == nullptr) return;
  unsigned long long base = 0;
  std::size_t size = 0;
  const auto at = static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(p));
  if (range(&base, &size, at) != 0) return;  // the driver does not know it: nothing to add
  const std::size_t room = static_cast<std::size_t>(base + size - at);
  if (bytes > room)
    throw InputError(call + ": " + what + " has " + std::to_string(room) +
                     " bytes from its address to the end of its allocation, and the call needs " +
                     std::to_string(bytes));
}

}  // namespace cuda

RAILCC_NAMESPACE_END
