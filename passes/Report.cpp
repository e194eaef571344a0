//===- Report.cpp - per-rank figures of a compiled graph --------------------===//
//
// The rules are in passes/Report.h. One walk over the nodes; the memory figures come from computeMemoryPlanStats.
//
//===----------------------------------------------------------------------===//
#include "passes/Report.h"

#include "ir/OpRules.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

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

std::string formatFlops(double flops) {
  return llvm::formatv("{0} ({1:e3})", int64_t(std::llround(flops)), flops).str();
}

} // namespace

llvm::Expected<PlanReport> meg::passes::computePlanReport(const ir::Graph &g) {
  PlanReport r;
  r.mesh = g.getMesh();
  auto stats = computeMemoryPlanStats(g);
  if (!stats)
    return stats.takeError();
  r.memory = *stats;
  for (unsigned a = 0; a < ir::kNumMeshAxes; ++a)
    r.traffic[a].groupSize = r.mesh.size[a];

  // Ring numerators (bytes x 2(n-1) or x (n-1)) per axis; divided by n once at the end.
  std::array<int64_t, ir::kNumMeshAxes> ringNumerator{};
  for (const auto &node : g) {
    const Node &n = *node;
    r.flopsGlobal += ir::countFlops(n);
    r.flopsPerRank += flopsPerRank(n, r.mesh);
    switch (n.getKind()) {
    case OpKind::Param:
      r.paramElements += n.getResult()->getType().localNumElements(r.mesh);
      r.paramBytes += localBytes(*n.getResult(), r.mesh);
      r.totalParamElements += n.getResult()->getType().numElements();
      continue;
    case OpKind::State:
      r.optimizerStateBytes += localBytes(*n.getResult(), r.mesh);
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
      ++t.allReduces;
      ringNumerator[a] += 2 * n1 * localBytes(*n.getOperand(0), r.mesh);
      break;
    case OpKind::AllReduceBucket: {
      ++t.buckets;
      int64_t bucketBytes = 0;
      for (const ir::Value *v : n.getOperands())
        bucketBytes += localBytes(*v, r.mesh);
      t.allReduces += n.getNumOperands();
      t.bucketedAllReduces += n.getNumOperands();
      t.largestBucketBytes = std::max(t.largestBucketBytes, bucketBytes);
      ringNumerator[a] += 2 * n1 * bucketBytes;
      break;
    }
    case OpKind::AllGather:
      ++t.allGathers;
      ringNumerator[a] += n1 * localBytes(*n.getResult(), r.mesh);
      break;
    case OpKind::ReduceScatter:
      ++t.reduceScatters;
      ringNumerator[a] += n1 * localBytes(*n.getOperand(0), r.mesh);
      break;
    default:
      ++t.shards;
      break;
    }
  }
  for (unsigned a = 0; a < ir::kNumMeshAxes; ++a) {
    r.traffic[a].ringBytes = ringNumerator[a] / r.mesh.size[a];
  }
  return r;
}

std::vector<std::string> meg::passes::formatPlanReport(const PlanReport &r) {
  std::vector<std::string> lines;
  auto line = [&](std::string s) { lines.push_back(std::move(s)); };
  line(llvm::formatv("param bytes per rank: {0}", r.paramBytes));
  line(llvm::formatv("parameters per rank: {0} (of {1}: 1/{2:F3})", r.paramElements, r.totalParamElements,
                     r.paramElements ? double(r.totalParamElements) / double(r.paramElements) : 0.0));
  line(llvm::formatv("gradient bytes per rank: {0}", r.gradientBytes));
  line(llvm::formatv("optimizer state bytes per rank: {0}", r.optimizerStateBytes));
  line(llvm::formatv("arena bytes per rank: {0}", r.memory.arenaBytes));
  line(llvm::formatv("buffer bytes per rank: {0}", r.memory.bufferBytes));
  line(llvm::formatv("live lower bound per rank: {0} bytes (ratio {1:F3})", r.memory.lowerBound, r.memory.ratio()));
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
    line(llvm::formatv("{0} collectives per step: {1} ({2} all_reduce{3}; {4} all_gather; {5} reduce_scatter; {6} "
                       "shard, moving nothing)",
                       name, t.collectives(), t.allReduces, buckets, t.allGathers, t.reduceScatters, t.shards));
    line(llvm::formatv("{0} bytes sent per rank per step: {1} (as many received; ring over n = {2}: all_reduce "
                       "2 (n-1)/n x B, all_gather and reduce_scatter (n-1)/n x B of the full tensor, B = bytes "
                       "one rank holds)",
                       name, t.ringBytes, t.groupSize));
  }
  return lines;
}
