//===- OpRules.h - per-op rules collected from Ops.def ----------*- C++ -*-===//
//
// Each concern of an op is one function per op, named after its Ops.def enum and collected into a table indexed by
// OpKind. Passes and tools call these entry points; nothing outside the tables switches over op kinds.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_OPRULES_H
#define MEG_IR_OPRULES_H

#include "ir/Graph.h"

#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <string>

namespace meg::ir {

/// Shape/type rule: checks operand types and attributes and returns the result types (sharding replicated).
/// Errors are plain messages without location; callers prefix the op and its location.
using ShapeRule = llvm::Expected<llvm::SmallVector<TensorType, 1>> (*)(llvm::ArrayRef<TensorType> operands,
                                                                       const AttrDict &attrs);
ShapeRule shapeRule(OpKind k);
llvm::Expected<llvm::SmallVector<TensorType, 1>> inferTypes(OpKind k, llvm::ArrayRef<TensorType> operands,
                                                            const AttrDict &attrs);

/// Splits an einsum spec "ab,bc->ac" into its three terms, checking letters (shared by every contract rule).
llvm::Expected<std::array<std::string, 3>> parseContractSpec(llvm::StringRef spec);

/// Floating-point operations of one execution of the node (global, unsharded), counting a multiply-add as 2.
using FlopRule = double (*)(const Node &n);
FlopRule flopRule(OpKind k);
double countFlops(const Node &n);

/// The index structure of an op, from which sharding propagation derives everything (as MLIR's ShardingInterface).
/// The op is a loop nest over `loops`; each operand and result dim is indexed by one loop (or -1: a broadcast
/// size-1 dim, or a dim the loop nest does not index). A loop is Parallel (each rank may own a block of it), a Sum or
/// Max reduction (a rank owning a block produces a partial(sum|max) result), or Whole (every rank needs all of it).
struct ShardingSpec {
  enum class Loop : uint8_t { Parallel, Sum, Max, Whole };
  /// How pending reductions of operands pass through the op.
  enum class Partial : uint8_t {
    None,     // nonlinear: every operand must be free of pending reductions
    Additive, // add/sub: the result is partial(sum) if ALL float operands are partial(sum) on the same axis
    Linear,   // linear in exactly one operand: at most one of `linearOperands` may be partial(sum)
    MaxPass,  // partial(max) passes (reduce_max)
  };
  llvm::SmallVector<Loop, 6> loops;
  llvm::SmallVector<llvm::SmallVector<int, 6>, 4> operandDims;
  llvm::SmallVector<llvm::SmallVector<int, 6>, 1> resultDims;
  Partial partial = Partial::None;
  /// For Partial::Linear: which operands the op is linear in (bit i = operand i).
  unsigned linearOperands = 0;
  /// The results are per-rank observations that mean "on any rank" (nonfinite): pending a max over every mesh axis.
  bool meshGlobal = false;
};

/// Sharding rule: the op's index structure, from its operand types and attributes (already verified).
using ShardingRule = ShardingSpec (*)(const Node &n);
ShardingRule shardingRule(OpKind k);
ShardingSpec shardingSpec(const Node &n);

} // namespace meg::ir

#endif
