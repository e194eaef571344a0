//===- gpu_throughput.cpp - training throughput of a plan on the CUDA backend ===//
//
// Usage: gpu_throughput PLAN_DIR [--steps N] [--warmup N] [--peak-tflops P] [--cuda-graphs 1|0]
// Runs N timed training steps (after the warm-up steps) of a world-1 plan on the CUDA backend with seeded weights
// and random tokens, and prints one line per figure:
//   tokens/s, ms/step, model TFLOP/s and MFU against --peak-tflops (default: 989, H100 SXM dense bf16/f16 tensor
//   cores, for a plan with 16-bit steps (megc --bf16 / --fp16, what scripts/gpu.sh compiles by default); 67, H100
//   SXM dense fp32 without tensor cores, for an fp32 plan). The precision is printed.
//   --cuda-graphs 0 runs every step without CUDA graph capture (default 1: the backend captures the training step
//   after the first step and replays it; the timed steps are replays when --warmup is at least 2).
// FLOPs per step = tokens * (6 N + 12 L h s)   (N parameters, L layers, h hidden, s sequence: the matmul FLOPs of
// forward + backward, PaLM appendix B's formula), printed with the numbers plugged in. Each step ends with a read of
// the loss, which synchronizes: the timing covers whole steps.
//
//===----------------------------------------------------------------------===//
#include "runtime/exec/Backend.h"
#include "runtime/train/BackendRegistry.h"
#include "runtime/comm/Communicator.h"
#include "runtime/exec/Executor.h"
#include "runtime/train/Init.h"
#include "runtime/plan/Plan.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>

using namespace meg;
using namespace meg::runtime;

static int fail(const llvm::Twine &what) {
  llvm::errs() << "gpu_throughput: error: " << what << "\n";
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return fail("usage: gpu_throughput PLAN_DIR [--steps N] [--warmup N] [--peak-tflops P] [--cuda-graphs 1|0]");
  std::string dir = argv[1];
  int steps = 10, warmup = 2;
  double peak = 0; // 0: by the plan's precision
  bool graphs = true;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--steps")
      steps = std::atoi(argv[i + 1]);
    else if (flag == "--warmup")
      warmup = std::atoi(argv[i + 1]);
    else if (flag == "--peak-tflops")
      peak = std::atof(argv[i + 1]);
    else if (flag == "--cuda-graphs")
      graphs = std::atoi(argv[i + 1]) != 0;
    else
      return fail("unknown flag '" + flag + "'");
  }
  auto plans = loadPlanSet(dir);
  if (!plans)
    return fail(llvm::toString(plans.takeError()));
  if (plans->size() != 1)
    return fail("the benchmark runs world-1 plans (compile with --tp 1 --dp 1)");
  const LoadedPlan &plan = (*plans)[0];
  // The plan's compute precision: the 16-bit dtype of its steps (the mixed-precision pass), else fp32.
  std::string precision = "fp32";
  for (const PlanStep &step : plan.steps)
    for (const std::vector<TensorSlot> *slots : {&step.operands, &step.results})
      for (const TensorSlot &t : *slots)
        if (t.dtype == DType::BF16 || t.dtype == DType::F16)
          precision = t.dtype == DType::BF16 ? "bf16" : "fp16";
  if (peak <= 0)
    peak = precision == "fp32" ? 67.0 : 989.0;
  BackendPlace place;
  place.cudaGraphs = graphs;
  auto backend = createBackend("cuda", place);
  if (!backend)
    return fail(llvm::toString(backend.takeError()));
  if (auto err = (*backend)->prepare(plan))
    return fail(llvm::toString(std::move(err)));
  for (size_t i = 0; i < plan.params.size(); ++i)
    (*backend)->writeParam(i, initParamShard(plan.params[i], 1));
  std::mt19937 rng(1);
  int64_t tokens = 0, seq = 0;
  for (size_t i = 0; i < plan.inputs.size(); ++i) {
    std::vector<int32_t> ids(size_t(plan.inputs[i].numel()));
    for (int32_t &id : ids)
      id = int32_t(rng() % 1000);
    (*backend)->writeInput(i, llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(ids.data()), ids.size() * 4));
    if (plan.inputs[i].name == "input_ids" && plan.inputs[i].shape.size() == 2) {
      tokens = plan.inputs[i].numel();
      seq = plan.inputs[i].shape[1];
    }
  }
  int64_t params = 0;
  for (const PlanParam &p : plan.params)
    params += p.globalNumel();
  int64_t layers = 0, hidden = 0;
  if (auto model = llvm::json::parse(plan.model)) {
    if (const llvm::json::Object *o = model->getAsObject()) {
      layers = o->getInteger("n_layer").getValueOr(o->getInteger("num_hidden_layers").getValueOr(0));
      hidden = o->getInteger("n_embd").getValueOr(o->getInteger("hidden_size").getValueOr(0));
    }
  } else {
    llvm::consumeError(model.takeError());
  }

  SingleRankCommunicator comm;
  Executor exec(plan, **backend, comm);
  double seconds = 0;
  float loss = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    StepContext ctx;
    ctx.seed = 1;
    ctx.step = uint32_t(s);
    auto start = std::chrono::steady_clock::now();
    if (auto err = exec.run(ctx))
      return fail(llvm::toString(std::move(err)));
    auto value = exec.scalarOutput("loss");
    if (!value)
      return fail(llvm::toString(value.takeError()));
    loss = *value;
    if (s >= warmup)
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  double perStep = seconds / std::max(steps, 1);
  double flopsPerToken = 6.0 * double(params) + 12.0 * double(layers) * double(hidden) * double(seq);
  double tflops = double(tokens) * flopsPerToken / perStep / 1e12;
  llvm::outs() << llvm::formatv("plan: {0} ({1} params, {2} tokens/step, last loss {3:f4})\n", dir, params, tokens,
                                loss);
  llvm::outs() << llvm::formatv("precision: {0}, cuda graphs: {1}\n", precision, graphs ? "on" : "off");
  llvm::outs() << llvm::formatv("flops/step = tokens * (6 N + 12 L h s) = {0} * (6 * {1} + 12 * {2} * {3} * {4}) = "
                                "{5:e3}\n",
                                tokens, params, layers, hidden, seq, double(tokens) * flopsPerToken);
  llvm::outs() << llvm::formatv("ms/step: {0:f2}\n", perStep * 1e3);
  llvm::outs() << llvm::formatv("tokens/s: {0:f1}\n", double(tokens) / perStep);
  llvm::outs() << llvm::formatv("TFLOP/s: {0:f2}\n", tflops);
  llvm::outs() << llvm::formatv("MFU: {0:f1}% of {1} TFLOP/s\n", 100.0 * tflops / peak, peak);
  return 0;
}
