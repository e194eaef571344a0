//===- Optimizer.cpp - AdamW, clipping and the learning-rate schedule in the IR ===//
//
// After autodiff and shard-params: for every parameter with a gradient output "grad:<name>", two zero-initialized state tensors
// (`state`, named "adam.m:<name>" and "adam.v:<name>", laid out like the parameter) and one in-place `adamw`. The learning rate is an `lr_schedule` node (Megatron's
// warm-up + decay); global-norm clipping is `sum_squares` of each gradient, summed, then `clip_scale`. The squares
// are summed per set of splitting mesh axes first, so the pending tp sums of split gradients meet in one scalar all-reduce. Weight decay
// skips rank-1 parameters (biases, LayerNorm gains). Outputs "lr" and, with clipping, "grad_norm" for the log.
// Sharding later lays all of it out by the op rules: gradients are all-reduced over dp before they are used, and
// the squared norms of tp-split gradients are summed over tp.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace meg;
using namespace meg::ir;
using namespace meg::passes;

namespace {

class OptimizerPass : public Pass {
public:
  explicit OptimizerPass(OptimizerOptions o) : o(std::move(o)) {}
  llvm::StringRef getName() const override { return "optimizer"; }

  llvm::Error run(Graph &g) override {
    if (!g.nodesOfKind(OpKind::AdamW).empty())
      return fail("the graph already has an optimizer");
    struct Update {
      Node *param;
      Value *grad;
    };
    std::vector<Update> updates;
    for (Node *p : g.nodesOfKind(OpKind::Param)) {
      std::string name = p->getAttrs().getString("name")->str();
      Node *out = g.findNamed(OpKind::Output, "grad:" + name);
      if (!out)
        return fail("parameter '" + name + "' has no gradient output: run autodiff first");
      updates.push_back({p, out->getOperand(0)});
    }
    if (updates.empty())
      return fail("the graph has no parameters to optimize");

    AttrDict sched;
    sched.set("lr", o.lr);
    sched.set("min_lr", o.minLr);
    sched.set("warmup", o.warmup);
    sched.set("decay_iters", o.decayIters);
    sched.set("style", Symbol{o.style});
    auto lr = g.build(OpKind::LrSchedule, {}, std::move(sched));
    if (!lr)
      return lr.takeError();
    Value *scale = nullptr;
    if (o.clip > 0) {
      // Group sums by the mesh axes that split the parameter (so by the pending sums of their squares), in order
      // of first appearance, then add the groups.
      std::vector<std::pair<unsigned, Value *>> groups;
      for (const Update &u : updates) {
        auto sq = g.build(OpKind::SumSquares, {u.grad});
        if (!sq)
          return sq.takeError();
        const TensorType &t = u.param->getResult()->getType();
        unsigned layout = 0;
        for (unsigned d = 0; d < t.rank(); ++d)
          if (auto axis = t.sharding.dimAxis(d))
            layout |= 1u << unsigned(*axis);
        auto it = llvm::find_if(groups, [&](auto &grp) { return grp.first == layout; });
        if (it == groups.end()) {
          groups.push_back({layout, (*sq)->getResult()});
          continue;
        }
        auto sum = g.build(OpKind::Add, {it->second, (*sq)->getResult()});
        if (!sum)
          return sum.takeError();
        it->second = (*sum)->getResult();
      }
      Value *total = groups[0].second;
      for (size_t i = 1; i < groups.size(); ++i) {
        auto sum = g.build(OpKind::Add, {total, groups[i].second});
        if (!sum)
          return sum.takeError();
        total = (*sum)->getResult();
      }
      AttrDict clip;
      clip.set("max_norm", o.clip);
      auto c = g.build(OpKind::ClipScale, {total}, std::move(clip));
      if (!c)
        return c.takeError();
      scale = (*c)->getResult(0);
      AttrDict normOut;
      normOut.set("name", std::string("grad_norm"));
      g.append(OpKind::Output, {(*c)->getResult(1)}, std::move(normOut), {});
    } else {
      AttrDict one;
      one.set("value", 1.0);
      one.set("shape", std::vector<int64_t>{});
      auto f = g.build(OpKind::Fill, {}, std::move(one));
      if (!f)
        return f.takeError();
      scale = (*f)->getResult();
    }

    for (const Update &u : updates) {
      llvm::StringRef name = *u.param->getAttrs().getString("name");
      Value *p = u.param->getResult();
      Value *m = state(g, *u.param, "adam.m:" + name.str());
      Value *v = state(g, *u.param, "adam.v:" + name.str());
      AttrDict a;
      a.set("beta1", o.beta1);
      a.set("beta2", o.beta2);
      a.set("eps", o.eps);
      // Decay skips biases and gains: rank 1 in the Hugging Face layout (c_attn.bias is [3, heads, head_dim] here).
      const std::vector<int64_t> *hf = u.param->getAttrs().getInts("hf_shape");
      size_t rank = hf && !hf->empty() ? hf->size() : p->getType().rank();
      a.set("weight_decay", rank <= 1 ? 0.0 : o.weightDecay);
      auto step = g.build(OpKind::AdamW, {p, u.grad, m, v, (*lr)->getResult(), scale}, std::move(a));
      if (!step)
        return step.takeError();
    }
    AttrDict lrOut;
    lrOut.set("name", std::string("lr"));
    g.append(OpKind::Output, {(*lr)->getResult()}, std::move(lrOut), {});
    return llvm::Error::success();
  }

private:
  static Value *state(Graph &g, const Node &param, const std::string &name) {
    AttrDict a;
    a.set("name", name);
    if (auto axes = param.getAttrs().getString("axes"))
      a.set("axes", axes->str());
    return g.append(OpKind::State, {}, std::move(a), {param.getResult()->getType()})->getResult();
  }

