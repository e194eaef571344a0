//===- Recompute.cpp - activation recompute (checkpointing) ------------------===//
//
// recompute{granularity=full|selective,method=uniform|block,num_layers=N}
//
// Runs after autodiff: the backward's uses of forward activations are rewired to clones of the forward nodes, so
// the originals die in the forward and the clones live only around their backward use.
//
// Layers come from the parameters: a parameter's layer is the first dotted component of its name that is a number
// (`transformer.h.3.attn.c_attn.weight` -> 3, `bert.encoder.layer.11.output.dense.bias` -> 11; the embeddings, final
// norms and heads have none). A forward node's layer is the highest layer of the parameters it depends on; it is
// INSIDE that layer if it also reaches (as an operand, transitively) a node reading a parameter of its group, so a
// layer's output (GPT's last residual add, read only by the next layer) and everything after the last layer (final
// norm, head, loss) are outside.
//
//   - full: layers form groups (uniform: groups of num_layers consecutive layers; block: each of the first num_layers
//     layers alone, the others are not recomputed). A group keeps its inputs and outputs (values that the forward
//     outside the group reads, as Megatron keeps a checkpointed function's input and output); every other value of
//     the group that the backward reads is recomputed from them. Only what the backward needs is cloned: the MLP's
//     output all-reduce of a group's last layer feeds nothing but the residual, so unlike Megatron's re-run of the
//     whole layer it is not repeated.
//   - selective: every `attention` node is recomputed for its backward readers. The fused op never stores the
//     s x s scores (attention_grad recomputes them from q, k and v), so what Korthikanti et al. save does not exist
//     here; what remains is the attention output o, which the backward reads only for the output projection's weight
//     gradient. It dies after the forward projection and is recomputed once per layer in the backward.
//
// A clone is the original node with its attributes (the same `stream`: dropout masks repeat exactly) plus
// `recompute = <group>`, placed before its first backward reader. Running before partition, clones get their
// collectives by the same rules as the originals (a recomputed row-parallel layer repeats its all-reduce, as in
// Megatron). The schedule runs recomputation on demand (passes/Schedule.cpp): a clone becomes ready only when a
// backward node needing it has all its other operands, i.e. when the backward reaches the group.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <optional>

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;
using ir::Value;

namespace {

enum class Granularity { Full, Selective };
enum class Method { Uniform, Block };

constexpr int64_t kNone = -1;

/// The layer of a parameter: the first dotted component of its name that is a number; kNone when there is none.
int64_t paramLayer(const Node &p) {
  std::optional<llvm::StringRef> name = p.getAttrs().getString("name");
  if (!name)
    return kNone;
  llvm::SmallVector<llvm::StringRef, 8> parts;
  name->split(parts, '.');
  for (llvm::StringRef part : parts) {
    int64_t layer;
    if (!part.empty() && llvm::all_of(part, llvm::isDigit) && !part.getAsInteger(10, layer))
      return layer;
  }
  return kNone;
}

/// The layer of each parameter a node reads directly (kNone if it reads none).
int64_t directLayer(const Node &n) {
  int64_t layer = kNone;
  for (const Value *v : n.getOperands())
    if (v->getDef()->getKind() == OpKind::Param)
      layer = std::max(layer, paramLayer(*v->getDef()));
  return layer;
}

class RecomputePass : public Pass {
public:
  RecomputePass(Granularity granularity, Method method, int64_t numLayers)
      : granularity(granularity), method(method), numLayers(numLayers) {}
  llvm::StringRef getName() const override { return "recompute"; }

  llvm::Error run(ir::Graph &g) override {
    nodes = g.getNodes();
    if (auto err = findForward(g))
      return err;
    if (auto err = granularity == Granularity::Full ? findLayerGroups(g) : findAttention())
      return err;
    findKept();

    // Rewire every backward use of a recomputed value to its clone; the clones are appended, then placed.
    for (Node *n : nodes) {
      if (forward.contains(n))
        continue;
      for (unsigned i = 0; i < n->getNumOperands(); ++i)
        if (isRecomputed(n->getOperand(i)))
          n->setOperand(i, recomputed(g, n->getOperand(i), n));
    }
    llvm::SmallVector<Node *, 0> order;
    order.reserve(g.size());
    for (Node *n : nodes) {
      auto it = placedBefore.find(n);
      if (it != placedBefore.end())
        order.append(it->second.begin(), it->second.end());
      order.push_back(n);
    }
    g.reorder(order);
    return llvm::Error::success();
  }

private:
  /// Forward nodes: those the outputs other than the gradients (`grad:<param>`) depend on.
  llvm::Error findForward(const ir::Graph &g) {
    bool hasBackward = false;
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
      Node *n = *it;
      if (n->getKind() == OpKind::Output) {
        bool isGrad = n->getAttrs().getString("name").value_or("").startswith("grad:");
        hasBackward |= isGrad;
        if (!isGrad)
          forward.insert(n);
      }
      if (forward.contains(n))
        for (const Value *v : n->getOperands())
          forward.insert(v->getDef());
    }
    if (!hasBackward)
      return fail("the graph has no backward (no output grad:<param>): run autodiff first");
    // The optimizer's outputs (grad_norm) read the gradients: the backward would look like forward.
    if (!g.nodesOfKind(OpKind::AdamW).empty())
      return fail("the graph has an optimizer: run recompute before it");
    return llvm::Error::success();
  }

