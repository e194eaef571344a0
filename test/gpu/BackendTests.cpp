// End to end: a tiny GPT train plan (models/tiny-gpt.json compiled by megc) runs one training step on the CUDA
// backend and on the CPU backend from the same seeded weights and batch; the loss, every gradient and every updated
// parameter must agree to 1e-5 (attention gradients enter through 1e-4-accurate kernels, the sums through fp32
// GEMMs: the bound is on the whole model's values, expectClose's tensor-relative test). Then tp = 2 on ONE GPU
// (OneGpuCommunicator, a thread and stream per rank) against the CPU's tp = 2 (InProcessCommunicator).
// Mixed precision: a --bf16 training step on CUDA (native 16-bit kernels) against the CPU's 16-bit path, 2e-2.
// CUDA graphs: three training steps with dropout on, captured after the first and replayed, equal the same steps
// run without capture bit for bit (loss of every step, every updated parameter), at tp 1 and at tp 2 on one GPU
// (the ranks capture together), in fp32 and bf16.
#include "GpuTestUtil.h"

#include "runtime/exec/Backend.h"
#include "runtime/comm/Communicator.h"
#include "runtime/exec/Executor.h"
#include "runtime/train/Init.h"
#include "runtime/plan/Plan.h"
#include "runtime/cpu/CpuBackend.h"
#include "runtime/cuda/CudaBackend.h"
#include "runtime/train/BackendRegistry.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Program.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

using namespace meg;
using namespace meg::gputest;
using namespace meg::runtime;

namespace {

constexpr double kEndToEndTol = 1e-4;

/// A temporary directory, removed with its contents.
struct TempDir {
  llvm::SmallString<128> path;
  TempDir() { EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("meg-gpu-test", path)); }
  ~TempDir() { llvm::sys::fs::remove_directories(path); }
};

/// Runs megc on the tiny GPT for `tp` into `dir`/plan; returns the plan directory.
std::string compileTinyGpt(int tp, const TempDir &dir) {
  std::string planDir = (dir.path + "/plan").str(), tpText = std::to_string(tp);
  // The build's megc and models, unless the environment names others (a relocated bundle: scripts/gpu-bundle.sh).
  const char *megc = std::getenv("MEG_MEGC") ? std::getenv("MEG_MEGC") : MEG_MEGC;
  const char *models = std::getenv("MEG_MODELS_DIR");
  std::string model = (models ? std::string(models) : std::string(MEG_SOURCE_DIR) + "/models") + "/tiny-gpt.json";
  llvm::StringRef args[] = {megc, model, "--tp", tpText, "--mode", "train", "--emit", "plan", "-o", planDir};
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(megc, args, llvm::None, {}, 0, 0, &message);
  EXPECT_EQ(rc, 0) << "megc failed: " << message;
  return planDir;
}

/// compileTinyGpt with `precision` ("--bf16", "--fp16" or "" for fp32) and, with `dropout`, every dropout probability
/// of the model 0.1 instead of 0 (a copy of the model in `dir`). megc and the models are the build's unless the
/// environment names others (MEG_MEGC, MEG_MODELS_DIR: a relocated GPU bundle).
std::string compileTinyGptWith(int tp, const TempDir &dir, llvm::StringRef precision, bool dropout) {
  std::string planDir = (dir.path + "/plan").str(), tpText = std::to_string(tp);
  const char *megc = std::getenv("MEG_MEGC") ? std::getenv("MEG_MEGC") : MEG_MEGC;
  const char *models = std::getenv("MEG_MODELS_DIR");
  std::string model = (models ? std::string(models) : std::string(MEG_SOURCE_DIR) + "/models") + "/tiny-gpt.json";
  if (dropout) {
    std::ifstream in(model);
    std::stringstream text;
    text << in.rdbuf();
    std::string json = text.str();
    const std::string off = "_pdrop\": 0.0", on = "_pdrop\": 0.1";
    for (size_t at; (at = json.find(off)) != std::string::npos;)
      json.replace(at, off.size(), on);
    model = (dir.path + "/tiny-gpt-dropout.json").str();
    std::ofstream(model) << json;
  }
  std::vector<llvm::StringRef> args = {megc, model, "--tp", tpText, "--mode", "train", "--emit", "plan", "-o", planDir};
  if (!precision.empty())
    args.push_back(precision);
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(megc, args, llvm::None, {}, 0, 0, &message);
  EXPECT_EQ(rc, 0) << "megc failed: " << message;
  return planDir;
}

