# Third-party dependencies: every one from Debian's packages (scripts/setup.sh installs them).

# FlatBuffers 2.0.8: Debian's flatc with Debian's headers.
find_program(FLATC flatc REQUIRED)
find_path(FLATBUFFERS_INCLUDE_DIR flatbuffers/flatbuffers.h REQUIRED)

# OpenBLAS (cblas interface), preferably Debian's OpenMP build: our kernels use OpenMP too, and a pthread OpenBLAS
# next to an OpenMP pool makes both spin against each other on 2 cores (tiny GPT training step: ~20x slower).
set(MEG_OPENBLAS_VARIANTS openblas-openmp openblas-pthread)
foreach(variant ${MEG_OPENBLAS_VARIANTS})
  if(NOT OPENBLAS_LIB)
    find_library(OPENBLAS_LIB NAMES openblas PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/${variant} NO_DEFAULT_PATH)
    find_path(OPENBLAS_INCLUDE_DIR cblas.h PATHS /usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/${variant}
              NO_DEFAULT_PATH)
  endif()
endforeach()
find_library(OPENBLAS_LIB NAMES openblas REQUIRED)
find_path(OPENBLAS_INCLUDE_DIR cblas.h PATHS /usr/include/openblas /usr/include REQUIRED)
message(STATUS "meg: OpenBLAS ${OPENBLAS_LIB}")

# Boost.Graph is header-only for what we use.
find_package(Boost 1.74 REQUIRED)

# MPI (OpenMPI) is optional at build time: without it megrun supports only --ranks threads.
find_package(MPI COMPONENTS CXX)

# CUDA: auto-detected. -DMEG_ENABLE_CUDA=OFF must build and pass.
if(MEG_ENABLE_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(MEG_ENABLE_CUDA ON)
  else()
    set(MEG_ENABLE_CUDA OFF)
  endif()
endif()
if(MEG_ENABLE_CUDA)
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  # CMake 3.25 lacks the CUDA20 dialect flags for nvcc 13: set them by hand.
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
message(STATUS "meg: CUDA backend ${MEG_ENABLE_CUDA}")