  /// full: the group of every forward node inside a recomputed group.
  llvm::Error findLayerGroups(const ir::Graph &g) {
    int64_t layers = 0;
    for (Node *p : g.nodesOfKind(OpKind::Param))
      layers = std::max(layers, paramLayer(*p) + 1);
    if (layers == 0)
      return fail("no layers: no parameter name has a layer number (as in transformer.h.<i>.)");
    if (numLayers > layers)
      return fail("num_layers " + llvm::Twine(numLayers) + " exceeds the " + llvm::Twine(layers) +
                  " layers of the graph");
    // The group of each layer (kNone: not recomputed).
    std::vector<int64_t> groupOfLayer(layers, kNone);
    for (int64_t l = 0; l < layers; ++l)
      if (method == Method::Uniform || l < numLayers)
        groupOfLayer[l] = method == Method::Uniform ? l / numLayers : l;

    // The highest layer each node depends on, and whether it depends on a parameter of what comes after the
    // layers (one without a layer number that every reader reads after some layer: a final norm, a head).
    auto pos = g.computeOrder();
    std::vector<int64_t> layerOf(nodes.size(), kNone);
    for (unsigned i = 0; i < nodes.size(); ++i) {
      layerOf[i] = directLayer(*nodes[i]);
      for (const Value *v : nodes[i]->getOperands())
        layerOf[i] = std::max(layerOf[i], layerOf[pos[v->getDef()]]);
    }
    llvm::DenseSet<const Node *> readBeforeLayers;
    for (unsigned i = 0; i < nodes.size(); ++i)
      if (forward.contains(nodes[i]) && layerOf[i] == kNone)
        for (const Value *v : nodes[i]->getOperands())
          readBeforeLayers.insert(v->getDef());
    std::vector<bool> afterLayers(nodes.size(), false);
    for (unsigned i = 0; i < nodes.size(); ++i)
      for (const Value *v : nodes[i]->getOperands()) {
        const Node *def = v->getDef();
        afterLayers[i] = afterLayers[i] || afterLayers[pos[def]] ||
                         (def->getKind() == OpKind::Param && paramLayer(*def) == kNone &&
                          !readBeforeLayers.contains(def));
      }

    for (unsigned i = 0; i < nodes.size(); ++i) {
      Node *n = nodes[i];
      if (forward.contains(n) && n->getKind() != OpKind::Param && layerOf[i] != kNone && !afterLayers[i] &&
          groupOfLayer[layerOf[i]] != kNone)
        groupOf[n] = groupOfLayer[layerOf[i]];
    }
    return llvm::Error::success();
  }

  /// selective: every forward attention node is a group of its own.
  llvm::Error findAttention() {
    int64_t group = 0;
    for (Node *n : nodes)
      if (forward.contains(n) && n->getKind() == OpKind::Attention)
        groupOf[n] = group++;
    if (group == 0)
      return fail("selective recompute found no attention op");
    return llvm::Error::success();
  }

  /// full: a group's outputs, the values of the group the forward outside it reads, are kept (not recomputed).
  void findKept() {
    if (granularity != Granularity::Full)
      return;
    for (Node *n : nodes) {
      if (!forward.contains(n))
        continue;
      auto userGroup = groupOf.find(n);
      for (Value *v : n->getOperands()) {
        auto defGroup = groupOf.find(v->getDef());
        if (defGroup == groupOf.end())
          continue;
        if (userGroup == groupOf.end() || userGroup->second != defGroup->second)
          kept.insert(v);
      }
    }
  }

  bool isRecomputed(const Value *v) const { return groupOf.count(v->getDef()) && !kept.contains(v); }

  /// The clone of `v` (made on first use, placed before `user`, the first backward node that needs it).
  Value *recomputed(ir::Graph &g, Value *v, Node *user) {
    Node *original = v->getDef();
    auto it = cloneOf.find(original);
    if (it != cloneOf.end())
      return it->second->getResult(v->getIndex());
    llvm::SmallVector<Value *, 4> operands;
    for (Value *o : original->getOperands())
      operands.push_back(isRecomputed(o) ? recomputed(g, o, user) : o);
    ir::AttrDict attrs = original->getAttrs();
    attrs.set("recompute", groupOf.lookup(original));
    llvm::SmallVector<ir::TensorType, 2> types;
    for (const Value *r : original->getResults())
      types.push_back(r->getType());
    Node *clone = g.append(original->getKind(), operands, std::move(attrs), types);
    cloneOf[original] = clone;
    placedBefore[user].push_back(clone);
    return clone->getResult(v->getIndex());
  }

  Granularity granularity;
  Method method;
  int64_t numLayers;

  llvm::SmallVector<Node *, 0> nodes;
  llvm::DenseSet<const Node *> forward;
  /// The recomputed group of each forward node inside one.
  llvm::DenseMap<const Node *, int64_t> groupOf;
  llvm::DenseSet<const Value *> kept;
  llvm::DenseMap<const Node *, Node *> cloneOf;
  /// Clones to place before a backward node, in the order they were made (operands first).
  llvm::DenseMap<const Node *, llvm::SmallVector<Node *, 4>> placedBefore;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createRecomputePass(const RecomputeOptions &options) {
  std::optional<Granularity> granularity;
  if (options.granularity == "full")
    granularity = Granularity::Full;
  else if (options.granularity == "selective")
    granularity = Granularity::Selective;
  else
    return fail("recompute: unknown granularity '" + options.granularity + "' (expected full or selective)");
  std::optional<Method> method;
  if (options.method == "uniform")
    method = Method::Uniform;
  else if (options.method == "block")
    method = Method::Block;
  else
    return fail("recompute: unknown method '" + options.method + "' (expected uniform or block)");
  if (options.numLayers < 1)
    return fail("recompute: num_layers must be positive, got " + llvm::Twine(options.numLayers));
  return std::make_unique<RecomputePass>(*granularity, *method, options.numLayers);
}