/// One rank's results after a step.
struct StepResult {
  float loss = 0;
  std::vector<std::vector<float>> grads, params;
};

/// Seeded weights and the same random batch on every backend (the tp shards slice one global batch identically,
/// since the batch is replicated over tp).
void loadRank(const LoadedPlan &plan, Backend &backend) {
  for (size_t i = 0; i < plan.params.size(); ++i)
    backend.writeParam(i, initParamShard(plan.params[i], /*seed=*/7));
  std::mt19937 rng(99);
  for (size_t i = 0; i < plan.inputs.size(); ++i) {
    std::vector<int32_t> ids = randomInts(rng, static_cast<size_t>(plan.inputs[i].numel()), 0, 250);
    backend.writeInput(i, llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(ids.data()), ids.size() * 4));
  }
}

llvm::Expected<StepResult> runRank(const LoadedPlan &plan, Backend &backend, Communicator &comm) {
  if (auto err = backend.prepare(plan))
    return err;
  loadRank(plan, backend);
  Executor exec(plan, backend, comm);
  StepContext ctx;
  ctx.seed = 7;
  if (auto err = exec.run(ctx))
    return err;
  StepResult r;
  auto loss = exec.scalarOutput("loss");
  if (!loss)
    return loss.takeError();
  r.loss = *loss;
  for (size_t i = 0; i < plan.params.size(); ++i) {
    TensorSlot slot;
    slot.storage = Storage::Grad;
    slot.index = int64_t(i);
    slot.shape = plan.params[i].shape;
    std::vector<float> g(static_cast<size_t>(plan.params[i].numel())), p(g.size());
    backend.readTensor(slot, llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(g.data()), g.size() * 4));
    backend.readParam(i, p);
    r.grads.push_back(std::move(g));
    r.params.push_back(std::move(p));
  }
  return r;
}

/// The first training step of a one-rank plan on the CPU (`cpu`) and on the GPU (`gpu`).
void stepOnCpuAndGpu(const LoadedPlan &plan, StepResult &cpu, StepResult &gpu) {
  SingleRankCommunicator comm;
  auto cpuBackend = createCpuBackend();
  auto cpuStep = runRank(plan, *cpuBackend, comm);
  ASSERT_TRUE(bool(cpuStep)) << llvm::toString(cpuStep.takeError());
  auto cudaBackend = createBackend("cuda", BackendPlace{});
  ASSERT_TRUE(bool(cudaBackend)) << llvm::toString(cudaBackend.takeError());
  auto gpuStep = runRank(plan, **cudaBackend, comm);
  ASSERT_TRUE(bool(gpuStep)) << llvm::toString(gpuStep.takeError());
  cpu = std::move(*cpuStep);
  gpu = std::move(*gpuStep);
}

/// The first AdamW step moves each weight by about lr * sign(grad): where a gradient is at rounding-noise level its
/// sign (and so the update) is arbitrary on either backend, so updated weights are compared only where the CPU
/// gradient is above 1e-2 of the tensor's mean magnitude.
void expectSameUpdate(const std::vector<float> &gpu, const std::vector<float> &cpu, const std::vector<float> &grad,
                      const std::string &what) {
  double meanGrad = 0;
  for (float g : grad)
    meanGrad += std::fabs(g);
  meanGrad /= std::max<size_t>(grad.size(), 1);
  std::vector<float> g, c;
  for (size_t i = 0; i < grad.size(); ++i)
    if (std::fabs(grad[i]) > 1e-2 * meanGrad) {
      g.push_back(gpu[i]);
      c.push_back(cpu[i]);
    }
  expectClose(g, c, kEndToEndTol, what);
}

