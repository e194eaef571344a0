//===- GradAccum.h - which nodes run once per step under accumulation -*- C++ -*-===//
//
// With gradient accumulation (passes/GradAccum.cpp) a training step runs its body (forward, backward, the
// `accumulate` nodes) once per micro-batch and the rest once, after the last micro-batch. The schedule puts the
// once-per-step nodes last and lower-to-plan marks them as Update steps; both ask this function.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_GRADACCUM_H
#define MEG_PASSES_GRADACCUM_H

#include "ir/Graph.h"

#include "llvm/ADT/DenseSet.h"

namespace meg::passes {

/// The nodes that run once per step: every node that uses an `accumulate` result, directly or through others, and
/// every node that writes its operands other than `accumulate` (the optimizer). Empty when the graph has no
/// `accumulate` (then every node runs once per step, in order).
llvm::DenseSet<const ir::Node *> oncePerStepNodes(const ir::Graph &g);

/// The micro-batches per step: the `micro_batches` of the graph's accumulate nodes (1 without any). Error: two
/// accumulate nodes that disagree.
llvm::Expected<int64_t> microBatchesOf(const ir::Graph &g);

} // namespace meg::passes

#endif
