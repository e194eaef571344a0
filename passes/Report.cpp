//===- Report.cpp - per-rank figures of a compiled graph --------------------===//
//
// The rules are in passes/Report.h. One walk over the nodes; the memory figures come from computeMemoryPlanStats.
//
//===----------------------------------------------------------------------===//
#include "passes/Report.h"
#include "passes/GradAccum.h"
#include "passes/PipelineSplit.h"

#include "runtime/plan/PipelineSchedule.h"

#include "ir/OpRules.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>
#include <utility>

using namespace meg;
using namespace meg::passes;
using ir::MeshAxis;
using ir::Node;
using ir::OpKind;

namespace {

/// Marks the mesh axes a type is split or partial over.
void markAxes(const ir::TensorType &t, std::array<bool, ir::kNumMeshAxes> &axes) {
  for (const auto &d : t.sharding.dims)
    if (d)
      axes[unsigned(*d)] = true;
  for (unsigned a = 0; a < ir::kNumMeshAxes; ++a)
    if (t.sharding.partial[a])
      axes[a] = true;
}

/// ir::countFlops(n) divided by the size of every mesh axis n's operands or results are split or partial over.
double flopsPerRank(const Node &n, const ir::Mesh &mesh) {
  double flops = ir::countFlops(n);
  if (flops == 0)
    return 0;
  std::array<bool, ir::kNumMeshAxes> axes{};
  for (const ir::Value *v : n.getOperands())
    markAxes(v->getType(), axes);
  for (unsigned r = 0; r < n.getNumResults(); ++r)
    markAxes(n.getResult(r)->getType(), axes);
  for (unsigned a = 0; a < ir::kNumMeshAxes; ++a)
    if (axes[a])
      flops /= double(mesh.size[a]);
  return flops;
}

std::optional<MeshAxis> axisOf(const Node &n) {
  auto axis = n.getAttrs().getSymbol("axis");
  return axis ? ir::parseMeshAxis(*axis) : std::nullopt;
}

/// Whether `v` is a 16-bit copy of a parameter (mixed precision: a cast of a param, or the dp all-gather of one
/// under the distributed optimizer).
bool isParamCopy(const ir::Value *v) {
  const Node *n = v->getDef();
  if (n->getKind() == OpKind::AllGather)
    n = n->getOperand(0)->getDef();
  return n->getKind() == OpKind::Cast && n->getOperand(0)->getDef()->getKind() == OpKind::Param;
}

/// Fills the 16-bit parameter copy and gradient figures: in all, and at the first node position where the live
/// buffers sum to the liveness lower bound.
void splitArenaPeak(const ir::Graph &g, const ExecutionOrder &order, PlanReport &r) {
  llvm::DenseSet<const ir::Value *> gradients;
  for (const Node *n : g.nodesOfKind(OpKind::Output))
    if (n->getAttrs().getString("name").value_or("").startswith("grad:"))
      gradients.insert(n->getOperand(0));
  Liveness live = computeLiveness(g, order);
  const unsigned numNodes = order.nodes.size();
  std::vector<int64_t> delta(numNodes + 2, 0);
  for (const ArenaBuffer &b : live.buffers) {
    delta[b.start] += b.size;
    delta[b.end + 1] -= b.size;
  }
  unsigned peak = 0;
  int64_t bytes = 0, peakBytes = -1;
  for (unsigned i = 0; i <= numNodes; ++i)
    if ((bytes += delta[i]) > peakBytes)
      peakBytes = bytes, peak = i;
  for (const ArenaBuffer &b : live.buffers) {
    bool atPeak = b.start <= peak && peak <= b.end;
    if (llvm::any_of(b.members, isParamCopy)) {
      r.paramCopyBytes += b.size;
      r.paramCopyBytesAtPeak += atPeak ? b.size : 0;
    } else if (atPeak && llvm::any_of(b.members, [&](const ir::Value *v) { return gradients.contains(v); })) {
      r.gradientBytesAtPeak += b.size;
    }
  }
}

/// The bytes one rank holds of all operands of `n` (a bucket's).
int64_t operandBytes(const Node &n, const ir::Mesh &mesh) {
  int64_t bytes = 0;
  for (const ir::Value *v : n.getOperands())
    bytes += localBytes(*v, mesh);
  return bytes;
}

/// Korthikanti et al. 2022's activation bytes per transformer layer (16-bit activations, 1-byte dropout masks, no
/// sequence parallelism) and the formula's text.
std::pair<double, std::string> korthikanti(const LayerProbe &m, int64_t t, llvm::StringRef recompute,
                                           bool sequenceParallel) {
  double sbh = double(m.seq) * double(m.microBatch) * double(m.hidden);
  double as = double(m.heads) * double(m.seq), h = double(m.hidden);
  if (recompute == "full")
    return {2 * sbh, "2sbh, full recompute: the layer input"};
  if (sequenceParallel && recompute == "selective")
    return {34 * sbh / double(t), "34sbh/t, selective recompute with sequence parallelism"};
  if (sequenceParallel)
    return {sbh / double(t) * (34 + 5 * as / h), "sbh/t (34 + 5as/h), no recompute, sequence parallelism"};
  if (recompute == "selective")
    return {sbh * (10 + 24.0 / double(t)), "sbh(10 + 24/t), selective recompute (34sbh/t with sequence parallelism)"};
  if (t == 1)
    return {sbh * (34 + 5 * as / h), "sbh(34 + 5as/h), no recompute"};
  return {sbh * (10 + 24.0 / double(t) + 5 * as / (h * double(t))), "sbh(10 + 24/t + 5as/(ht)), no recompute"};
}

std::string formatFlops(double flops) {
  return llvm::formatv("{0} ({1:e3})", int64_t(std::llround(flops)), flops).str();
}

} // namespace

