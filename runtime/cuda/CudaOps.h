//===- CudaOps.h - CUDA launches of bound plan steps ------------*- C++ -*-===//
//
// One launch per op of ir/Ops.def, an overload of `launch` on the op's Args struct (runtime/exec/OpArgs.h),
// declared here from Ops.def and dispatched by runtime/exec/StepBinder.h's dispatchLaunch, as the CPU backend's
// (runtime/cpu/CpuOps.h). The step binder has already decoded and checked the step; a launch maps its typed
// arguments and the step's device buffers onto kernels/cuda launches on the backend's stream, checking only what
// is CUDA's own (attention's head_dim limit, the GEMM's alignment). A closure never synchronizes the host: it
// enqueues work and returns the launch status.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_CUDA_CUDAOPS_H
#define MEG_RUNTIME_CUDA_CUDAOPS_H

#include "runtime/exec/Backend.h"
#include "runtime/exec/StepBinder.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <functional>
#include <string>

namespace meg::runtime::cuda {

class CudaCommunicator;

/// What a prepared kernel gets at run time.
struct CudaRunArgs {
  const StepContext &ctx;
  /// The rank's device communicator (the backend's own thread communicators, or NCCL's from the job); null when
  /// the communicator is not a device one (then every collective over more than one rank is an error).
  CudaCommunicator *comm;
  cudaStream_t stream;
  cublasLtHandle_t lt;
  void *scratch;   ///< at least the bytes the launch asked for (scratchBytes)
  void *workspace; ///< cuBLASLt workspace (kGemmWorkspaceBytes)
};

using CudaKernel = std::function<llvm::Error(const CudaRunArgs &)>;

/// cuBLASLt workspace per backend.
constexpr size_t kGemmWorkspaceBytes = size_t(32) << 20;

/// A step as the CUDA backend runs it: device buffers and the cuBLASLt handle, plus its launch's scratch request.
class CudaStep : public StepBuffers {
public:
  CudaStep(const LoadedPlan &plan, size_t index, Resolver resolve, cublasLtHandle_t lt)
      : StepBuffers(plan, index, std::move(resolve)), lt(lt) {}

  cublasLtHandle_t lt;
  /// Bytes of device scratch the kernel needs at run time (the backend keeps one buffer of the largest request).
  int64_t scratchBytes = 0;

  /// `<plan>: step N ('op'): <api>: <message>` when `err` is not cudaSuccess.
  llvm::Error check(cudaError_t err, llvm::StringRef what = "") const;
  /// An error for a non-empty kernel message.
  llvm::Error check(const std::string &message) const;
};

#define OP(Enum, ...) llvm::Expected<CudaKernel> launch(const Enum##Args &args, CudaStep &s);
#include "ir/Ops.def"

} // namespace meg::runtime::cuda

#endif
