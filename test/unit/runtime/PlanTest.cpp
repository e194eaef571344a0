//===- PlanTest.cpp - plan loading: identifier, verifier, semantic checks ----===//
#include "PlanBuilder.h"
#include "TestUtil.h"

#include "runtime/cpu/CpuBackend.h"
#include "runtime/exec/Backend.h"
#include "runtime/comm/Communicator.h"
#include "runtime/exec/Executor.h"
#include "runtime/plan/Plan.h"

#include <random>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::test;
namespace fb = meg::plan;

namespace {

/// A small valid plan: loss = sum(2 * w[ids]).
PlanSpec basePlan() {
  PlanSpec p;
  p.arenaBytes = 52;
  p.params = {{"w", {4, 3}, {}, {}, {}, fb::Init::Normal, 0.02, 0}};
  p.inputs = {{"ids", fb::DType::I32, {2}, {}, {}}};
  p.steps = {
      {"embedding", {}, {paramRef(0, {4, 3}), inputRef(0, {2})}, {arenaRef(0, {2, 3})}},
      {"add", {}, {arenaRef(0, {2, 3}), arenaRef(0, {2, 3})}, {arenaRef(24, {2, 3})}},
      {"reduce_sum", {intsAttr("dims", {0, 1}), boolAttr("keepdim", false)}, {arenaRef(24, {2, 3})},
       {arenaRef(48, {})}},
  };
  p.outputs = {{"loss", arenaRef(48, {})}};
  return p;
}

std::string loadError(const PlanSpec &spec) {
  auto bytes = buildPlan(spec);
  auto plan = parsePlan(bytes, "p.megplan");
  if (plan)
    return "<success>";
  return llvm::toString(plan.takeError());
}

std::string loadError(llvm::ArrayRef<uint8_t> bytes) {
  auto plan = parsePlan(bytes, "p.megplan");
  if (plan)
    return "<success>";
  return llvm::toString(plan.takeError());
}

TEST(PlanTest, LoadsAValidPlan) {
  auto bytes = buildPlan(basePlan());
  auto plan = parsePlan(bytes, "p.megplan");
  ASSERT_TRUE(bool(plan)) << llvm::toString(plan.takeError());
  EXPECT_EQ(plan->version, kPlanSchemaVersion);
  EXPECT_EQ(plan->world(), 1);
  ASSERT_EQ(plan->steps.size(), 3u);
  EXPECT_EQ(plan->steps[0].kind, ir::OpKind::Embedding);
  EXPECT_EQ(plan->steps[2].attr("dims")->ints, (std::vector<int64_t>{0, 1}));
  ASSERT_EQ(plan->params.size(), 1u);
  EXPECT_EQ(plan->params[0].hfShape, (Shape{4, 3})); // empty hf_shape = global shape
  ASSERT_NE(plan->findOutput("loss"), nullptr);
  EXPECT_EQ(plan->stepLabel(1), "p.megplan: step 1 ('add')");
}

// Gradient accumulation: the body (Forward, Backward) runs once per micro-batch, the Update steps after it.
TEST(PlanTest, MicroBatches) {
  PlanSpec spec = basePlan();
  auto one = parsePlan(buildPlan(spec), "p.megplan");
  ASSERT_TRUE(bool(one)) << llvm::toString(one.takeError());
  EXPECT_EQ(one->microBatches, 1);
  spec.microBatches = 2;
  spec.steps[2].phase = plan::Phase::Update;
  auto two = parsePlan(buildPlan(spec), "p.megplan");
  ASSERT_TRUE(bool(two)) << llvm::toString(two.takeError());
  EXPECT_EQ(two->microBatches, 2);
  EXPECT_EQ(two->updateBegin, 2u);
  spec.steps[0].phase = plan::Phase::Update;
  EXPECT_EQ(loadError(buildPlan(spec)), "p.megplan: step 0 is an Update step before the last micro-batch step 1 "
                                         "(with 2 micro-batches the Update steps must come last)");
  spec.microBatches = 0;
  EXPECT_EQ(loadError(buildPlan(spec)), "p.megplan: micro_batches must be positive, got 0");
}

TEST(PlanTest, BadIdentifierAndCorruptBuffers) {
  auto bytes = buildPlan(basePlan());
  auto wrongId = bytes;
  std::memcpy(wrongId.data() + 4, "XXXX", 4);
  EXPECT_EQ(loadError(wrongId), "p.megplan: not a meg plan (bad file identifier)");
  EXPECT_EQ(loadError(llvm::ArrayRef<uint8_t>()), "p.megplan: not a meg plan (bad file identifier)");
  EXPECT_EQ(loadError(llvm::ArrayRef<uint8_t>(bytes).take_front(6)), "p.megplan: not a meg plan (bad file identifier)");
  EXPECT_EQ(loadError(llvm::ArrayRef<uint8_t>(bytes).take_front(bytes.size() / 2)),
            "p.megplan: corrupt plan (flatbuffers verification failed)");
  auto badRoot = bytes;
  badRoot[0] = 0xff;
  badRoot[1] = 0xff;
  EXPECT_EQ(loadError(badRoot), "p.megplan: corrupt plan (flatbuffers verification failed)");
}

TEST(PlanTest, VersionMeshAndRank) {
  PlanSpec p = basePlan();
  p.version = 7;
  EXPECT_EQ(loadError(p), "p.megplan: plan schema version 7, this megrun reads version 1");
  p = basePlan();
  p.tp = 0;
  EXPECT_EQ(loadError(p), "p.megplan: invalid mesh dp 1 x tp 0");
  p = basePlan();
  p.tp = 2;
  p.rank = 2;
  EXPECT_EQ(loadError(p), "p.megplan: rank 2 is outside the mesh dp 1 x tp 2");
  p.rank = -1;
  EXPECT_EQ(loadError(p), "p.megplan: rank -1 is outside the mesh dp 1 x tp 2");
  p = basePlan();
  p.mode = "fly";
  EXPECT_EQ(loadError(p), "p.megplan: unknown mode 'fly' (expected train, infer or decode)");
}

TEST(PlanTest, ArenaSlices) {
  PlanSpec p = basePlan();
  p.steps[1].operands[1] = arenaRef(40, {2, 3});
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): operand 1 slice [40, 64) is outside the arena (52 bytes)");
  p = basePlan();
  p.steps[2].results[0] = arenaRef(-4, {});
  EXPECT_EQ(loadError(p), "p.megplan: step 2 ('reduce_sum'): result 0 slice [-4, 0) is outside the arena (52 bytes)");
  p = basePlan();
  p.steps[2].results[0] = arenaRef(INT64_MAX - 2, {});
  EXPECT_NE(loadError(p).find("is outside the arena (52 bytes)"), std::string::npos);
  p = basePlan();
  p.outputs[0].second = arenaRef(52, {});
  EXPECT_EQ(loadError(p), "p.megplan: output 0 ('loss') slice [52, 56) is outside the arena (52 bytes)");
}

