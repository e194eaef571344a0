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
// distributed=true (megc --use-distributed-optimizer, ZeRO-1): each parameter, so its Adam state, is split over dp on
// its first dim that no other axis splits and dp divides (else it stays whole); partition then gathers parameters
// over dp where they are computed with and reduce-scatters their gradients for the update (passes/Sharding.h).
//
// fp16 loss scaling, when autodiff{loss_scale=S} seeded the backward with the state "loss_scale" (Megatron-LM's
// MixedPrecisionOptimizer with its DynamicGradScaler):
//   - found_inf = maximum over the parameters of nonfinite(grad): nonfinite's result is pending a max over EVERY
//     mesh axis (ir/OpSharding.cpp), so partition all-reduces the flag with max over tp and dp and every rank
//     agrees; its operands are the gradients after their dp all-reduce (nonfinite is not linear);
//   - unscaling is folded into adamw's gradient-scale operand: 1 / scale, times the clipping coefficient of the
//     unscaled norm (the sum of squares times 1 / scale, twice);
//   - a state "optimizer.updates" counts applied updates: lr_schedule and adamw take their step from it, and adamw
//     writes nothing when found_inf is set (weights, moments and the count stay as they were);
//   - loss_scale_update, after the step: backoff x0.5 after `hysteresis` overflows (not below min_loss_scale),
//     growth x2 after loss_scale_window clean steps in a row (which resets the hysteresis tracker), and the count
//     of updates advanced on a clean step. dynamic_loss_scale=false (--loss-scale) keeps the scale fixed.
//   - outputs "loss_scale" and "found_inf" for the log, "inv_loss_scale" (this step's 1 / scale) for --dump, which
//     writes the gradients of the loss, not of the scaled loss.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Format.h"
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
    std::vector<Update> updates;
    // The outputs by name, once (a findNamed per parameter made the pass quadratic in the model's layers).
    llvm::StringMap<Node *> outputs;
    for (Node *o : g.nodesOfKind(OpKind::Output))
      if (auto name = o->getAttrs().getString("name"))
        outputs.try_emplace(*name, o);
    for (Node *p : g.nodesOfKind(OpKind::Param)) {
      std::string name = p->getAttrs().getString("name")->str();
      Node *out = outputs.lookup("grad:" + name);
      if (!out)
        return fail("parameter '" + name + "' has no gradient output: run autodiff first");
      updates.push_back({p, out->getOperand(0)});
    }
    if (updates.empty())
      return fail("the graph has no parameters to optimize");
    if (o.distributed)
      if (auto err = distribute(g, updates))
        return err;

    // fp16 loss scaling (autodiff{loss_scale} made the backward's seed the state "loss_scale"): the gradients are
    // scaled by it. The step then also needs the overflow flag and the count of applied updates (which a skipped
    // step does not advance; the lr schedule and Adam's bias corrections read it instead of the training step).
    Node *lossScale = g.findNamed(OpKind::State, kLossScaleState);
    if (lossScale && lossScale->getResult()->getType() != TensorType(DType::F32, {}))
      return fail("state '" + std::string(kLossScaleState) + "' must be f32[], got " +
                  lossScale->getResult()->getType().str());
    Value *foundInf = nullptr, *updateCount = nullptr, *invScale = nullptr;
    if (lossScale) {
      for (const Update &u : updates) {
        auto flag = g.build(OpKind::Nonfinite, {u.grad});
        if (!flag)
          return flag.takeError();
        if (!foundInf) {
          foundInf = (*flag)->getResult();
          continue;
        }
        auto any = g.build(OpKind::Maximum, {foundInf, (*flag)->getResult()});
        if (!any)
          return any.takeError();
        foundInf = (*any)->getResult();
      }
      updateCount = scalarState(g, "optimizer.updates", 0.0);
      auto inv = g.build(OpKind::Div, {constant(g, 1.0), lossScale->getResult()});
      if (!inv)
        return inv.takeError();
      invScale = (*inv)->getResult();
    }

    AttrDict sched;
    sched.set("lr", o.lr);
    sched.set("min_lr", o.minLr);
    sched.set("warmup", o.warmup);
    sched.set("decay_iters", o.decayIters);
    sched.set("style", Symbol{o.style});
    auto lr = g.build(OpKind::LrSchedule, updateCount ? std::vector<Value *>{updateCount} : std::vector<Value *>{},
                      std::move(sched));
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
      if (invScale) {
        // The norm of the unscaled gradients: the squares scale by 1 / scale^2, applied as two factors of
        // 1 / scale (1 / scale^2 itself leaves fp32's range for scales above 2^63).
        for (int i = 0; i < 2; ++i) {
          auto unscaled = g.build(OpKind::Mul, {total, invScale});
          if (!unscaled)
            return unscaled.takeError();
          total = (*unscaled)->getResult();
        }
      }
      AttrDict clip;
      clip.set("max_norm", o.clip);
      auto c = g.build(OpKind::ClipScale, {total}, std::move(clip));
      if (!c)
        return c.takeError();
      scale = (*c)->getResult(0);
      if (invScale) {
        // The unscaling folded into the clipping coefficient: adamw multiplies each gradient by both.
        auto both = g.build(OpKind::Mul, {scale, invScale});
        if (!both)
          return both.takeError();
        scale = (*both)->getResult();
      }
      AttrDict normOut;
      normOut.set("name", std::string("grad_norm"));
      g.append(OpKind::Output, {(*c)->getResult(1)}, std::move(normOut), {});
    } else {
      scale = invScale ? invScale : constant(g, 1.0);
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
      std::vector<Value *> operands = {p, u.grad, m, v, (*lr)->getResult(), scale};
      if (lossScale)
        operands.insert(operands.end(), {updateCount, foundInf});
      auto step = g.build(OpKind::AdamW, operands, std::move(a));
      if (!step)
        return step.takeError();
    }
    output(g, (*lr)->getResult(), "lr");
    if (lossScale)
      return scaler(g, lossScale->getResult(), invScale, foundInf, updateCount);
    return llvm::Error::success();
  }

