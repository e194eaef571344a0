//===- Pipeline.cpp - the default pipeline, in order --------------------------===//
//
// The one place that says what megc does to a graph between the frontend and the plans, in order. Each entry is a
// pass of passes/Passes.def written as in `megc --passes`; later issues insert their passes where the comments say.
//
//===----------------------------------------------------------------------===//
#include "passes/Pipeline.h"
#include "passes/Report.h"

#include "ir/Parser.h"
#include "ir/Printer.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::passes;

static std::vector<std::string> defaultPasses(const PipelineOptions &o) {
  std::vector<std::string> p;

  // 1. autodiff (train mode): append the backward graph of the loss, one gradient rule per op (ir/OpGrads.cpp).
  if (o.differentiate)
    p.push_back("autodiff");
  // 2. shard-params: the strategy lays out parameters (and splits inputs over dp) on the graph's mesh. After
  //    autodiff, so the backward graph is sharded by the same op rules and Megatron's f/g conjugates fall out.
  p.push_back("shard-params{strategy=" + o.strategy + "}");
  // 3. optimizer (train mode): AdamW with global-norm clipping and the lr schedule; its state is laid out like the
  //    parameters (so it comes after shard-params, and before partition, which lays out the rest).
  if (o.differentiate)
    p.push_back(o.optimizer.empty() ? std::string("optimizer") : "optimizer{" + o.optimizer + "}");
  // 4. partition: every value gets its sharding from its op's index structure (the analysis alone is the
  //    `sharding-propagation` pass), and all_reduce / all_gather / reduce_scatter / shard are inserted where a
  //    consumer needs a state its producer lacks.
  p.push_back("partition");
  // 5. bucket-dp: the dp all-reduces of gradients go in buckets of at most N bytes, one collective each at run time
  //    (the schedule keeps a bucket's members adjacent). A no-op when dp = 1.
  if (o.dpBucketBytes > 0)
    p.push_back(llvm::formatv("bucket-dp{bytes={0}}", o.dpBucketBytes).str());
  // 6. fusion (later issue).

  // 7. schedule: a topological order from Boost.Graph with a deterministic tie-break (program order by default).
  p.push_back("schedule{policy=" + o.schedulePolicy + "}");

  // 8. memory-plan: an arena offset for every activation, from lifetimes in the scheduled order. Must be last:
  //    any pass that adds, removes or reorders nodes invalidates the offsets.
  p.push_back(llvm::formatv("memory-plan{align={0}}", o.arenaAlignment).str());

  // 9. lower to plans: not a pass here; megc calls writePlans (passes/LowerToPlan.h) with the model description
  //    and the output directory (`lower-to-plan{dir=...}` does the same inside a --passes pipeline).
  return p;
}

std::string meg::passes::defaultPipeline(const PipelineOptions &options) {
  return llvm::join(defaultPasses(options), ",");
}

llvm::Expected<PassManager> meg::passes::buildDefaultPipeline(const PipelineOptions &options) {
  return PassManager::parse(defaultPipeline(options));
}

llvm::Error meg::passes::compileToPlans(ir::Graph &g, const PipelineOptions &options, const PipelineConfig &config,
                                        const PlanMetadata &meta, llvm::StringRef dir) {
  auto pm = buildDefaultPipeline(options);
  if (!pm)
    return pm.takeError();
  if (auto err = pm->run(g, config))
    return err;
  return writePlans(g, meta, dir);
}

llvm::Expected<std::vector<std::string>> meg::passes::planReportLines(const ir::Graph &g,
                                                                      const PipelineOptions &options) {
  // Plan a copy: the text form round-trips exactly, so printing and parsing is a faithful clone.
  auto copy = ir::parseGraph(ir::graphToString(g), "<report>");
  if (!copy)
    return copy.takeError();
  auto pm = buildDefaultPipeline(options);
  if (!pm)
    return pm.takeError();
  PipelineConfig config;
  config.verifyEach = false;
  if (auto err = pm->run(**copy, config))
    return err;
  auto report = computePlanReport(**copy);
  if (!report)
    return report.takeError();
  return formatPlanReport(*report);
}