void expectSameStep(const LoadedPlan &plan, const StepResult &gpu, const StepResult &cpu) {
  expectClose({gpu.loss}, {cpu.loss}, kF32Tol, "loss");
  for (size_t i = 0; i < plan.params.size(); ++i) {
    expectClose(gpu.grads[i], cpu.grads[i], kEndToEndTol, "grad of " + plan.params[i].name);
    expectSameUpdate(gpu.params[i], cpu.params[i], cpu.grads[i], "updated " + plan.params[i].name);
  }
}

using EndToEndTest = GpuTest;

TEST_F(EndToEndTest, TinyGptStepMatchesCpu) {
  TempDir tmp;
  std::string dir = compileTinyGpt(1, tmp);
  auto plans = loadPlanSet(dir);
  ASSERT_TRUE(bool(plans)) << llvm::toString(plans.takeError());
  const LoadedPlan &plan = (*plans)[0];
  StepResult cpuResult, gpuResult;
  ASSERT_NO_FATAL_FAILURE(stepOnCpuAndGpu(plan, cpuResult, gpuResult));
  const StepResult *cpu = &cpuResult, *gpu = &gpuResult;
  expectSameStep(plan, *gpu, *cpu);
}

TEST_F(EndToEndTest, TensorParallelOnOneGpuMatchesCpu) {
  TempDir tmp;
  std::string dir = compileTinyGpt(2, tmp);
  auto loaded = loadPlanSet(dir);
  ASSERT_TRUE(bool(loaded)) << llvm::toString(loaded.takeError());
  std::vector<LoadedPlan> &plans = *loaded;
  int world = int(plans.size());
  ASSERT_EQ(world, 2);
  RankThreads threads(world);
  std::vector<llvm::Expected<StepResult>> cpu, gpu;
  for (int r = 0; r < world; ++r) {
    cpu.emplace_back(StepResult{});
    gpu.emplace_back(StepResult{});
  }
  auto cpuWorld = InProcessCommunicator::createWorld(plans[0].meshDp, plans[0].meshTp);
  ASSERT_FALSE(bool(threads.run([&](int rank) -> llvm::Error {
    InProcessCommunicator comm(cpuWorld, rank);
    auto backend = createCpuBackend();
    cpu[static_cast<size_t>(rank)] = runRank(plans[static_cast<size_t>(rank)], *backend, comm);
    return llvm::Error::success();
  })));
  std::vector<std::unique_ptr<Backend>> gpuBackends;
  std::vector<Backend *> peers;
  for (int rank = 0; rank < world; ++rank) {
    auto backend = createBackend("cuda", BackendPlace{rank, world, 0});
    ASSERT_TRUE(bool(backend)) << llvm::toString(backend.takeError());
    ASSERT_FALSE(bool((*backend)->prepare(plans[static_cast<size_t>(rank)])));
    peers.push_back(backend->get());
    gpuBackends.push_back(std::move(*backend));
  }
  auto comms = peers[0]->createThreadCommunicators(peers, plans[0].meshDp, plans[0].meshTp);
  ASSERT_TRUE(bool(comms)) << llvm::toString(comms.takeError());
  ASSERT_FALSE(bool(threads.run([&](int rank) -> llvm::Error {
    gpu[static_cast<size_t>(rank)] =
        runRank(plans[static_cast<size_t>(rank)], *peers[size_t(rank)], *(*comms)[size_t(rank)]);
    return llvm::Error::success();
  })));
  for (int r = 0; r < world; ++r) {
    ASSERT_TRUE(bool(cpu[static_cast<size_t>(r)])) << llvm::toString(cpu[static_cast<size_t>(r)].takeError());
    ASSERT_TRUE(bool(gpu[static_cast<size_t>(r)])) << llvm::toString(gpu[static_cast<size_t>(r)].takeError());
    expectSameStep(plans[static_cast<size_t>(r)], *gpu[static_cast<size_t>(r)], *cpu[static_cast<size_t>(r)]);
  }
}

