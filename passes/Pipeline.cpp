//===- Pipeline.cpp - the default pipeline, in order --------------------------===//
//
// The one place that says what megc does to a graph between the frontend and the plans, in order. Each entry is a
// pass of passes/Passes.def made from its typed options; later issues insert their passes where the comments say.
//
//===----------------------------------------------------------------------===//
#include "passes/Pipeline.h"
#include "passes/PipelineReport.h"
#include "passes/PipelineSplit.h"
#include "passes/Report.h"

#include "ir/Parser.h"
#include "ir/Printer.h"

using namespace meg;
using namespace meg::passes;

llvm::Expected<PassManager> meg::passes::buildDefaultPipeline(const PipelineOptions &o) {
  std::vector<llvm::Expected<std::unique_ptr<Pass>>> p;

  // 0. mixed-precision (--bf16, --fp16): 16-bit copies of the fp32 master parameters for compute, casts by op
  //    kind. Before autodiff, so the backward mirrors the forward's precision through cast's gradient rule and
  //    every parameter's gradient is the fp32 gradient of its master (the optimizer and the dp all-reduce see fp32
  //    only); before sharding, so the casts are laid out by the elementwise rule like any op.
  if (o.mixedPrecision)
    p.push_back(createMixedPrecisionPass(*o.mixedPrecision));
  // 0a. pipeline-stages (megc --pp P > 1): the stage of every forward node, from the layer of the parameters it
  //     reads. Before autodiff, which gives each backward node its forward node's stage.
  if (o.pipeline)
    p.push_back(createPipelineStagesPass(*o.pipeline));
  // 1. autodiff (train mode): append the backward graph of the loss, one gradient rule per op (ir/OpGrads.cpp).
  if (o.differentiate)
    p.push_back(createAutodiffPass(o.autodiff));
  // 2. recompute (when asked: megc --recompute-granularity): the backward's uses of layer activations are rewired
  //    to clones of the forward nodes that the schedule runs when the backward reaches the layer. After autodiff
  //    (it rewires the backward), before partition (clones get their collectives by the same rules, so a
  //    recomputed layer repeats its all-reduce, as in Megatron) and schedule (which runs clones on demand).
  if (o.recompute)
    p.push_back(createRecomputePass(*o.recompute));
  // 3. shard-params: the strategy lays out parameters (and splits inputs over dp) on the graph's mesh. After
  //    autodiff, so the backward graph is sharded by the same op rules and Megatron's f/g conjugates fall out.
  p.push_back(createShardParamsPass(o.shardParams));
  // 4. optimizer (train mode): AdamW with global-norm clipping and the lr schedule; its state is laid out like the
  //    parameters (so it comes after shard-params, and before partition, which lays out the rest).
  if (o.differentiate)
    p.push_back(createOptimizerPass(o.optimizer));
  // 5. partition: every value gets its sharding from its op's index structure (the analysis alone is the
  //    `sharding-propagation` pass), and all_reduce / all_gather / reduce_scatter / shard are inserted where a
  //    consumer needs a state its producer lacks.
  p.push_back(createPartitionPass({}));
  // 5a. grad-accum (megc --global-batch-size G, m = G / (micro-batch x dp) > 1): every gradient and the loss are
  //     summed over the m micro-batches of a step in fp32 accumulators; what reads them (the reductions partition
  //     put after them, clipping, the optimizer) runs once per step, after the last micro-batch. After partition,
  //     so an accumulator holds what its gradient holds (a pending dp sum is reduced once per step, not per
  //     micro-batch); before bucket-dp, which then buckets those once-per-step reductions.
  if (o.gradAccum)
    p.push_back(createGradAccumPass(*o.gradAccum));
  // 5b. pipeline-split (megc --pp P > 1): every node on its stages, send/recv where a value crosses stages. After
  //     partition and grad-accum (the collectives and accumulators they insert get stages too); before bucket-dp,
  //     which buckets only gradients of one stage.
  if (o.pipeline)
    p.push_back(createPipelineSplitPass({.stages = o.pipeline->stages}));
  // 6. bucket-dp: the dp all-reduces of gradients go in buckets of at most N bytes, each one all_reduce_bucket node
  //    (one collective at run time); with the distributed optimizer the dp reduce-scatters of gradients likewise,
  //    in reduce_scatter_bucket nodes. A no-op when dp = 1.
  if (o.bucketDp)
    p.push_back(createBucketDpPass(*o.bucketDp));
  // 7. fusion (later issue).

  // 8. schedule: a topological order from Boost.Graph with a deterministic tie-break.
  p.push_back(createSchedulePass(o.schedule));
  // 9. memory-plan: an arena offset for every activation, from lifetimes in the scheduled order. Last of the passes
  //    that transform: any pass that adds, removes or reorders nodes invalidates the offsets.
  p.push_back(createMemoryPlanPass(o.memoryPlan));
  // 10. lower-to-plan (when plans are to be written): one FlatBuffers plan per rank; the graph is unchanged.
  if (o.lowerToPlan)
    p.push_back(createLowerToPlanPass(*o.lowerToPlan));

  PassManager pm;
  llvm::Error err = llvm::Error::success();
  for (auto &pass : p)
    err = llvm::joinErrors(std::move(err), pm.add(std::move(pass)));
  if (err)
    return err;
  return pm;
}

