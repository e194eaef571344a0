//===- Autodiff.cpp - reverse-mode differentiation in the IR -----------------===//
//
// Appends the backward graph: seeds d(loss)/d(loss) = 1 (with loss_scale = S > 0: a scalar state "loss_scale",
// S at start, so the backward computes the gradients of S * loss, Megatron's scaled fp16 loss), walks the forward nodes in reverse program order and asks
// each op's gradient rule (ir/OpGrads.cpp) for its operands' gradients, summing contributions with `add` (see total()). Only
// values that depend on a parameter and reach the loss are differentiated; nodes the rules built for other operands
// are removed again. Each parameter's gradient becomes an output named "grad:<parameter name>" (zeros if the loss
// does not depend on it). Running before sharding, the backward graph is partitioned by the same op rules as the
// forward one, which is how Megatron's conjugate f/g operators arise.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"
#include "ir/Gradient.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

namespace {

class AutodiffPass : public Pass {
public:
  AutodiffPass(std::string loss, double lossScale) : lossName(std::move(loss)), lossScale(lossScale) {}
  llvm::StringRef getName() const override { return "autodiff"; }

  llvm::Error run(Graph &g) override {
    Node *lossOut = g.findNamed(OpKind::Output, lossName);
    if (!lossOut)
      return fail("no output named '" + lossName + "' to differentiate");
    Value *loss = lossOut->getOperand(0);
    if (loss->getType().rank() != 0 || !isFloat(loss->getType().dtype))
      return fail("output '" + lossName + "' must be a float scalar, got " + loss->getType().str());
    if (llvm::any_of(g.getNodes(), [](const Node *n) { return isCollective(n->getKind()); }))
      return fail("the graph is already partitioned: run autodiff before partition");

    auto forward = g.getNodes();
    // Values that depend on a parameter.
    llvm::DenseSet<const Value *> needsGrad;
    for (Node *n : forward) {
      bool any = n->getKind() == OpKind::Param;
      for (Value *v : n->getOperands())
        any |= needsGrad.contains(v);
      if (any)
        for (Value *r : n->getResults())
          needsGrad.insert(r);
    }

    GradBuilder b(g);
    // Contributions to each value's gradient, in arrival order; summed when the value's producer is reached.
    llvm::DenseMap<const Value *, llvm::SmallVector<Value *, 2>> grads;
    size_t firstBackward = g.size();
    if (lossScale > 0) {
      // fp16: the backward of scale * loss (Megatron's scaled loss); the scale is state that the optimizer's loss
      // scaler updates (passes/Optimizer.cpp).
      if (g.findNamed(OpKind::State, kLossScaleState))
        return fail("the graph already has a loss scale");
      AttrDict a;
      a.set("name", std::string(kLossScaleState));
      a.set("init", lossScale);
      grads[loss].push_back(g.append(OpKind::State, {}, std::move(a), {TensorType(DType::F32, {})})->getResult());
    } else {
      AttrDict one;
      one.set("value", 1.0);
      one.set("shape", std::vector<int64_t>{});
      grads[loss].push_back(b.op(OpKind::Fill, {}, std::move(one)));
    }

    for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
      Node *n = *it;
      // Pipeline parallelism: a forward node's backward runs on its stage (passes/PipelineStages.cpp).
      b.setStage(n->getAttrs().getInt("stage"));
      llvm::SmallVector<Value *, 3> dResults;
      bool any = false;
      for (Value *r : n->getResults()) {
        Value *d = total(b, grads, r);
        dResults.push_back(d);
        any |= d != nullptr;
      }
      bool operandNeedsGrad = false;
      for (Value *v : n->getOperands())
        operandNeedsGrad |= needsGrad.contains(v);
      if (!any || !operandNeedsGrad)
        continue;
      // Missing result gradients of multi-result ops are zeros.
      for (unsigned r = 0; r < dResults.size(); ++r)
        if (!dResults[r])
          dResults[r] = zeros(b, n->getResult(r));
      auto dOperands = gradRule(n->getKind())(b, *n, dResults);
      if (auto err = b.takeError())
        return fail("'" + n->getName() + "': " + llvm::toString(std::move(err)));
      for (unsigned i = 0; i < n->getNumOperands(); ++i) {
        Value *v = n->getOperand(i);
        if (!dOperands[i] || !needsGrad.contains(v))
          continue;
        grads[v].push_back(dOperands[i]);
      }
      if (auto err = b.takeError())
        return fail("'" + n->getName() + "': " + llvm::toString(std::move(err)));
    }

    b.setStage(std::nullopt);
    for (Node *p : forward) {
      if (p->getKind() != OpKind::Param)
        continue;
      Value *d = total(b, grads, p->getResult());
      if (!d)
        d = zeros(b, p->getResult());
      AttrDict a;
      a.set("name", "grad:" + p->getAttrs().getString("name")->str());
      g.append(OpKind::Output, {d}, std::move(a), {});
    }
    if (auto err = b.takeError())
      return err;
    removeDeadBackward(g, firstBackward);
    return llvm::Error::success();
  }

private:
  /// The sum of a value's gradient contributions, latest first: the contributions that arrive last come from the
  /// consumers nearest the value (e.g. the q, k and v projections of one layer), which share a layout, so their
  /// pending tensor-parallel sums combine into one all-reduce before the residual's gradient is added.
  static Value *total(GradBuilder &b, llvm::DenseMap<const Value *, llvm::SmallVector<Value *, 2>> &grads,
                      const Value *v) {
    auto it = grads.find(v);
    if (it == grads.end() || it->second.empty())
      return nullptr;
    auto &parts = it->second;
    Value *sum = parts.back();
    for (size_t i = parts.size() - 1; i-- > 0;)
      sum = b.op(OpKind::Add, {sum, parts[i]});
    parts.assign(1, sum);
    return sum;
  }

  static Value *zeros(GradBuilder &b, const Value *like) {
    AttrDict a;
    a.set("value", 0.0);
    const auto &s = like->getType().shape;
    a.set("shape", std::vector<int64_t>(s.begin(), s.end()));
    return b.op(OpKind::Fill, {}, std::move(a));
  }

  /// Rules build gradients for every operand; drop the backward nodes nothing uses.
  static void removeDeadBackward(Graph &g, size_t firstBackward) {
    bool changed = true;
    while (changed) {
      changed = false;
      auto users = g.computeUsers();
      auto nodes = g.getNodes();
      for (size_t i = nodes.size(); i-- > firstBackward;) {
        Node *n = nodes[i];
        if (n->getKind() == OpKind::Output)
          continue;
        bool used = false;
        for (Value *r : n->getResults())
          used |= users.count(r) != 0;
        if (!used) {
          g.erase(n);
          changed = true;
        }
      }
    }
  }

  std::string lossName;
  double lossScale;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createAutodiffPass(const AutodiffOptions &options) {
  if (!(options.lossScale >= 0) || !std::isfinite(options.lossScale))
    return fail(llvm::formatv("autodiff: loss_scale must be a finite number >= 0 (0: unscaled), got {0}",
                              llvm::format("%g", options.lossScale)));
  return std::make_unique<AutodiffPass>(options.loss, options.lossScale);
}