TEST_F(EndToEndTest, Bf16TinyGptStepMatchesCpu) {
  TempDir tmp;
  std::string dir = compileTinyGptWith(1, tmp, "--bf16", /*dropout=*/false);
  auto plans = loadPlanSet(dir);
  ASSERT_TRUE(bool(plans)) << llvm::toString(plans.takeError());
  const LoadedPlan &plan = (*plans)[0];
  StepResult cpuResult, gpuResult;
  ASSERT_NO_FATAL_FAILURE(stepOnCpuAndGpu(plan, cpuResult, gpuResult));
  const StepResult *cpu = &cpuResult, *gpu = &gpuResult;
  // The fp32 masters' gradients come through bf16 GEMMs on both sides: the same bf16 inputs, fp32 sums in other
  // orders, one rounding each, so a result may differ by a bf16 rounding step: 2e-2 (tensor-relative).
  expectClose({gpu->loss}, {cpu->loss}, kBf16Tol, "bf16 loss");
  for (size_t i = 0; i < plan.params.size(); ++i)
    expectClose(gpu->grads[i], cpu->grads[i], kBf16Tol, "bf16 grad of " + plan.params[i].name);
}

/// `steps` training steps of every rank of `plans` on `backend`s (CUDA: one GPU, ranks as threads), from seeded
/// weights, a fresh random batch per step, dropout on; returns rank r's loss per step and parameters after the last
/// step.
struct Trajectory {
  std::vector<std::vector<float>> losses;              ///< [rank][step]
  std::vector<std::vector<std::vector<float>>> params; ///< [rank][param]
  bool captured = false;
};
Trajectory runTrajectory(std::vector<LoadedPlan> &plans, const char *backendName, bool graphs, int steps) {
  Trajectory out;
  int world = int(plans.size());
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<Backend *> peers;
  for (int r = 0; r < world; ++r) {
    BackendPlace place{r, world, 0};
    place.cudaGraphs = graphs;
    auto backend = createBackend(backendName, place);
    EXPECT_TRUE(bool(backend)) << llvm::toString(backend.takeError());
    if (!backend)
      return out;
    EXPECT_FALSE(bool((*backend)->prepare(plans[size_t(r)])));
    loadRank(plans[size_t(r)], **backend);
    peers.push_back(backend->get());
    backends.push_back(std::move(*backend));
  }
  auto comms = peers[0]->createThreadCommunicators(peers, plans[0].meshDp, plans[0].meshTp);
  EXPECT_TRUE(bool(comms)) << llvm::toString(comms.takeError());
  if (!comms)
    return out;
  out.losses.resize(size_t(world));
  out.params.resize(size_t(world));
  RankThreads threads(world);
  for (int t = 0; t < steps; ++t) {
    std::mt19937 rng(1000 + unsigned(t)); // the same batch for every rank (tp replicates it) and both runs
    std::vector<std::vector<int32_t>> batch;
    for (const PlanInput &in : plans[0].inputs)
      batch.push_back(randomInts(rng, static_cast<size_t>(in.numel()), 0, 250));
    llvm::Error err = threads.run([&](int r) -> llvm::Error {
      const LoadedPlan &plan = plans[size_t(r)];
      for (size_t i = 0; i < plan.inputs.size(); ++i)
        peers[size_t(r)]->writeInput(i, llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(batch[i].data()),
                                                                batch[i].size() * sizeof(int32_t)));
      Executor exec(plan, *peers[size_t(r)], *(*comms)[size_t(r)]);
      StepContext ctx;
      ctx.seed = 7;
      ctx.step = uint32_t(t);
      if (auto err = exec.run(ctx))
        return err;
      auto loss = exec.scalarOutput("loss");
      if (!loss)
        return loss.takeError();
      out.losses[size_t(r)].push_back(*loss);
      return llvm::Error::success();
    });
    EXPECT_FALSE(bool(err)) << llvm::toString(std::move(err));
  }
  for (int r = 0; r < world; ++r)
    for (size_t i = 0; i < plans[size_t(r)].params.size(); ++i) {
      std::vector<float> p(static_cast<size_t>(plans[size_t(r)].params[i].numel()));
      peers[size_t(r)]->readParam(i, p);
      out.params[size_t(r)].push_back(std::move(p));
    }
  out.captured = std::string(backendName) == "cuda" && cudaGraphCaptured(*peers[0]);
  return out;
}

