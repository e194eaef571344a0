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

# CUDA: auto-detected. -DMEG_ENABLE_CUDA=OFF must build and pass. nvcc is looked for in CMAKE_CUDA_COMPILER, then on
# PATH, then at /usr/local/cuda/bin/nvcc (where the toolkit installs; it is usually not on PATH).
if((MEG_ENABLE_CUDA STREQUAL "AUTO" OR MEG_ENABLE_CUDA) AND NOT CMAKE_CUDA_COMPILER)
  find_program(MEG_NVCC nvcc)
  if(NOT MEG_NVCC AND EXISTS /usr/local/cuda/bin/nvcc)
    set(MEG_NVCC /usr/local/cuda/bin/nvcc CACHE FILEPATH "nvcc" FORCE)
  endif()
  if(MEG_NVCC)
    set(CMAKE_CUDA_COMPILER ${MEG_NVCC})
  endif()
endif()
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
  enable_language(CUDA)
  # CMake 3.25 lacks the CUDA20 dialect flags for nvcc 13: set them by hand, after enable_language (whose compiler
  # check would otherwise ask for a dialect CMake does not know yet).
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA_EXTENSIONS OFF)
  find_package(CUDAToolkit REQUIRED)
  # cuBLASLt and NCCL: the toolkit's, or (GPU hosts with PyTorch's pip wheels) under MEG_CUDA_EXTRA_ROOTS, a list of
  # directories with include/ and lib/ (scripts/gpu.sh passes site-packages/nvidia/{cublas,nccl}). Never the driver
  # library (libcuda's stub breaks CPU hosts): the runtime API only.
  set(MEG_CUDA_HINTS ${MEG_CUDA_EXTRA_ROOTS} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR})
  find_path(MEG_CUBLASLT_INCLUDE_DIR cublasLt.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${MEG_CUDA_HINTS}
            PATH_SUFFIXES include REQUIRED)
  find_library(MEG_CUBLASLT_LIB NAMES cublasLt libcublasLt.so.13 libcublasLt.so.12
               HINTS ${CUDAToolkit_LIBRARY_DIR} ${MEG_CUDA_HINTS} PATH_SUFFIXES lib lib64 REQUIRED)
  find_path(MEG_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${MEG_CUDA_HINTS}
            PATH_SUFFIXES include REQUIRED)
  find_library(MEG_NCCL_LIB NAMES nccl libnccl.so.2 HINTS ${CUDAToolkit_LIBRARY_DIR} ${MEG_CUDA_HINTS}
               PATH_SUFFIXES lib lib64 REQUIRED)
  add_library(meg_cuda_libs INTERFACE)
  target_include_directories(meg_cuda_libs SYSTEM INTERFACE ${MEG_CUBLASLT_INCLUDE_DIR} ${MEG_NCCL_INCLUDE_DIR}
                             ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(meg_cuda_libs INTERFACE CUDA::cudart ${MEG_CUBLASLT_LIB} ${MEG_NCCL_LIB})
  message(STATUS "meg: cuBLASLt ${MEG_CUBLASLT_LIB}, NCCL ${MEG_NCCL_LIB}")
endif()
message(STATUS "meg: CUDA backend ${MEG_ENABLE_CUDA}")
