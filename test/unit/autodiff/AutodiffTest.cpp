//===- AutodiffTest.cpp - finite-difference checks of every op's gradient, end to end ===//
//
// The whole autodiff path per op: gradient rule (ir/OpGrads.cpp) -> `autodiff,schedule,memory-plan` -> plan
// (passes::buildPlan, in memory) -> parsePlan -> CPU backend (runtime/cpu adapters, kernels/cpu).
//
// Each test builds a small forward graph with the Graph API: f32 params (the differentiable inputs), i32 inputs where
// the op needs them (ids, labels, masks), the op under test, and loss = reduce_sum(mul(y, w)) over all dims with fixed
// random weights w ~ N(0, 1) fed as an f32 input, output "loss". It compares every `grad:<param>` output of the plan
// with central differences of the same plan's loss (same seed and step, so dropout masks are the same function).
//
// Tolerances (float32 forward). A central difference with step h has truncation error h^2 f'''/6 and rounding error
// ~ e_L / h, where e_L, the float32 error of the loss (|loss| ~ 1-10: e_L ~ 1e-6), dominates for small h: h = 1e-3
// would give ~1e-3 of noise per entry, h = 1e-2 gives ~5e-5 of noise and ~1e-4 relative truncation on our O(1)
// inputs (inputs keep away from poles: log arguments and div denominators have magnitude in [0.5, 2]). So h = 1e-2,
// and an entry passes when |fd - ad| <= 1e-3 + 1e-2 * max(|fd|, |ad|): ~20x the noise, ~100x the truncation, while a
// wrong rule is off by O(1). On top of the per-entry check, the directional derivative along two random unit
// directions v over all params at once, (L(x + hv) - L(x - hv)) / 2h, must match grad . v within
// 1e-3 + 1e-2 * (|grad . v| + 0.1 ||grad||): it averages the per-entry noise and checks the params jointly.
// Finally a second run at the base point must reproduce the gradients bit for bit (no state leaks between steps).
//
//===----------------------------------------------------------------------===//
#include "ir/Graph.h"
#include "ir/Op.h"
#include "passes/LowerToPlan.h"
#include "passes/Pass.h"
#include "runtime/cpu/CpuBackend.h"
#include "runtime/exec/Backend.h"
#include "runtime/comm/Communicator.h"
#include "runtime/exec/Executor.h"
#include "runtime/plan/Plan.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringRef.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace meg;
using ir::AttrDict;
using ir::DType;
using ir::OpKind;
using ir::Symbol;
using ir::Value;

namespace {

constexpr const char *kPipeline = "autodiff,schedule,memory-plan";

struct Tolerance {
  double h = 1e-2;
  double atol = 1e-3;
  double rtol = 1e-2;
};

int64_t numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

AttrDict attrs(std::initializer_list<std::pair<const char *, ir::AttrValue>> kv) {
  AttrDict a;
  for (const auto &[k, v] : kv)
    a.set(k, v);
  return a;
}

std::vector<int64_t> allDims(unsigned rank) {
  std::vector<int64_t> d(rank);
  for (unsigned i = 0; i < rank; ++i)
    d[i] = i;
  return d;
}

/// One forward graph, its plan on a CPU backend, and the gradient check.
class GradCheck {
public:
  explicit GradCheck(unsigned seed = 7) : rng(seed) {}

  std::vector<float> normal(int64_t n, double stddev = 1.0) {
    std::normal_distribution<double> dist(0.0, stddev);
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v)
      x = float(dist(rng));
    return v;
  }
  /// Magnitude uniform in [lo, hi], sign random when `signs`.
  std::vector<float> magnitude(int64_t n, double lo, double hi, bool signs) {
    std::uniform_real_distribution<double> dist(lo, hi);
    std::bernoulli_distribution coin;
    std::vector<float> v(static_cast<size_t>(n));
    for (float &x : v)
      x = float(signs && coin(rng) ? -dist(rng) : dist(rng));
    return v;
  }

  /// An f32 parameter; values default to N(0, 1).
  Value *param(const std::string &name, std::vector<int64_t> shape, std::vector<float> values = {}) {
    if (values.empty())
      values = normal(numel(shape));
    EXPECT_EQ(int64_t(values.size()), numel(shape)) << name;
    AttrDict a = attrs({{"name", name}, {"init", Symbol{"normal"}}, {"std", 0.02}});
    params.push_back({name, std::move(values)});
    return g.append(OpKind::Param, {}, std::move(a), {ir::TensorType(DType::F32, shape)})->getResult();
  }
  Value *ids(const std::string &name, std::vector<int64_t> shape, const std::vector<int32_t> &values) {
    EXPECT_EQ(int64_t(values.size()), numel(shape)) << name;
    const auto *p = reinterpret_cast<const uint8_t *>(values.data());
    inputs[name].assign(p, p + values.size() * sizeof(int32_t));
    return g.append(OpKind::Input, {}, attrs({{"name", name}}), {ir::TensorType(DType::I32, shape)})->getResult();
  }
  Value *floats(const std::string &name, std::vector<int64_t> shape, const std::vector<float> &values) {
    EXPECT_EQ(int64_t(values.size()), numel(shape)) << name;
    const auto *p = reinterpret_cast<const uint8_t *>(values.data());
    inputs[name].assign(p, p + values.size() * sizeof(float));
    return g.append(OpKind::Input, {}, attrs({{"name", name}}), {ir::TensorType(DType::F32, shape)})->getResult();
  }

