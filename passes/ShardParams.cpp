//===- ShardParams.cpp - a sharding strategy annotates parameters and inputs ===//
//
// A strategy only says how parameters and inputs are laid out; sharding-propagation derives everything else.
// Parameters (and optimizer state, which copies its parameter's axes) name their dims with logical axes (attribute `axes`, e.g. "hidden,qkv,heads,head_dim", set by the
// frontend); a strategy maps logical axes to mesh axes. Inputs are split on their batch dim (dim 0) over dp.
//
//   megatron: heads -> tp (QKV column-parallel, attention output row-parallel), ffn -> tp (MLP in column-parallel,
//             MLP out row-parallel), vocab -> tp (vocab-parallel embedding and output layer). Everything else,
//             LayerNorms, position embeddings and biases of row-parallel layers, stays replicated.
//   megatron-sp: megatron with sequence parallelism (Korthikanti et al. 2022): the inputs' sequence dim (dim 1)
//             is preferred split over tp (attribute `prefer = "-,tp"`). The preference travels through every op's
//             loops (passes/Sharding.h) and is taken where tp is free and the op computes the residual stream
//             (attribute `stream = [b, s, h]`, h from a parameter on the logical axis "hidden"): LayerNorms, dropout
//             and bias adds run on s/tp tokens, the row-parallel GEMMs' partial sums are reduce-scattered and the
//             column-parallel GEMMs' inputs all-gathered (parameters keep their layout), all by the partition rules.
//             The sequence must divide by tp.
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
  bool sequenceParallel = false;
};

const Strategy kStrategies[] = {
    {"megatron", {{"heads", MeshAxis::TP}, {"ffn", MeshAxis::TP}, {"vocab", MeshAxis::TP}}},
    {"megatron-sp", {{"heads", MeshAxis::TP}, {"ffn", MeshAxis::TP}, {"vocab", MeshAxis::TP}}, true},
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
      } else if (n->getKind() == OpKind::Input && strategy.sequenceParallel && mesh.tp() > 1 &&
                 n->getResult()->getType().rank() >= 2) {
        auto hidden = hiddenSize(g);
        if (!hidden)
          return fail("sequence parallelism: no parameter on the logical axis 'hidden' (a LayerNorm gain) names "
                      "the residual stream's width");
        if (auto err = preferSequenceSplit(*n, mesh, *hidden))
          return err;
      }
      if (n->getKind() == OpKind::Input && mesh.dp() > 1) {
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
  /// Sequence parallelism: dim 1 of the input is the sequence; prefer it split over tp.
  static llvm::Error preferSequenceSplit(Node &n, const Mesh &mesh, int64_t hidden) {
    const TensorType &t = n.getResult()->getType();
    if (t.shape[1] % mesh.tp() != 0)
      return fail(llvm::formatv("sequence parallelism: the sequence ({0}) of input '{1}' is not divisible by tp ({2})",
                                t.shape[1], *n.getAttrs().getString("name"), mesh.tp()));
    std::string prefer = "-,tp";
    for (unsigned d = 2; d < t.rank(); ++d)
      prefer += ",-";
    n.getAttrs().set("prefer", prefer);
    n.getAttrs().set("stream", std::vector<int64_t>{t.shape[0], t.shape[1], hidden});
    return llvm::Error::success();
  }

  /// The hidden size: the length of a rank-1 parameter on the logical axis "hidden" (a LayerNorm gain).
  static std::optional<int64_t> hiddenSize(const Graph &g) {
    for (Node *p : g.nodesOfKind(OpKind::Param))
      if (p->getAttrs().getString("axes") == llvm::StringRef("hidden"))
        return p->getResult()->getType().shape[0];
    return std::nullopt;
  }

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
  return fail("shard-params: unknown strategy '" + name + "' (known: megatron, megatron-sp, none)");
}
