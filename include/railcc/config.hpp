// railcc/config.hpp: version numbers and the versioned namespace.
//
// Every public name lives in `railcc::` through a version-tagged inline namespace, so
// two shared objects built against different railcc versions never exchange
// incompatible types under the same mangled name.
#pragma once

#define RAILCC_VERSION_MAJOR 0
#define RAILCC_VERSION_MINOR 1
#define RAILCC_VERSION_PATCH 0

#define RAILCC_NAMESPACE_BEGIN \
  namespace railcc {           \
  inline namespace v0_1 {
#define RAILCC_NAMESPACE_END \
  }                          \
  }

// Pointers that no other pointer of the function reaches (C's `restrict`), for loops
// the compiler should vectorise without a run-time overlap check.
#if defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER)
#define RAILCC_RESTRICT __restrict
#else
#define RAILCC_RESTRICT
#endif

// Functions that run on the host and, compiled by nvcc, on the GPU: the element
// operations of reductions, so that the kernels and the host backends share one
// definition and the host's unit tests test what the GPU runs.
#if defined(__CUDACC__)
#define RAILCC_HOST_DEVICE __host__ __device__
#else
#define RAILCC_HOST_DEVICE
#endif