  Value *op(OpKind k, llvm::ArrayRef<Value *> operands, AttrDict a = {}) {
    if (llvm::is_contained(operands, nullptr))
      return nullptr;
    auto n = g.build(k, operands, std::move(a));
    if (!n) {
      ADD_FAILURE() << "building '" << ir::opName(k).str() << "': " << llvm::toString(n.takeError());
      return nullptr;
    }
    return (*n)->getNumResults() ? (*n)->getResult() : nullptr;
  }
  void output(Value *v, const std::string &name) {
    if (v)
      op(OpKind::Output, {v}, attrs({{"name", name}}));
  }
  /// loss = reduce_sum(mul(y, w)) over every dim, with fixed random weights w fed as an input.
  void weightedLoss(Value *y) {
    if (!y)
      return;
    std::vector<int64_t> shape(y->getType().shape.begin(), y->getType().shape.end());
    Value *w = floats("w", shape, normal(numel(shape)));
    Value *s = op(OpKind::ReduceSum, {op(OpKind::Mul, {y, w})},
                  attrs({{"dims", allDims(unsigned(shape.size()))}, {"keepdim", false}}));
    output(s, "loss");
  }

  /// Runs the pipeline, lowers, loads and prepares the plan, writes params (read back to double-check) and inputs.
  void compile() {
    auto pm = passes::PassManager::parse(kPipeline);
    ASSERT_TRUE(bool(pm)) << llvm::toString(pm.takeError());
    passes::PipelineConfig config;
    config.verifyEach = true;
    llvm::Error err = pm->run(g, config);
    ASSERT_FALSE(bool(err)) << llvm::toString(std::move(err));
    auto bytes = passes::buildPlan(g, passes::PlanMetadata{}, 0);
    ASSERT_TRUE(bool(bytes)) << llvm::toString(bytes.takeError());
    auto loaded = runtime::parsePlan(
        llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(bytes->data()), bytes->size()), "autodiff.megplan");
    ASSERT_TRUE(bool(loaded)) << llvm::toString(loaded.takeError());
    plan.emplace(std::move(*loaded));
    backend = runtime::createCpuBackend();
    err = backend->prepare(*plan);
    ASSERT_FALSE(bool(err)) << llvm::toString(std::move(err));
    ASSERT_EQ(plan->params.size(), params.size());
    for (const auto &[name, bytes] : inputs) {
      auto i = plan->findInput(name);
      ASSERT_TRUE(i.has_value()) << "plan has no input " << name;
      ASSERT_EQ(size_t(plan->inputs[*i].numel() * runtime::dtypeBytes(plan->inputs[*i].dtype)), bytes.size());
      backend->writeInput(*i, bytes);
    }
    for (auto &p : params) {
      auto i = plan->findParam(p.name);
      ASSERT_TRUE(i.has_value()) << "plan has no param " << p.name;
      ASSERT_EQ(plan->params[*i].numel(), int64_t(p.values.size()));
      p.index = *i;
      backend->writeParam(p.index, p.values);
      std::vector<float> back(p.values.size());
      backend->readParam(p.index, back);
      ASSERT_EQ(back, p.values) << "writeParam/readParam round trip of " << p.name;
      const runtime::PlanOutput *out = plan->findOutput("grad:" + p.name);
      ASSERT_NE(out, nullptr) << "plan has no output grad:" << p.name;
      ASSERT_EQ(out->tensor.dtype, runtime::DType::F32);
      ASSERT_EQ(out->tensor.numel(), int64_t(p.values.size()));
    }
  }

  bool hasStep(llvm::StringRef opName) const {
    return plan && std::any_of(plan->steps.begin(), plan->steps.end(),
                               [&](const runtime::PlanStep &s) { return s.op == opName; });
  }

  /// Runs every step at the current parameter values; returns the loss (NaN on error, after a test failure).
  double run() {
    runtime::Executor exec(*plan, *backend, comm);
    if (llvm::Error err = exec.run(ctx)) {
      ADD_FAILURE() << llvm::toString(std::move(err));
      return NAN;
    }
    auto loss = exec.scalarOutput("loss");
    if (!loss) {
      ADD_FAILURE() << llvm::toString(loss.takeError());
      return NAN;
    }
    return double(*loss);
  }

  std::vector<float> readGrad(const std::string &name) {
    const runtime::PlanOutput *out = plan->findOutput("grad:" + name);
    std::vector<float> v(size_t(out->tensor.numel()));
    backend->readTensor(out->tensor,
                        llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(v.data()), v.size() * 4));
    return v;
  }

  /// Compiles (if not yet), runs at the base point and keeps the autodiff gradients in `grads`.
  void evaluate() {
    if (!plan) {
      compile();
      if (::testing::Test::HasFatalFailure())
        return;
    }
    baseLoss = run();
    ASSERT_TRUE(std::isfinite(baseLoss)) << "loss " << baseLoss;
    for (const auto &p : params)
      grads[p.name] = readGrad(p.name);
  }

  /// The full check: autodiff gradients against per-entry central differences and random directional derivatives.
  void check(Tolerance tol = {}) {
    evaluate();
    if (::testing::Test::HasFatalFailure())
      return;
    double worst = 0; // max over entries of |fd - ad| / allowed
    for (auto &p : params) {
      const std::vector<float> &ad = grads[p.name];
      int failures = 0;
      for (size_t i = 0; i < p.values.size(); ++i) {
        float x = p.values[i];
        p.values[i] = float(x + tol.h);
        backend->writeParam(p.index, p.values);
        double up = run();
        p.values[i] = float(x - tol.h);
        backend->writeParam(p.index, p.values);
        double down = run();
        // The perturbation actually applied (x +- h rounded to float).
        double step = double(float(x + tol.h)) - double(float(x - tol.h));
        p.values[i] = x;
        double fd = (up - down) / step;
        double allowed = tol.atol + tol.rtol * std::max(std::fabs(fd), std::fabs(double(ad[i])));
        double err = std::fabs(fd - double(ad[i]));
        worst = std::max(worst, err / allowed);
        if (!(err <= allowed) && failures++ < 8)
          ADD_FAILURE() << "grad:" << p.name << "[" << i << "]: autodiff " << ad[i] << ", finite difference " << fd
                        << " (|diff| " << err << " > " << allowed << ")";
      }
      backend->writeParam(p.index, p.values);
      if (failures > 8)
        ADD_FAILURE() << "grad:" << p.name << ": " << failures << " entries differ in all";
    }

    // Directional derivatives along random unit directions over all params jointly.
    double worstDir = 0;
    for (int d = 0; d < 2; ++d) {
      std::vector<std::vector<float>> v;
      double norm2 = 0, gnorm2 = 0;
      for (const auto &p : params) {
        v.push_back(normal(int64_t(p.values.size())));
        for (float x : v.back())
          norm2 += double(x) * x;
      }
      double gv = 0;
      for (size_t k = 0; k < params.size(); ++k) {
        for (float &x : v[k])
          x = float(x / std::sqrt(norm2));
        const std::vector<float> &ad = grads[params[k].name];
        for (size_t i = 0; i < ad.size(); ++i) {
          gv += double(ad[i]) * v[k][i];
          gnorm2 += double(ad[i]) * ad[i];
        }
      }
      auto shifted = [&](double sign) {
        for (size_t k = 0; k < params.size(); ++k) {
          std::vector<float> x = params[k].values;
          for (size_t i = 0; i < x.size(); ++i)
            x[i] = float(x[i] + sign * tol.h * v[k][i]);
          backend->writeParam(params[k].index, x);
        }
        return run();
      };
      double dd = (shifted(1) - shifted(-1)) / (2 * tol.h);
      for (const auto &p : params)
        backend->writeParam(p.index, p.values);
      double allowed = tol.atol + tol.rtol * (std::fabs(gv) + 0.1 * std::sqrt(gnorm2));
      worstDir = std::max(worstDir, std::fabs(dd - gv) / allowed);
      EXPECT_LE(std::fabs(dd - gv), allowed) << "directional derivative " << dd << " vs grad . v " << gv;
    }

    // The base point again: identical gradients (nothing accumulates across runs of the plan).
    double again = run();
    EXPECT_EQ(again, baseLoss) << "the loss changed between two runs at the same point";
    for (const auto &p : params)
      EXPECT_EQ(readGrad(p.name), grads[p.name]) << "grad:" << p.name << " changed between two runs";

    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("[ fd-check ] %s.%s: worst |fd - ad| / allowed = %.3g per entry, %.3g directional\n",
                info ? info->test_suite_name() : "?", info ? info->name() : "?", worst, worstDir);
  }

  struct ParamData {
    std::string name;
    std::vector<float> values;
    size_t index = 0;
  };

  ir::Graph g{"grad_check"};
  runtime::StepContext ctx{/*seed=*/1234, /*step=*/3, /*dropout=*/true, /*evaluation=*/false};
  std::vector<ParamData> params;
  std::map<std::string, std::vector<uint8_t>> inputs;
  std::map<std::string, std::vector<float>> grads;
  double baseLoss = 0;

