//===- CudaBackend.h - the CUDA backend -------------------------*- C++ -*-===//
#ifndef MEG_RUNTIME_CUDA_CUDABACKEND_H
#define MEG_RUNTIME_CUDA_CUDABACKEND_H

#include "runtime/exec/Backend.h"

#include <memory>

namespace meg::runtime {

/// The CUDA backend: cuBLASLt + kernels/cuda on `place.device` (runtime/cuda/CudaBackend.cpp).
std::unique_ptr<Backend> createCudaBackend(const BackendPlace &place);
/// True when `backend` (a CUDA backend) has captured its training step in a CUDA graph (for tests).
bool cudaGraphCaptured(const Backend &backend);

} // namespace meg::runtime

#endif
