# Detects railcc's optional dependencies. A missing one disables its adapter with one
# STATUS line saying how to get it; configuration never fails for it.

find_package(pugixml CONFIG QUIET)
find_package(nlohmann_json 3 CONFIG QUIET)
if(TARGET pugixml::pugixml AND TARGET nlohmann_json::nlohmann_json)
  set(RAILCC_HAVE_FORMATS ON)
  message(STATUS "railcc: formats (NCCL XML, JSON) enabled: pugixml ${pugixml_VERSION}, nlohmann-json ${nlohmann_json_VERSION}")
else()
  set(RAILCC_HAVE_FORMATS OFF)
  message(STATUS "railcc: formats (NCCL XML, JSON) disabled: pugixml or nlohmann-json not found (Debian: libpugixml-dev nlohmann-json3-dev)")
endif()

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(HWLOC QUIET IMPORTED_TARGET GLOBAL hwloc>=2.0)
endif()
if(TARGET PkgConfig::HWLOC AND TARGET pugixml::pugixml)
  set(RAILCC_HAVE_HWLOC ON)
  message(STATUS "railcc: hwloc adapter enabled: hwloc ${HWLOC_VERSION}")
else()
  set(RAILCC_HAVE_HWLOC OFF)
  message(STATUS "railcc: hwloc adapter disabled: it needs hwloc >= 2.0 through pkg-config and pugixml (Debian: libhwloc-dev pkg-config libpugixml-dev)")
endif()

# MPI (Open MPI from Debian): the MPI bootstrap and the host backend, which runs plans
# over it. Its C API, from C++ (railcc has no C sources), without the deprecated C++
# bindings. The adapter reads the fabric and topology files a job names, so it needs the
# formats adapter too.
set(MPI_CXX_SKIP_MPICXX ON)
find_package(MPI QUIET COMPONENTS CXX)
if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE AND RAILCC_HAVE_FORMATS)
  set(RAILCC_HAVE_MPI ON)
  execute_process(COMMAND "${MPIEXEC_EXECUTABLE}" --version OUTPUT_VARIABLE RAILCC_MPIEXEC_VERSION
                  ERROR_QUIET RESULT_VARIABLE railcc_mpiexec_rc)
  string(REGEX MATCH "[^\n]*" RAILCC_MPIEXEC_VERSION "${RAILCC_MPIEXEC_VERSION}")
  message(STATUS "railcc: MPI adapter enabled: MPI ${MPI_CXX_VERSION}, ${RAILCC_MPIEXEC_VERSION}")
else()
  set(RAILCC_HAVE_MPI OFF)
  message(STATUS "railcc: MPI adapter disabled: it needs MPI with mpiexec and the formats adapter (Debian: libopenmpi-dev openmpi-bin, and the formats' packages)")
endif()

find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND)
  message(STATUS "railcc: CUDA Toolkit ${CUDAToolkit_VERSION} found (${CUDAToolkit_BIN_DIR})")
else()
  message(STATUS "railcc: CUDA Toolkit not found: CUDA adapters disabled (set CUDAToolkit_ROOT to point at one)")
endif()

find_package(NCCL QUIET)
if(NCCL_FOUND)
  message(STATUS "railcc: NCCL ${NCCL_VERSION} found (${NCCL_LIBRARY})")
else()
  message(STATUS "railcc: NCCL not found: NCCL adapters disabled (set NCCL_ROOT, or install it beside CUDA)")
endif()
