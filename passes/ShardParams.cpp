//===- ShardParams.cpp - a sharding strategy annotates parameters and inputs ===//
//
// A strategy only says how parameters and inputs are laid out; sharding-propagation derives everything else.
// Parameters (and optimizer state, which copies its parameter's axes) name their dims with logical axes (attribute `axes`, e.g. "hidden,qkv,heads,head_dim", set by the
// frontend); a strategy maps logical axes to mesh axes. Inputs are split on their batch dim (dim 0) over dp.
//
//   megatron: heads -> tp (QKV column-parallel, attention output row-parallel), ffn -> tp (MLP in column-parallel,
//             MLP out row-parallel), vocab -> tp (vocab-parallel embedding and output layer). Everything else,
//             LayerNorms, position embeddings and biases of row-parallel layers, stays replicated.
//   none:     parameters replicated (data parallelism only).
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

namespace {

struct Strategy {
  llvm::StringRef name;
  std::vector<std::pair<llvm::StringRef, MeshAxis>> logicalToMesh;
};

const Strategy kStrategies[] = {
    {"megatron", {{"heads", MeshAxis::TP}, {"ffn", MeshAxis::TP}, {"vocab", MeshAxis::TP}}},
    {"none", {}},
};

class ShardParamsPass : public Pass {
public:
  explicit ShardParamsPass(const Strategy &s) : strategy(s) {}
  llvm::StringRef getName() const override { return "shard-params"; }

  llvm::Error run(Graph &g) override {
    const Mesh &mesh = g.getMesh();
    for (Node *n : g.getNodes()) {
      if (n->getKind() == OpKind::Param || n->getKind() == OpKind::State) {
        if (auto err = shardParam(*n, mesh))
          return err;
      } else if (n->getKind() == OpKind::Input && mesh.dp() > 1) {
        Value *v = n->getResult();
        TensorType t = v->getType();
        if (t.rank() == 0)
          continue;
        if (t.shape[0] % mesh.dp() != 0)
          return fail(llvm::formatv("micro-batch ({0}) of input '{1}' is not divisible by dp ({2})", t.shape[0],
                                    *n->getAttrs().getString("name"), mesh.dp()));
        t.sharding.setDimAxis(0, t.rank(), MeshAxis::DP);
        v->setType(t);
      }
    }
    return llvm::Error::success();
  }

private:
  llvm::Error shardParam(Node &n, const Mesh &mesh) {
    auto axesAttr = n.getAttrs().getString("axes");
    if (!axesAttr)
      return llvm::Error::success();
    llvm::SmallVector<llvm::StringRef, 6> logical;
    axesAttr->split(logical, ',');
    Value *v = n.getResult();
    TensorType t = v->getType();
    if (logical.size() != t.rank())
      return fail(llvm::formatv("param '{0}' names {1} axes but has rank {2}", *n.getAttrs().getString("name"),
                                logical.size(), t.rank()));
    std::array<bool, kNumMeshAxes> used{};
    for (unsigned d = 0; d < t.rank(); ++d) {
      auto it = llvm::find_if(strategy.logicalToMesh, [&](auto &p) { return p.first == logical[d].trim(); });
      if (it == strategy.logicalToMesh.end())
        continue;
      MeshAxis axis = it->second;
      int64_t size = mesh.size[unsigned(axis)];
      if (size == 1 || used[unsigned(axis)])
        continue;
      if (t.shape[d] % size != 0)
        return fail(llvm::formatv("{0} ({1}) is not divisible by {2} ({3}): param '{4}'", it->first, t.shape[d],
                                  meshAxisName(axis), size, *n.getAttrs().getString("name")));
      used[unsigned(axis)] = true;
      t.sharding.setDimAxis(d, t.rank(), axis);
    }
    v->setType(t);
    return llvm::Error::success();
  }

  const Strategy &strategy;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createShardParamsPass(const ShardParamsOptions &options) {
  llvm::StringRef name = options.strategy;
  for (const Strategy &s : kStrategies)
    if (s.name == name)
      return std::make_unique<ShardParamsPass>(s);
  return fail("shard-params: unknown strategy '" + name + "' (known: megatron, none)");
}
