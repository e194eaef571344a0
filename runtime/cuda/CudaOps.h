//===- CudaOps.h - CUDA adapters from plan steps to kernels -----*- C++ -*-===//
//
// One adapter per op of ir/Ops.def, named cuda<Enum>, collected into a table by including Ops.def (CudaBackend.cpp),
// mirroring runtime/cpu/CpuOps.h. The checks are shared, not repeated: an adapter first runs the CPU adapter of the
// same op on the step (attributes, dtypes, local shapes, sharding; its closure is dropped), then derives the kernel
// arguments and returns the closure that launches kernels/cuda on the backend's stream. Buffers are device pointers.
// A closure never synchronizes the host: it enqueues work and returns the launch status.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_CUDA_CUDAOPS_H
#define MEG_RUNTIME_CUDA_CUDAOPS_H

#include "runtime/cpu/CpuOps.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <functional>
#include <string>

namespace meg::runtime::cuda {

/// What a prepared kernel gets at run time.
struct CudaRunArgs {
  const StepContext &ctx;
  Communicator &comm;
  cudaStream_t stream;
  cublasLtHandle_t lt;
  void *scratch;   ///< at least the bytes the adapter asked for (scratchBytes)
  void *workspace; ///< cuBLASLt workspace (kGemmWorkspaceBytes)
};

using CudaKernel = std::function<llvm::Error(const CudaRunArgs &)>;

/// cuBLASLt workspace per backend.
constexpr size_t kGemmWorkspaceBytes = size_t(32) << 20;

/// A step being prepared for the CUDA backend: the CPU step (buffers, attributes, checks) plus the device context.
class CudaStep : public cpu::CpuStep {
public:
  CudaStep(const LoadedPlan &plan, size_t index, llvm::SmallVector<void *, 4> in, llvm::SmallVector<void *, 1> out,
           cublasLtHandle_t lt)
      : cpu::CpuStep(plan, index, std::move(in), std::move(out)), lt(lt) {}

  cublasLtHandle_t lt;
  /// Bytes of device scratch the kernel needs at run time (the backend keeps one buffer of the largest request).
  int64_t scratchBytes = 0;

  /// `<plan>: step N ('op'): <api>: <message>` when `err` is not cudaSuccess.
  llvm::Error check(cudaError_t err, llvm::StringRef what = "") const;
  /// An error for a non-empty kernel message.
  llvm::Error check(const std::string &message) const;
};

using CpuAdapter = llvm::Expected<cpu::CpuKernel> (*)(cpu::CpuStep &);

/// Runs the CPU adapter's checks on `s` and drops its closure and scratch request.
llvm::Error validate(CudaStep &s, CpuAdapter cpuAdapter);

#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary)                              \
  llvm::Expected<CudaKernel> cuda##Enum(CudaStep &s);
#include "ir/Ops.def"

} // namespace meg::runtime::cuda

#endif
