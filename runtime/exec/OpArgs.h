//===- OpArgs.h - the typed, checked arguments of every plan step -*- C++ -*-===//
//
// One struct `<Enum>Args` per op of ir/Ops.def: what a kernel needs to run the step, decoded from the step's
// attributes, dtypes, local shapes and sharding offsets ONCE, by the step binder (runtime/exec/StepBinder.h), and
// checked there. Backends never read attributes: each supplies one launch per op from these structs and the step's
// resolved buffers (runtime/cpu/CpuOps.h, runtime/cuda/CudaOps.h). OpArgs, the variant of all of them, is
// enumerated from Ops.def, so an op without an Args struct is a compile error.
//
// Ops whose launches are the same kernel call share a struct through an alias (add/sub/mul/div: BinaryArgs;
// scale/exp/log/tanh: UnaryArgs; slice/shard: SliceArgs; reduce_sum/reduce_max: ReduceArgs); ops that are not
// steps (param, input, output, state) have NotAStepArgs, which the binder never produces.
//
// Sharding-aware arguments, all from the operands' global shapes and offsets:
//   embedding(_grad): rowOffset = offset[0] of the (vocab-split) table; a hidden-split table gives hidden-split rows;
//   attention(_grad): headOffset = q's (batch, head) offset in the global [batch, heads] grid, headsTotal = global
//                     heads, so dropout masks are indexed in the global [batch, heads, seq, seq] tensor;
//   dropout:          the result's global shape and offset (global element index);
//   mask_padding:     the shard's offset along the masked dim;
//   slice/select/shard: global attribute coordinates translated to this shard's local start/index;
//   pick(_grad):      colOffset = offset of x's last (vocabulary) dim.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_EXEC_OPARGS_H
#define MEG_RUNTIME_EXEC_OPARGS_H

#include "runtime/comm/Communicator.h"
#include "runtime/plan/Plan.h"

#include "kernels/Math.h"
#include "kernels/cpu/Adam.h"
#include "kernels/cpu/Attention.h"
#include "kernels/cpu/Contract.h"
#include "kernels/cpu/Dropout.h"
#include "kernels/cpu/Elementwise.h"
#include "kernels/cpu/Gelu.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace meg::runtime {

struct StepContext;

/// param, input, output, state: not steps (the plan loader rejects them).
struct NotAStepArgs {};
using ParamArgs = NotAStepArgs;
using InputArgs = NotAStepArgs;
using OutputArgs = NotAStepArgs;
using StateArgs = NotAStepArgs;

struct FillArgs {
  int64_t n = 0;
  float value = 0;
};

struct EmbeddingArgs {
  int64_t rows = 0, dim = 0, tokens = 0, rowOffset = 0;
};
/// dTable (the table's shard) is overwritten with the sum of dy over the tokens that hit it.
struct EmbeddingGradArgs : EmbeddingArgs {};

struct ContractArgs {
  std::shared_ptr<const kernels::cpu::ContractPlan> plan; ///< ok()
};

struct BinaryArgs {
  kernels::BinaryOp op = kernels::BinaryOp::Add;
  Shape shapeA, shapeB;
};
using AddArgs = BinaryArgs;
using SubArgs = BinaryArgs;
using MulArgs = BinaryArgs;
using DivArgs = BinaryArgs;
using MaximumArgs = BinaryArgs;

struct UnaryArgs {
  kernels::UnaryOp op = kernels::UnaryOp::Exp;
  int64_t n = 0;
  float factor = 1; ///< scale's
};
using ScaleArgs = UnaryArgs;
using ExpArgs = UnaryArgs;
using LogArgs = UnaryArgs;
using TanhArgs = UnaryArgs;

struct GeluArgs {
  kernels::GeluForm form = kernels::GeluForm::Tanh;
  int64_t n = 0;
};
struct GeluGradArgs : GeluArgs {};