TEST(PlanTest, MemoryOverlapAndAlignment) {
  // An exact alias is fine for in-place (elementwise) ops; add's result over its operands is one.
  PlanSpec p = basePlan();
  p.steps[1].results[0] = arenaRef(0, {2, 3});
  p.steps[2].operands[0] = arenaRef(0, {2, 3});
  EXPECT_EQ(loadError(p), "<success>");
  // A partial overlap never is.
  p = basePlan();
  p.steps[1].results[0] = arenaRef(12, {2, 3});
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): result 0 overlaps operand 0 in memory");
  // Nor an exact alias for an op that is not in-place.
  p = basePlan();
  p.steps[2].operands[0] = arenaRef(24, {});
  p.steps[2].results[0] = arenaRef(24, {});
  p.outputs[0].second = arenaRef(24, {});
  EXPECT_EQ(loadError(p), "p.megplan: step 2 ('reduce_sum'): result 0 overlaps operand 0 in memory");
  // Arena slices are aligned to their dtype.
  p = basePlan();
  p.steps[1].results[0] = arenaRef(26, {2, 3});
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): result 0: arena offset 26 is not aligned to 4 bytes");
}

TEST(PlanTest, ParamAndInputIndices) {
  PlanSpec p = basePlan();
  p.steps[0].operands[0] = paramRef(3, {4, 3});
  EXPECT_EQ(loadError(p), "p.megplan: step 0 ('embedding'): operand 0 refers to param 3 but the plan has 1 params");
  p = basePlan();
  p.steps[0].operands[1] = inputRef(1, {2});
  EXPECT_EQ(loadError(p), "p.megplan: step 0 ('embedding'): operand 1 refers to input 1 but the plan has 1 inputs");
  p = basePlan();
  p.steps[0].operands[0] = paramRef(0, {3, 4});
  EXPECT_EQ(loadError(p), "p.megplan: step 0 ('embedding'): operand 0 is f32[3, 4] but param 0 is f32[4, 3]");
  p = basePlan();
  p.steps[1].results[0] = inputRef(0, {2});
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): result 0 writes an input");
}

