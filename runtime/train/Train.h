//===- Train.h - a megrun run: setup, training loop, evaluation -*- C++ -*-===//
//
// What megrun does once its flags are parsed. Trainer::create loads and verifies the plan set, verifies the
// checkpoint to resume, makes the data sources (training batches, the valid split), creates the session (the ranks
// this process hosts, runtime/train/Job.h) and gives it its initial weights (resumed, loaded or seeded). Then, by
// mode: generate() samples text, evaluate() runs --eval, zeroShot() runs --task, and train() runs the steps (a progress line each, an
// evaluation every --eval-interval steps, the JSONL log, --dump's files, checkpoints every --save-interval steps and
// at the end) and writes --save-weights.
//
// Errors: every error is an llvm::Error for the caller to report once (megrun: `megrun: error: <what>`, exit 1).
// Where every process of the job reaches the check (setup, after each output the root writes) errors are agreed
// (Job::agree: OtherRankFailed on all but the first failing process); errors inside a step are UnagreedError
// (Job::unagreed), after which the reporter must Job::abort the job. Output files are written atomically and only
// once everything before them has succeeded.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_TRAIN_H
#define MEG_RUNTIME_TRAIN_TRAIN_H

#include "runtime/data/BatchSource.h"
#include "runtime/train/Checkpoint.h"
#include "runtime/train/Generate.h"
#include "runtime/train/Job.h"
#include "runtime/train/Session.h"
#include "runtime/train/TaskEval.h"
#include "runtime/train/ZeroShot.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <memory>
#include <string>

namespace meg::runtime {

class ProgressLine;

/// Everything that shapes a run (megrun's flags, parsed and range-checked). Empty paths: not asked for.
struct TrainOptions {
  enum class Mode : uint8_t { Train, Evaluate, Generate, ZeroShot };
  Mode mode = Mode::Train;
  std::string planDir;
  std::string backend = "cpu";
  /// Steps to run; with `resume`: the step to reach in total, counting the checkpoint's.
  int64_t steps = 1;
  uint64_t seed = 1234;   ///< init, data order and dropout (a resumed run takes the checkpoint's)
  bool seedGiven = false; ///< the seed was asked for (then it must be the checkpoint's)
  std::string dataPath;   ///< token or text file; empty: seeded random tokens
  bool dataIndexed = false; ///< dataPath is a Megatron indexed dataset's prefix (--data-path)
  double validFraction = 0.1;
  std::string split; ///< Megatron's --split weights; empty: validFraction
  bool evalTest = false; ///< --eval evaluates the test split of --split instead of the valid split
  int64_t evalInterval = 0; ///< evaluate after every K steps and after the last; 0: never
  int64_t evalBatches = 8;
  bool dropout = true;
  std::string loadWeights, saveWeights;
  std::string saveWeightsDType = "F32"; ///< the element type --save-weights stores: F32, BF16 or F16
  int64_t saveWeightsShards = 1;        ///< files --save-weights DIR/ splits the tensors over (with an index)
  std::string save; ///< checkpoint at the end (and every saveInterval steps)
  int64_t saveInterval = 0;
  std::string resume; ///< checkpoint to continue from
  std::string log;    ///< JSONL, one object per step
  std::string dump;   ///< after the first step (or every step): batch, loss, gradients
  bool dumpEveryStep = false;
  std::string dumpActivations;     ///< every value of one step (runtime/train/ActivationCapture.h)
  int64_t dumpActivationsStep = 1; ///< which step (1-based)
  /// Fine-tuning (--task race|pair on a plan with a task head): `dataPath` is the task's training file, `evalData`
  /// its held-out file (accuracy after the steps), tokenized with these files (none: byte level).
  std::string task, evalData;
  std::string vocabFile, mergeFile, tokenizerFile;

  /// The checks of the options (as megrun words them): negative steps, no evaluation batch, evaluation without a
  /// valid split, the same file loaded and saved, two sources of weights, a checkpoint of a run that does not train.
  llvm::Error check() const;
};

class Trainer {
public:
  /// Collective; errors agreed. Sets the run up for `options` (checked) up to the initial weights.
  static llvm::Expected<std::unique_ptr<Trainer>> create(Job &job, const TrainOptions &options);
  ~Trainer();

  Session &session() { return *runSession; }
  /// Collective (Generate mode); errors unagreed. The prompt and its continuation.
  llvm::Expected<GenerateResult> generate(const GenerateOptions &options);
  /// Collective (Evaluate mode); errors unagreed. Forward-only over --eval-batches batches of the valid split.
  llvm::Expected<EvalResult> evaluate();
  /// Collective (ZeroShot mode); errors unagreed. A zero-shot task (runtime/train/ZeroShot.h).
  llvm::Expected<ZeroShotResult> zeroShot(const ZeroShotOptions &task);
  /// Collective (fine-tuning, after train()); errors unagreed. Accuracy on the held-out file
  /// (runtime/train/TaskEval.h).
  llvm::Expected<TaskAccuracy> taskAccuracy();
  /// The task head's parameters --load-weights did not hold (seeded init instead).
  llvm::ArrayRef<std::string> initializedHead() const { return headInitialized; }
  /// Collective. The training steps (none outside Train mode, or when a resumed run is already at `steps`), the
  /// root printing to `out` and writing the log, dumps and checkpoints; then --save-weights.
  llvm::Error train(llvm::raw_ostream &out);

private:
  Trainer(Job &job, const TrainOptions &options) : job(job), options(options) {}
  llvm::Error checkResume(std::vector<LoadedPlan> &plans, std::optional<Checkpoint> &resumeFrom);
  llvm::Error makeSources(const LoadedPlan &plan, const std::optional<Checkpoint> &resumeFrom);
  llvm::Error runStep(int64_t t, ProgressLine &progress, StepLog *log, llvm::raw_ostream &out);
  llvm::Error writeDump(llvm::StringRef dir, const GlobalBatch &batch, std::optional<double> loss);
  llvm::Error writeDumpFiles(llvm::StringRef dir, const GlobalBatch &batch, std::optional<double> loss);
  llvm::Error checkpoint(int64_t done);
  bool training() const;

  Job &job;
  TrainOptions options; ///< with the resumed checkpoint's seed
  std::unique_ptr<Session> runSession;
  std::unique_ptr<BatchSource> source, validSource;
  PlanSetIdentity planId; ///< with --save or --resume
  int64_t firstStep = 0;  ///< steps the resumed checkpoint holds
  std::vector<std::string> headInitialized;
};

} // namespace meg::runtime

#endif