struct DropoutArgs {
  float p = 0;
  uint32_t stream = 0;
  int64_t n = 0;
  Shape shape, globalShape, offset; ///< the result's
  kernels::cpu::GlobalView view() const { return {shape.data(), globalShape.data(), offset.data(), int(shape.size())}; }
};

/// The kernels' element type of a plan dtype.
inline kernels::Elem elemOf(DType t) {
  switch (t) {
  case DType::BF16:
    return kernels::Elem::BF16;
  case DType::F16:
    return kernels::Elem::F16;
  case DType::I32:
    return kernels::Elem::I32;
  default:
    return kernels::Elem::F32;
  }
}

struct CastArgs {
  DType from = DType::F32, to = DType::F32;
  int64_t n = 0;
};

struct MaskPaddingArgs {
  Shape shape;
  int dim = 0;
  /// x viewed as [outer, size, inner] around dim; offset = the shard's global index of its first element of dim.
  int64_t outer = 1, size = 0, inner = 1, offset = 0;
  int64_t valid = 0;
  float value = 0;
};

struct LayerNormArgs {
  int64_t rows = 0, n = 0;
  float eps = 0;
};
/// dx, dgain, dbias are overwritten; the row statistics are recomputed.
struct LayerNormGradArgs : LayerNormArgs {};

struct SoftmaxArgs {
  int64_t rows = 0, n = 0;
};

struct AttentionArgs {
  kernels::cpu::AttentionParams params; ///< keyMask, dropoutP and dropoutKey are set per run (forRun)
  float dropout = 0;
  uint32_t stream = 0;
  std::optional<size_t> maskOperand;
  /// The parameters of one run: the mask operand's buffer and the dropout key (no dropout in evaluation).
  kernels::cpu::AttentionParams forRun(const StepContext &ctx, const int32_t *mask) const;
};
struct AttentionGradArgs : AttentionArgs {};

struct ReshapeArgs {
  int64_t bytes = 0;
};

struct TransposeArgs {
  Shape shape; ///< x's
  std::vector<int> perm;
};

/// slice (global [start, start + size) of dim) and shard (this rank's block of a replicated dim), in local terms.
struct SliceArgs {
  Shape shape; ///< x's
  int dim = 0;
  int64_t start = 0, length = 0;
};
using ShardArgs = SliceArgs;

struct SelectArgs {
  Shape shape; ///< x's
  int dim = 0;
  int64_t index = 0; ///< local
};

struct ReduceArgs {
  bool isMax = false;
  Shape shape; ///< x's
  bool reduced[kernels::kMaxRank] = {};
};
using ReduceSumArgs = ReduceArgs;
using ReduceMaxArgs = ReduceArgs;

struct PickArgs {
  int64_t rows = 0, cols = 0, colOffset = 0;
};
struct PickGradArgs : PickArgs {};

struct ValidMaskArgs {
  int64_t n = 0;
  int32_t ignore = 0;
};

struct BroadcastArgs {
  Shape shapeX, shapeOut;
};

/// slice_grad / select_grad: dy placed into zeros of the result (whole along dim).
struct SliceGradArgs {
  Shape shape; ///< the result's
  int dim = 0;
  int64_t start = 0, length = 0;
};
struct SelectGradArgs {
  Shape shape; ///< the result's
  int dim = 0;
  int64_t index = 0;
};

struct AllReduceArgs {
  CommAxis axis = CommAxis::TP;
  CommReduce reduce = CommReduce::Sum;
  int64_t n = 0, members = 1;
};

/// all_reduce_bucket (a dp gradient bucket, bucket-dp): ONE collective over the packed operands. Operand i
/// (counts[i] floats) is packed at offsets[i] of a scratch buffer of `total` floats, reduced once and unpacked
/// into result i. Every operand is packed before any result is written, so result i may lie over operand i. A
/// bucket of one value runs as all_reduce (no packing).
struct AllReduceBucketArgs {
  CommAxis axis = CommAxis::TP;
  CommReduce reduce = CommReduce::Sum;
  int64_t members = 1;
  std::vector<int64_t> counts, offsets;
  int64_t total = 0;
};

