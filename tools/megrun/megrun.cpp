//===- megrun.cpp - the meg plan executor ------------------------------------===//
//
// megrun PLAN_DIR: load and verify the plan set -> create a backend per rank -> init or load weights -> run steps
// over batches -> log, dump, save. A thin driver: everything it does is a runtime/ library call.
// Every user error is one line `megrun: error: <what>` and exit code 1; output files are written atomically and only
// once everything before them has succeeded.
//
//===----------------------------------------------------------------------===//
#include "runtime/AtomicFile.h"
#include "runtime/BatchData.h"
#include "runtime/Checkpoint.h"
#include "runtime/Plan.h"
#include "runtime/Safetensors.h"
#include "runtime/Generate.h"
#include "runtime/Session.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdio>

using namespace meg;
using namespace meg::runtime;
namespace cl = llvm::cl;

static cl::OptionCategory megrunCategory("megrun options");

static cl::opt<std::string> planDir(cl::Positional, cl::desc("PLAN_DIR"), cl::Required, cl::cat(megrunCategory));
static cl::opt<std::string> backendName("backend", cl::desc("Backend: cpu, or cuda where built with it"),
                                        cl::value_desc("cpu|cuda"), cl::init("cpu"), cl::cat(megrunCategory));
static cl::opt<std::string> ranksMode("ranks", cl::desc("How ranks run: threads (one process); mpi arrives later"),
                                      cl::value_desc("threads|mpi"), cl::init("threads"), cl::cat(megrunCategory));
// Numbers are parsed here rather than by cl::opt<int>, whose value errors bypass the one-line error format.
static cl::opt<std::string> stepsText("steps",
                              cl::desc("Steps to run (default 1); with --resume: the step to reach in total, "
                                       "counting the checkpoint's. 0 runs no step (with --save-weights: the seeded "
                                       "initial weights)"),
                              cl::value_desc("N"), cl::init("1"), cl::cat(megrunCategory));
static cl::opt<std::string> dataPath("data",
                                     cl::desc("Token data: a token file (MEGTOK01) or a text file (byte-level ids, "
                                              "needs vocab >= 256); default: seeded random tokens"),
                                     cl::value_desc("FILE"), cl::cat(megrunCategory));
static cl::opt<std::string> seedText("seed", cl::desc("Seed of init, data order and dropout (default 1234)"),
                                     cl::value_desc("S"), cl::init("1234"), cl::cat(megrunCategory));
static cl::opt<std::string> logPath("log",
                                    cl::desc("Write one JSON object per step, as it ends (with --resume: after the "
                                             "checkpoint's steps)"),
                                    cl::value_desc("FILE.jsonl"), cl::cat(megrunCategory));
static cl::opt<std::string> loadWeightsPath("load-weights",
                                            cl::desc("Load full weights (Hugging Face names and shapes)"),
                                            cl::value_desc("W.safetensors"), cl::cat(megrunCategory));
static cl::opt<std::string> saveWeightsPath("save-weights",
                                            cl::desc("Save full weights (Hugging Face names and shapes) and "
                                                     "config.json beside them"),
                                            cl::value_desc("W.safetensors"), cl::cat(megrunCategory));
static cl::opt<std::string> dumpDir("dump",
                                    cl::desc("After the first step write batch.safetensors and loss.json (parity)"),
                                    cl::value_desc("DIR"), cl::cat(megrunCategory));
static cl::opt<bool> evalMode("eval", cl::desc("Evaluate on the valid split instead of running steps"),
                              cl::cat(megrunCategory));
static cl::opt<std::string> evalBatchesText("eval-batches",
                                            cl::desc("Batches of the valid split to evaluate (default 8)"),
                                            cl::value_desc("N"), cl::init("8"), cl::cat(megrunCategory));
static cl::opt<std::string> validFractionText("valid-fraction",
                                              cl::desc("Fraction of the data (at its end) held out as the valid "
                                                       "split (default 0.1)"),
                                              cl::value_desc("F"), cl::init("0.1"), cl::cat(megrunCategory));
static cl::opt<bool> noDropout("no-dropout", cl::desc("Run steps with dropout off (as in evaluation), for parity"),
                               cl::cat(megrunCategory));
