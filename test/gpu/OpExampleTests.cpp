// The op examples of docs/ir.md (the list test/unit/ops checks against plain references on the CPU backend) on the
// CUDA backend against the CPU backend: every value of every example, on the example's own mesh and in each tp = 2
// layout the CPU backend can run (test/support/OpExamples.h), within fp32 1e-5. Ranks of a multi-rank mesh share the
// one GPU (the CUDA backend's thread communicators: a thread and stream per rank), against in-process CPU ranks.
// 16 bits: every example again with each op that has a native 16-bit CUDA kernel computing in bf16 (then f16): its f32
// operands cast first (sixteenBit), the other ops following their operands' dtypes; CUDA (native kernels) against
// the CPU (fp32 copies, rounded), bf16 2e-2, f16 5e-3, and every op with a native kernel must have run in 16 bits in
// some example. The transformation and the CPU side also run without a GPU (Sixteen.CpuRunsEveryNativeOp).
#include "GpuTestUtil.h"

#include "ir/OpRules.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "runtime/cuda/Precision.h"
#include "test/support/OpExamples.h"

#include <map>
#include <random>
#include <set>

using namespace meg;
using namespace meg::gputest;
using namespace meg::optest;

namespace {

using runtime::cuda::Native16;

bool hasNative16(ir::OpKind k) {
  Native16 rule = runtime::cuda::native16Rule(k);
  return rule == Native16::Uniform || rule == Native16::Gemm;
}

/// `text` (an example) with every op that has a native 16-bit kernel computing in `t`: each f32 operand of such an
/// op is cast to `t` first (one cast per value and dtype). An op without one keeps the dtype of its operands when
/// they agree, else computes in f32 (its 16-bit operands cast up, as the mixed-precision pass does). Every op's
/// results are re-inferred from its operands. Sources keep their f32 (parameters and state are fp32 masters).
llvm::Expected<std::string> sixteenBit(llvm::StringRef text, ir::DType t) {
  auto g = ir::parseGraph(text, "docs/ir.md");
  if (!g)
    return g.takeError();
  std::map<std::pair<const ir::Value *, ir::DType>, ir::Value *> casts;
  auto castTo = [&](ir::Node *user, ir::Value *v, ir::DType to) {
    ir::Value *&cast = casts[{v, to}];
    if (!cast) {
      ir::AttrDict attrs;
      attrs.set("dtype", ir::Symbol{ir::dtypeName(to).str()});
      cast = (*g)->insertBefore(user, ir::OpKind::Cast, {v}, std::move(attrs), {v->getType().withDType(to)})
                 ->getResult();
    }
    return cast;
  };
  for (ir::Node *n : (*g)->getNodes()) {
    ir::OpKind k = n->getKind();
    if (ir::isExternal(k) || k == ir::OpKind::Cast)
      continue;
    bool native = hasNative16(k), mixed = false;
    for (const ir::Value *v : n->getOperands())
      mixed |= v->getType().dtype != ir::DType::I32 && v->getType().dtype != n->getOperand(0)->getType().dtype &&
               n->getOperand(0)->getType().dtype != ir::DType::I32;
    for (unsigned i = 0; i < n->getNumOperands(); ++i) {
      ir::Value *v = n->getOperand(i);
      ir::DType d = v->getType().dtype;
      if (native && d == ir::DType::F32)
        n->setOperand(i, castTo(n, v, t));
      else if (!native && mixed && d == t)
        n->setOperand(i, castTo(n, v, ir::DType::F32));
    }
    if (n->getNumResults() == 0)
      continue;
    llvm::SmallVector<ir::TensorType, 4> operands;
    for (const ir::Value *v : n->getOperands())
      operands.push_back(v->getType());
    auto types = ir::inferTypes(k, operands, n->getAttrs());
    if (!types)
      return types.takeError();
    for (unsigned i = 0; i < n->getNumResults(); ++i)
      n->getResult(i)->setType(
          ir::TensorType((*types)[i].dtype, (*types)[i].shape, n->getResult(i)->getType().sharding));
  }
  return ir::graphToString(**g);
}

/// The ops with a native 16-bit kernel that compute in 16 bits in `g`.
std::set<std::string> native16Ops(const ir::Graph &g) {
  std::set<std::string> ops;
  for (const ir::Node *n : g.getNodes())
    if (hasNative16(n->getKind()) && n->getNumResults() > 0 &&
        n->getResult()->getType().dtype != ir::DType::F32 && n->getResult()->getType().dtype != ir::DType::I32)
      ops.insert(ir::opName(n->getKind()).str());
  return ops;
}

/// Every op of ir/Ops.def with a native 16-bit kernel missing from `seen`, space-separated.
std::string missingNative16(const std::set<std::string> &seen) {
  std::string missing;
  for (unsigned i = 0; i < ir::kNumOpKinds; ++i)
    if (hasNative16(ir::OpKind(i)) && !seen.count(ir::opName(ir::OpKind(i)).str()))
      missing += " " + ir::opName(ir::OpKind(i)).str();
  return missing;
}

struct Storage16 {
  ir::DType dtype;
  double tol;
};
const Storage16 kStorages16[] = {{ir::DType::BF16, kBf16Tol}, {ir::DType::F16, kF16Tol}};

// Without a GPU: every example transforms, compiles and runs on the CPU in 16 bits, and together they run every op
// that has a native 16-bit kernel (so the GPU test below compares all of them).
TEST(Sixteen, CpuRunsEveryNativeOp) {
  auto examples = irDocExamples();
  ASSERT_TRUE(bool(examples)) << llvm::toString(examples.takeError());
  for (const Storage16 &st : kStorages16) {
    SCOPED_TRACE(ir::dtypeName(st.dtype).str());
    std::set<std::string> seen;
    for (const OpExample &ex : *examples) {
      SCOPED_TRACE("docs/ir.md:" + std::to_string(ex.line) + " @" + ex.name);
      auto text = sixteenBit(ex.text, st.dtype);
      ASSERT_TRUE(bool(text)) << llvm::toString(text.takeError());
      auto compiled = compileExample(*text, nullptr);
      ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError()) << "\n" << *text;
      auto cpu = runExample(*compiled, "cpu", std::random_device{}());
      ASSERT_TRUE(bool(cpu)) << llvm::toString(cpu.takeError());
      for (const std::string &op : native16Ops(*compiled->graph))
        seen.insert(op);
    }
    EXPECT_EQ(missingNative16(seen), "") << "ops with a native 16-bit kernel that no example runs in 16 bits";
    std::printf("[ op-examples ] %s: %zu ops with native 16-bit kernels run in 16 bits on the cpu\n",
                ir::dtypeName(st.dtype).str().c_str(), seen.size());
  }
}