private:
  std::mt19937 rng;
  std::optional<runtime::LoadedPlan> plan; // outlives the backend (declared first)
  std::unique_ptr<runtime::Backend> backend;
  runtime::SingleRankCommunicator comm;
};

//===-- lookups and contractions ---------------------------------------------===//

TEST(GradEmbedding, RepeatedAndUnusedRows) {
  GradCheck c;
  Value *table = c.param("table", {6, 4});
  Value *ids = c.ids("ids", {2, 3}, {0, 3, 3, 5, 1, 3}); // row 3 three times, rows 2 and 4 never
  c.weightedLoss(c.op(OpKind::Embedding, {table, ids}));
  c.check();
  EXPECT_TRUE(c.hasStep("embedding_grad"));
}

void contractCase(const std::string &spec, std::vector<int64_t> a, std::vector<int64_t> b) {
  SCOPED_TRACE(spec);
  GradCheck c;
  Value *x = c.param("a", a);
  Value *y = c.param("b", b);
  c.weightedLoss(c.op(OpKind::Contract, {x, y}, attrs({{"spec", spec}})));
  c.check();
}

TEST(GradContract, QkvProjection) { contractCase("bsi,itnd->bstnd", {2, 3, 4}, {4, 3, 2, 2}); }
TEST(GradContract, AttentionOutProjection) { contractCase("bsnd,ndo->bso", {2, 3, 2, 2}, {2, 2, 4}); }
TEST(GradContract, TiedLogits) { contractCase("bsh,vh->bsv", {2, 3, 4}, {5, 4}); }
TEST(GradContract, Linear) { contractCase("bi,oi->bo", {3, 4}, {5, 4}); }
TEST(GradContract, AttentionScores) { contractCase("bsnd,btnd->bnst", {2, 3, 2, 2}, {2, 3, 2, 2}); }

TEST(GradContract, SameParamTwice) {
  GradCheck c;
  Value *x = c.param("x", {3, 4});
  c.weightedLoss(c.op(OpKind::Contract, {x, x}, attrs({{"spec", std::string("ij,kj->ik")}})));
  c.check();
}

