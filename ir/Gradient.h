//===- Gradient.h - per-op gradient rules -----------------------*- C++ -*-===//
//
// Each op's gradient rule (ir/OpGrads.cpp, one function per Ops.def entry) builds, with a GradBuilder, the ops that
// compute the gradients of its operands from the gradients of its results. Ops without a gradient say so
// explicitly (param, input, ids-valued ops); the autodiff pass (passes/Autodiff.cpp) only walks the graph and sums
// contributions.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_GRADIENT_H
#define MEG_IR_GRADIENT_H

#include "ir/Graph.h"

#include <optional>

namespace meg::ir {

/// Appends nodes to a graph with shape inference, remembering the first error (later calls then do nothing and
/// return nullptr), so rules read as straight-line math.
class GradBuilder {
public:
  explicit GradBuilder(Graph &g) : g(g) {}
  ~GradBuilder() { llvm::consumeError(std::move(err)); }

  Value *op(OpKind k, llvm::ArrayRef<Value *> operands, AttrDict attrs = {});
  llvm::SmallVector<Value *, 3> multi(OpKind k, llvm::ArrayRef<Value *> operands, AttrDict attrs = {});
  Value *reshape(Value *x, llvm::ArrayRef<int64_t> shape);
  Value *scale(Value *x, double factor);
  /// Sums a gradient of a broadcast result back down to an operand's shape (numpy broadcasting reversed).
  Value *sumToShape(Value *dy, llvm::ArrayRef<int64_t> shape);
  void fail(const llvm::Twine &msg);
  llvm::Error takeError() { return std::move(err); }
  Graph &graph() { return g; }
  /// Pipeline parallelism: the `stage` attribute every node built from now on gets (none: no attribute).
  void setStage(std::optional<int64_t> s) { stage = s; }

private:
  Graph &g;
  std::optional<int64_t> stage;
  llvm::Error err = llvm::Error::success();
  bool failed = false;
};

/// dOperands[i] for each operand (nullptr = no gradient flows to it), given dResults (nullptr = zero gradient;
/// at least one is non-null).
using GradRule = llvm::SmallVector<Value *, 4> (*)(GradBuilder &b, const Node &n,
                                                    llvm::ArrayRef<Value *> dResults);
GradRule gradRule(OpKind k);

} // namespace meg::ir

#endif