/// The default pipeline, without lowering, on a copy of `g`.
static llvm::Expected<std::unique_ptr<ir::Graph>> compileCopy(const ir::Graph &g, const PipelineOptions &options) {
  // The text form round-trips exactly, so printing and parsing is a faithful clone.
  auto copy = ir::parseGraph(ir::graphToString(g), "<report>");
  if (!copy)
    return copy.takeError();
  PipelineOptions noPlans = options;
  noPlans.lowerToPlan.reset();
  auto pm = buildDefaultPipeline(noPlans);
  if (!pm)
    return pm.takeError();
  PipelineConfig config;
  config.verifyEach = false;
  if (auto err = pm->run(**copy, config))
    return std::move(err);
  return std::move(*copy);
}

llvm::Expected<std::vector<std::string>> meg::passes::planReportLines(const ir::Graph &g,
                                                                      const PipelineOptions &options,
                                                                      const ReportModel *model) {
  auto compiled = compileCopy(g, options);
  if (!compiled)
    return compiled.takeError();
  ReportSettings settings;
  if (options.mixedPrecision)
    settings.activationDtype = options.mixedPrecision->dtype;
  if (options.recompute)
    settings.recompute = options.recompute->granularity;
  settings.sequenceParallel = options.shardParams.strategy == "megatron-sp";
  auto report = computePlanReport(**compiled, settings);
  if (!report)
    return report.takeError();
  // The per-layer activation probe compiles a model with fewer layers, which need not split into the same stages.
  if (model && model->fewer && !options.pipeline) {
    auto fewer = compileCopy(*model->fewer, options);
    if (!fewer)
      return fewer.takeError();
    auto stats = computeMemoryPlanStats(**fewer);
    if (!stats)
      return stats.takeError();
    LayerProbe probe = model->dims;
    probe.fewerArenaBytes = stats->arenaBytes;
    report->layers = probe;
  }
  std::vector<std::string> lines = formatPlanReport(*report);
  // Pipeline stages: a rank holds one stage, and the stages differ (embedding, layers, head): the figures of each.
  for (int64_t stage = 1, stages = pipelineStagesOf(**compiled); stage < stages; ++stage) {
    auto other = computePlanReport(**compiled, settings, stage);
    if (!other)
      return other.takeError();
    auto more = formatPlanReport(*other);
    lines.insert(lines.end(), more.begin(), more.end());
  }
  auto pipeline = pipelineReportLines(**compiled);
  if (!pipeline)
    return pipeline.takeError();
  lines.insert(lines.end(), pipeline->begin(), pipeline->end());
  return lines;
}
