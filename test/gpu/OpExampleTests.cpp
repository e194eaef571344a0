// The op examples of docs/ir.md (the list test/unit/ops checks against plain references on the CPU backend) on the
// CUDA backend against the CPU backend: every value of every example, on the example's own mesh and in each tp = 2
// layout the CPU backend can run (test/support/OpExamples.h), within fp32 1e-5. Ranks of a multi-rank mesh share the
// one GPU (the CUDA backend's thread communicators: a thread and stream per rank), against in-process CPU ranks.
#include "GpuTestUtil.h"

#include "test/support/OpExamples.h"

using namespace meg;
using namespace meg::gputest;
using namespace meg::optest;

namespace {

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

} // namespace
