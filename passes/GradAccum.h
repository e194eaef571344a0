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

/// The nodes that run once per step BEFORE the micro-batches (the Prologue): with gradient accumulation, every
/// node of the body that computes from parameters only, directly or through others such nodes: the 16-bit copies
/// of the parameters (mixed precision) and the dp all-gathers of the distributed optimizer, with their reshapes.
/// Their values are the same in every micro-batch, so they are computed once (one all-gather per parameter a step,
/// as Megatron-LM's distributed optimizer does) and kept through the micro-batches. Not: nodes without operands,
/// nodes that write their operands, send/recv (the pipeline's messages stay per micro-batch). Empty without
/// `accumulate`.
llvm::DenseSet<const ir::Node *> prologueNodes(const ir::Graph &g);

/// The micro-batches per step: the `micro_batches` of the graph's accumulate nodes (1 without any). Error: two
/// accumulate nodes that disagree.
llvm::Expected<int64_t> microBatchesOf(const ir::Graph &g);

} // namespace meg::passes

#endif
