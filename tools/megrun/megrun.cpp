//===- megrun.cpp - the meg plan executor ------------------------------------===//
//
// megrun PLAN_DIR: load and verify the plan set -> create a backend per hosted rank -> init or load weights -> run
// steps over batches (progress line, periodic evaluation) -> log, dump, save. A thin driver: everything it does is a
// runtime/ library call. Ranks run as threads of this process, or one per MPI process (`mpirun -np N megrun PLAN_DIR
// --ranks mpi`, runtime/train/Job.h): then every process builds the same global batches and feeds its shard, and the
// root (rank 0) alone prints and writes outputs, the other processes' shards gathered to it.
// Every user error is one line `megrun: error: <what>` (under MPI: from one process only) and exit code 1; output
// files are written atomically and only once everything before them has succeeded.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/AtomicFile.h"
#include "runtime/data/BatchSource.h"
#include "runtime/train/Checkpoint.h"
#include "runtime/train/Generate.h"
#include "runtime/train/Job.h"
#include "runtime/plan/Plan.h"
#include "runtime/train/Progress.h"
#include "runtime/io/Safetensors.h"
#include "runtime/train/BackendRegistry.h"
#include "runtime/train/Session.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace meg;
using namespace meg::runtime;
namespace cl = llvm::cl;

static cl::OptionCategory megrunCategory("megrun options");

static cl::opt<std::string> planDir(cl::Positional, cl::desc("PLAN_DIR"), cl::Required, cl::cat(megrunCategory));
static cl::opt<std::string> backendName("backend", cl::desc("Backend: cpu, or cuda where built with it"),
                                        cl::value_desc("cpu|cuda"), cl::init("cpu"), cl::cat(megrunCategory));