//===-- elementwise binary, broadcasting both ways --------------------------===//

struct BinaryShapes {
  const char *what;
  std::vector<int64_t> a, b;
};

const BinaryShapes kBinaryShapes[] = {
    {"same shape", {2, 3, 4}, {2, 3, 4}},
    {"b broadcast (inner size-1 dim and missing lead dim)", {2, 3, 4}, {3, 1}},
    {"a broadcast (missing lead dims)", {4}, {2, 3, 4}},
    {"both broadcast", {2, 1, 4}, {3, 1}},
    {"b scalar", {2, 3}, {}},
    {"a scalar", {}, {3, 2}},
};

/// Every broadcasting case of one binary op; `awayFromZeroB` keeps the second operand's magnitude in [0.5, 2].
void binaryCases(OpKind k, bool awayFromZeroB) {
  for (const BinaryShapes &s : kBinaryShapes) {
    SCOPED_TRACE(s.what);
    GradCheck c;
    Value *a = c.param("a", s.a);
    Value *b = c.param("b", s.b, awayFromZeroB ? c.magnitude(numel(s.b), 0.5, 2.0, true) : std::vector<float>{});
    c.weightedLoss(c.op(k, {a, b}));
    c.check();
  }
  // One param reaching both operands (x op x*x, not x op x, which is trivial for sub and div): the contributions
  // of both operands are summed.
  SCOPED_TRACE("same param in both operands");
  GradCheck c;
  Value *x = c.param("x", {2, 3}, c.magnitude(6, 0.5, 2.0, true));
  c.weightedLoss(c.op(k, {x, c.op(OpKind::Mul, {x, x})}));
  c.check();
}

TEST(GradAdd, Broadcasting) { binaryCases(OpKind::Add, false); }
TEST(GradSub, Broadcasting) { binaryCases(OpKind::Sub, false); }
TEST(GradMul, Broadcasting) { binaryCases(OpKind::Mul, false); }
TEST(GradDiv, Broadcasting) { binaryCases(OpKind::Div, true); }

//===-- elementwise unary ------------------------------------------------------===//

TEST(GradScale, NegativeFactor) {
  GradCheck c;
  Value *x = c.param("x", {3, 4});
  c.weightedLoss(c.op(OpKind::Scale, {x}, attrs({{"factor", -0.7}})));
  c.check();
}

TEST(GradExp, Basic) {
  GradCheck c;
  Value *x = c.param("x", {3, 4});
  c.weightedLoss(c.op(OpKind::Exp, {x}));
  c.check();
}

TEST(GradLog, PositiveInputs) {
  GradCheck c;
  Value *x = c.param("x", {3, 4}, c.magnitude(12, 0.5, 2.0, false));
  c.weightedLoss(c.op(OpKind::Log, {x}));
  c.check();
}

TEST(GradTanh, Basic) {
  GradCheck c;
  Value *x = c.param("x", {3, 4});
  c.weightedLoss(c.op(OpKind::Tanh, {x}));
  c.check();
}

void geluCase(const char *approx) {
  GradCheck c;
  Value *x = c.param("x", {3, 5}, c.normal(15, 1.5));
  c.weightedLoss(c.op(OpKind::Gelu, {x}, attrs({{"approx", Symbol{approx}}})));
  c.check();
  EXPECT_TRUE(c.hasStep("gelu_grad"));
}
TEST(GradGelu, TanhForm) { geluCase("tanh"); }
TEST(GradGelu, ErfForm) { geluCase("erf"); }

TEST(GradDropout, FixedSeedAndStepMask) {
  GradCheck c;
  Value *x = c.param("x", {4, 6});
  c.weightedLoss(c.op(OpKind::Dropout, {x}, attrs({{"p", 0.3}, {"stream", int64_t(5)}})));
  c.check();
  // The check is meaningful only if the mask dropped some entries and kept others.
  const std::vector<float> &g = c.grads["x"];
  auto zeros = std::count(g.begin(), g.end(), 0.0f);
  EXPECT_GT(zeros, 0) << "no entry was dropped";
  EXPECT_LT(zeros, int64_t(g.size())) << "every entry was dropped";
}

// The gradient of dropout's input is the same mask applied to dy: with the mask switched off (evaluation), the
// plan gives w.
TEST(GradDropout, IdentityWithoutDropout) {
  GradCheck c;
  c.ctx.dropout = false;
  Value *x = c.param("x", {4, 6});
  c.weightedLoss(c.op(OpKind::Dropout, {x}, attrs({{"p", 0.3}, {"stream", int64_t(5)}})));
  c.evaluate();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  const auto *w = reinterpret_cast<const float *>(c.inputs["w"].data());
  for (size_t i = 0; i < c.grads["x"].size(); ++i)
    EXPECT_EQ(c.grads["x"][i], w[i]) << i;
}

TEST(GradCast, F32ToF32) {
  GradCheck c;
  Value *x = c.param("x", {3, 4});
  c.weightedLoss(c.op(OpKind::Cast, {x}, attrs({{"dtype", Symbol{"f32"}}})));
  c.check();
}

//===-- normalization and attention ------------------------------------------===//

TEST(GradLayerNorm, XGainBias) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 5});
  std::vector<float> gain = c.normal(5, 0.3);
  for (float &v : gain)
    v += 1.0f;
  Value *g = c.param("gain", {5}, gain);
  Value *b = c.param("bias", {5});
  c.weightedLoss(c.op(OpKind::LayerNorm, {x, g, b}, attrs({{"eps", 1e-5}})));
  c.check();
  EXPECT_TRUE(c.hasStep("layernorm_grad"));
}