llvm::Expected<PlanReport> meg::passes::computePlanReport(const ir::Graph &g, ReportSettings settings,
                                                         int64_t stage) {
  PlanReport r;
  r.mesh = g.getMesh();
  r.settings = std::move(settings);
  auto stats = computeMemoryPlanStats(g, stage);
  if (!stats)
    return stats.takeError();
  r.memory = *stats;
  PhaseRule phases(g);
  ExecutionOrder order = executionOrder(g, stage, phases);
  splitArenaPeak(g, order, r);
  for (unsigned a = 0; a < ir::kNumMeshAxes; ++a)
    r.traffic[a].groupSize = r.mesh.size[a];

  // Gradient accumulation: the body runs once per micro-batch, the once-per-step and prologue nodes once.
  auto micro = microBatchesOf(g);
  if (!micro)
    return micro.takeError();
  r.microBatches = *micro;
  if (order.pipelined) {
    int64_t stages = pipelineStagesOf(g);
    r.stage = stage;
    auto schedule = runtime::oneFOneB(int(stages), int(stage), int(r.microBatches));
    r.stashSlots = runtime::maxInFlight(schedule) > 1
                       ? runtime::activationSlots(int(stages), int(stage), int(r.microBatches))
                       : 0;
  }
  llvm::DenseSet<const ir::Value *> accumulators;
  for (const Node *n : g.nodesOfKind(OpKind::Accumulate))
    accumulators.insert(n->getOperand(0));

  // Ring numerators (bytes x 2(n-1) or x (n-1)) per axis and kind; divided by n once at the end.
  std::array<std::array<int64_t, AxisTraffic::kKinds>, ir::kNumMeshAxes> ringNumerator{};
  for (const Node *node : order.nodes) {
    const Node &n = *node;
    StepPhase phase = phases.of(n);
    int64_t times = phase == StepPhase::Update || phase == StepPhase::Prologue ? 1 : r.microBatches;
    r.flopsGlobal += double(times) * ir::countFlops(n);
    r.flopsPerRank += double(times) * flopsPerRank(n, r.mesh);
    switch (n.getKind()) {
    case OpKind::Param:
      r.paramElements += n.getResult()->getType().localNumElements(r.mesh);
      r.paramBytes += localBytes(*n.getResult(), r.mesh);
      r.totalParamElements += n.getResult()->getType().numElements();
      ++(llvm::is_contained(n.getResult()->getType().sharding.dims, std::optional<MeshAxis>(MeshAxis::DP)) ? r.dpSplitParams
                                                                                   : r.dpWholeParams);
      continue;
    case OpKind::State:
      (accumulators.contains(n.getResult()) ? r.accumulatorBytes
       : n.getAttrs().getString("name").value_or("").startswith("kv_cache.") ? r.kvCacheBytes
                                                                              : r.optimizerStateBytes) +=
          localBytes(*n.getResult(), r.mesh);
      continue;
    case OpKind::Output:
      if (n.getAttrs().getString("name").value_or("").startswith("grad:"))
        r.gradientBytes += localBytes(*n.getOperand(0), r.mesh);
      continue;
    default:
      break;
    }
    if (!ir::isCollective(n.getKind()))
      continue;
    auto axis = axisOf(n);
    if (!axis)
      continue;
    unsigned a = unsigned(*axis);
    AxisTraffic &t = r.traffic[a];
    int64_t n1 = r.mesh.size[a] - 1;
    switch (n.getKind()) {
    case OpKind::AllReduce:
      t.allReduces += times;
      ringNumerator[a][AxisTraffic::kAllReduce] += times * 2 * n1 * localBytes(*n.getOperand(0), r.mesh);
      break;
    case OpKind::AllReduceBucket: {
      t.buckets += times;
      int64_t bucketBytes = operandBytes(n, r.mesh);
      t.allReduces += times * n.getNumOperands();
      t.bucketedAllReduces += times * n.getNumOperands();
      t.largestBucketBytes = std::max(t.largestBucketBytes, bucketBytes);
      ringNumerator[a][AxisTraffic::kBucket] += times * 2 * n1 * bucketBytes;
      break;
    }
    case OpKind::AllGather:
      t.allGathers += times;
      ringNumerator[a][AxisTraffic::kAllGather] += times * n1 * localBytes(*n.getResult(), r.mesh);
      break;
    case OpKind::ReduceScatter:
      t.reduceScatters += times;
      ringNumerator[a][AxisTraffic::kReduceScatter] += times * n1 * localBytes(*n.getOperand(0), r.mesh);
      break;
    case OpKind::ReduceScatterBucket: {
      t.scatterBuckets += times;
      int64_t bucketBytes = operandBytes(n, r.mesh);
      t.reduceScatters += times * n.getNumOperands();
      t.bucketedReduceScatters += times * n.getNumOperands();
      t.largestScatterBucketBytes = std::max(t.largestScatterBucketBytes, bucketBytes);
      ringNumerator[a][AxisTraffic::kReduceScatter] += times * n1 * bucketBytes;
      break;
    }
    default:
      t.shards += times;
      break;
    }
  }
  for (unsigned a = 0; a < ir::kNumMeshAxes; ++a)
    for (unsigned k = 0; k < AxisTraffic::kKinds; ++k) {
      r.traffic[a].ringBytesByKind[k] = ringNumerator[a][k] / r.mesh.size[a];
      r.traffic[a].ringBytes += r.traffic[a].ringBytesByKind[k];
    }
  return r;
}

