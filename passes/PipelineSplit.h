//===- PipelineSplit.h - pipeline stages of a split graph -------*- C++ -*-===//
//
// What lower-to-plan and the report read from a graph that pipeline-split has run on (passes/PipelineSplit.cpp):
// the number of stages and the stages of a node.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_PIPELINESPLIT_H
#define MEG_PASSES_PIPELINESPLIT_H

#include "ir/Graph.h"

#include "llvm/ADT/DenseSet.h"

#include <optional>
#include <tuple>

namespace meg::passes {

/// The pipeline stages of `g`: one more than the highest `stage` of a node (1 when no node has one).
int64_t pipelineStagesOf(const ir::Graph &g);
/// Whether `n` runs on stage `stage` (a node without `stage` runs on every stage).
bool onStage(const ir::Node &n, int64_t stage);
/// A send's or recv's channel: (kind, its stage, the peer stage); nullopt for other nodes.
std::optional<std::tuple<ir::OpKind, int64_t, int64_t>> pipelineChannel(const ir::Node &n);
/// The nodes the loss needs (every node when there is no loss): a pipeline stage's forward phase.
llvm::DenseSet<const ir::Node *> forwardNodes(const ir::Graph &g);
/// Whether some rank runs both `a` and `b` (always, without pipeline stages).
bool shareStage(const ir::Node &a, const ir::Node &b);

} // namespace meg::passes

#endif
