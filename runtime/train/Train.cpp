//===- Train.cpp - a megrun run: setup, training loop, evaluation --------------===//
#include "runtime/train/Train.h"
#include "runtime/train/ActivationCapture.h"

#include "runtime/io/AtomicFile.h"
#include "runtime/io/Safetensors.h"
#include "runtime/train/Progress.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <tuple>

using namespace meg;
using namespace meg::runtime;

static llvm::Error error(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

static std::string formatNumber(const char *format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

/// The rows of a step's micro-batches as one batch (dim 0 concatenated, in order): what one micro-batch of all
/// those rows would be.
static GlobalBatch stepBatch(llvm::ArrayRef<GlobalBatch> micro) {
  if (micro.size() == 1)
    return micro[0];
  GlobalBatch all;
  for (const GlobalBatch &batch : micro)
    for (const auto &[name, t] : batch.tensors) {
      IntTensor &out = all.tensors[name];
      if (out.shape.empty())
        out.shape = t.shape, out.shape[0] = 0;
      out.shape[0] += t.shape[0];
      out.data.insert(out.data.end(), t.data.begin(), t.data.end());
    }
  return all;
}

/// {"loss": x} with the float loss in full double precision.
static std::string lossJson(double loss) { return "{\"loss\": " + formatNumber("%.17g", loss) + "}\n"; }

/// An output the run will write at `path` (a file, or with isDir a folder): checked before any step runs, so that a
/// path that cannot be written fails at once instead of after the whole run.
static llvm::Error checkOutputPath(llvm::StringRef flag, llvm::StringRef path, bool isDir = false) {
  namespace fs = llvm::sys::fs;
  if (path.empty())
    return llvm::Error::success();
  fs::file_status status;
  if (!fs::status(path, status)) {
    bool dir = status.type() == fs::file_type::directory_file;
    if (isDir != dir || (!isDir && status.type() != fs::file_type::regular_file))
      return error(flag + ": '" + path + "' " + (isDir ? "is not a directory" : dir ? "is a directory" : "is not a regular file"));
    if (fs::access(path, fs::AccessMode::Write))
      return error(flag + ": '" + path + "' is not writable");
    return llvm::Error::success();
  }
  // Missing folders are created at the write: the nearest existing one must be a writable directory.
  llvm::SmallString<256> parent(path);
  do {
    llvm::sys::path::remove_filename(parent);
  } while (!parent.empty() && !fs::exists(parent));
  if (parent.empty())
    parent = ".";
  if (!fs::is_directory(parent) || fs::access(parent, fs::AccessMode::Write))
    return error(flag + ": cannot create '" + path + "': '" + parent + "' is not a writable directory");
  return llvm::Error::success();
}

llvm::Error TrainOptions::check() const {
  if (dumpEveryStep && dump.empty())
    return error("--dump-every-step needs --dump DIR");
  for (auto [flag, path, isDir] : {std::tuple{"--log", &log, false}, {"--save", &save, false},
                                   {"--save-weights", &saveWeights, false}, {"--dump", &dump, true}})
    if (auto err = checkOutputPath(flag, *path, isDir))
      return err;
  if (auto err = checkOutputPath("--dump-activations", dumpActivations, true))
    return err;
  if (!dumpActivations.empty() && (mode != Mode::Train || dumpActivationsStep < 1 || dumpActivationsStep > steps))
    return error(llvm::formatv("--dump-activations-step must be a training step of this run, 1 to {0} (got {1})",
                               mode == Mode::Train ? steps : 0, dumpActivationsStep));
  if (steps < 0)
    return error(llvm::formatv("--steps must be >= 0 (got {0})", steps));
  if (evalBatches < 1)
    return error(llvm::formatv("--eval-batches must be >= 1 (got {0})", evalBatches));
  if (mode == Mode::Evaluate && validFraction == 0 && split.empty())
    return error("--eval needs a valid split (--valid-fraction > 0)");
  if (evalInterval > 0 && validFraction == 0 && split.empty())
    return error("--eval-interval needs a valid split (--valid-fraction > 0)");
  if (!loadWeights.empty() && loadWeights == saveWeights)
    return error("--load-weights and --save-weights name the same file");
  auto saveDType = parseDType(saveWeightsDType);
  if (!saveDType || (*saveDType != SafetensorsDType::F32 && *saveDType != SafetensorsDType::BF16 &&
                     *saveDType != SafetensorsDType::F16))
    return error("--save-weights-dtype must be F32, BF16 or F16 (got '" + saveWeightsDType + "')");
  if (saveWeightsShards < 1 || (saveWeightsShards > 1 && !llvm::StringRef(saveWeights).endswith("/") &&
                                 !llvm::sys::fs::is_directory(saveWeights)))
    return error(llvm::formatv("--save-weights-shards {0} needs --save-weights DIR/ (a folder) and a count >= 1",
                               saveWeightsShards));
  if (evalTest && (split.empty() || mode != Mode::Evaluate))
    return error("--eval-split test needs --eval and --split (the test split is the third weight)");
  if (!resume.empty() && !loadWeights.empty())
    return error("--resume and --load-weights both give the weights (use one)");
  if (!task.empty() && (mode != Mode::Train || dataIndexed))
    return error("--task " + task + " fine-tunes: not with --eval, --generate or --data-path");
  if (!task.empty() && dataPath.empty())
    return error("--task " + task + " needs --task-data FILE (the training examples)");
  if (!task.empty() && evalData.empty() && evalInterval > 0)
    return error("--eval-interval with --task " + task + " needs --eval-data FILE");
  if (task.empty() && !evalData.empty())
    return error("--eval-data applies to --task race|pair only");
  if (!save.empty() && mode != Mode::Train)
    return error("--save: only training steps are checkpointed (not --eval, --generate or --task)");
  return llvm::Error::success();
}

Trainer::~Trainer() = default;

bool Trainer::training() const { return options.mode == TrainOptions::Mode::Train && options.steps > firstStep; }

llvm::Expected<std::unique_ptr<Trainer>> Trainer::create(Job &job, const TrainOptions &options) {
  std::unique_ptr<Trainer> trainer(new Trainer(job, options));
  if (auto err = job.agree(options.check()))
    return err;
  auto plans = loadPlanSet(options.planDir);
  if (auto err = job.agree(plans.takeError()))
    return err;
  if (options.mode == TrainOptions::Mode::Train && (*plans)[0].mode != "train")
    return job.agree(error(options.planDir + ": these are inference plans (megc --mode infer): nothing to train; "
                                            "use --generate, or compile a training plan"));
  // The checkpoint to resume and the data are verified before anything runs.
  std::optional<Checkpoint> resumeFrom;
  if (auto err = job.agree(trainer->checkResume(*plans, resumeFrom)))
    return err;
  if (auto err = job.agree(trainer->makeSources(planSetDataView(*plans), resumeFrom)))
    return err;
  auto session = job.createSession(std::move(*plans), options.backend, options.planDir);
  if (auto err = job.agree(session.takeError()))
    return err;
  trainer->runSession = std::move(*session);
  Session &s = trainer->session();
  auto initialWeights = [&]() -> llvm::Error {
    if (resumeFrom)
      return resumeFrom->restore(s);
    if (!options.loadWeights.empty() && !options.task.empty())
      return s.loadWeights(options.loadWeights, trainer->options.seed, &trainer->headInitialized);
    if (!options.loadWeights.empty())
      return s.loadWeights(options.loadWeights);
    return s.initWeights(trainer->options.seed);
  };
  if (auto err = job.agree(initialWeights()))
    return err;
  return trainer;
}

/// The plan set's identity (for --save and --resume), and the checkpoint to resume, checked against the plans and
/// the options; takes its seed and step.
llvm::Error Trainer::checkResume(std::vector<LoadedPlan> &plans, std::optional<Checkpoint> &resumeFrom) {
  if (!options.save.empty() || !options.resume.empty()) {
    auto id = planSetIdentity(plans);
    if (!id)
      return id.takeError();
    planId = *id;
  }
  if (options.resume.empty())
    return llvm::Error::success();
  auto loaded = Checkpoint::load(options.resume);
  if (!loaded)
    return loaded.takeError();
  if (auto err = loaded->checkPlanSet(planId))
    return err;
  const CheckpointState &state = loaded->state();
  if (options.seedGiven && state.seed != options.seed)
    return error(llvm::formatv("--seed {0} differs from the seed {1} of checkpoint {2}", options.seed, state.seed,
                               options.resume));
  options.seed = state.seed;
  firstStep = int64_t(state.step);
  if (options.steps < firstStep && options.mode == TrainOptions::Mode::Train)
    return error(
        llvm::formatv("--steps {0}: checkpoint {1} is already at step {2}", options.steps, options.resume, firstStep));
  if (!options.dumpActivations.empty() && options.dumpActivationsStep <= firstStep)
    return error(llvm::formatv("--dump-activations-step {0}: checkpoint {1} is already at step {2}",
                               options.dumpActivationsStep, options.resume, firstStep));
  resumeFrom = std::move(*loaded);
  return llvm::Error::success();
}

/// The data sources: training batches, and the valid split for --eval and --eval-interval.
llvm::Error Trainer::makeSources(const LoadedPlan &plan, const std::optional<Checkpoint> &resumeFrom) {
  auto create = [&](DataSplit split) {
    DataOptions data;
    data.path = options.dataPath;
    data.task = options.task;
    data.vocabFile = options.vocabFile;
    data.mergeFile = options.mergeFile;
    data.tokenizerFile = options.tokenizerFile;
    if (!options.task.empty() && split != DataSplit::Train)
      data.path = options.evalData;
    data.indexed = options.dataIndexed;
    data.splitWeights = options.split;
    data.seed = options.seed;
    data.split = split;
    data.validFraction = options.validFraction;
    return BatchSource::create(plan, data);
  };
  if (options.mode == TrainOptions::Mode::Evaluate || (training() && options.evalInterval > 0) ||
      !options.evalData.empty()) {
    auto created = create(options.evalTest ? DataSplit::Test : DataSplit::Valid);
    if (!created)
      return created.takeError();
    validSource = std::move(*created);
  }
  if (!training())
    return llvm::Error::success();
  auto created = create(DataSplit::Train);
  if (!created)
    return created.takeError();
  source = std::move(*created);
  uint64_t windows = resumeFrom ? resumeFrom->state().dataWindows : 0;
  if (windows && windows != source->windowsPerEpoch())
    return error(llvm::formatv("{0}: the checkpoint's training data has {1} windows per epoch, --data gives {2} "
                               "(other data or --valid-fraction)",
                               options.resume, windows, source->windowsPerEpoch()));
  return llvm::Error::success();
}

llvm::Expected<GenerateResult> Trainer::generate(const GenerateOptions &generateOptions) {
  // --prefill-plan: a second session of the same weights (seeded or loaded), on the same ranks.
  std::unique_ptr<Session> prefill;
  if (!generateOptions.prefillPlan.empty()) {
    auto plans = loadPlanSet(generateOptions.prefillPlan);
    if (auto err = job.agree(plans.takeError()))
      return err;
    auto created = job.createSession(std::move(*plans), options.backend, generateOptions.prefillPlan);
    if (auto err = job.agree(created.takeError()))
      return err;
    prefill = std::move(*created);
    if (auto err = job.agree(options.loadWeights.empty() ? prefill->initWeights(options.seed)
                                                         : prefill->loadWeights(options.loadWeights)))
      return err;
  }
  auto text = runtime::generate(session(), generateOptions, prefill.get());
  if (!text)
    return Job::unagreed(text.takeError());
  return text;
}

llvm::Expected<ZeroShotResult> Trainer::zeroShot(const ZeroShotOptions &task) {
  auto result = runZeroShot(session(), task);
  if (!result)
    return Job::unagreed(result.takeError());
  return result;
}

llvm::Expected<TaskAccuracy> Trainer::taskAccuracy() {
  assert(validSource && "no held-out task data");
  auto result = evaluateTask(session(), *validSource, options.task, options.seed);
  if (!result)
    return Job::unagreed(result.takeError());
  return result;
}

llvm::Expected<EvalResult> Trainer::evaluate() {
  auto result = runtime::evaluate(session(), *validSource, options.evalBatches, options.seed);
  if (!result)
    return Job::unagreed(result.takeError());
  return result;
}

/// Collective: --dump's files for one step; the root writes them.
llvm::Error Trainer::writeDump(llvm::StringRef dir, const GlobalBatch &batch, std::optional<double> loss) {
  bool existed = llvm::sys::fs::exists(dir);
  llvm::Error err = writeDumpFiles(dir, batch, loss);
  if (err && !existed && job.isRoot()) // no partial dump: a folder this run made goes when its files cannot be written
    llvm::sys::fs::remove_directories(dir, /*IgnoreErrors=*/true);
  return err;
}

llvm::Error Trainer::writeDumpFiles(llvm::StringRef dir, const GlobalBatch &batch, std::optional<double> loss) {
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
  if (!loss || session().plan().mode != "train")
    return llvm::Error::success();
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, "grads.safetensors");
  return job.agree(session().saveGradients(path));
}

/// Collective: the checkpoint of `done` completed steps.
llvm::Error Trainer::checkpoint(int64_t done) {
  CheckpointState state;
  state.step = state.dataStep = uint64_t(done);
  state.seed = options.seed;
  state.dataWindows = source ? source->windowsPerEpoch() : 0;
  return job.agree(saveCheckpoint(options.save, session(), planId, state));
}

/// Step t + 1: feed, run, report, dump, evaluate, log.
llvm::Error Trainer::runStep(int64_t t, ProgressLine &progress, StepLog *log, llvm::raw_ostream &out) {
  Session &s = session();
  bool root = job.isRoot();
  auto micro = microBatchesOf(*source, uint64_t(t), s.microBatches());
  if (!micro)
    return Job::unagreed(micro.takeError());
  StepContext ctx;
  ctx.seed = options.seed;
  ctx.step = uint32_t(t);
  ctx.dropout = options.dropout;
  std::unique_ptr<ActivationCapture> capture;
  if (!options.dumpActivations.empty() && t + 1 == options.dumpActivationsStep) {
    auto made = ActivationCapture::create(s);
    if (auto err = job.agree(made ? llvm::Error::success() : made.takeError()))
      return err;
    capture = std::move(*made);
    ctx.observer = capture.get();
  }
  auto start = std::chrono::steady_clock::now();
  auto loss = s.step(ctx, *micro);
  if (!loss)
    return Job::unagreed(loss.takeError());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double tokensPerSecond =
      double(source->microBatch() * source->seqLen() * int64_t(micro->size())) / std::max(seconds, 1e-9);
  // A non-finite loss in a plan without loss scaling (fp16 skips such steps by itself) means training diverged.
  bool diverged = *loss && !std::isfinite(**loss) && !s.plan().findOutput("loss_scale");
  if (auto err = job.agree(diverged ? error(llvm::formatv("step {0}: the loss is {1}: training diverged", t + 1,
                                                          formatNumber("%g", **loss)))
                                    : llvm::Error::success()))
    return err;
  std::string lossText = *loss ? formatNumber("%.9g", **loss) : "null";
  // Read before anything else runs on the backends (an evaluation overwrites the step's outputs).
  std::optional<float> lrValue = s.scalarOutput("lr"), gradNorm = s.scalarOutput("grad_norm");
  // fp16 loss scaling: the scale after this step's update (as Megatron logs it) and whether the step overflowed.
  std::optional<float> lossScale = s.scalarOutput("loss_scale"), foundInf = s.scalarOutput("found_inf");
  bool skipped = foundInf && *foundInf != 0.0f;
  std::string scaling = lossScale ? ", loss scale " + formatNumber("%.9g", *lossScale) + (skipped ? ", skipped" : "")
                                  : std::string();
  if (root)
    progress.step(t + 1, lossText, lrValue.value_or(0.0f), tokensPerSecond, scaling);
  std::string record = "{\"step\":" + std::to_string(t + 1) + ",\"loss\":" + lossText +
                       ",\"lr\":" + formatNumber("%.9g", lrValue.value_or(0.0f)) +
                       // An overflowing fp16 step has no norm (JSON has no inf or NaN).
                       (gradNorm ? ",\"grad_norm\":" +
                                       (std::isfinite(*gradNorm) ? formatNumber("%.6g", *gradNorm) : "null")
                                 : std::string()) +
                       (lossScale ? ",\"loss_scale\":" + formatNumber("%.9g", *lossScale) +
                                        ",\"skipped\":" + (skipped ? "true" : "false")
                                  : std::string()) +
                       ",\"tokens_per_s\":" + formatNumber("%.1f", tokensPerSecond);
  if (capture) {
    auto begin = std::chrono::steady_clock::now();
    auto written = capture->write(options.dumpActivations, t + 1, options.backend);
    if (auto err = job.agree(written ? llvm::Error::success() : written.takeError()))
      return err;
    if (root) {
      progress.endLine();
      out << llvm::formatv("dumped {0} values of step {1} ({2} bytes) to {3} in {4:F3} s\n", written->values, t + 1,
                           written->bytes, options.dumpActivations,
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
    }
  }
  if (!options.dump.empty() && (t == 0 || options.dumpEveryStep)) {
    llvm::SmallString<256> dir(options.dump);
    if (options.dumpEveryStep)
      llvm::sys::path::append(dir, "step-" + std::to_string(t + 1));
    if (auto err = writeDump(dir, stepBatch(*micro), *loss))
      return err;
  }
  // Evaluation runs forward steps only, dropout off, on the valid split: parameters, optimizer state, the training
  // batches and dropout masks (keyed by seed and step) are as without it.
  if (options.evalInterval > 0 && ((t + 1) % options.evalInterval == 0 || t + 1 == options.steps)) {
    auto result = evaluate();
    if (!result)
      return result.takeError();
    if (root) {
      progress.endLine();
      out << llvm::formatv("eval at step {0}: loss {1:F6} ppl {2:F4}\n", t + 1, result->loss, result->perplexity);
    }
    record += ",\"val_loss\":" + formatNumber("%.9g", result->loss) +
              ",\"val_ppl\":" + formatNumber("%.9g", result->perplexity);
  }
  return job.agree(log ? log->append(record + "}\n") : llvm::Error::success());
}

llvm::Error Trainer::train(llvm::raw_ostream &out) {
  bool root = job.isRoot();
  // The log is written as the steps run (a killed run keeps its finished steps); a resumed run appends.
  std::unique_ptr<StepLog> log;
  auto openLog = [&]() -> llvm::Error {
    if (!root || options.log.empty())
      return llvm::Error::success();
    auto opened =
        StepLog::open(options.log, options.resume.empty() ? std::nullopt : std::optional<uint64_t>(firstStep));
    if (!opened)
      return opened.takeError();
    log = std::move(*opened);
    return llvm::Error::success();
  };
  if (auto err = job.agree(openLog()))
    return err;

  int64_t savedStep = options.resume == options.save ? firstStep : -1;
  // In place on a terminal; not under mpirun, which hands its processes a pseudo-terminal whatever its own output is.
  ProgressLine progress(out, firstStep, options.steps, !job.isMultiProcess() && out.is_displayed());
  for (int64_t t = firstStep; training() && t < options.steps; ++t) {
    if (auto err = runStep(t, progress, log.get(), out))
      return err;
    // After the step's log line: a run killed after this checkpoint has logged every step it holds.
    if (!options.save.empty() && options.saveInterval > 0 && (t + 1) % options.saveInterval == 0) {
      if (auto err = checkpoint(t + 1))
        return err;
      savedStep = t + 1;
    }
  }
  if (root)
    progress.endLine();
  if (!options.save.empty() && savedStep != options.steps)
    if (auto err = checkpoint(options.steps))
      return err;
  if (!options.saveWeights.empty())
    return job.agree(session().saveWeights(options.saveWeights, *parseDType(options.saveWeightsDType),
                                           int(options.saveWeightsShards)));
  return llvm::Error::success();
}
