// railcc/mpi/mpi_api.hpp: MPI's C API as railcc's MPI adapter includes it, and MPI's error
// codes as text.
#pragma once

// MPI's C API only: the C++ bindings are deprecated and do not build warning-free.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <string>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

namespace detail::mpi_api {

/// MPI's text for an error code.
inline std::string error_text(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(length));
}

}  // namespace detail::mpi_api

RAILCC_NAMESPACE_END
