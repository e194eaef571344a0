//===- MemoryPlan.h - activation arena planning ------------------*- C++ -*-===//
//
// The memory-plan pass (passes/MemoryPlan.cpp) gives every activation (every value that is not a param/input
// result and has a non-zero size) a byte offset in one per-rank arena, stored on its node as the int-list attribute
// `arena = [offset of result 0, ...]`. Lifetimes come from the current node order:
//   - a value lives from its defining node to its last use; values used by `output` nodes live to the end;
//   - a result of an Alias op (Ops.def: reshape) shares its operand's offset, extending the operand's lifetime;
//   - an InPlace op (Ops.def: elementwise ops, all_reduce) may write over an operand that dies at this node and has
//     the same size.
// Values sharing storage form one buffer; buffers are placed by a greedy best-fit allocator (by size and by
// definition order; the smaller arena wins). Sizes are local (per rank): localNumElements(mesh) * dtypeBytes.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_MEMORYPLAN_H
#define MEG_PASSES_MEMORYPLAN_H

#include "passes/ExecutionOrder.h"

#include "ir/Graph.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace meg::passes {

/// Bytes one rank holds of `v`.
int64_t localBytes(const ir::Value &v, const ir::Mesh &mesh);
/// The value whose storage `v` is: `v`, or for the result of a YieldsWritten op (accumulate) on storage outside the
/// arena, and an Alias (reshape, send) of such a result, the written value (the accumulator state).
const ir::Value &storageRoot(const ir::Value &v);
/// Whether `v` lives in the arena (not a param/input/state result or one sharing its storage, non-zero size).
bool isArenaValue(const ir::Value &v, const ir::Mesh &mesh);

/// Storage shared by values (an alias/in-place group), live over node positions [start, end] (end == the number
/// of nodes: to the end of the graph).
struct ArenaBuffer {
  int64_t size = 0;
  unsigned start = 0, end = 0;
  llvm::SmallVector<const ir::Value *, 2> members;
  /// Pipeline stages: a member is computed on several stages (ExecutionOrder.h), so the buffer has one offset on
  /// all of them.
  bool pinned = false;
};

/// The buffers of the nodes `order` runs, positions being indices into it (deterministic: ordered by definition).
struct Liveness {
  std::vector<ArenaBuffer> buffers;
  llvm::DenseMap<const ir::Value *, unsigned> bufferOf;
  /// Values written in place into an operand's storage outside the arena (an accumulator): value -> the operand's
  /// index. Not in any buffer; their `arena` attribute is -1 - that index.
  llvm::DenseMap<const ir::Value *, unsigned> outside;
  /// Max over node positions of the bytes of the buffers live there (each buffer counted once).
  int64_t lowerBound = 0;
  /// Sum of all buffer sizes.
  int64_t totalBytes = 0;
};
Liveness computeLiveness(const ir::Graph &g, const ExecutionOrder &order);

/// Greedy best-fit placement of `buffers` in `order` (what memory-plan runs for each of its two orders): each buffer
/// goes to the smallest gap, the lowest on a tie, between the buffers placed before it that are live at an
/// overlapping time (a gap starts at the end of the buffer below rounded up to `align`, a power of two), or above
/// them all. Returns the offset of each buffer (-1 for one not in `order`) and the arena size.
std::pair<std::vector<int64_t>, int64_t> placeBuffers(const std::vector<ArenaBuffer> &buffers,
                                                     llvm::ArrayRef<unsigned> order, int64_t align);

struct MemoryPlanStats {
  int64_t arenaBytes = 0;  ///< max over buffers of offset + size
  int64_t bufferBytes = 0; ///< sum of buffer sizes (what a plan without reuse would need)
  int64_t lowerBound = 0;  ///< liveness lower bound
  int64_t paramBytes = 0;  ///< per-rank bytes of all parameters (of the stage's)
  /// Pipeline stages: the bytes at the bottom of the arena that hold everything live at the hand-over from the
  /// forward to the backward phase (ExecutionOrder.h): what a stage saves per micro-batch in flight. 0 without.
  int64_t stashBytes = 0;
  unsigned numBuffers = 0;
  double ratio() const { return lowerBound ? double(arenaBytes) / double(lowerBound) : 1.0; }
};

/// Recomputes the statistics of a memory-planned graph (of the arena of pipeline stage `stage`, which is every
/// rank's without stages) from its `arena` attributes, checking that every arena value has an offset, that values
/// sharing storage share it, and that no two buffers live at the same time overlap. Errors name the op and its line
/// in `megc --emit ir` output.
llvm::Expected<MemoryPlanStats> computeMemoryPlanStats(const ir::Graph &g, int64_t stage = 0);

/// The line of node `index` (0-based program order) in `megc --emit ir` output: the graph header is line 1.
inline unsigned irLineOfNode(unsigned index) { return index + 2; }

} // namespace meg::passes

#endif