std::vector<std::string> meg::passes::formatPlanReport(const PlanReport &r) {
  std::vector<std::string> lines;
  std::string prefix = r.stage >= 0 ? llvm::formatv("stage {0}: ", r.stage).str() : std::string();
  auto line = [&](std::string s) { lines.push_back(prefix + s); };
  line(llvm::formatv("param bytes per rank: {0}", r.paramBytes));
  line(llvm::formatv("parameters per rank: {0} (of {1}: 1/{2:F3})", r.paramElements, r.totalParamElements,
                     r.paramElements ? double(r.totalParamElements) / double(r.paramElements) : 0.0));
  line(llvm::formatv("gradient bytes per rank: {0}", r.gradientBytes));
  line(llvm::formatv("optimizer state bytes per rank: {0}", r.optimizerStateBytes));
  if (r.dpSplitParams)
    line(llvm::formatv("distributed optimizer: {0} of {1} parameters (fp32 masters and Adam states) split over dp = "
                       "{2}, their gradients reduce-scattered and the parameters all-gathered; {3} whole (no dim "
                       "that dp divides and no other axis splits: gradients all-reduced)",
                       r.dpSplitParams, r.dpSplitParams + r.dpWholeParams, r.mesh.dp(), r.dpWholeParams));
  if (r.kvCacheBytes)
    line(llvm::formatv("KV cache bytes per rank: {0}", r.kvCacheBytes));
  if (r.microBatches > 1)
    line(llvm::formatv("gradient accumulation: {0} micro-batches per step, fp32 accumulator bytes per rank: {1} "
                       "(the body's FLOPs and collectives below count {0} times)",
                       r.microBatches, r.accumulatorBytes));
  line(llvm::formatv("arena bytes per rank: {0}", r.memory.arenaBytes));
  line(llvm::formatv("buffer bytes per rank: {0}", r.memory.bufferBytes));
  line(llvm::formatv("live lower bound per rank: {0} bytes (ratio {1:F3})", r.memory.lowerBound, r.memory.ratio()));
  if (r.paramCopyBytes) {
    line(llvm::formatv("16-bit parameter copy bytes per rank: {0} live at the arena's live peak ({1} {2} copies in "
                       "all, in the arena)",
                       r.paramCopyBytesAtPeak, r.paramCopyBytes, r.settings.activationDtype));
    line(llvm::formatv("fp32 master parameter bytes per rank: {0}", r.paramBytes));
  }
  int64_t activations = r.memory.lowerBound - r.gradientBytesAtPeak - r.paramCopyBytesAtPeak;
  line(llvm::formatv("arena at its live peak: {0} bytes = {1} gradients + {2} 16-bit parameter copies + {3} "
                     "activations and temporaries",
                     r.memory.lowerBound, r.gradientBytesAtPeak, r.paramCopyBytesAtPeak, activations));
  int64_t stash = r.stashSlots * r.memory.stashBytes;
  if (r.stashSlots)
    line(llvm::formatv("pipeline activation stash per rank: {0} bytes x {1} slots (what the forward hands to the "
                       "backward, kept for each micro-batch in flight)",
                       r.memory.stashBytes, r.stashSlots));
  line(llvm::formatv("total bytes per rank: {0} (param + optimizer state + {1}{2}arena bytes{3}; the arena holds the "
                     "gradients and the 16-bit parameter copies)",
                     r.paramBytes + r.optimizerStateBytes + r.kvCacheBytes + r.accumulatorBytes + r.memory.arenaBytes +
                         stash,
                     r.kvCacheBytes ? "KV cache + " : "", r.microBatches > 1 ? "gradient accumulator + " : "",
                     r.stashSlots ? " + activation stash" : ""));
  if (r.layers) {
    const LayerProbe &m = *r.layers;
    int64_t t = r.mesh.size[unsigned(MeshAxis::TP)];
    int64_t dl = m.layers - m.fewerLayers;
    auto [formula, text] = korthikanti(m, t, r.settings.recompute, r.settings.sequenceParallel);
    line(llvm::formatv("activation bytes per layer: meg {0} ({1}, {2}, tp {3}: (arena of {4} layers - "
                       "arena of {5}) / {6}), Korthikanti et al. formula {7} ({8}, tp {3}, 16-bit activations; "
                       "b {9}, s {10}, h {11}, a {12})",
                       (r.memory.arenaBytes - m.fewerArenaBytes) / dl, r.settings.activationDtype,
                       r.settings.recompute == "none" ? "no recompute" : r.settings.recompute + " recompute", t, m.layers, m.fewerLayers, dl, int64_t(std::llround(formula)), text,
                       m.microBatch, m.seq, m.hidden, m.heads));
  }
  line("FLOPs per step per rank: " + formatFlops(r.flopsPerRank) +
       " (every node, forward + backward + optimizer: ir::countFlops divided by the size of each mesh axis its "
       "operands or results are split or partial over)");
  line("FLOPs per step on one device: " + formatFlops(r.flopsGlobal) + " (every node: ir::countFlops)");
  for (MeshAxis axis : {MeshAxis::TP, MeshAxis::DP}) {
    const AxisTraffic &t = r.traffic[unsigned(axis)];
    llvm::StringRef name = ir::meshAxisName(axis);
    std::string buckets;
    if (t.buckets)
      buckets = llvm::formatv(", {0} of them gradients in {1} bucket{2}, the largest {3} bytes", t.bucketedAllReduces,
                              t.buckets, t.buckets == 1 ? "" : "s", t.largestBucketBytes)
                    .str();
    std::string scatterBuckets;
    if (t.scatterBuckets)
      scatterBuckets = llvm::formatv(", {0} of them gradients in {1} bucket{2}, the largest {3} bytes",
                                     t.bucketedReduceScatters, t.scatterBuckets, t.scatterBuckets == 1 ? "" : "s",
                                     t.largestScatterBucketBytes)
                           .str();
    line(llvm::formatv("{0} collectives per step: {1} ({2} all_reduce{3}; {4} all_gather; {5} reduce_scatter{6}; {7} "
                       "shard, moving nothing)",
                       name, t.collectives(), t.allReduces, buckets, t.allGathers, t.reduceScatters, scatterBuckets,
                       t.shards));
    line(llvm::formatv("{0} bytes sent per rank per step: {1} (as many received; ring over n = {2}: all_reduce "
                       "2 (n-1)/n x B, all_gather and reduce_scatter (n-1)/n x B of the full tensor, B = bytes "
                       "one rank holds)",
                       name, t.ringBytes, t.groupSize));
  }
  for (MeshAxis axis : {MeshAxis::TP, MeshAxis::DP}) {
    const AxisTraffic &t = r.traffic[unsigned(axis)];
    if (t.collectives())
      line(llvm::formatv("{0} bytes sent per rank per step by collective: all_reduce {1}, all_reduce_bucket {2}, "
                         "all_gather {3}, reduce_scatter {4}",
                         ir::meshAxisName(axis), t.ringBytesByKind[AxisTraffic::kAllReduce],
                         t.ringBytesByKind[AxisTraffic::kBucket], t.ringBytesByKind[AxisTraffic::kAllGather],
                         t.ringBytesByKind[AxisTraffic::kReduceScatter]));
  }
  return lines;
}