/// all_gather / reduce_scatter along `dim`: the communicator moves contiguous blocks of `count` floats per member;
/// when dim is not the outermost non-trivial dim (outer > 1) the blocks are interleaved through scratch
/// ([member, outer, chunk] <-> [outer, member, chunk]).
struct AllGatherArgs {
  CommAxis axis = CommAxis::TP;
  int64_t members = 1, count = 0; ///< count: the operand's floats
  int64_t outer = 1, chunk = 1;
};
struct ReduceScatterArgs {
  CommAxis axis = CommAxis::TP;
  CommReduce reduce = CommReduce::Sum;
  int64_t members = 1, count = 0; ///< count: the result's floats
  int64_t outer = 1, chunk = 1;
};

/// reduce_scatter_bucket (a dp gradient bucket of the distributed optimizer, bucket-dp): ONE reduce-scatter over
/// the packed operands. parts[i] is operand i as its own reduce_scatter would run. The packed buffer is rank-major:
/// block g (`total` floats) holds, at offsets[i], group rank g's shard of operand i (parts[i].count floats,
/// gathered from the operand's [outer, member, chunk] layout as reduce_scatter does); one reduce-scatter of
/// `total` floats per rank leaves this rank's block reduced, and result i is its [offsets[i], + parts[i].count).
/// A result is smaller than its operand: never in place. A bucket of one value runs as reduce_scatter.
struct ReduceScatterBucketArgs {
  CommAxis axis = CommAxis::TP;
  CommReduce reduce = CommReduce::Sum;
  int64_t members = 1;
  std::vector<ReduceScatterArgs> parts;
  std::vector<int64_t> offsets;
  int64_t total = 0;
};

/// Megatron's learning-rate schedule (lr_schedule's attributes).
struct LrScheduleArgs {
  /// The step is operand 0's count of applied updates + 1 (loss scaling); else the training step.
  bool counted = false;
  double lr = 0, minLr = 0;
  int64_t warmup = 0, decayIters = 0;
  std::string style = "constant";
  /// The rate of 1-based step `step`.
  double at(int64_t step) const;
};

struct SumSquaresArgs {
  int64_t n = 0;
};

struct ClipScaleArgs {
  float maxNorm = 1;
};

struct AdamWArgs {
  kernels::cpu::AdamConfig config; ///< lr unused: the rate is operand 4
  int64_t n = 0;
  /// Operands 6 and 7 (loss scaling): the count of applied updates (the step is count + 1) and found_inf (nonzero:
  /// the step is skipped, nothing is written).
  bool skippable = false;
};

struct NonfiniteArgs {
  int64_t n = 0;
};

struct LossScaleUpdateArgs {
  kernels::LossScalerConfig config;
};

/// Gradient accumulation over the micro-batches of a step (StepContext::microBatch).
struct AccumulateArgs {
  float scale = 1; ///< 1 / micro_batches
  int64_t n = 0;
};

/// Pipeline point-to-point (send / recv): `bytes` bytes to or from world rank `peer` (the same dp and tp coordinates
/// on the pipeline stage the `peer` attribute names).
struct SendArgs {
  int peer = 0;
  int64_t bytes = 0;
};
struct RecvArgs : SendArgs {};
/// decode_attention (kernels/cpu/Attention.h): local shapes; heads are this rank's.
struct DecodeAttentionArgs {
  kernels::cpu::DecodeAttentionParams params;
};

/// The arguments of one bound step: alternative i + 1 is the Args of op kind i.
using OpArgs = std::variant<std::monostate
#define OP(Enum, ...) , Enum##Args
#include "ir/Ops.def"
                            >;

} // namespace meg::runtime

#endif