  OptimizerOptions o;
};

} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createOptimizerPass(const OptimizerOptions &o) {
  // Messages name megc's flag and the pass option it sets.
  auto bad = [](llvm::StringRef flag, llvm::StringRef key, const llvm::Twine &what) {
    return fail(("--" + flag + " (optimizer{" + key + "}): " + what).str());
  };
  auto num = [](double v) { return formatDouble(v); };
  if (o.style != "constant" && o.style != "linear" && o.style != "cosine")
    return bad("lr-decay-style", "style", "unknown style '" + o.style + "' (expected constant, linear or cosine)");
  if (!std::isfinite(o.lr) || o.lr < 0)
    return bad("lr", "lr", "must be a finite number >= 0 (got " + num(o.lr) + ")");
  if (!std::isfinite(o.minLr) || o.minLr < 0 || o.minLr > o.lr)
    return bad("min-lr", "min_lr", "must be in [0, lr] (got " + num(o.minLr) + ", lr " + num(o.lr) + ")");
  if (o.warmup < 0)
    return bad("lr-warmup-iters", "warmup", "must not be negative (got " + llvm::Twine(o.warmup) + ")");
  if (o.decayIters < 0)
    return bad("lr-decay-iters", "decay_iters", "must not be negative (got " + llvm::Twine(o.decayIters) + ")");
  if (!std::isfinite(o.clip) || o.clip < 0)
    return bad("clip-grad", "clip", "must be a finite number >= 0, 0 = off (got " + num(o.clip) + ")");
  if (!std::isfinite(o.weightDecay) || o.weightDecay < 0)
    return bad("weight-decay", "weight_decay", "must be a finite number >= 0 (got " + num(o.weightDecay) + ")");
  if (!(o.beta1 >= 0 && o.beta1 < 1))
    return bad("adam-beta1", "beta1", "must be in [0, 1) (got " + num(o.beta1) + ")");
  if (!(o.beta2 >= 0 && o.beta2 < 1))
    return bad("adam-beta2", "beta2", "must be in [0, 1) (got " + num(o.beta2) + ")");
  if (!(o.eps > 0) || !std::isfinite(o.eps))
    return bad("adam-eps", "eps", "must be a finite number > 0 (got " + num(o.eps) + ")");
  return std::make_unique<OptimizerPass>(o);
}