TEST(GradSoftmax, LastDim) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  c.weightedLoss(c.op(OpKind::Softmax, {x}));
  c.check();
}

/// q, k, v params [batch 2, seq 3, heads 2, head_dim 4].
void attentionCase(bool causal, bool mask, double dropout) {
  GradCheck c;
  std::vector<int64_t> shape{2, 3, 2, 4};
  Value *q = c.param("q", shape), *k = c.param("k", shape), *v = c.param("v", shape);
  AttrDict a = attrs({{"causal", causal}, {"scale", 0.5}, {"dropout", dropout}});
  if (dropout > 0)
    a.set("stream", int64_t(9));
  llvm::SmallVector<Value *, 4> operands{q, k, v};
  if (mask) // the last key of batch 0 is padding
    operands.push_back(c.ids("mask", {2, 3}, {1, 1, 0, 1, 1, 1}));
  c.weightedLoss(c.op(OpKind::Attention, operands, std::move(a)));
  c.check();
  EXPECT_TRUE(c.hasStep("attention_grad"));
  if (dropout > 0) { // the mask was really applied
    c.ctx.dropout = false;
    EXPECT_NE(c.run(), c.baseLoss);
  }
}

TEST(GradAttention, Causal) { attentionCase(true, false, 0.0); }
TEST(GradAttention, PaddingMask) { attentionCase(false, true, 0.0); }
TEST(GradAttention, CausalWithPaddingMask) { attentionCase(true, true, 0.0); }
TEST(GradAttention, Dropout) { attentionCase(false, true, 0.3); }
TEST(GradAttention, CausalDropout) { attentionCase(true, false, 0.3); }

//===-- layout ---------------------------------------------------------------===//

TEST(GradReshape, MergeDims) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  Value *r = c.op(OpKind::Reshape, {x}, attrs({{"shape", std::vector<int64_t>{6, 4}}}));
  // A non-symmetric consumer so that the element order matters.
  Value *y = c.op(OpKind::Mul, {r, c.param("s", {4})});
  c.weightedLoss(y);
  c.check();
}

TEST(GradTranspose, Rank3) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  c.weightedLoss(c.op(OpKind::Transpose, {x}, attrs({{"perm", std::vector<int64_t>{2, 0, 1}}})));
  c.check();
}

TEST(GradTranspose, HeadsToFront) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 2, 4});
  c.weightedLoss(c.op(OpKind::Transpose, {x}, attrs({{"perm", std::vector<int64_t>{0, 2, 1, 3}}})));
  c.check();
}

void sliceCase(int64_t dim, int64_t start, int64_t size) {
  GradCheck c;
  Value *x = c.param("x", {2, 5, 3});
  c.weightedLoss(c.op(OpKind::Slice, {x}, attrs({{"dim", dim}, {"start", start}, {"size", size}})));
  c.check();
  EXPECT_TRUE(c.hasStep("slice_grad"));
}
TEST(GradSlice, MiddleDim) { sliceCase(1, 1, 3); }
TEST(GradSlice, LastDim) { sliceCase(2, 0, 2); }
TEST(GradSlice, FirstDim) { sliceCase(0, 1, 1); }

void selectCase(int64_t dim, int64_t index) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  c.weightedLoss(c.op(OpKind::Select, {x}, attrs({{"dim", dim}, {"index", index}})));
  c.check();
  EXPECT_TRUE(c.hasStep("select_grad"));
}
TEST(GradSelect, MiddleDim) { selectCase(1, 2); }
TEST(GradSelect, FirstDim) { selectCase(0, 1); }
TEST(GradSelect, LastDim) { selectCase(2, 0); }

//===-- reductions and loss pieces ---------------------------------------------===//

void reduceSumCase(std::vector<int64_t> dims, bool keepdim) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  c.weightedLoss(c.op(OpKind::ReduceSum, {x}, attrs({{"dims", dims}, {"keepdim", keepdim}})));
  c.check();
}
TEST(GradReduceSum, KeepDim) { reduceSumCase({1}, true); }
TEST(GradReduceSum, DropDims) { reduceSumCase({0, 2}, false); }
TEST(GradReduceSum, KeepDimsOuterAndInner) { reduceSumCase({0, 2}, true); }
TEST(GradReduceSum, AllToScalar) { reduceSumCase({0, 1, 2}, false); }

AttrDict maxAttrs(int64_t dim) {
  return attrs({{"dims", std::vector<int64_t>{dim}}, {"keepdim", true}, {"stop_gradient", true}});
}

// The gradient through reduce_max{stop_gradient} is zero by definition (the true derivative is not).
TEST(GradReduceMax, StopGradientIsZero) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  Value *m = c.op(OpKind::ReduceMax, {x}, maxAttrs(2));
  // x also reaches the loss directly: its gradient is w from the add, nothing from the max.
  Value *y = c.param("y", {2, 3, 4});
  c.weightedLoss(c.op(OpKind::Add, {y, m}));
  c.evaluate();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  for (float g : c.grads["x"])
    EXPECT_EQ(g, 0.0f);
  EXPECT_TRUE(c.hasStep("reduce_max"));
}

TEST(GradReduceMax, StopGradientNextToDirectUse) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  Value *m = c.op(OpKind::ReduceMax, {x}, maxAttrs(2));
  c.weightedLoss(c.op(OpKind::Sub, {x, m}));
  c.evaluate();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  // d/dx sum(w * (x - stopgrad(max x))) = w.
  const auto *w = reinterpret_cast<const float *>(c.inputs["w"].data());
  for (size_t i = 0; i < c.grads["x"].size(); ++i)
    EXPECT_EQ(c.grads["x"][i], w[i]) << i;
}

