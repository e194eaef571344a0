//===- CudaBackend.h - the CUDA backend -------------------------*- C++ -*-===//
#ifndef MEG_RUNTIME_CUDA_CUDABACKEND_H
#define MEG_RUNTIME_CUDA_CUDABACKEND_H

#include "runtime/exec/Backend.h"

#include <memory>

namespace meg::runtime {

/// The CUDA backend: cuBLASLt + kernels/cuda on `place.device` (runtime/cuda/CudaBackend.cpp).
std::unique_ptr<Backend> createCudaBackend(const BackendPlace &place);

} // namespace meg::runtime

#endif
