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

namespace meg::passes {

struct ShardingDecision {
  llvm::SmallVector<ir::Sharding, 4> operands; // required when consumed
  llvm::SmallVector<ir::Sharding, 1> results;
};

/// Loops take the mesh axis on which every operand indexing them is split (and whose size divides every dim they
/// index); pending reductions survive only where the op is linear in them; reduction loops over split dims turn
/// into pending reductions of the result.
ShardingDecision decideSharding(const ir::Node &n, llvm::ArrayRef<ir::Sharding> operandShardings,
                                const ir::Mesh &mesh);
/// decideSharding on the node's current operand shardings.
ShardingDecision decideSharding(const ir::Node &n, const ir::Mesh &mesh);
/// Gives the node's results the decided shardings.
void setResultShardings(ir::Node &n, const ShardingDecision &d);

} // namespace meg::passes

#endif
