//===- ShardingPropagation.cpp - give every value a sharding ----------------===//
//
// Walks the graph in program order; each node's result shardings follow from its operands' shardings and the op's
// index structure (passes/Sharding.h). Sources (params, inputs) keep what the strategy gave them. The graph is not
// yet consistent afterwards: an operand may carry a sharding its consumer cannot take; `partition` fixes that by
// inserting collectives.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"
#include "passes/Sharding.h"

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

namespace {

class ShardingPropagationPass : public Pass {
public:
  llvm::StringRef getName() const override { return "sharding-propagation"; }

  llvm::Error run(Graph &g) override {
    unsigned index = 0;
    ShardingWalk walk(g.getMesh());
    for (Node *n : g.getNodes()) {
      ++index;
      if (isCollective(n->getKind()))
        return fail("'" + n->getName() + "' (node #" + llvm::Twine(index - 1) +
                    ") is already partitioned: propagate shardings before partition");
      if (opInfo(n->getKind()).maxOperands == 0) {
        walk.record(*n, {});
        continue;
      }
      ShardingDecision d = walk.decide(*n);
      setResultShardings(*n, d);
      walk.record(*n, d);
    }
    return llvm::Error::success();
  }
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>>
meg::passes::createShardingPropagationPass(const ShardingPropagationOptions &) {
  return std::make_unique<ShardingPropagationPass>();
}