// Cross-entropy exactly as the frontend decomposes it (frontend/Builder.cpp crossEntropy): the stop-gradient max
// cancels out of log-sum-exp, so the autodiff gradient must equal the true one.
TEST(GradReduceMax, CrossEntropyDecomposition) {
  GradCheck c;
  std::vector<int64_t> labelsShape{2, 3};
  Value *logits = c.param("logits", {2, 3, 5}, c.normal(30, 2.0));
  Value *labels = c.ids("labels", labelsShape, {4, 0, -100, 2, 2, 1}); // one ignored token
  Value *m = c.op(OpKind::ReduceMax, {logits}, maxAttrs(2));
  Value *e = c.op(OpKind::Exp, {c.op(OpKind::Sub, {logits, m})});
  Value *se = c.op(OpKind::ReduceSum, {e}, attrs({{"dims", std::vector<int64_t>{2}}, {"keepdim", false}}));
  Value *lse = c.op(OpKind::Add, {c.op(OpKind::Log, {se}),
                                  c.op(OpKind::Reshape, {m}, attrs({{"shape", labelsShape}}))});
  Value *target = c.op(OpKind::Pick, {logits, labels});
  Value *tok = c.op(OpKind::Sub, {lse, target});
  Value *mask = c.op(OpKind::ValidMask, {labels}, attrs({{"ignore", int64_t(-100)}}));
  Value *total = c.op(OpKind::ReduceSum, {c.op(OpKind::Mul, {tok, mask})},
                      attrs({{"dims", allDims(2)}, {"keepdim", false}}));
  Value *count = c.op(OpKind::ReduceSum, {mask}, attrs({{"dims", allDims(2)}, {"keepdim", false}}));
  c.output(c.op(OpKind::Div, {total, count}), "loss");
  c.check();
  // The ignored token's logits get no gradient.
  for (int v = 0; v < 5; ++v)
    EXPECT_EQ(c.grads["logits"][size_t(2 * 5 + v)], 0.0f);
}

// A max-stabilized softmax: the max cancels as well.
TEST(GradReduceMax, StableSoftmaxDecomposition) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4}, c.normal(24, 2.0));
  Value *e = c.op(OpKind::Exp, {c.op(OpKind::Sub, {x, c.op(OpKind::ReduceMax, {x}, maxAttrs(2))})});
  Value *s = c.op(OpKind::ReduceSum, {e}, attrs({{"dims", std::vector<int64_t>{2}}, {"keepdim", true}}));
  c.weightedLoss(c.op(OpKind::Div, {e, s}));
  c.check();
}

AttrDict maskAttrs(int64_t dim, int64_t valid, double value) {
  return attrs({{"dim", dim}, {"valid", valid}, {"value", value}});
}

// A finite fill value: the masked entries are constants (zero gradient), the others pass dy through.
void maskPaddingCase(int64_t dim, int64_t valid) {
  GradCheck c;
  std::vector<int64_t> shape{2, 3, 6};
  Value *x = c.param("x", shape);
  c.weightedLoss(c.op(OpKind::MaskPadding, {x}, maskAttrs(dim, valid, -3.0)));
  c.check();
  int64_t inner = 1;
  for (size_t d = size_t(dim) + 1; d < shape.size(); ++d)
    inner *= shape[d];
  const auto *w = reinterpret_cast<const float *>(c.inputs["w"].data());
  for (size_t i = 0; i < c.grads["x"].size(); ++i) {
    bool masked = int64_t(i) / inner % shape[size_t(dim)] >= valid;
    EXPECT_EQ(c.grads["x"][i], masked ? 0.0f : w[i]) << i;
  }
}
TEST(GradMaskPadding, LastDim) { maskPaddingCase(2, 4); }
TEST(GradMaskPadding, MiddleDim) { maskPaddingCase(1, 1); }
TEST(GradMaskPadding, NothingMasked) { maskPaddingCase(2, 6); }