using OpExampleTest = GpuTest;

TEST_F(OpExampleTest, EveryExampleMatchesCpu) {
  auto examples = irDocExamples();
  ASSERT_TRUE(bool(examples)) << llvm::toString(examples.takeError());
  ASSERT_FALSE(examples->empty());
  int compared = 0;
  for (const OpExample &ex : *examples) {
    SCOPED_TRACE("docs/ir.md:" + std::to_string(ex.line) + " @" + ex.name);
    auto parsed = compileExample(ex.text, nullptr, /*observeAll=*/false);
    ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
    std::vector<Layout> layouts = tpLayouts(*parsed->graph);
    std::vector<const Layout *> runs = {nullptr};
    for (const Layout &l : layouts)
      runs.push_back(&l);
    for (const Layout *layout : runs) {
      SCOPED_TRACE(layout ? layout->label() : "own mesh");
      auto compiled = compileExample(ex.text, layout);
      ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
      auto cpu = runExample(*compiled, "cpu");
      if (!cpu) {
        // A layout the CPU backend cannot run (a known gap, reported by test/unit/ops) has no reference here.
        llvm::consumeError(cpu.takeError());
        continue;
      }
      auto gpu = runExample(*compiled, "cuda");
      ASSERT_TRUE(bool(gpu)) << llvm::toString(gpu.takeError());
      EXPECT_EQ(gpu->replicaMismatches, std::vector<std::string>());
      for (const auto &[v, t] : cpu->values)
        EXPECT_EQ(compareTensors(gpu->values.at(v), t, kF32Tol), "") << describeValue(*compiled->graph, v);
      for (const auto &[v, t] : cpu->updated)
        EXPECT_EQ(compareTensors(gpu->updated.at(v), t, kF32Tol), "")
            << "updated " << describeValue(*compiled->graph, v);
      ++compared;
    }
  }
  std::printf("[ op-examples ] %d example layouts compared with the CPU backend\n", compared);
}

TEST_F(OpExampleTest, SixteenBitExamplesMatchCpu) {
  auto examples = irDocExamples();
  ASSERT_TRUE(bool(examples)) << llvm::toString(examples.takeError());
  unsigned seed = std::random_device{}(); // fresh inputs every run; printed to repeat a failure
  std::printf("[ op-examples ] 16-bit inputs from seed %u\n", seed);
  for (const Storage16 &st : kStorages16) {
    SCOPED_TRACE(ir::dtypeName(st.dtype).str());
    std::set<std::string> seen;
    for (const OpExample &ex : *examples) {
      SCOPED_TRACE("docs/ir.md:" + std::to_string(ex.line) + " @" + ex.name);
      auto text = sixteenBit(ex.text, st.dtype);
      ASSERT_TRUE(bool(text)) << llvm::toString(text.takeError());
      auto parsed = compileExample(*text, nullptr, /*observeAll=*/false);
      ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
      std::vector<Layout> layouts = tpLayouts(*parsed->graph);
      std::vector<const Layout *> runs = {nullptr};
      for (const Layout &l : layouts)
        runs.push_back(&l);
      for (const Layout *layout : runs) {
        SCOPED_TRACE(layout ? layout->label() : "own mesh");
        auto compiled = compileExample(*text, layout);
        ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
        auto cpu = runExample(*compiled, "cpu", seed);
        if (!cpu) { // a layout the CPU backend cannot run has no reference (as in the fp32 test)
          llvm::consumeError(cpu.takeError());
          continue;
        }
        auto gpu = runExample(*compiled, "cuda", seed);
        ASSERT_TRUE(bool(gpu)) << llvm::toString(gpu.takeError());
        EXPECT_EQ(gpu->replicaMismatches, std::vector<std::string>());
        for (const auto &[v, t] : cpu->values)
          EXPECT_EQ(compareTensors(gpu->values.at(v), t, st.tol), "") << describeValue(*compiled->graph, v);
        for (const auto &[v, t] : cpu->updated)
          EXPECT_EQ(compareTensors(gpu->updated.at(v), t, st.tol), "")
              << "updated " << describeValue(*compiled->graph, v);
        for (const std::string &op : native16Ops(*compiled->graph))
          seen.insert(op);
      }
    }
    EXPECT_EQ(missingNative16(seen), "") << "ops with a native 16-bit kernel not compared";
  }
}

} // namespace
