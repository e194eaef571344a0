//===- Sharding.h - deriving shardings from op index structure --*- C++ -*-===//
//
// Shared by the sharding-propagation and partition passes: given a node and the shardings of its operands, decide
// which sharding each operand must have when the node consumes it and which sharding each result gets. The decision
// uses only the op's ShardingSpec (ir/OpRules.h), never the op kind.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_SHARDING_H
#define MEG_PASSES_SHARDING_H

#include "ir/Graph.h"

#include "llvm/ADT/DenseMap.h"

namespace meg::passes {

/// Per dim of a value: the mesh axis it would rather be split on (nullopt: no preference).
using SoftSplit = llvm::SmallVector<std::optional<ir::MeshAxis>, 4>;

struct ShardingDecision {
  llvm::SmallVector<ir::Sharding, 4> operands; // required when consumed
  llvm::SmallVector<ir::Sharding, 1> results;
  /// The results' preferred splits that the op could not take (they travel on to the consumers).
  llvm::SmallVector<SoftSplit, 1> resultSoft;
};

/// What decideSharding knows beyond the operand shardings (ShardingWalk keeps it per value).
struct ShardingHints {
  /// Operand i derives from parameters only (a param, a cast or reshape of one): its split is the strategy's layout,
  /// so a loop it splits wins over a loop an activation splits on the same mesh axis (the activation moves).
  llvm::SmallVector<bool, 4> anchored;
  /// Operand i's preferred splits (a strategy's wish, e.g. sequence parallelism's sequence dim over tp, carried
  /// through every op by its loops).
  llvm::SmallVector<SoftSplit, 4> soft;
  /// Preferences are in play (a strategy seeded some): splits that lose a conflict become preferences of the
  /// result, and parallel loops take free preferred axes. Off, the decision ignores `soft`.
  bool preferences = false;
  /// Preferred axes are taken only by ops whose first result has this shape (the strategy's residual stream, e.g.
  /// [b, s, h]); elsewhere they only travel on. Ops that write an operand (the optimizer) never take them.
  llvm::SmallVector<int64_t, 4> preferShape;
};

/// Loops take the mesh axis on which every operand indexing them is split (and whose size divides every dim they
/// index); where two loops want the same axis, the one an anchored operand splits wins, then a parallel loop over a
/// reduction, then loop order. A loop left without an axis takes its preferred axis (hints) when it is parallel,
/// the axis is free and divides its dims. Pending reductions survive only where the op is linear in them;
/// reduction loops over split dims turn into pending reductions of the result. An anchored operand split over dp
/// (the distributed optimizer's parameter shard) splits no loop of an op that writes no operand and reads anything
/// not anchored: it is read whole over dp (gathered); ops on parameters alone (a cast) and the optimizer's update
/// (adamw) work on the shard.
ShardingDecision decideSharding(const ir::Node &n, llvm::ArrayRef<ir::Sharding> operandShardings,
                                const ir::Mesh &mesh, const ShardingHints *hints = nullptr);
/// decideSharding on the node's current operand shardings.
ShardingDecision decideSharding(const ir::Node &n, const ir::Mesh &mesh, const ShardingHints *hints = nullptr);

/// The program-order walk of sharding-propagation and partition: keeps, per value, whether it is anchored and its
/// preferred splits. Sources: params and state are anchored; an input's preference is its `prefer` attribute
/// (one entry per dim, "-" or a mesh axis: "-,tp", set by a strategy), taken where a value of the shape of its
/// `stream` attribute is computed.
class ShardingWalk {
public:
  explicit ShardingWalk(const ir::Mesh &mesh) : mesh(mesh) {}
  /// The decision for `n` on its current operand shardings.
  ShardingDecision decide(const ir::Node &n);
  /// The decision for `n` if its operands had the shardings `in` (one per operand).
  ShardingDecision decide(const ir::Node &n, llvm::ArrayRef<ir::Sharding> in);
  /// Records what `n`'s results are (after the caller set their shardings from `d`).
  void record(const ir::Node &n, const ShardingDecision &d);
  /// Records a value the caller inserted (a collective): it is what `from` is.
  void recordLike(const ir::Value *v, const ir::Value *from);

private:
  const ir::Mesh &mesh;
  llvm::DenseMap<const ir::Value *, bool> anchored;
  llvm::DenseMap<const ir::Value *, SoftSplit> soft;
  bool preferences = false;
  llvm::SmallVector<int64_t, 4> preferShape;
};
/// Gives the node's results the decided shardings.
void setResultShardings(ir::Node &n, const ShardingDecision &d);

} // namespace meg::passes

#endif
