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
# railcc::cuda (the kernels) compiles .cu files, so it needs nvcc as CMake's CUDA
# compiler too, and RAILCC_BUILD_CUDA (a sanitizer or fuzzing build turns it off: nvcc
# takes no -fsanitize).
set(RAILCC_HAVE_CUDA OFF)
if(CUDAToolkit_FOUND AND RAILCC_BUILD_CUDA)
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
    set(CMAKE_CUDA_COMPILER "${CUDAToolkit_NVCC_EXECUTABLE}")
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Hopper (H100, H200) unless told otherwise: -DCMAKE_CUDA_ARCHITECTURES=native builds
    # for the GPUs of the machine, a list for several.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    # CMake 3.25 knows nvcc's C++ standards up to C++17; railcc's headers need C++20.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    set(RAILCC_HAVE_CUDA ON)
  endif()
endif()
if(RAILCC_HAVE_CUDA)
  message(STATUS "railcc: CUDA adapter enabled: CUDA Toolkit ${CUDAToolkit_VERSION}, nvcc for architectures ${CMAKE_CUDA_ARCHITECTURES}")
elseif(CUDAToolkit_FOUND AND NOT RAILCC_BUILD_CUDA)
  message(STATUS "railcc: CUDA adapter disabled (RAILCC_BUILD_CUDA=OFF)")
elseif(CUDAToolkit_FOUND)
  message(STATUS "railcc: CUDA adapter disabled: CUDA Toolkit ${CUDAToolkit_VERSION} found, but CMake cannot use its nvcc as the CUDA compiler")
else()
  message(STATUS "railcc: CUDA adapter disabled: CUDA Toolkit not found (set CUDAToolkit_ROOT to point at one)")
endif()

find_package(NCCL QUIET)
if(NCCL_FOUND)
  message(STATUS "railcc: NCCL ${NCCL_VERSION} found (${NCCL_LIBRARY})")
else()
  message(STATUS "railcc: NCCL not found: NCCL adapters disabled (set NCCL_ROOT, or install it beside CUDA)")
endif()
