//===- Pipeline.h - the default compilation pipeline -------------*- C++ -*-===//
//
// passes/Pipeline.cpp lists the default pipeline in order. megc uses it for `--emit plan` (frontend -> default
// pipeline -> writePlans) and for the memory figures of `--emit report`.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_PIPELINE_H
#define MEG_PASSES_PIPELINE_H

#include "passes/LowerToPlan.h"
#include "passes/MemoryPlan.h"
#include "passes/Pass.h"

#include "ir/Graph.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace meg::passes {

/// The default size of a dp gradient bucket (bucket-dp{bytes=...}): 25 MiB, PyTorch DDP's bucket_cap_mb = 25.
constexpr int64_t kDefaultDpBucketBytes = int64_t(25) << 20;

struct PipelineOptions {
  /// Train mode: append the backward graph (autodiff) so the plans compute every parameter's gradient.
  bool differentiate = false;
  /// optimizer{...} options in pass-option syntax ("lr=0.001,clip=1.0"); used when differentiating.
  std::string optimizer;
  /// shard-params{strategy=...}: how parameters are laid out over the graph's mesh (a no-op on a 1 x 1 mesh).
  std::string strategy = "megatron";
  /// schedule{policy=...}: "memory" reorders greedily for live bytes (GPT-2 124M, micro-batch 8, seq 1024: the
  /// arena drops from 3.29 GB to 1.67 GB, as the loss no longer holds two copies of the logits); "program" keeps the
  /// frontend's order.
  std::string schedulePolicy = "memory";
  /// memory-plan{align=...}: arena offset alignment in bytes (a power of two).
  int64_t arenaAlignment = kArenaAlignment;
  /// bucket-dp{bytes=...}: the dp all-reduces of gradients go in buckets of at most this many bytes per rank, one
  /// collective each; 0 leaves the pass out (one collective per gradient).
  int64_t dpBucketBytes = kDefaultDpBucketBytes;
};

/// The default pipeline as a pipeline string ("schedule{policy=program},memory-plan{align=256}"), accepted by
/// `megc --passes`.
std::string defaultPipeline(const PipelineOptions &options);
/// The default pipeline, ready to run.
llvm::Expected<PassManager> buildDefaultPipeline(const PipelineOptions &options);

/// `megc --emit plan -o DIR`: runs the default pipeline on `g` (in place) and writes one plan per rank to `dir`.
llvm::Error compileToPlans(ir::Graph &g, const PipelineOptions &options, const PipelineConfig &config,
                           const PlanMetadata &meta, llvm::StringRef dir);

/// The compiler's lines of `megc --emit report` (after frontend/Report.cpp's, which has the global parameter
/// count and the forward FLOPs): runs the default pipeline on a copy of `g` and reports, per rank, memory
/// (parameters, gradients, optimizer state, arena), FLOPs of a step and bytes moved by collectives per mesh axis
/// (passes/Report.h has the lines and their rules). No trailing newlines.
llvm::Expected<std::vector<std::string>> planReportLines(const ir::Graph &g, const PipelineOptions &options = {});

} // namespace meg::passes

#endif
