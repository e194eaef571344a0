//===- PipelineReport.cpp - the pipeline lines of megc --emit report ----------===//
//
// For a graph split into pipeline stages (passes/PipelineSplit.cpp), per stage: the 1F1B schedule as text, the
// point-to-point messages and bytes a rank of the stage sends and receives per step (a body message once per
// micro-batch, an update message once), its parameter and optimizer state bytes, and the activation memory: the
// stage's arena (memory-plan plans each stage on its own) plus, when more than one micro-batch is in flight, one
// saved copy of the arena's stash bytes (what the forward hands to the backward) per activation slot
// (runtime/plan/PipelineSchedule.h). The bubble fraction is (P - 1) / m.
//
//===----------------------------------------------------------------------===//
#include "passes/PipelineReport.h"
#include "passes/GradAccum.h"
#include "passes/MemoryPlan.h"
#include "passes/PipelineSplit.h"

#include "runtime/plan/PipelineSchedule.h"

#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

llvm::Expected<std::vector<std::string>> meg::passes::pipelineReportLines(const Graph &g) {
  std::vector<std::string> lines;
  int64_t stages = pipelineStagesOf(g);
  if (stages == 1)
    return lines;
  auto micro = microBatchesOf(g);
  if (!micro)
    return micro.takeError();
  int m = int(*micro);
  llvm::DenseSet<const Node *> oncePerStep = oncePerStepNodes(g);
  const Mesh &mesh = g.getMesh();
  lines.push_back(llvm::formatv("pipeline: {0} stages x {1} micro-batches per step (1F1B), bubble fraction (P - 1) / "
                                "m = {2:F3}; a rank holds one stage: rank = (stage x dp + dp rank) x tp + tp rank",
                                stages, m, double(stages - 1) / double(m)));
  for (int64_t p = 0; p < stages; ++p) {
    auto stats = computeMemoryPlanStats(g, p);
    if (!stats)
      return stats.takeError();
    int64_t sent = 0, sentBytes = 0, received = 0, receivedBytes = 0, paramBytes = 0, stateBytes = 0;
    for (const auto &node : g) {
      const Node &n = *node;
      if (!onStage(n, p) || !n.getAttrs().getInts("stage"))
        continue;
      int64_t times = oncePerStep.contains(&n) ? 1 : m;
      if (n.getKind() == OpKind::Send) {
        sent += times;
        sentBytes += times * localBytes(*n.getOperand(0), mesh);
      } else if (n.getKind() == OpKind::Recv) {
        received += times;
        receivedBytes += times * localBytes(*n.getResult(), mesh);
      } else if (n.getKind() == OpKind::Param) {
        paramBytes += localBytes(*n.getResult(), mesh);
      } else if (n.getKind() == OpKind::State) {
        stateBytes += localBytes(*n.getResult(), mesh);
      }
    }
    auto schedule = runtime::oneFOneB(int(stages), int(p), m);
    int slots = runtime::activationSlots(int(stages), int(p), m);
    int stash = runtime::maxInFlight(schedule) > 1 ? slots : 0;
    lines.push_back(llvm::formatv("pipeline stage {0} schedule: {1}", p, runtime::scheduleText(schedule)));
    lines.push_back(llvm::formatv("pipeline stage {0}: at most {1} micro-batches in flight; p2p per step per rank: "
                                  "{2} sends ({3} bytes), {4} recvs ({5} bytes); param bytes {6}, optimizer state "
                                  "and accumulator bytes {7}, arena bytes {8} + {9} saved activation slots x {10} "
                                  "stash bytes",
                                  p, runtime::maxInFlight(schedule), sent, sentBytes, received, receivedBytes,
                                  paramBytes, stateBytes, stats->arenaBytes, stash, stats->stashBytes));
  }
  return lines;
}