private:
  struct Update {
    Node *param;
    Value *grad;
  };

  /// The distributed optimizer (ZeRO-1): each parameter (the fp32 master) is laid out split over dp on its first
  /// dim that no other mesh axis splits and that dp divides; its Adam states, made below with its type, follow. A
  /// parameter without such a dim stays replicated over dp (its gradient is all-reduced, as without the option).
  /// Nothing else is written here: partition derives the rest from the op rules (compute ops read parameters whole
  /// over dp: an all_gather; adamw updates the shard: its gradient is reduce-scattered).
  static llvm::Error distribute(Graph &g, llvm::ArrayRef<Update> updates) {
    int64_t dp = g.getMesh().dp();
    if (dp == 1)
      return llvm::Error::success();
    for (const auto &u : updates) {
      TensorType t = u.param->getResult()->getType();
      for (unsigned d = 0; d < t.rank(); ++d)
        if (t.sharding.dimAxis(d) == MeshAxis::DP)
          return fail("parameter '" + *u.param->getAttrs().getString("name") +
                      "' is already split over dp (the distributed optimizer lays parameters out itself)");
      for (unsigned d = 0; d < t.rank(); ++d) {
        if (t.sharding.dimAxis(d) || t.shape[d] % dp != 0)
          continue;
        t.sharding.setDimAxis(d, t.rank(), MeshAxis::DP);
        u.param->getResult()->setType(t);
        break;
      }
    }
    return llvm::Error::success();
  }

  /// Megatron's DynamicGradScaler after the step (a fixed --loss-scale: factors of 1, the scale never changes), and
  /// the outputs the log reads: "loss_scale" (after the update, as Megatron logs it) and "found_inf" (1: skipped),
  /// and "inv_loss_scale" for --dump.
  llvm::Error scaler(Graph &g, Value *lossScale, Value *invScale, Value *foundInf, Value *updates) {
    AttrDict a;
    a.set("growth_factor", o.dynamicLossScale ? 2.0 : 1.0);
    a.set("backoff_factor", o.dynamicLossScale ? 0.5 : 1.0);
    a.set("growth_interval", o.lossScaleWindow);
    a.set("hysteresis", o.hysteresis);
    std::optional<double> initial = lossScale->getDef()->getAttrs().getFloat("init");
    if (!initial || !(*initial > 0))
      return fail("state '" + std::string(kLossScaleState) + "' needs a positive init (autodiff{loss_scale=S})");
    if (o.dynamicLossScale && o.minLossScale > *initial)
      return fail(llvm::formatv("min_loss_scale {0} exceeds the initial loss scale {1}",
                                llvm::format("%g", o.minLossScale), llvm::format("%g", *initial)));
    a.set("min_scale", o.dynamicLossScale ? o.minLossScale : *initial);
    Value *growth = scalarState(g, "loss_scale.growth_tracker", 0.0);
    Value *hysteresis = scalarState(g, "loss_scale.hysteresis_tracker", double(o.hysteresis));
    auto update = g.build(OpKind::LossScaleUpdate, {foundInf, lossScale, growth, hysteresis, updates}, std::move(a));
    if (!update)
      return update.takeError();
    output(g, lossScale, "loss_scale");
    output(g, foundInf, "found_inf");
    output(g, invScale, "inv_loss_scale");
    return llvm::Error::success();
  }

  static Value *constant(Graph &g, double value) {
    AttrDict a;
    a.set("value", value);
    a.set("shape", std::vector<int64_t>{});
    return g.append(OpKind::Fill, {}, std::move(a), {TensorType(DType::F32, {})})->getResult();
  }

  static Value *scalarState(Graph &g, const std::string &name, double init) {
    AttrDict a;
    a.set("name", name);
    if (init != 0.0)
      a.set("init", init);
    return g.append(OpKind::State, {}, std::move(a), {TensorType(DType::F32, {})})->getResult();
  }

  static void output(Graph &g, Value *v, const std::string &name) {
    AttrDict a;
    a.set("name", name);
    g.append(OpKind::Output, {v}, std::move(a), {});
  }

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
  if (o.lossScaleWindow < 1 || o.lossScaleWindow > (int64_t(1) << 24))
    return fail(llvm::formatv("optimizer: loss_scale_window must be in [1, 2^24], got {0}", o.lossScaleWindow).str());
  if (o.hysteresis < 1 || o.hysteresis > (int64_t(1) << 24))
    return fail(llvm::formatv("optimizer: hysteresis must be in [1, 2^24], got {0}", o.hysteresis).str());
  if (!(o.minLossScale > 0) || !std::isfinite(o.minLossScale))
    return fail(llvm::formatv("optimizer: min_loss_scale must be a finite number > 0, got {0}",
                              llvm::format("%g", o.minLossScale)));
  return std::make_unique<OptimizerPass>(o);
}
