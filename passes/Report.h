//===- Report.h - per-rank figures of a compiled graph -----------*- C++ -*-===//
//
// What one rank of a compiled (partitioned, scheduled, memory-planned) training or inference graph holds, computes
// and moves per step; `megc --emit report` prints formatPlanReport's lines after frontend/Report.cpp's. The rules:
//   - memory: local bytes (TensorType::localShape) of the `param` nodes, of each parameter's gradient (the
//     operand of `output grad:<param>`), of the `state` nodes (optimizer state) and the activation arena
//     (computeMemoryPlanStats). Gradients are arena values (the grad:<param> outputs keep them live to the end of
//     the step) and so are the 16-bit copies of parameters (`cast` of a `param`, mixed precision); at the arena's
//     live peak (the node position where the live buffers sum to the liveness lower bound) the report splits what
//     is live into gradients, 16-bit parameter copies and the rest (activations and temporaries). Parameters
//     (fp32 masters under mixed precision) and optimizer state are outside the arena, so the total per rank is
//     param + optimizer state + arena bytes (gradients and 16-bit copies counted once, inside the arena);
//   - activation bytes per layer (a model's report, train mode, >= 2 layers): (arena of the L-layer model -
//     arena of the same model compiled the same way with L' < L layers) / (L - L'), the marginal arena cost of a
//     layer, next to Korthikanti et al. 2022's per-layer formulas for 16-bit activations with 1-byte dropout masks
//     (b micro-batch, s seq, h hidden, a heads, t tp; no sequence parallelism): no recompute
//     sbh(10 + 24/t + 5as/(ht)) (sbh(34 + 5as/h) at t = 1), selective sbh(10 + 24/t) (34sbh/t with sequence
//     parallelism), full 2sbh (the layer input);
//   - FLOPs per step per rank: over ALL nodes (forward, backward, optimizer), ir::countFlops(node) (global,
//     unsharded work) divided by the size of every mesh axis that one of the node's operands or results is split
//     or partial over. Work on values replicated over an axis (LayerNorm over tp, the optimizer of replicated
//     parameters over tp and of every parameter over dp) is done in full on every rank of it and counted so;
//   - gradient accumulation (m micro-batches per step): the accumulators (`state` written by `accumulate`) are
//     their own line, not optimizer state, and count in the total; FLOPs and collectives of the body (every node
//     but passes/GradAccum.h's once-per-step and prologue nodes) count m times;
//   - collectives per mesh axis: one per all_reduce / all_reduce_bucket / all_gather / reduce_scatter /
//     reduce_scatter_bucket node over it (a dp gradient bucket, bucket-dp's all_reduce_bucket or, with the
//     distributed optimizer, reduce_scatter_bucket, is one collective of its N values, counted as N all-reduces or
//     reduce-scatters in one bucket, its bytes as theirs); `shard` moves nothing. Bytes one rank sends
//     under the ring algorithm (it receives as many), with n the axis size and B the bytes of the tensor one rank
//     holds: all_reduce 2 (n-1)/n x B; all_gather (n-1)/n x B of the gathered result; reduce_scatter (n-1)/n x B of
//     the operand. Bucketing changes the count, not the bytes.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_REPORT_H
#define MEG_PASSES_REPORT_H

#include "passes/MemoryPlan.h"

#include "ir/Graph.h"

#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace meg::passes {

/// The collectives over one mesh axis in one step, as one rank sees them.
struct AxisTraffic {
  int64_t groupSize = 1;
  /// allReduces counts values: an all_reduce, or one member of a bucket.
  int64_t allReduces = 0, allGathers = 0, reduceScatters = 0, shards = 0;
  /// dp gradient buckets (all_reduce_bucket nodes) and the values all-reduced in them.
  int64_t buckets = 0, bucketedAllReduces = 0;
  /// The largest bucket, in bytes per rank.
  int64_t largestBucketBytes = 0;
  /// reduceScatters counts values too: the distributed optimizer's gradient buckets (reduce_scatter_bucket nodes),
  /// the values reduce-scattered in them and the largest one's operand bytes per rank.
  int64_t scatterBuckets = 0, bucketedReduceScatters = 0, largestScatterBucketBytes = 0;
  /// Bytes this rank sends (and receives) under the ring algorithm, in all and by kind of collective.
  int64_t ringBytes = 0;
  enum Kind : unsigned { kAllReduce, kBucket, kAllGather, kReduceScatter, kKinds };
  std::array<int64_t, kKinds> ringBytesByKind{};
  /// Collectives at run time: every all_reduce / all_gather / reduce_scatter, a bucket counted once.
  int64_t collectives() const {
    return allReduces - bucketedAllReduces + buckets + allGathers + reduceScatters - bucketedReduceScatters +
           scatterBuckets;
  }
};

