// The CUDA backend's choice between a native 16-bit kernel and fp32 copies (runtime/cuda/Precision.h), on the CPU:
// every op of ir/Ops.def has a rule; synthetic steps of every op with all-bf16, all-f16, all-f32 and mixed slots
// classify as the rule says; and in real mixed-precision plans (megc --bf16 / --fp16, tiny GPT, tp 2) every GEMM,
// attention, GeLU, elementwise and embedding step runs natively while the collectives and the table
// gradient widen. Runs on any host (no CUDA runtime needed).
#include "runtime/cuda/Precision.h"

#include "runtime/plan/Plan.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;
using ir::OpKind;
using kernels::Elem;

namespace {

TensorSlot slot(DType t) {
  TensorSlot s;
  s.dtype = t;
  s.shape = s.globalShape = {4, 8};
  s.offset = {0, 0};
  return s;
}

/// A step of op `k` with its minimal operand count, every float slot `t` (index operands of the ops that take ids
/// or a mask are i32).
PlanStep stepOf(OpKind k, DType t) {
  PlanStep step;
  step.kind = k;
  step.op = ir::opName(k).str();
  const ir::OpInfo &info = ir::opInfo(k);
  unsigned operands = unsigned(std::max(info.minOperands, 1));
  for (unsigned i = 0; i < operands; ++i) {
    bool ids = (i == 1 && (k == OpKind::Embedding || k == OpKind::Pick || k == OpKind::PickGrad ||
                           k == OpKind::EmbeddingGrad)) ||
               (i == 0 && k == OpKind::ValidMask);
    step.operands.push_back(slot(ids ? DType::I32 : t));
  }
  for (unsigned r = 0; r < ir::numResultsOf(k, operands); ++r)
    step.results.push_back(slot(t));
  return step;
}

TEST(CudaPrecision, EveryOpHasARule) {
  std::map<std::string, std::vector<std::string>> byRule;
  for (unsigned i = 0; i < ir::kNumOpKinds; ++i) {
    OpKind k = OpKind(i);
    Native16 rule = native16Rule(k);
    EXPECT_NE(native16RuleName(rule), "?") << ir::opName(k).str();
    // Exactly the graph-interface ops are not steps.
    EXPECT_EQ(rule == Native16::NotAStep, ir::isExternal(k) || k == OpKind::Output) << ir::opName(k).str();
    byRule[native16RuleName(rule).str()].push_back(ir::opName(k).str());
  }
  for (const auto &[rule, ops] : byRule) {
    std::string line;
    for (const std::string &op : ops)
      line += " " + op;
    std::printf("[ native16 ] %s:%s\n", rule.c_str(), line.c_str());
  }
}

TEST(CudaPrecision, SyntheticStepsFollowTheRules) {
  for (unsigned i = 0; i < ir::kNumOpKinds; ++i) {
    OpKind k = OpKind(i);
    Native16 rule = native16Rule(k);
    if (rule == Native16::NotAStep)
      continue;
    SCOPED_TRACE(ir::opName(k).str());
    StepStorage f32 = classifyStep(stepOf(k, DType::F32));
    EXPECT_EQ(f32.precision, rule == Native16::AnyDType ? StepPrecision::Direct : StepPrecision::F32);
    EXPECT_EQ(f32.elem, Elem::F32);
    for (auto [t, e] : {std::pair{DType::BF16, Elem::BF16}, std::pair{DType::F16, Elem::F16}}) {
      StepStorage s = classifyStep(stepOf(k, t));
      switch (rule) {
      case Native16::Uniform:
      case Native16::Gemm:
        EXPECT_EQ(s.precision, StepPrecision::Native16);
        EXPECT_EQ(s.elem, e);
        EXPECT_EQ(s.resultElem, e);
        break;
      case Native16::Widen:
        EXPECT_EQ(s.precision, StepPrecision::Widened);
        EXPECT_EQ(s.elem, Elem::F32) << "a widened step's kernel runs on fp32 copies";
        break;
      case Native16::AnyDType:
        EXPECT_EQ(s.precision, StepPrecision::Direct);
        break;
      case Native16::NotAStep:
        break;
      }
    }
    // A float result of another dtype than a 16-bit operand: only a GEMM accumulating into f32 stays native.
    PlanStep mixed = stepOf(k, DType::BF16);
    if (mixed.results.empty()) // adamw: updates its operands in place
      continue;
    mixed.results[0].dtype = DType::F32;
    StepStorage m = classifyStep(mixed);
    bool still16 = false;
    for (const std::vector<TensorSlot> *slots : {&mixed.operands, &mixed.results})
      for (const TensorSlot &t : *slots)
        still16 |= t.dtype == DType::BF16;
    if (!still16) { // valid_mask: ids in, the one float slot now f32
      EXPECT_EQ(m.precision, StepPrecision::F32);
    } else if (rule == Native16::Gemm) {
      EXPECT_EQ(m.precision, StepPrecision::Native16);
      EXPECT_EQ(m.elem, Elem::BF16);
      EXPECT_EQ(m.resultElem, Elem::F32);
    } else if (rule != Native16::AnyDType) {
      EXPECT_EQ(m.precision, StepPrecision::Widened);
    }
  }
  // GEMM operands of two 16-bit types, or a 16-bit result of another type than the operands': fp32 copies.
  PlanStep gemm = stepOf(OpKind::Contract, DType::BF16);
  gemm.operands[1].dtype = DType::F16;
  EXPECT_EQ(classifyStep(gemm).precision, StepPrecision::Widened);
  gemm = stepOf(OpKind::Contract, DType::BF16);
  gemm.results[0].dtype = DType::F16;
  EXPECT_EQ(classifyStep(gemm).precision, StepPrecision::Widened);
  // i32 slots do not vote: a bf16 table looked up with i32 ids is a uniform bf16 step.
  StepStorage emb = classifyStep(stepOf(OpKind::Embedding, DType::BF16));
  EXPECT_EQ(emb.precision, StepPrecision::Native16);
  EXPECT_EQ(emb.elem, Elem::BF16);
}

/// megc's plans of the tiny GPT at tp 2 with `flag` (--bf16 / --fp16) in a fresh directory.
std::vector<LoadedPlan> compileMixed(const char *flag, llvm::SmallString<128> &dir) {
  EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("meg-precision-test", dir));
  std::string planDir = (dir + "/plan").str(), model = std::string(MEG_SOURCE_DIR) + "/models/tiny-gpt.json";
  llvm::StringRef args[] = {MEG_MEGC, model, "--tp", "2", flag, "--emit", "plan", "-o", planDir};
  std::string message;
  EXPECT_EQ(llvm::sys::ExecuteAndWait(MEG_MEGC, args, llvm::None, {}, 0, 0, &message), 0) << message;
  auto plans = loadPlanSet(planDir);
  EXPECT_TRUE(bool(plans)) << llvm::toString(plans.takeError());
  return plans ? std::move(*plans) : std::vector<LoadedPlan>{};
}