class CudaGraphTest : public GpuTest, public ::testing::WithParamInterface<std::tuple<int, const char *>> {};

TEST_P(CudaGraphTest, CapturedStepsEqualUncapturedBitForBit) {
  auto [tp, precision] = GetParam();
  TempDir tmp;
  std::string dir = compileTinyGptWith(tp, tmp, precision, /*dropout=*/true);
  auto plans = loadPlanSet(dir);
  ASSERT_TRUE(bool(plans)) << llvm::toString(plans.takeError());
  const int steps = 3; // warm-up, capture (and its launch), replay
  Trajectory eager = runTrajectory(*plans, "cuda", /*graphs=*/false, steps);
  Trajectory graph = runTrajectory(*plans, "cuda", /*graphs=*/true, steps);
  EXPECT_FALSE(eager.captured);
  EXPECT_TRUE(graph.captured) << "the training step was not captured";
  ASSERT_EQ(eager.losses.size(), graph.losses.size());
  for (size_t r = 0; r < eager.losses.size(); ++r) {
    ASSERT_EQ(eager.losses[r].size(), size_t(steps));
    ASSERT_EQ(graph.losses[r].size(), size_t(steps));
    for (int t = 0; t < steps; ++t)
      EXPECT_EQ(0, std::memcmp(&eager.losses[r][size_t(t)], &graph.losses[r][size_t(t)], sizeof(float)))
          << "rank " << r << " step " << t + 1 << ": " << eager.losses[r][size_t(t)] << " vs "
          << graph.losses[r][size_t(t)];
    // Different masks and batches per step: the steps differ, so a replay of a stale step could not pass.
    EXPECT_NE(eager.losses[r][1], eager.losses[r][2]);
    for (size_t i = 0; i < eager.params[r].size(); ++i)
      EXPECT_EQ(eager.params[r][i], graph.params[r][i]) << "rank " << r << " parameter " << i;
  }
}

// The harness itself, on the CPU (runs without a GPU): the bf16 dropout plan at tp 2 trains, two runs agree bit for
// bit, and consecutive steps differ (so the GPU test's comparison could catch a stale replay).
TEST(TrajectoryHarness, CpuRunsRepeatAndStepsDiffer) {
  TempDir tmp;
  std::string dir = compileTinyGptWith(2, tmp, "--bf16", /*dropout=*/true);
  auto plans = loadPlanSet(dir);
  ASSERT_TRUE(bool(plans)) << llvm::toString(plans.takeError());
  Trajectory a = runTrajectory(*plans, "cpu", false, 3), b = runTrajectory(*plans, "cpu", false, 3);
  ASSERT_EQ(a.losses.size(), 2u);
  for (size_t r = 0; r < 2; ++r) {
    ASSERT_EQ(a.losses[r].size(), 3u);
    EXPECT_EQ(a.losses[r], b.losses[r]);
    EXPECT_EQ(a.params[r], b.params[r]);
    EXPECT_NE(a.losses[r][1], a.losses[r][2]);
    EXPECT_TRUE(std::isfinite(a.losses[r][2]));
  }
  EXPECT_EQ(a.losses[0], a.losses[1]) << "tp ranks report the same loss";
}

INSTANTIATE_TEST_SUITE_P(TinyGpt, CudaGraphTest,
                         ::testing::Values(std::make_tuple(1, ""), std::make_tuple(2, ""),
                                           std::make_tuple(1, "--bf16"), std::make_tuple(2, "--bf16")));

} // namespace
