//===- Pipeline.h - the default compilation pipeline -------------*- C++ -*-===//
//
// passes/Pipeline.cpp lists the default pipeline in order, built from the passes' typed options (passes/Pass.h).
// megc runs it on a model description for `--emit ir|dot` (the compiled graph) and `--emit plan` (the same
// pipeline, ending with lower-to-plan); `--emit report` reads planReportLines.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_PIPELINE_H
#define MEG_PASSES_PIPELINE_H

#include "passes/Pass.h"
#include "passes/Report.h"

#include "ir/Graph.h"

#include "llvm/Support/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace meg::passes {

/// What the default pipeline does; each pass's options as its typed struct (defaults from passes/Passes.def).
struct PipelineOptions {
  /// Train mode: append the backward graph (autodiff) and the optimizer, so the plans compute every parameter's
  /// gradient and update it.
  bool differentiate = false;
  /// --bf16 / --fp16: 16-bit compute with fp32 master weights (mixed-precision, first); std::nullopt: all fp32.
  std::optional<MixedPrecisionOptions> mixedPrecision;
  AutodiffOptions autodiff;
  /// Activation recompute (train mode); std::nullopt (the default) leaves the pass out.
  std::optional<RecomputeOptions> recompute;
  /// How parameters are laid out over the graph's mesh (a no-op on a 1 x 1 mesh).
  ShardParamsOptions shardParams;
  OptimizerOptions optimizer;
  /// Gradient accumulation (megc --global-batch-size): m micro-batches per step; std::nullopt leaves the pass out.
  std::optional<GradAccumOptions> gradAccum;
  /// Pipeline parallelism (megc --pipeline-model-parallel-size P > 1): pipeline-stages and pipeline-split.
  std::optional<PipelineStagesOptions> pipeline;
  /// The dp all-reduces (distributed optimizer: reduce-scatters) of gradients go in buckets, one collective each;
  /// std::nullopt leaves the pass out (one collective per gradient).
  std::optional<BucketDpOptions> bucketDp = BucketDpOptions();
  /// "memory" reorders greedily for live bytes (GPT-2 124M, micro-batch 8, seq 1024: the arena drops from 3.29 GB
  /// to 1.67 GB, as the loss no longer holds two copies of the logits); "program" keeps the frontend's order.
  ScheduleOptions schedule{.policy = "memory"};
  MemoryPlanOptions memoryPlan;
  /// Where to write the plans: when set, the pipeline ends with lower-to-plan.
  std::optional<LowerToPlanOptions> lowerToPlan;
};

/// The default pipeline, ready to run (errors: an option value its pass rejects).
llvm::Expected<PassManager> buildDefaultPipeline(const PipelineOptions &options);

/// The compiler's lines of `megc --emit report` (after frontend/Report.cpp's, which has the global parameter
/// count and the forward FLOPs): runs the default pipeline, without lowering, on a copy of `g` and reports, per
/// rank, memory (parameters, gradients, optimizer state, arena), FLOPs of a step and bytes moved by collectives per
/// mesh axis (passes/Report.h has the lines and their rules). No trailing newlines.
///
/// With a ReportModel that has `fewer` (the same model built with dims.fewerLayers < dims.layers layers, uncompiled),
/// that graph is compiled the same way and the report adds the activation bytes per layer.
struct ReportModel {
  LayerProbe dims; ///< fewerArenaBytes is filled in here
  const ir::Graph *fewer = nullptr;
};
llvm::Expected<std::vector<std::string>> planReportLines(const ir::Graph &g, const PipelineOptions &options = {},
                                                         const ReportModel *model = nullptr);

} // namespace meg::passes

#endif