static cl::opt<std::string> ranksMode("ranks",
                                      cl::desc("How ranks run: threads (every rank in this process), or mpi (one "
                                               "process per rank: mpirun -np <dp*tp> megrun PLAN_DIR --ranks mpi; "
                                               "rank 0 prints and writes every output)"),
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
                                    cl::desc("Write one JSON object per step, as it ends: step, loss, lr, grad_norm, "
                                             "tokens_per_s, and val_loss and val_ppl on the steps --eval-interval "
                                             "evaluated (with --resume: after the checkpoint's steps)"),
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
static cl::opt<std::string> evalIntervalText("eval-interval",
                                             cl::desc("While training, evaluate on the valid split (--eval-batches "
                                                      "batches, dropout off; training is unaffected) after every K "
                                                      "steps and after the last: prints `eval at step N: loss X ppl "
                                                      "Y` and adds val_loss and val_ppl to the step's --log object "
                                                      "(default 0: never)"),
                                             cl::value_desc("K"), cl::init("0"), cl::cat(megrunCategory));
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
                                              "step, seed, data position, plan identity; runtime/train/Checkpoint.h) "
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
/// Prints `err` unless another process of the job reports it.
static int fail(llvm::Error err) {
  if (err.isA<OtherRankFailed>()) {
    llvm::consumeError(std::move(err));
    return 1;
  }
  return fail(llvm::toString(std::move(err)));
}
/// An error at a point the job's other processes may not reach (they may wait in a collective): print, end them all.
static int failHard(Job &job, llvm::Error err) {
  fail(std::move(err));
  job.abort(1);
  return 1;
}
/// Errors found before the job exists (the command line) are the same in every process an MPI launcher started:
/// only its rank 0 (or a process no launcher started) prints.
static int failBeforeJob(const llvm::Twine &what) {
  for (const char *var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char *rank = std::getenv(var); rank && llvm::StringRef(rank) != "0")
      return 1;
  return fail(what);
}

static llvm::Error error(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

static std::string formatNumber(const char *format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

/// {"loss": x} with the float loss in full double precision.
static std::string lossJson(double loss) { return "{\"loss\": " + formatNumber("%.17g", loss) + "}\n"; }

/// The numeric flags, parsed and checked.
struct Numbers {
  int64_t steps = 1, evalBatches = 8, saveInterval = 0, evalInterval = 0;
  uint64_t seed = 0;
  double validFraction = 0.1;
};

static llvm::Expected<Numbers> parseNumbers() {
  Numbers n;
  if (llvm::StringRef(stepsText).getAsInteger(10, n.steps))
    return error("--steps: '" + stepsText + "' is not an integer");
  if (llvm::StringRef(saveIntervalText).getAsInteger(10, n.saveInterval) || n.saveInterval < 0)
    return error("--save-interval: '" + saveIntervalText + "' is not a non-negative integer");
  if (llvm::StringRef(evalIntervalText).getAsInteger(10, n.evalInterval) || n.evalInterval < 0)
    return error("--eval-interval: '" + evalIntervalText + "' is not a non-negative integer");
  if (llvm::StringRef(evalBatchesText).getAsInteger(10, n.evalBatches))
    return error("--eval-batches: '" + evalBatchesText + "' is not an integer");
  if (llvm::StringRef(seedText).getAsInteger(10, n.seed))
    return error("--seed: '" + seedText + "' is not a non-negative integer");
  if (llvm::StringRef(validFractionText).getAsDouble(n.validFraction))
    return error("--valid-fraction: '" + validFractionText + "' is not a number");
  if (n.steps < 0)
    return error(llvm::formatv("--steps must be >= 0 (got {0})", n.steps));
  if (n.evalBatches < 1)
    return error(llvm::formatv("--eval-batches must be >= 1 (got {0})", n.evalBatches));
  if (!(n.validFraction >= 0 && n.validFraction < 1))
    return error(llvm::formatv("--valid-fraction must be in [0, 1) (got {0})", validFractionText));
  if (evalMode && n.validFraction == 0)
    return error("--eval needs a valid split (--valid-fraction > 0)");
  if (n.evalInterval > 0 && n.validFraction == 0)
    return error("--eval-interval needs a valid split (--valid-fraction > 0)");
  if (!loadWeightsPath.empty() && !saveWeightsPath.empty() && loadWeightsPath == saveWeightsPath)
    return error("--load-weights and --save-weights name the same file");
  if (!resumeCkpt.empty() && !loadWeightsPath.empty())
    return error("--resume and --load-weights both give the weights (use one)");
  if (!saveCkpt.empty() && (evalMode || generatePrompt.getNumOccurrences()))
    return error("--save: only training steps are checkpointed (not --eval or --generate)");
  if (generatePrompt.getNumOccurrences() && maxNewTokens < 1)
    return error("--max-new-tokens must be positive (got " + llvm::Twine(int(maxNewTokens)) + ")");
  return n;
}

/// A batch source of `plan` over `split` (checked before anything runs or is written).
static llvm::Expected<std::unique_ptr<BatchSource>> makeSource(const LoadedPlan &plan, const Numbers &n,
                                                               DataSplit split) {
  DataOptions options;
  options.path = dataPath;
  options.seed = n.seed;
  options.split = split;
  options.validFraction = n.validFraction;
  return BatchSource::create(plan, options);
}

/// Collective: --dump's files for one step; the root writes them.
static llvm::Error writeDump(Job &job, llvm::StringRef dir, const GlobalBatch &batch, std::optional<double> loss,
                             Session &session) {
  auto rootFiles = [&]() -> llvm::Error {
    if (!job.isRoot())
      return llvm::Error::success();
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
    return writeFileAtomically(path, llvm::StringRef(lossJson(*loss)));
  };
  if (auto err = job.agree(rootFiles()))
    return err;
  if (!loss || session.plan().mode != "train")
    return llvm::Error::success();
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, "grads.safetensors");
  return job.agree(session.saveGradients(path));
}

/// Everything after the job exists. Setup errors are agreed between the processes (every process reaches each
/// check); errors inside steps end the job (failHard).
static int run(Job &job) {
  auto numbers = parseNumbers();
  if (auto err = job.agree(numbers.takeError()))
    return fail(std::move(err));
  Numbers n = *numbers;
  bool root = job.isRoot();

  auto plans = loadPlanSet(planDir);
  if (auto err = job.agree(plans.takeError()))
    return fail(std::move(err));

  // Checkpoints: the plan set's identity, and the checkpoint to resume (verified before anything runs).
  PlanSetIdentity planId;
  std::optional<Checkpoint> resumeFrom;
  int64_t firstStep = 0;
  auto checkResume = [&]() -> llvm::Error {
    if (!saveCkpt.empty() || !resumeCkpt.empty()) {
      auto id = planSetIdentity(*plans);
      if (!id)
        return id.takeError();
      planId = *id;
    }
    if (resumeCkpt.empty())
      return llvm::Error::success();
    auto loaded = Checkpoint::load(resumeCkpt);
    if (!loaded)
      return loaded.takeError();
    if (auto err = loaded->checkPlanSet(planId))
      return err;
    if (seedText.getNumOccurrences() && loaded->state().seed != n.seed)
      return error(llvm::formatv("--seed {0} differs from the seed {1} of checkpoint {2}", n.seed,
                                 loaded->state().seed, resumeCkpt));
    n.seed = loaded->state().seed;
    firstStep = int64_t(loaded->state().step);
    if (n.steps < firstStep && !evalMode && !generatePrompt.getNumOccurrences())
      return error(llvm::formatv("--steps {0}: checkpoint {1} is already at step {2}", n.steps, resumeCkpt,
                                 firstStep));
    resumeFrom = std::move(*loaded);
    return llvm::Error::success();
  };
  if (auto err = job.agree(checkResume()))
    return fail(std::move(err));

  // The data sources: training batches, and the valid split for --eval and --eval-interval.
  std::unique_ptr<BatchSource> source, validSource;
  bool training = !evalMode && !generatePrompt.getNumOccurrences() && n.steps > firstStep;
  auto makeSources = [&]() -> llvm::Error {
    if (evalMode || (training && n.evalInterval > 0)) {
      auto created = makeSource((*plans)[0], n, DataSplit::Valid);
      if (!created)
        return created.takeError();
      validSource = std::move(*created);
    }
    if (!training)
      return llvm::Error::success();
    auto created = makeSource((*plans)[0], n, DataSplit::Train);
    if (!created)
      return created.takeError();
    source = std::move(*created);
    if (resumeFrom && resumeFrom->state().dataWindows &&
        resumeFrom->state().dataWindows != source->windowsPerEpoch())
      return error(llvm::formatv("{0}: the checkpoint's training data has {1} windows per epoch, --data gives {2} "
                                 "(other data or --valid-fraction)",
                                 resumeCkpt, resumeFrom->state().dataWindows, source->windowsPerEpoch()));
    return llvm::Error::success();
  };
  if (auto err = job.agree(makeSources()))
    return fail(std::move(err));

  auto session = job.createSession(std::move(*plans), backendName, planDir);
  if (auto err = job.agree(session.takeError()))
    return fail(std::move(err));
  Session &s = **session;
  auto initialWeights = [&]() -> llvm::Error {
    if (resumeFrom) {
      auto err = resumeFrom->restore(s);
      resumeFrom.reset();
      return err;
    }
    if (!loadWeightsPath.empty())
      return s.loadWeights(loadWeightsPath);
    return s.initWeights(n.seed);
  };
  if (auto err = job.agree(initialWeights()))
    return fail(std::move(err));

  if (generatePrompt.getNumOccurrences()) {
    auto text = generateGreedy(s, generatePrompt, maxNewTokens);
    if (!text)
      return failHard(job, text.takeError());
    if (root)
      llvm::outs() << "sample: " << *text << "\n";
    return 0;
  }

  if (evalMode) {
    auto result = evaluate(s, *validSource, n.evalBatches, n.seed);
    if (!result)
      return failHard(job, result.takeError());
    if (root)
      llvm::outs() << llvm::formatv("eval: loss {0:F6} ppl {1:F4} over {2} tokens ({3:F1} tokens/s)\n",
                                    result->loss, result->perplexity, result->tokens,
                                    double(result->batches * validSource->microBatch() * validSource->seqLen()) /
                                        std::max(result->seconds, 1e-9));
  }

  // The log is written as the steps run (a killed run keeps its finished steps); a resumed run appends.
  std::unique_ptr<StepLog> log;
  auto openLog = [&]() -> llvm::Error {
    if (!root || logPath.empty())
      return llvm::Error::success();
    auto opened = StepLog::open(logPath, resumeCkpt.empty() ? std::nullopt : std::optional<uint64_t>(firstStep));
    if (!opened)
      return opened.takeError();
    log = std::move(*opened);
    return llvm::Error::success();
  };
  if (auto err = job.agree(openLog()))
    return fail(std::move(err));
  auto checkpoint = [&](int64_t done) -> llvm::Error {
    CheckpointState state;
    state.step = state.dataStep = uint64_t(done);
    state.seed = n.seed;
    state.dataWindows = source ? source->windowsPerEpoch() : 0;
    return job.agree(saveCheckpoint(saveCkpt, s, planId, state));
  };

  int64_t savedStep = resumeCkpt == saveCkpt ? firstStep : -1;
  // In place on a terminal; not under mpirun, which hands its processes a pseudo-terminal whatever its own output is.
  ProgressLine progress(llvm::outs(), firstStep, n.steps, !job.isMpi() && llvm::outs().is_displayed());
  for (int64_t t = firstStep; training && t < n.steps; ++t) {
    auto batch = source->batch(uint64_t(t));
    if (!batch)
      return failHard(job, batch.takeError());
    if (auto err = s.feed(*batch))
      return failHard(job, std::move(err));
    StepContext ctx;
    ctx.seed = n.seed;
    ctx.step = uint32_t(t);
    ctx.dropout = !noDropout;
    auto start = std::chrono::steady_clock::now();
    auto loss = s.forward(ctx);
    if (!loss)
      return failHard(job, loss.takeError());
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double tokensPerSecond = double(source->microBatch() * source->seqLen()) / std::max(seconds, 1e-9);
    std::string lossText = *loss ? formatNumber("%.9g", **loss) : "null";
    // Read before anything else runs on the backends (an evaluation overwrites the step's outputs).
    std::optional<float> lrValue = s.scalarOutput("lr"), gradNorm = s.scalarOutput("grad_norm");
    if (root)
      progress.step(t + 1, lossText, lrValue.value_or(0.0f), tokensPerSecond);
    std::string record = "{\"step\":" + std::to_string(t + 1) + ",\"loss\":" + lossText +
                         ",\"lr\":" + formatNumber("%.9g", lrValue.value_or(0.0f)) +
                         (gradNorm ? ",\"grad_norm\":" + formatNumber("%.6g", *gradNorm) : std::string()) +
                         ",\"tokens_per_s\":" + formatNumber("%.1f", tokensPerSecond);
    if (!dumpDir.empty() && (t == 0 || dumpEveryStep)) {
      llvm::SmallString<256> dir(dumpDir);
      if (dumpEveryStep)
        llvm::sys::path::append(dir, "step-" + std::to_string(t + 1));
      if (auto err = writeDump(job, dir, *batch, *loss, s))
        return fail(std::move(err));
    }
    // Evaluation runs forward steps only, dropout off, on the valid split: parameters, optimizer state, the
    // training batches and dropout masks (keyed by seed and step) are as without it.
    if (n.evalInterval > 0 && ((t + 1) % n.evalInterval == 0 || t + 1 == n.steps)) {
      auto result = evaluate(s, *validSource, n.evalBatches, n.seed);
      if (!result)
        return failHard(job, result.takeError());
      if (root) {
        progress.endLine();
        llvm::outs() << llvm::formatv("eval at step {0}: loss {1:F6} ppl {2:F4}\n", t + 1, result->loss,
                                      result->perplexity);
      }
      record += ",\"val_loss\":" + formatNumber("%.9g", result->loss) +
                ",\"val_ppl\":" + formatNumber("%.9g", result->perplexity);
    }
    if (auto err = job.agree(log ? log->append(record + "}\n") : llvm::Error::success()))
      return fail(std::move(err));
    // After the step's log line: a run killed after this checkpoint has logged every step it holds.
    if (!saveCkpt.empty() && n.saveInterval > 0 && (t + 1) % n.saveInterval == 0) {
      if (auto err = checkpoint(t + 1))
        return fail(std::move(err));
      savedStep = t + 1;
    }
  }
  if (root)
    progress.endLine();
  if (!saveCkpt.empty() && savedStep != n.steps)
    if (auto err = checkpoint(n.steps))
      return fail(std::move(err));
  if (!saveWeightsPath.empty())
    if (auto err = job.agree(s.saveWeights(saveWeightsPath)))
      return fail(std::move(err));
  return 0;
}

int main(int argc, char **argv) {
  cl::HideUnrelatedOptions(megrunCategory);
  std::string clErrors;
  llvm::raw_string_ostream clErrs(clErrors);
  if (!cl::ParseCommandLineOptions(argc, argv,
                                   "meg plan executor: runs (trains, evaluates, samples from) the per-rank plans "
                                   "that megc --emit plan wrote\n",
                                   &clErrs)) {
    llvm::StringRef first = llvm::StringRef(clErrs.str()).split('\n').first.trim();
    first.consume_front("megrun: ");
    return failBeforeJob(first);
  }

  if (backendName != "cpu" && backendName != "cuda")
    return failBeforeJob("unknown --backend '" + backendName + "' (expected cpu or cuda)");
  if (!llvm::is_contained(llvm::split(availableBackends(), ", "), llvm::StringRef(backendName)))
    return failBeforeJob("--backend " + backendName + ": this megrun was built without it (it has: " +
                         availableBackends() + ")");
  if (ranksMode != "threads" && ranksMode != "mpi")
    return failBeforeJob("unknown --ranks '" + ranksMode + "' (expected threads or mpi)");
  auto job = Job::create(ranksMode, &argc, &argv);
  if (!job)
    return failBeforeJob(llvm::toString(job.takeError()));
  return run(**job);
}