TEST(PlanTest, OpsAndArity) {
  PlanSpec p = basePlan();
  p.steps[1].op = "frobnicate";
  EXPECT_EQ(loadError(p), "p.megplan: step 1: unknown op 'frobnicate'");
  p.steps[1].op = "exp";
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('exp'): 2 operands, expected 1");
  p.steps[1].op = "attention";
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('attention'): 2 operands, expected 3 to 4");
  p.steps[1].op = "param";
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('param'): op 'param' is not an executable step");
  p = basePlan();
  p.steps[1].results.push_back(arenaRef(0, {1}));
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): 2 results, expected 1");
  p = basePlan();
  p.steps[2].attrs = {boolAttr("keepdim", false), intsAttr("dims", {0, 1})};
  EXPECT_EQ(loadError(p), "p.megplan: step 2 ('reduce_sum'): attributes are not sorted by key ('dims')");
}

TEST(PlanTest, ShapesAndDTypes) {
  PlanSpec p = basePlan();
  p.steps[1].operands[0] = arenaRef(0, {-2, 3});
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): operand 0 shape has a negative dimension [-2, 3]");
  p = basePlan();
  p.steps[1].operands[0] = sharded(arenaRef(0, {2, 3}), {2, 6}, {0, 4});
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): operand 0: shard [2, 3] at offset [0, 4] does not fit the "
                          "global shape [2, 6]");
  p = basePlan();
  p.steps[1].operands[0] = sharded(arenaRef(0, {2, 3}), {2}, {0});
  EXPECT_NE(loadError(p).find("differ in rank"), std::string::npos);
  p = basePlan();
  p.steps[1].operands[0].dtype = fb::DType(9);
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): operand 0: invalid dtype 9");
  p = basePlan();
  p.params[0].hf = {5, 3};
  EXPECT_EQ(loadError(p), "p.megplan: param 0 ('w'): hf_shape [5, 3] and global shape [4, 3] differ in element count");
  p = basePlan();
  p.params[0].vocabRows = 9;
  EXPECT_EQ(loadError(p), "p.megplan: param 0 ('w'): vocab_rows 9 does not fit the shape [4, 3]");
  p = basePlan();
  p.params.push_back(p.params[0]);
  EXPECT_EQ(loadError(p), "p.megplan: duplicate param name 'w'");
  p = basePlan();
  p.steps[1].operands[0] = arenaRef(0, {int64_t(1) << 40, int64_t(1) << 40});
  EXPECT_EQ(loadError(p), "p.megplan: step 1 ('add'): operand 0 shape is too large [1099511627776, 1099511627776]");
}