TEST(CudaPrecision, MixedPrecisionPlansRunTheirGemmsNatively) {
  for (const char *flag : {"--bf16", "--fp16"}) {
    SCOPED_TRACE(flag);
    llvm::SmallString<128> dir;
    std::vector<LoadedPlan> plans = compileMixed(flag, dir);
    ASSERT_EQ(plans.size(), 2u);
    std::map<std::string, int> native, widened;
    for (const PlanStep &step : plans[0].steps) {
      StepStorage s = classifyStep(step);
      if (s.precision == StepPrecision::Native16)
        ++native[step.op];
      if (s.precision == StepPrecision::Widened)
        ++widened[step.op];
    }
    llvm::sys::fs::remove_directories(dir);
    // The 16-bit compute of the mixed-precision pass is native; what widens is only what the table says widens.
    for (const char *op : {"contract", "attention", "attention_grad", "gelu", "gelu_grad", "embedding", "add"})
      EXPECT_GT(native[op], 0) << op << " has no native 16-bit step";
    for (const auto &[op, count] : widened)
      EXPECT_EQ(native16Rule(*ir::parseOpKind(op)), Native16::Widen) << op << " widened " << count << " times";
    std::string line;
    for (const auto &[op, count] : widened)
      line += " " + op + " x" + std::to_string(count);
    std::printf("[ native16 ] %s tp 2 rank 0: widened steps:%s\n", flag, line.c_str());
  }
}

} // namespace