// The frontend's padded-vocab loss: logits [2,3,7] of which columns 5 and 6 are padding, masked to -inf before the
// cross-entropy decomposition. The loss is the cross-entropy of the 5 real columns (a double reference), the
// gradient is finite everywhere and exactly zero on the padding (exp(-inf - max) = 0, no inf - inf).
TEST(GradMaskPadding, PaddedVocabCrossEntropy) {
  GradCheck c;
  const int64_t real = 5, padded = 7;
  std::vector<int64_t> labelsShape{2, 3};
  std::vector<int32_t> labelValues{4, 0, -100, 2, 3, 1};
  std::vector<float> values = c.normal(2 * 3 * padded, 2.0);
  Value *raw = c.param("logits", {2, 3, padded}, values);
  Value *labels = c.ids("labels", labelsShape, labelValues);
  Value *logits = c.op(OpKind::MaskPadding, {raw}, maskAttrs(2, real, -std::numeric_limits<double>::infinity()));
  Value *m = c.op(OpKind::ReduceMax, {logits}, maxAttrs(2));
  Value *e = c.op(OpKind::Exp, {c.op(OpKind::Sub, {logits, m})});
  Value *se = c.op(OpKind::ReduceSum, {e}, attrs({{"dims", std::vector<int64_t>{2}}, {"keepdim", false}}));
  Value *lse = c.op(OpKind::Add, {c.op(OpKind::Log, {se}),
                                  c.op(OpKind::Reshape, {m}, attrs({{"shape", labelsShape}}))});
  Value *tok = c.op(OpKind::Sub, {lse, c.op(OpKind::Pick, {logits, labels})});
  Value *mask = c.op(OpKind::ValidMask, {labels}, attrs({{"ignore", int64_t(-100)}}));
  Value *total = c.op(OpKind::ReduceSum, {c.op(OpKind::Mul, {tok, mask})},
                      attrs({{"dims", allDims(2)}, {"keepdim", false}}));
  Value *count = c.op(OpKind::ReduceSum, {mask}, attrs({{"dims", allDims(2)}, {"keepdim", false}}));
  c.output(c.op(OpKind::Div, {total, count}), "loss");
  c.check();
  EXPECT_TRUE(c.hasStep("mask_padding"));

  double want = 0;
  int tokens = 0;
  for (size_t t = 0; t < labelValues.size(); ++t) {
    if (labelValues[t] == -100)
      continue;
    const float *row = values.data() + t * size_t(padded);
    double mx = *std::max_element(row, row + real), sum = 0;
    for (int64_t v = 0; v < real; ++v)
      sum += std::exp(double(row[v]) - mx);
    want += std::log(sum) + mx - double(row[labelValues[t]]);
    ++tokens;
  }
  EXPECT_NEAR(c.baseLoss, want / tokens, 1e-5 * std::fabs(want / tokens));
  for (size_t t = 0; t < labelValues.size(); ++t)
    for (int64_t v = 0; v < padded; ++v) {
      float g = c.grads["logits"][t * size_t(padded) + size_t(v)];
      EXPECT_TRUE(std::isfinite(g)) << t << "," << v;
      if (v >= real)
        EXPECT_EQ(g, 0.0f) << "padding column " << v << " of token " << t;
    }
}

TEST(GradPick, InAndOutOfRangeIds) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 5});
  // -100 and 5 are out of range (pick gives 0, no gradient); 2 twice in different rows.
  Value *ids = c.ids("ids", {2, 3}, {0, 4, -100, 2, 5, 2});
  c.weightedLoss(c.op(OpKind::Pick, {x, ids}));
  c.check();
  EXPECT_TRUE(c.hasStep("pick_grad"));
}

void broadcastCase(std::vector<int64_t> from, std::vector<int64_t> to) {
  GradCheck c;
  Value *x = c.param("x", from);
  c.weightedLoss(c.op(OpKind::Broadcast, {x}, attrs({{"shape", to}})));
  c.check();
}
TEST(GradBroadcast, InnerSizeOneDim) { broadcastCase({3, 1}, {2, 3, 4}); }
TEST(GradBroadcast, LeadingDims) { broadcastCase({4}, {2, 3, 4}); }
TEST(GradBroadcast, Scalar) { broadcastCase({}, {2, 3}); }

//===-- a composite: contributions from several consumers are summed ----------===//

TEST(GradComposite, PreLnMlpBlockWithResidual) {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  Value *g = c.param("ln.weight", {4}, std::vector<float>(4, 1.0f));
  Value *b = c.param("ln.bias", {4});
  Value *w1 = c.param("fc.weight", {4, 8}, c.normal(32, 0.5));
  Value *w2 = c.param("proj.weight", {8, 4}, c.normal(32, 0.5));
  Value *h = c.op(OpKind::LayerNorm, {x, g, b}, attrs({{"eps", 1e-5}}));
  Value *u = c.op(OpKind::Gelu, {c.op(OpKind::Contract, {h, w1}, attrs({{"spec", std::string("bsh,hf->bsf")}}))},
                  attrs({{"approx", Symbol{"tanh"}}}));
  Value *o = c.op(OpKind::Contract, {u, w2}, attrs({{"spec", std::string("bsf,fh->bsh")}}));
  c.weightedLoss(c.op(OpKind::Add, {x, o}));
  c.check();
}

//===-- the checker itself ------------------------------------------------------===//

// reduce_max{stop_gradient} deliberately differs from the true derivative of sum(w * (x - max x)): the checker
// must flag it (a control that the tolerances are not so loose that a wrong gradient passes).
void stopGradientAgainstFiniteDifferences() {
  GradCheck c;
  Value *x = c.param("x", {2, 3, 4});
  c.weightedLoss(c.op(OpKind::Sub, {x, c.op(OpKind::ReduceMax, {x}, maxAttrs(2))}));
  c.check();
}

TEST(GradCheckSelfTest, FlagsAGradientThatIsNotTheDerivative) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    stopGradientAgainstFiniteDifferences();
  }
  int entries = 0, directional = 0;
  for (int i = 0; i < results.size(); ++i) {
    llvm::StringRef msg = results.GetTestPartResult(i).message();
    entries += msg.contains("finite difference");
    directional += msg.contains("directional derivative");
  }
  // One entry per (b, s) row, at its argmax, is off (up to the 8 reported per param, then a summary).
  EXPECT_GE(entries, 6);
  EXPECT_GE(directional, 1);
}

//===-- coverage: every op is tested here or explicitly exempt -----------------===//

struct OpEnumName {
  OpKind kind;
  const char *name;
};
const OpEnumName kOpEnumNames[] = {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary) {OpKind::Enum, #Enum},
#include "ir/Ops.def"
};

