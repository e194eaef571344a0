//===- CudaOps.h - CUDA launches of bound plan steps ------------*- C++ -*-===//
//
// One launch per op of ir/Ops.def, an overload of `launch` on the op's Args struct (runtime/exec/OpArgs.h),
// declared here from Ops.def and dispatched by runtime/exec/StepBinder.h's dispatchLaunch, as the CPU backend's
// (runtime/cpu/CpuOps.h). The step binder has already decoded and checked the step; a launch maps its typed
// arguments and the step's device buffers onto kernels/cuda launches on the backend's stream, checking only what
// is CUDA's own (attention's head_dim limit, the GEMM's alignment). A closure never synchronizes the host: it
// enqueues work and returns the launch status.
//
// 16-bit steps: CudaStep::storage (runtime/cuda/Precision.h) says which storage type the step's kernel reads and
// writes; a launch picks the kernel instantiation once, at prepare time (withStorage). Steps that widen run on fp32
// copies and see F32 there.
//
// CUDA graphs: a closure may be captured once and replayed for every later training step, so nothing that changes
// from step to step may be a kernel argument. The training step is read from device memory (CudaRunArgs::
// stepCounter), and a step whose kernel needs other per-step host values (the learning rate, AdamW's bias
// corrections) asks for a slot of the backend's per-step parameter block (CudaStep::hostParam): the backend fills
// every slot on the host for each step and uploads the block, stream-ordered, before the step list runs.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_CUDA_CUDAOPS_H
#define MEG_RUNTIME_CUDA_CUDAOPS_H

#include "runtime/cuda/Precision.h"
#include "runtime/exec/Backend.h"
#include "runtime/exec/StepBinder.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
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
  /// Device: the training step (ctx.step), and the per-step parameter block (CudaStep::hostParam's slots).
  const uint32_t *stepCounter;
  uint8_t *stepParams;
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
  /// How the step runs and in which storage type (set by the backend before the launch is prepared).
  StepStorage storage;

  /// A per-step host value of `bytes` bytes (at most 64), written into the parameter block by `fill` before every
  /// run of the step list; at run time it is at paramSlot(run). One per step.
  using HostParamFill = std::function<void(const StepContext &ctx, uint8_t *slot)>;
  void hostParam(int64_t bytes, HostParamFill fill) {
    paramBytes = bytes;
    paramFill = std::move(fill);
  }
  int64_t paramBytes = 0;
  HostParamFill paramFill;
  int64_t paramOffset = 0; ///< in the block, assigned by the backend after prepare
  uint8_t *paramSlot(const CudaRunArgs &run) const { return run.stepParams + paramOffset; }

  /// Operand i / result i as storage type T.
  template <typename T> T *inAs(size_t i) const { return static_cast<T *>(in[i]); }
  template <typename T> T *outAs(size_t i = 0) const { return static_cast<T *>(out[i]); }

  /// `<plan>: step N ('op'): <api>: <message>` when `err` is not cudaSuccess.
  llvm::Error check(cudaError_t err, llvm::StringRef what = "") const;
  /// An error for a non-empty kernel message.
  llvm::Error check(const std::string &message) const;
};

#define OP(Enum, ...) llvm::Expected<CudaKernel> launch(const Enum##Args &args, CudaStep &s);
#include "ir/Ops.def"

/// A storage type as a value (kernels/cuda/Storage.cuh's float, __nv_bfloat16, __half).
template <typename T> struct StorageTag {
  using type = T;
};
/// fn(StorageTag<T>{}) for the storage type of `elem` (F32 and I32: float).
template <typename Fn> decltype(auto) withStorage(kernels::Elem elem, Fn &&fn) {
  switch (elem) {
  case kernels::Elem::BF16:
    return fn(StorageTag<__nv_bfloat16>{});
  case kernels::Elem::F16:
    return fn(StorageTag<__half>{});
  default:
    return fn(StorageTag<float>{});
  }
}

} // namespace meg::runtime::cuda

#endif