TEST(PlanTest, PlanSetChecks) {
  TempDir dir;
  auto write = [&](const PlanSpec &spec, llvm::StringRef name) {
    auto bytes = buildPlan(spec);
    writeRaw(dir.path(name), llvm::StringRef(reinterpret_cast<const char *>(bytes.data()), bytes.size()));
  };
  PlanSpec p = basePlan();
  p.tp = 2;
  write(p, "rank-0.megplan");
  auto set = loadPlanSet(dir.dir());
  ASSERT_FALSE(bool(set));
  EXPECT_EQ(llvm::toString(set.takeError()),
            dir.dir().str() + ": incomplete plan set: rank-1.megplan is missing (mesh dp 1 x tp 2)");
  p.rank = 0; // rank-1.megplan claiming rank 0
  write(p, "rank-1.megplan");
  set = loadPlanSet(dir.dir());
  ASSERT_FALSE(bool(set));
  EXPECT_EQ(llvm::toString(set.takeError()), dir.path("rank-1.megplan") + ": plan is for rank 0, expected rank 1");
  p.rank = 1;
  write(p, "rank-1.megplan");
  set = loadPlanSet(dir.dir());
  ASSERT_TRUE(bool(set)) << llvm::toString(set.takeError());
  EXPECT_EQ(set->size(), 2u);
  write(p, "rank-2.megplan");
  set = loadPlanSet(dir.dir());
  ASSERT_FALSE(bool(set));
  EXPECT_EQ(llvm::toString(set.takeError()),
            dir.path("rank-2.megplan") + ": unexpected plan file (the mesh dp 1 x tp 2 has 2 ranks)");
  llvm::sys::fs::remove(dir.path("rank-2.megplan"));
  p.tp = 1;
  p.dp = 2;
  write(p, "rank-1.megplan");
  set = loadPlanSet(dir.dir());
  ASSERT_FALSE(bool(set));
  EXPECT_EQ(llvm::toString(set.takeError()),
            dir.path("rank-1.megplan") + ": mesh dp 2 x tp 1 differs from rank 0's dp 1 x tp 2");
  set = loadPlanSet(dir.path("nope"));
  ASSERT_FALSE(bool(set));
  EXPECT_EQ(llvm::toString(set.takeError()), dir.path("nope") + ": no such plan directory");
}

/// Random mutations of a valid plan never crash loading, preparing or running: each either loads (and then runs)
/// or is one error.
TEST(PlanTest, MutationsNeverCrash) {
  auto bytes = buildPlan(basePlan());
  std::mt19937 rng(1234);
  int loaded = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto b = bytes;
    int kind = int(rng() % 3);
    if (kind == 0) {
      for (int k = 0, n = 1 + int(rng() % 4); k < n; ++k)
        b[rng() % b.size()] = uint8_t(rng());
    } else if (kind == 1) {
      size_t off = rng() % (b.size() - 4);
      uint8_t v = std::array<uint8_t, 4>{0x00, 0x7f, 0x80, 0xff}[rng() % 4];
      std::memset(b.data() + off, v, 4);
    } else {
      b.resize(rng() % b.size());
    }
    auto plan = parsePlan(b, "m.megplan");
    if (!plan) {
      std::string msg = llvm::toString(plan.takeError());
      EXPECT_EQ(msg.rfind("m.megplan: ", 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      continue;
    }
    auto backend = createCpuBackend();
    if (auto err = backend->prepare(*plan)) {
      llvm::consumeError(std::move(err));
      continue;
    }
    ++loaded;
    // Inputs are zero: valid ids.
    SingleRankCommunicator comm;
    Executor exec(*plan, *backend, comm);
    if (plan->world() == 1)
      llvm::consumeError(exec.run(StepContext{}));
  }
  EXPECT_GT(loaded, 0);
}

} // namespace
