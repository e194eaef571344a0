//===- Precision.h - how the CUDA backend runs 16-bit plan steps -*- C++ -*-===//
//
// The CUDA kernels have native 16-bit variants (kernels/cuda/Kernels.h: templated on the storage type, fp32 math,
// rounded stores) for most ops; the others run 16-bit steps on fp32 copies (runtime/exec/Widen.h). One rule per op
// of ir/Ops.def decides (native16Rule; a table with one row per op, checked at compile time), and classifyStep
// applies it to a step's slot dtypes. Plain C++ (no CUDA headers), so the dispatch is unit-tested on any host
// (test/gpu/PrecisionTest.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_CUDA_PRECISION_H
#define MEG_RUNTIME_CUDA_PRECISION_H

#include "ir/Op.h"
#include "runtime/plan/Plan.h"

#include "kernels/Math.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>

namespace meg::runtime::cuda {

/// What the CUDA backend has for an op's 16-bit steps.
enum class Native16 : uint8_t {
  NotAStep, ///< param, input, output, state: never steps
  AnyDType, ///< the launch handles every dtype itself (cast converts, reshape copies bytes): never widened
  Uniform,  ///< a 16-bit kernel, when every float (f32/bf16/f16) slot of the step has one dtype (i32 slots aside)
  Gemm,     ///< contract: cuBLASLt with A and B of one dtype, the result in that dtype or in f32
  Widen,    ///< no 16-bit kernel: fp32 copies in, rounded results out
};

/// The rule of op `kind`.
Native16 native16Rule(ir::OpKind kind);
/// "not-a-step", "any-dtype", "uniform", "gemm", "widen".
llvm::StringRef native16RuleName(Native16 rule);

/// How one step runs.
enum class StepPrecision : uint8_t {
  F32,      ///< no 16-bit slot: the fp32 kernel (and i32 moves) as they are
  Native16, ///< the 16-bit kernel on the step's own buffers
  Widened,  ///< the fp32 kernel on fp32 copies (runtime/exec/Widen.h)
  Direct,   ///< a launch that handles any dtype (cast, reshape)
};

struct StepStorage {
  StepPrecision precision = StepPrecision::F32;
  /// The storage type the kernel reads its float operands in (F32 unless Native16).
  kernels::Elem elem = kernels::Elem::F32;
  /// The storage type of the float results (elem, except a contract accumulating 16-bit operands into f32).
  kernels::Elem resultElem = kernels::Elem::F32;
};

/// The precision and storage types of `step` under its op's rule.
StepStorage classifyStep(const PlanStep &step);

} // namespace meg::runtime::cuda

#endif