// Ops without a finite-difference test here, and why. A new op must get a `Grad<Enum>` test suite above or an entry
// here with its reason; otherwise EveryOpHasAGradientTestOrIsExempt fails.
const std::set<OpKind> kExempt = {
    // Graph interface: params are what we differentiate with respect to; inputs and outputs carry no gradient.
    OpKind::Param,
    OpKind::Input,
    OpKind::Output,
    // Constants and functions of integer ids only: nothing to differentiate (valid_mask is exercised by
    // GradReduceMax.CrossEntropyDecomposition).
    OpKind::Fill,
    OpKind::ValidMask,
    // Second order: built by the autodiff pass, whose rule for them is an error; each is exercised by the test of
    // its forward op (hasStep checks that the plan uses it).
    OpKind::GeluGrad,
    OpKind::LayerNormGrad,
    OpKind::AttentionGrad,
    OpKind::EmbeddingGrad,
    OpKind::PickGrad,
    OpKind::SliceGrad,
    OpKind::SelectGrad,
    // Collectives: inserted by partition (all_reduce_bucket and reduce_scatter_bucket by bucket-dp), after autodiff.
    OpKind::AllReduce,
    OpKind::AllReduceBucket,
    OpKind::AllGather,
    OpKind::ReduceScatter,
    OpKind::ReduceScatterBucket,
    OpKind::Shard,
    // Optimizer: built by the optimizer pass, after autodiff.
    OpKind::State,
    OpKind::LrSchedule,
    OpKind::SumSquares,
    OpKind::ClipScale,
    OpKind::AdamW,
    // fp16 loss scaling: built by the optimizer pass after autodiff (nonfinite is a step function with zero
    // gradient; maximum combines the flags and its rule is an error).
    OpKind::Nonfinite,
    OpKind::Maximum,
    OpKind::LossScaleUpdate,
    // Gradient accumulation: built by the grad-accum pass, after autodiff (test/lit/equivalence/grad-accum.test).
    OpKind::Accumulate,
    // Pipeline point-to-point: built by pipeline-split, after autodiff (test/lit/pipeline).
    OpKind::Send,
    OpKind::Recv,
    // Inference only (megc --mode decode builds no loss); its rule is an error (test/lit/passes/decode-attention.mir).
    OpKind::DecodeAttention,
};

TEST(AutodiffCoverage, EveryOpHasAGradientTestOrIsExempt) {
  ASSERT_EQ(std::size(kOpEnumNames), size_t(ir::kNumOpKinds));
  std::set<std::string> suites;
  const ::testing::UnitTest &unit = *::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit.total_test_suite_count(); ++i)
    if (unit.GetTestSuite(i)->total_test_count() > 0)
      suites.insert(unit.GetTestSuite(i)->name());
  for (const OpEnumName &op : kOpEnumNames) {
    bool tested = suites.count(std::string("Grad") + op.name) != 0;
    bool exempt = kExempt.count(op.kind) != 0;
    EXPECT_TRUE(tested || exempt) << "op '" << ir::opName(op.kind).str() << "' has no gradient test (test suite Grad"
                                  << op.name << ") and is not listed as exempt";
    EXPECT_FALSE(tested && exempt) << "op '" << ir::opName(op.kind).str() << "' is both tested and exempt";
  }
}

//===-- errors -------------------------------------------------------------------===//

std::string autodiffError(ir::Graph &g) {
  auto pm = passes::PassManager::parse("autodiff");
  if (!pm)
    return "parse: " + llvm::toString(pm.takeError());
  llvm::Error err = pm->run(g, passes::PipelineConfig{});
  return err ? llvm::toString(std::move(err)) : std::string("(no error)");
}

TEST(AutodiffErrors, NoLossOutput) {
  GradCheck c;
  Value *x = c.param("x", {3});
  c.output(c.op(OpKind::ReduceSum, {x}, attrs({{"dims", std::vector<int64_t>{0}}, {"keepdim", false}})), "total");
  EXPECT_EQ(autodiffError(c.g), "autodiff: no output named 'loss' to differentiate");
}

TEST(AutodiffErrors, NonScalarLoss) {
  GradCheck c;
  Value *x = c.param("x", {2, 3});
  c.output(c.op(OpKind::Exp, {x}), "loss");
  EXPECT_EQ(autodiffError(c.g), "autodiff: output 'loss' must be a float scalar, got f32[2,3]");
}

TEST(AutodiffErrors, IntegerLoss) {
  GradCheck c;
  c.param("x", {2});
  c.output(c.ids("n", {}, {3}), "loss");
  EXPECT_EQ(autodiffError(c.g), "autodiff: output 'loss' must be a float scalar, got i32[]");
}

TEST(AutodiffErrors, ReduceMaxWithoutStopGradient) {
  GradCheck c;
  Value *x = c.param("x", {2, 3});
  Value *m = c.op(OpKind::ReduceMax, {x}, attrs({{"dims", std::vector<int64_t>{0, 1}}, {"keepdim", false}}));
  c.output(m, "loss");
  EXPECT_EQ(autodiffError(c.g), "autodiff: 'reduce_max': 'reduce_max' is differentiable only as a stop-gradient "
                                "(set stop_gradient = true)");
}

TEST(AutodiffErrors, ReduceMaxStopGradientFalse) {
  GradCheck c;
  Value *x = c.param("x", {2, 3});
  Value *m = c.op(OpKind::ReduceMax, {x},
                  attrs({{"dims", std::vector<int64_t>{0, 1}}, {"keepdim", false}, {"stop_gradient", false}}));
  c.output(m, "loss");
  EXPECT_EQ(autodiffError(c.g), "autodiff: 'reduce_max': 'reduce_max' is differentiable only as a stop-gradient "
                                "(set stop_gradient = true)");
}

} // namespace
