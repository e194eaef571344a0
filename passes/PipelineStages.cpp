//===- PipelineStages.cpp - which pipeline stage computes each forward node ---===//
//
// pipeline-stages{stages=P,layers="l0,l1,..."}
//
// Before autodiff (pipeline parallelism, megc --pipeline-model-parallel-size P): the transformer layers are split
// into P consecutive stages, `layers` layers each (empty: an even split; an uneven one is an error), and every
// forward node that computes on the batch gets the integer attribute `stage`. A parameter belongs to the stage of
// its layer (the layer index of its Hugging Face name: `.h.N.`, `.layer.N.`, `.layers.N.`); a parameter outside the
// layers belongs to the first stage when the graph uses it before the first layer (the embeddings) and to the last
// otherwise (the final LayerNorm, the head). A node depending on the batch takes the latest stage among its
// operands and the parameters it reads, so values only flow to later stages in the forward. Nodes that depend only
// on parameters and constants (casts of weights), or only on inputs (masks of the labels), get no stage: each stage
// that needs them computes them (pipeline-split). Autodiff gives every backward node the stage of the forward node
// whose gradient rule built it, so the backward of a layer runs where its forward ran.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Regex.h"

#include <algorithm>

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

namespace {

/// The layer index in a parameter's Hugging Face name, if any.
std::optional<int64_t> layerOf(llvm::StringRef name) {
  static const llvm::Regex layer("(^|\\.)(h|layer|layers)\\.([0-9]+)\\.");
  llvm::SmallVector<llvm::StringRef, 4> m;
  int64_t i;
  if (!layer.match(name, &m) || m[3].getAsInteger(10, i))
    return std::nullopt;
  return i;
}

class PipelineStagesPass : public Pass {
public:
  PipelineStagesPass(int64_t stages, std::vector<int64_t> layers) : stages(stages), layers(std::move(layers)) {}
  llvm::StringRef getName() const override { return "pipeline-stages"; }

  llvm::Error run(Graph &g) override {
    if (stages == 1)
      return llvm::Error::success();
    for (const auto &n : g)
      if (n->getAttrs().get("stage"))
        return fail("the graph already has pipeline stages");
    // Layers of the parameters, and where the layers start in program order.
    auto order = g.computeOrder();
    auto users = g.computeUsers();
    int64_t numLayers = 0;
    unsigned firstLayerUse = ~0u;
    llvm::DenseMap<const Value *, int64_t> paramLayer;
    for (Node *p : g.nodesOfKind(OpKind::Param)) {
      auto layer = layerOf(p->getAttrs().getString("name").value_or(""));
      if (!layer)
        continue;
      paramLayer[p->getResult()] = *layer;
      numLayers = std::max(numLayers, *layer + 1);
      for (Node *u : users.lookup(p->getResult()))
        firstLayerUse = std::min(firstLayerUse, order[u]);
    }
    if (numLayers == 0)
      return fail("the graph has no transformer layers to split into pipeline stages (no parameter is named "
                  "'<...>.h.N.<...>', '.layer.N.' or '.layers.N.')");
    auto layerStage = stageOfLayers(numLayers);
    if (!layerStage)
      return layerStage.takeError();

    // home: the latest stage of the parameters a value reads; bound: whether it depends on the batch.
    llvm::DenseMap<const Value *, int64_t> home;
    llvm::DenseSet<const Value *> bound;
    for (Node *p : g.nodesOfKind(OpKind::Param)) {
      auto it = paramLayer.find(p->getResult());
      if (it != paramLayer.end()) {
        home[p->getResult()] = (*layerStage)[size_t(it->second)];
        continue;
      }
      unsigned first = ~0u;
      for (Node *u : users.lookup(p->getResult()))
        first = std::min(first, order[u]);
      home[p->getResult()] = first < firstLayerUse ? 0 : stages - 1;
    }
    for (const auto &n : g) {
      if (isExternal(n->getKind()) || n->getKind() == OpKind::Output) {
        if (n->getKind() == OpKind::Input)
          bound.insert(n->getResult());
        continue;
      }
      std::optional<int64_t> h;
      bool batch = false;
      for (Value *v : n->getOperands()) {
        if (auto it = home.find(v); it != home.end())
          h = std::max(h.value_or(0), it->second);
        batch |= bound.contains(v);
      }
      for (Value *r : n->getResults()) {
        if (h)
          home[r] = *h;
        if (batch)
          bound.insert(r);
      }
      if (batch && h)
        n->getAttrs().set("stage", *h);
    }
    return llvm::Error::success();
  }

private:
  llvm::Expected<std::vector<int64_t>> stageOfLayers(int64_t numLayers) const {
    std::vector<int64_t> perStage = layers;
    if (perStage.empty()) {
      if (numLayers % stages != 0)
        return fail(llvm::formatv("{0} layers do not split evenly into {1} pipeline stages: give the layers of "
                                  "each stage (--num-layers-per-stage)",
                                  numLayers, stages));
      perStage.assign(size_t(stages), numLayers / stages);
    }
    if (int64_t(perStage.size()) != stages)
      return fail(llvm::formatv("{0} layer counts for {1} pipeline stages", perStage.size(), stages));
    int64_t sum = 0;
    for (int64_t n : perStage) {
      if (n < 1)
        return fail("every pipeline stage needs at least one layer, got " + llvm::Twine(n));
      sum += n;
    }
    if (sum != numLayers)
      return fail(llvm::formatv("the layers per stage add up to {0}, the model has {1}", sum, numLayers));
    std::vector<int64_t> stageOf;
    for (int64_t s = 0; s < stages; ++s)
      stageOf.insert(stageOf.end(), size_t(perStage[size_t(s)]), s);
    return stageOf;
  }

  int64_t stages;
  std::vector<int64_t> layers;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createPipelineStagesPass(const PipelineStagesOptions &o) {
  if (o.stages < 1)
    return fail(llvm::formatv("pipeline-stages: stages must be positive, got {0}", o.stages).str());
  std::vector<int64_t> layers;
  if (!o.layers.empty()) {
    llvm::SmallVector<llvm::StringRef, 8> parts;
    llvm::StringRef(o.layers).split(parts, ':');
    for (llvm::StringRef p : parts) {
      int64_t n;
      if (p.trim().getAsInteger(10, n))
        return fail("pipeline-stages: layers must be counts separated by ':', got '" + o.layers + "'");
      layers.push_back(n);
    }
  }
  return std::make_unique<PipelineStagesPass>(o.stages, std::move(layers));
}