static cl::opt<std::string> generatePrompt("generate",
                                           cl::desc("Greedy-sample text after PROMPT (a GPT infer plan: megc --mode "
                                                    "infer --micro-batch 1), byte-level tokens"),
                                           cl::value_desc("PROMPT"), cl::cat(megrunCategory));
static cl::opt<int> maxNewTokens("max-new-tokens", cl::desc("Tokens --generate adds (default 100)"), cl::init(100),
                                 cl::cat(megrunCategory));
static cl::opt<std::string> saveCkpt("save",
                                     cl::desc("Write a checkpoint (every rank's parameter and optimizer state shards, "
                                              "step, seed, data position, plan identity; runtime/Checkpoint.h) "
                                              "at the end, and every --save-interval steps"),
                                     cl::value_desc("CKPT"), cl::cat(megrunCategory));
static cl::opt<std::string> saveIntervalText("save-interval",
                                             cl::desc("With --save: also checkpoint after every K steps (default 0: "
                                                      "only at the end)"),
                                             cl::value_desc("K"), cl::init("0"), cl::cat(megrunCategory));
static cl::opt<std::string> resumeCkpt("resume",
                                       cl::desc("Continue the run a checkpoint of the same plan set holds: --steps N "
                                                "then means up to step N in total, the seed is the checkpoint's, and "
                                                "--log keeps the checkpoint's steps and appends the rest"),
                                       cl::value_desc("CKPT"), cl::cat(megrunCategory));
static cl::opt<bool> dumpEveryStep("dump-every-step",
                                   cl::desc("With --dump: write DIR/step-<t>/ (batch, loss, gradients) for every step "
                                            "t instead of DIR/ for the first"),
                                   cl::cat(megrunCategory));

static int fail(const llvm::Twine &what) {
  llvm::errs() << "megrun: error: " << what << "\n";
  return 1;
}
static int fail(llvm::Error err) { return fail(llvm::toString(std::move(err))); }

static std::string formatNumber(const char *format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

/// {"loss": x} with the float loss in full double precision.
static std::string lossJson(double loss) { return "{\"loss\": " + formatNumber("%.17g", loss) + "}\n"; }

static llvm::Error writeDump(llvm::StringRef dir, const GlobalBatch &batch, std::optional<double> loss,
                             Session &session) {
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return llvm::createStringError(ec, dir + ": cannot create directory: " + ec.message());
  SafetensorsWriter writer;
  for (const auto &[name, t] : batch.tensors)
    if (auto err = writer.addI32(name, t.shape, t.data))
      return err;
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, "batch.safetensors");
  if (auto err = writer.write(path))
    return err;
  if (!loss)
    return llvm::Error::success();
  path = dir;
  llvm::sys::path::append(path, "loss.json");
  if (auto err = writeFileAtomically(path, llvm::StringRef(lossJson(*loss))))
    return err;
  if (session.plan().mode != "train")
    return llvm::Error::success();
  path = dir;
  llvm::sys::path::append(path, "grads.safetensors");
  return session.saveGradients(path);
}