/// The transformer of a model's report: its dimensions, and the arena of the same model with fewer layers.
struct LayerProbe {
  int64_t microBatch = 0, seq = 0, hidden = 0, heads = 0, layers = 0;
  int64_t fewerLayers = 0, fewerArenaBytes = 0;
};

/// How the graph was compiled, as far as the report's lines need.
struct ReportSettings {
  std::string activationDtype = "f32"; ///< "f32", or the 16-bit type of mixed precision ("bf16" | "f16")
  std::string recompute = "none";      ///< "none" | "full" | "selective"
  bool sequenceParallel = false;       ///< Korthikanti et al.'s formulas with sequence parallelism
};

struct PlanReport {
  ir::Mesh mesh;
  int64_t paramElements = 0, paramBytes = 0; ///< per rank
  int64_t totalParamElements = 0;            ///< global, every parameter once
  int64_t gradientBytes = 0;                 ///< per rank
  int64_t optimizerStateBytes = 0;           ///< per rank
  /// The distributed optimizer: parameters (masters, with their Adam states) split over dp, and those left whole.
  int64_t dpSplitParams = 0, dpWholeParams = 0;
  int64_t kvCacheBytes = 0;                  ///< per rank: decode plans' KV-cache states (kv_cache.*)
  /// Gradient accumulation (passes/GradAccum.cpp): micro-batches per step and the fp32 accumulators per rank.
  int64_t microBatches = 1, accumulatorBytes = 0;
  MemoryPlanStats memory;
  /// 16-bit parameter copies: every one (sum of sizes) and those live at the arena's live peak.
  int64_t paramCopyBytes = 0, paramCopyBytesAtPeak = 0;
  /// Gradients live at the arena's live peak.
  int64_t gradientBytesAtPeak = 0;
  /// Pipeline stages: the stage reported (-1 without), and the copies of its stash bytes (memory.stashBytes) it
  /// keeps for the micro-batches in flight.
  int64_t stage = -1;
  int stashSlots = 0;
  ReportSettings settings;
  std::optional<LayerProbe> layers;
  double flopsPerRank = 0; ///< per step, rule above
  double flopsGlobal = 0;  ///< per step, sum of ir::countFlops over all nodes (the step on one device)
  std::array<AxisTraffic, ir::kNumMeshAxes> traffic;
};

/// The figures of a compiled, memory-planned graph: of a rank of pipeline stage `stage` (the nodes it runs,
/// ExecutionOrder.h; every node without stages).
llvm::Expected<PlanReport> computePlanReport(const ir::Graph &g, ReportSettings settings = {}, int64_t stage = 0);

/// One line per figure, no trailing newlines:
///   param bytes per rank: 4174196736
///   parameters per rank: 1043549184 (of 8317040640: 1/7.970)
///   gradient bytes per rank: ...
///   optimizer state bytes per rank: ...
///   distributed optimizer: ... of ... parameters split over dp ... (only when some parameter is split over dp)
///   arena bytes per rank: ...
///   16-bit parameter copy bytes per rank: ... (mixed precision only)
///   fp32 master parameter bytes per rank: ... (mixed precision only)
///   arena at its live peak: ... bytes = ... gradients + ... 16-bit parameter copies + ... activations and temporaries
///   pipeline activation stash per rank: ... bytes x ... slots (pipeline stages with more than one micro-batch in flight)
///   total bytes per rank: ... (param + optimizer state + arena [+ stash]; ...)
///   activation bytes per layer: meg ... (...), Korthikanti et al. formula ... (...)   (with a LayerProbe)
///   buffer bytes per rank: ...
///   live lower bound per rank: ... bytes (ratio 1.000)
///   FLOPs per step per rank: ... (...rule...)
///   FLOPs per step on one device: ...
///   tp collectives per step: 581 (581 all_reduce, 0 all_gather, 0 reduce_scatter; 146 shard move nothing)
///   tp bytes sent per rank per step: ... (ring, n = 8: ...; as many received)
///   tp bytes sent per rank per step by collective: all_reduce ..., all_reduce_bucket ..., all_gather ...,
///     reduce_scatter ...   (when the axis has collectives)
///   dp collectives per step: ...
///   dp bytes sent per rank per step: ...
/// With pipeline stages every line starts with `stage S: `.
std::vector<std::string> formatPlanReport(const PlanReport &r);

} // namespace meg::passes

#endif
