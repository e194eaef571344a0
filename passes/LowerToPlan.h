//===- LowerToPlan.h - memory-planned graph -> per-rank FlatBuffers plans -*- C++ -*-===//
//
// Lowers a scheduled, memory-planned graph (every node other than param/input/output carries `arena`) to one
// plan per rank (runtime/plan/plan.fbs). Mapping:
//   param  -> Parameter (program order = Param storage index): name, dtype, global shape, hf_shape (or empty),
//             this rank's shard shape and offsets, init/std, no_decay for rank-1 tensors (biases, LN gains)
//   input  -> Input (program order = Input storage index), with the rank's shard
//   output -> Output with the TensorRef of its operand
//   other  -> Step: op name, attributes except `arena` (sorted by key), operand/result TensorRefs (Param/Input
//             storage for param/input results, else Arena at the byte offset of `arena`), line = the node's line
//             in `megc --emit ir` output (header = line 1, node k = line k + 2)
// Ranks: rank = dp_rank * tp + tp_rank, r = 0 .. dp*tp-1. The bytes are deterministic: the same graph and metadata
// give identical files (FlatBufferBuilder with ForceDefaults, no timestamps, fixed iteration order).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_LOWERTOPLAN_H
#define MEG_PASSES_LOWERTOPLAN_H

#include "ir/Graph.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace meg::passes {

/// The plan schema version written into every plan. The runtime checks plans against its own constant
/// (runtime/plan/Plan.h kSchemaVersion): both must be bumped together on an incompatible change of runtime/plan/plan.fbs.
constexpr uint32_t kPlanSchemaVersion = 1;

struct PlanMetadata {
  std::string modelJson; ///< the model description (Hugging Face config keys) the graph came from; may be empty
  std::string mode = "train";
};

/// The plan of one rank, serialized (file identifier "MEGP").
llvm::Expected<std::string> buildPlan(const ir::Graph &g, const PlanMetadata &meta, int64_t rank);

/// Writes `dir/rank-<r>.megplan` for every rank. All plans are written to a temporary directory next to `dir` and
/// renamed into place, so a failure leaves no partial output. An existing `dir` is replaced only when it holds
/// nothing but *.megplan files; otherwise: `'<dir>' exists and is not a plan directory`.
llvm::Error writePlans(const ir::Graph &g, const PlanMetadata &meta, llvm::StringRef dir);

} // namespace meg::passes

#endif