int main(int argc, char **argv) {
  cl::HideUnrelatedOptions(megrunCategory);
  std::string clErrors;
  llvm::raw_string_ostream clErrs(clErrors);
  if (!cl::ParseCommandLineOptions(argc, argv,
                                   "meg plan executor: runs the per-rank plans that megc --emit plan wrote\n\n"
                                   "  Forward only for now: training (backward + optimizer) arrives with autodiff.\n",
                                   &clErrs)) {
    llvm::StringRef first = llvm::StringRef(clErrs.str()).split('\n').first.trim();
    first.consume_front("megrun: ");
    return fail(first);
  }

  if (backendName != "cpu" && backendName != "cuda")
    return fail("unknown --backend '" + backendName + "' (expected cpu or cuda)");
  if (!llvm::is_contained(llvm::split(availableBackends(), ", "), llvm::StringRef(backendName)))
    return fail("--backend " + backendName + ": this megrun was built without it (it has: " + availableBackends() +
                ")");
  if (ranksMode != "threads" && ranksMode != "mpi")
    return fail("unknown --ranks '" + ranksMode + "' (expected threads or mpi)");
  if (ranksMode == "mpi")
    return fail("--ranks mpi is not available yet (use --ranks threads)");
  int64_t steps, evalBatches, saveInterval;
  uint64_t seed;
  double validFraction;
  if (llvm::StringRef(stepsText).getAsInteger(10, steps))
    return fail("--steps: '" + stepsText + "' is not an integer");
  if (llvm::StringRef(saveIntervalText).getAsInteger(10, saveInterval) || saveInterval < 0)
    return fail("--save-interval: '" + saveIntervalText + "' is not a non-negative integer");
  if (llvm::StringRef(evalBatchesText).getAsInteger(10, evalBatches))
    return fail("--eval-batches: '" + evalBatchesText + "' is not an integer");
  if (llvm::StringRef(seedText).getAsInteger(10, seed))
    return fail("--seed: '" + seedText + "' is not a non-negative integer");
  if (llvm::StringRef(validFractionText).getAsDouble(validFraction))
    return fail("--valid-fraction: '" + validFractionText + "' is not a number");
  if (steps < 0)
    return fail(llvm::formatv("--steps must be >= 0 (got {0})", steps));
  if (evalBatches < 1)
    return fail(llvm::formatv("--eval-batches must be >= 1 (got {0})", evalBatches));
  if (!(validFraction >= 0 && validFraction < 1))
    return fail(llvm::formatv("--valid-fraction must be in [0, 1) (got {0})", validFractionText));
  if (evalMode && validFraction == 0)
    return fail("--eval needs a valid split (--valid-fraction > 0)");
  if (!loadWeightsPath.empty() && !saveWeightsPath.empty() && loadWeightsPath == saveWeightsPath)
    return fail("--load-weights and --save-weights name the same file");

  if (!resumeCkpt.empty() && !loadWeightsPath.empty())
    return fail("--resume and --load-weights both give the weights (use one)");
  if (!saveCkpt.empty() && (evalMode || generatePrompt.getNumOccurrences()))
    return fail("--save: only training steps are checkpointed (not --eval or --generate)");

  auto plans = loadPlanSet(planDir);
  if (!plans)
    return fail(plans.takeError());

  // Checkpoints: the plan set's identity, and the checkpoint to resume (verified before anything runs).
  PlanSetIdentity planId;
  std::optional<Checkpoint> resumeFrom;
  int64_t firstStep = 0;
  if (!saveCkpt.empty() || !resumeCkpt.empty()) {
    auto id = planSetIdentity(*plans);
    if (!id)
      return fail(id.takeError());
    planId = *id;
  }
  if (!resumeCkpt.empty()) {
    auto loaded = Checkpoint::load(resumeCkpt);
    if (!loaded)
      return fail(loaded.takeError());
    if (auto err = loaded->checkPlanSet(planId))
      return fail(std::move(err));
    if (seedText.getNumOccurrences() && loaded->state().seed != seed)
      return fail(llvm::formatv("--seed {0} differs from the seed {1} of checkpoint {2}", seed,
                                loaded->state().seed, resumeCkpt));
    seed = loaded->state().seed;
    firstStep = int64_t(loaded->state().step);
    if (steps < firstStep && !evalMode && !generatePrompt.getNumOccurrences())
      return fail(llvm::formatv("--steps {0}: checkpoint {1} is already at step {2}", steps, resumeCkpt, firstStep));
    resumeFrom = std::move(*loaded);
  }

  // The data source (checked before anything runs or is written).
  std::unique_ptr<BatchSource> source;
  if (evalMode || steps > firstStep) {
    DataOptions options;
    options.path = dataPath;
    options.seed = seed;
    options.split = evalMode ? DataSplit::Valid : DataSplit::Train;
    options.validFraction = validFraction;
    auto created = BatchSource::create((*plans)[0], options);
    if (!created)
      return fail(created.takeError());
    source = std::move(*created);
    if (resumeFrom && !evalMode && resumeFrom->state().dataWindows &&
        resumeFrom->state().dataWindows != source->windowsPerEpoch())
      return fail(llvm::formatv("{0}: the checkpoint's training data has {1} windows per epoch, --data gives {2} "
                                "(other data or --valid-fraction)",
                                resumeCkpt, resumeFrom->state().dataWindows, source->windowsPerEpoch()));
  }

  auto session = Session::create(std::move(*plans), backendName);
  if (!session)
    return fail(session.takeError());
  Session &s = **session;
  if (resumeFrom) {
    if (auto err = resumeFrom->restore(s))
      return fail(std::move(err));
    resumeFrom.reset();
  } else if (!loadWeightsPath.empty()) {
    if (auto err = s.loadWeights(loadWeightsPath))
      return fail(std::move(err));
  } else if (auto err = s.initWeights(seed)) {
    return fail(std::move(err));
  }

  if (generatePrompt.getNumOccurrences()) {
    if (maxNewTokens < 1)
      return fail("--max-new-tokens must be positive (got " + llvm::Twine(int(maxNewTokens)) + ")");
    auto text = generateGreedy(s, generatePrompt, maxNewTokens);
    if (!text)
      return fail(text.takeError());
    llvm::outs() << "sample: " << *text << "\n";
    return 0;
  }

  if (evalMode) {
    auto result = evaluate(s, *source, evalBatches, seed);
    if (!result)
      return fail(result.takeError());
    llvm::outs() << llvm::formatv("eval: loss {0:F6} ppl {1:F4} over {2} tokens ({3:F1} tokens/s)\n", result->loss,
                                  result->perplexity, result->tokens,
                                  double(result->batches * source->microBatch() * source->seqLen()) /
                                      std::max(result->seconds, 1e-9));
  }

  // The log is written as the steps run (a killed run keeps its finished steps); a resumed run appends.
  std::unique_ptr<StepLog> log;
  if (!logPath.empty()) {
    auto opened = StepLog::open(logPath, resumeCkpt.empty() ? std::nullopt : std::optional<uint64_t>(firstStep));
    if (!opened)
      return fail(opened.takeError());
    log = std::move(*opened);
  }
  auto checkpoint = [&](int64_t done) -> llvm::Error {
    CheckpointState state;
    state.step = state.dataStep = uint64_t(done);
    state.seed = seed;
    state.dataWindows = source ? source->windowsPerEpoch() : 0;
    return saveCheckpoint(saveCkpt, s, planId, state);
  };
  int64_t savedStep = resumeCkpt == saveCkpt ? firstStep : -1;
  for (int64_t t = firstStep; !evalMode && t < steps; ++t) {
    auto batch = source->batch(uint64_t(t));
    if (!batch)
      return fail(batch.takeError());
    if (auto err = s.feed(*batch))
      return fail(std::move(err));
    StepContext ctx;
    ctx.seed = seed;
    ctx.step = uint32_t(t);
    ctx.dropout = !noDropout;
    auto start = std::chrono::steady_clock::now();
    auto loss = s.forward(ctx);
    if (!loss)
      return fail(loss.takeError());
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double tokensPerSecond = double(source->microBatch() * source->seqLen()) / std::max(seconds, 1e-9);
    std::string lossText = *loss ? formatNumber("%.9g", **loss) : "null";
    llvm::outs() << llvm::formatv("step {0}: loss {1} ({2:F1} tokens/s)\n", t + 1, lossText, tokensPerSecond);
    std::optional<float> lrValue = s.scalarOutput("lr"), gradNorm = s.scalarOutput("grad_norm");
    if (log)
      if (auto err = log->append("{\"step\":" + std::to_string(t + 1) + ",\"loss\":" + lossText +
                                 ",\"lr\":" + formatNumber("%.9g", lrValue.value_or(0.0f)) +
                                 (gradNorm ? ",\"grad_norm\":" + formatNumber("%.6g", *gradNorm) : std::string()) +
                                 ",\"tokens_per_s\":" + formatNumber("%.1f", tokensPerSecond) + "}\n"))
        return fail(std::move(err));
    if (!dumpDir.empty() && (t == 0 || dumpEveryStep)) {
      llvm::SmallString<256> dir(dumpDir);
      if (dumpEveryStep)
        llvm::sys::path::append(dir, "step-" + std::to_string(t + 1));
      if (auto err = writeDump(dir, *batch, *loss, s))
        return fail(std::move(err));
    }
    if (!saveCkpt.empty() && saveInterval > 0 && (t + 1) % saveInterval == 0) {
      if (auto err = checkpoint(t + 1))
        return fail(std::move(err));
      savedStep = t + 1;
    }
  }
  if (!saveCkpt.empty() && savedStep != steps)
    if (auto err = checkpoint(steps))
      return fail(std::move(err));
  if (!saveWeightsPath.empty())
    if (auto err = s.saveWeights(saveWeightsPath))
      return fail(std::move(err));
  return 0;
}
