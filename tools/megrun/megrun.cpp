//===- megrun.cpp - the meg plan executor ------------------------------------===//
//
// megrun PLAN_DIR: parses the flags, runs the run they describe (runtime/train/Train.h: load the plans, set up the
// ranks, init or load weights, then generate, evaluate, run a zero-shot task or train; log, dump, checkpoint, save) and prints what comes
// back. Ranks run as threads of this process or one per MPI process (`mpirun -np N megrun PLAN_DIR --ranks mpi`,
// runtime/train/Job.h); the root (rank 0) alone prints and writes outputs. Every user error is one line
// `megrun: error: <what>` (under MPI: from one process only) and exit code 1.
//
//===----------------------------------------------------------------------===//
#include "tools/common/ParseFlags.h"
#include "ir/File.h"
#include "runtime/io/AtomicFile.h"
#include "runtime/train/BackendRegistry.h"
#include "runtime/train/Job.h"
#include "runtime/train/Train.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstdlib>
#include <csignal>
#include <new>

using namespace meg;
using namespace meg::runtime;
namespace cl = llvm::cl;

static cl::OptionCategory megrunCategory("megrun options");
// The options of the run, of --generate and of --task; string and boolean flags are stored in them (cl::location).
static TrainOptions trainOptions;
static GenerateOptions generateOptions;
static ZeroShotOptions taskOptions;

static cl::opt<std::string, true> planDir(cl::Positional, cl::desc("PLAN_DIR"), cl::Required,
                                          cl::location(trainOptions.planDir), cl::cat(megrunCategory));
static cl::opt<std::string, true> backendName("backend", cl::desc("Backend: cpu, or cuda where built with it"),
                                              cl::value_desc("cpu|cuda"), cl::location(trainOptions.backend),
                                              cl::cat(megrunCategory));
static cl::opt<std::string> ranksMode("ranks",
                                      cl::desc("How ranks run: threads (every rank in this process), or mpi (one "
                                               "process per rank: mpirun -np <dp*tp> megrun PLAN_DIR --ranks mpi; "
                                               "rank 0 prints and writes every output; with --backend cuda over "
                                               "NCCL, one GPU per process), or env (one process per GPU as torchrun "
                                               "or Slurm start them: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, "
                                               "MASTER_PORT; --backend cuda, NCCL, no MPI)"),
                                      cl::value_desc("threads|mpi|env"), cl::init("threads"), cl::cat(megrunCategory));
// Numbers are parsed here rather than by cl::opt<int>, whose value errors bypass the one-line error format.
static cl::opt<std::string>
    stepsText("steps",
              cl::desc("Steps to run (default 1); with --resume: the step to reach in total, counting the "
                       "checkpoint's. 0 runs no step (with --save-weights: the seeded initial weights)"),
              cl::value_desc("N"), cl::init("1"), cl::cat(megrunCategory));
static cl::opt<std::string, true>
    dataPath("data",
             cl::desc("Token data: a token file (MEGTOK01) or a text file (byte-level ids, needs vocab >= 256); "
                      "default: seeded random tokens"),
             cl::value_desc("FILE"), cl::location(trainOptions.dataPath), cl::cat(megrunCategory));
static cl::opt<std::string>
    dataPrefix("data-path",
               cl::desc("Token data as a Megatron indexed dataset: PREFIX.bin + PREFIX.idx (MMIDIDX version 1, as "
                        "Megatron's tools/preprocess_data.py and megdata --output-prefix write them); the sequences in "
                        "order are the token stream"),
               cl::value_desc("PREFIX"), cl::cat(megrunCategory));
static cl::opt<std::string, true>
    splitText("split",
              cl::desc("Megatron's train,valid,test weights (e.g. 969,30,1): over the documents of --data-path, "
                       "else over the tokens; instead of --valid-fraction"),
              cl::value_desc("T,V,T"), cl::location(trainOptions.split), cl::cat(megrunCategory));
static cl::opt<std::string> evalSplit("eval-split",
                                      cl::desc("The split --eval evaluates: valid (default) or test (the third "
                                               "weight of --split)"),
                                      cl::value_desc("valid|test"), cl::init("valid"), cl::cat(megrunCategory));
static cl::opt<std::string> seedText("seed", cl::desc("Seed of init, data order and dropout (default 1234)"),
                                     cl::value_desc("S"), cl::init("1234"), cl::cat(megrunCategory));
static cl::opt<std::string, true>
    logPath("log",
            cl::desc("Write one JSON object per step, as it ends: step, loss, lr, grad_norm, tokens_per_s, and "
                     "val_loss and val_ppl on the steps --eval-interval evaluated (with --resume: after the "
                     "checkpoint's steps)"),
            cl::value_desc("FILE.jsonl"), cl::location(trainOptions.log), cl::cat(megrunCategory));
static cl::opt<std::string, true> loadWeightsPath("load-weights",
                                                  cl::desc("Load full weights (Hugging Face names and shapes) as the "
                                                           "hub publishes them: a safetensors file, a sharded "
                                                           "checkpoint's model.safetensors.index.json, or a model "
                                                           "folder holding either; names with or without "
                                                           "transformer./bert., F32/BF16/F16, buffers ignored"),
                                                  cl::value_desc("W.safetensors|DIR"),
                                                  cl::location(trainOptions.loadWeights), cl::cat(megrunCategory));
static cl::opt<std::string, true> saveWeightsPath("save-weights",
                                                  cl::desc("Save full weights (Hugging Face names and shapes) and "
                                                           "config.json beside them; DIR/ (a folder) gets "
                                                           "DIR/model.safetensors and DIR/config.json, a model folder "
                                                           "megc and Hugging Face's from_pretrained read"),
                                                  cl::value_desc("W.safetensors|DIR/"),
                                                  cl::location(trainOptions.saveWeights), cl::cat(megrunCategory));
static cl::opt<std::string, true>
    saveWeightsDType("save-weights-dtype",
                     cl::desc("Element type --save-weights stores, with Hugging Face's names: F32 (default), BF16 "
                              "or F16 (rounded to nearest even)"),
                     cl::value_desc("F32|BF16|F16"), cl::location(trainOptions.saveWeightsDType),
                     cl::cat(megrunCategory));
static cl::opt<std::string> saveWeightsShardsText("save-weights-shards",
                                                  cl::desc("With --save-weights DIR/: split the tensors over N files "
                                                           "model-0000i-of-0000N.safetensors with "
                                                           "model.safetensors.index.json, as the hub publishes large "
                                                           "models (default 1)"),
                                                  cl::value_desc("N"), cl::init("1"), cl::cat(megrunCategory));
static cl::opt<std::string, true>
    dumpDir("dump", cl::desc("After the first step write batch.safetensors and loss.json (parity)"),
            cl::value_desc("DIR"), cl::location(trainOptions.dump), cl::cat(megrunCategory));
static cl::opt<std::string, true> dumpActivationsDir(
    "dump-activations",
    cl::desc("Write every value of one training step (forward and backward, each assembled to its global shape, "
             "with its key, op and schedule position) to DIR/index.json and DIR/values.safetensors; compare two "
             "such dumps with megdiff"),
    cl::value_desc("DIR"), cl::location(trainOptions.dumpActivations), cl::cat(megrunCategory));
static cl::opt<std::string> dumpActivationsStepText("dump-activations-step",
                                                    cl::desc("With --dump-activations: the step to dump (default 1)"),
                                                    cl::value_desc("N"), cl::init("1"), cl::cat(megrunCategory));
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
                                              cl::desc("Fraction of the data (at its end) held out as the valid split "
                                                       "(default 0.1)"),
                                              cl::value_desc("F"), cl::init("0.1"), cl::cat(megrunCategory));
static cl::opt<bool> noDropout("no-dropout", cl::desc("Run steps with dropout off (as in evaluation), for parity"),
                               cl::cat(megrunCategory));
static cl::opt<std::string, true> generatePrompt("generate",
                                                 cl::desc("Continue PROMPT (a GPT infer plan: megc --mode infer "
                                                          "--micro-batch 1, or a decode plan with a KV cache: megc "
                                                          "--mode decode --micro-batch 1), byte-level tokens: "
                                                          "greedily, or sampled with --temperature, --top-k or --top-p"),
                                                 cl::value_desc("PROMPT"), cl::location(generateOptions.prompt),
                                                 cl::cat(megrunCategory));
static cl::opt<std::string, true> dumpLogits("dump-logits",
                                             cl::desc("With --generate: write the logits of every position computed "
                                                      "(safetensors, f32 \"logits\" [positions, vocab])"),
                                             cl::value_desc("FILE"), cl::location(generateOptions.logitsPath),
                                             cl::cat(megrunCategory));
static cl::opt<std::string, true> prefillPlan("prefill-plan",
                                              cl::desc("With --generate and a decode plan: compute the prompt with "
                                                       "this decode plan of several tokens per pass (megc --mode "
                                                       "decode --decode-tokens T)"),
                                              cl::value_desc("DIR"), cl::location(generateOptions.prefillPlan),
                                              cl::cat(megrunCategory));
static cl::opt<int> maxNewTokens("max-new-tokens", cl::desc("Tokens --generate adds (default 100)"), cl::init(100),
                                 cl::cat(megrunCategory));
static cl::opt<std::string> temperatureText("temperature",
                                            cl::desc("--generate samples, from softmax(logits / T) (default 1; 0: "
                                                     "greedy); the draws are seeded by --seed"),
                                            cl::value_desc("T"), cl::init("1"), cl::cat(megrunCategory));
static cl::opt<std::string> topKText("top-k",
                                     cl::desc("--generate samples from the K most likely bytes (default 0: all)"),
                                     cl::value_desc("K"), cl::init("0"), cl::cat(megrunCategory));
static cl::opt<std::string> topPText("top-p",
                                     cl::desc("--generate samples from the fewest most likely bytes whose probability "
                                              "adds up to P, in (0, 1] (default 1: all)"),
                                     cl::value_desc("P"), cl::init("1"), cl::cat(megrunCategory));
static cl::opt<std::string, true>
    saveCkpt("save",
             cl::desc("Write a checkpoint (every parameter and optimizer state as its global tensor, step, seed, data "
                      "position, model and optimizer identity; runtime/train/Checkpoint.h) at the end, and every --save-interval "
                      "steps"),
             cl::value_desc("CKPT"), cl::location(trainOptions.save), cl::cat(megrunCategory));
static cl::opt<std::string> saveIntervalText("save-interval",
                                             cl::desc("With --save: also checkpoint after every K steps (default 0: "
                                                      "only at the end)"),
                                             cl::value_desc("K"), cl::init("0"), cl::cat(megrunCategory));
static cl::opt<std::string, true>
    resumeCkpt("resume",
               cl::desc("Continue the run a checkpoint holds, on any dp x pp x tp mesh of the same model, optimizer and "
                        "global batch (resharded): --steps N then means up to step N "
                        "in total, the seed is the checkpoint's, and --log keeps the checkpoint's steps and appends "
                        "the rest"),
               cl::value_desc("CKPT"), cl::location(trainOptions.resume), cl::cat(megrunCategory));
static cl::opt<bool, true>
    dumpEveryStep("dump-every-step",
                  cl::desc("With --dump: write DIR/step-<t>/ (batch, loss, gradients) for every step t instead of "
                           "DIR/ for the first"),
                  cl::location(trainOptions.dumpEveryStep), cl::cat(megrunCategory));
static cl::opt<std::string> cudaGraphsText("cuda-graphs",
                                           cl::desc("With --backend cuda: capture the training step in a CUDA graph "
                                                    "after the first step and replay it (default true; false for "
                                                    "debugging)"),
                                           cl::value_desc("true|false"), cl::init("true"), cl::cat(megrunCategory));

static cl::opt<std::string>
    collectiveTimeoutText("collective-timeout",
                          cl::desc("Seconds a rank may wait in one collective; then it prints the collective (#, op, "
                                   "IR name, bytes, group) and the ranks that have and have not arrived, and the run "
                                   "ends (default 300; 0: wait forever)"),
                          cl::value_desc("S"), cl::init("300"), cl::cat(megrunCategory));
static double collectiveTimeout = 300;

static cl::opt<std::string, true>
    taskName("task",
             cl::desc("Zero-shot evaluation on an inference plan (megc --mode infer; its seq is the window), as "
                      "Megatron's tasks/zeroshot_gpt: wikitext (perplexity and adjusted perplexity of the word-level "
                      "test file, detokenized) or lambada (last-word accuracy of a jsonl file of {\"text\": ...}); "
                      "byte-level tokens for a vocabulary of 256, else GPT-2 BPE from --vocab-file and --merge-file. "
                      "race|pair fine-tune a BERT plan with a task head (megc --head multiple-choice|classification) "
                      "on --task-data's jsonl examples and report the accuracy on --eval-data's"),
             cl::value_desc("wikitext|lambada|race|pair"), cl::location(taskOptions.task), cl::cat(megrunCategory));
static cl::opt<std::string, true> taskData("task-data", cl::desc("The --task's data file"), cl::value_desc("FILE"),
                                           cl::location(taskOptions.dataPath), cl::cat(megrunCategory));
static cl::opt<std::string> evalData("eval-data",
                                     cl::desc("--task race|pair: the held-out jsonl examples whose accuracy is "
                                              "reported after the steps (stdout and --task-result)"),
                                     cl::value_desc("FILE"), cl::cat(megrunCategory));
static cl::opt<std::string> overlappingEvalText("overlapping-eval",
                                                cl::desc("--task wikitext: windows start every K tokens and each "
                                                         "later window scores only its last K targets (default: the "
                                                         "window, disjoint windows)"),
                                                cl::value_desc("K"), cl::init("0"), cl::cat(megrunCategory));
static cl::opt<bool, true> strictLambada("strict-lambada",
                                         cl::desc("--task lambada: the target is the whole last whitespace word "
                                                  "(all its tokens), not the last token"),
                                         cl::location(taskOptions.strictLambada), cl::cat(megrunCategory));
static cl::opt<std::string> taskResult("task-result",
                                       cl::desc("Write the --task's result as JSON (wikitext: ppl, adjusted_ppl, "
                                                "tokens, original_tokens, ...; lambada: accuracy, correct, total, "
                                                "per_example)"),
                                       cl::value_desc("FILE.json"), cl::cat(megrunCategory));
static cl::opt<std::string, true> vocabFile("vocab-file", cl::desc("GPT-2 BPE vocabulary (vocab.json) for --task"),
                                            cl::value_desc("FILE"), cl::location(taskOptions.vocabFile),
                                            cl::cat(megrunCategory));
static cl::opt<std::string, true> tokenizerFile("tokenizer-file",
                                                cl::desc("GPT-2 BPE for --task from a Hugging Face tokenizer.json"),
                                                cl::value_desc("tokenizer.json"),
                                                cl::location(taskOptions.tokenizerFile), cl::cat(megrunCategory));
static cl::opt<std::string, true> mergeFile("merge-file", cl::desc("GPT-2 BPE merges (merges.txt) for --task"),
                                            cl::value_desc("FILE"), cl::location(taskOptions.mergeFile),
                                            cl::cat(megrunCategory));

static llvm::Error error(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

/// The one error path: prints `megrun: error: <what>` and returns exit code 1. Quiet where another process reports
/// (OtherRankFailed) or, before the job exists (`job` null), in every process of an MPI launch but its rank 0 (they
/// all found the same error on the same command line). An UnagreedError then ends every process of the job.
static int report(Job *job, llvm::Error err) {
  // Output that could not be written (a full disk, a closed pipe) is an error too; cleared so that the stream's
  // destructor does not abort the process.
  llvm::outs().flush();
  if (std::error_code ec = llvm::outs().error()) {
    llvm::outs().clear_error();
    if (!err)
      err = error("cannot write to standard output: " + ec.message());
  }
  if (!err)
    return 0;
  bool quiet = err.isA<OtherRankFailed>(), abortJob = job && err.isA<UnagreedError>();
  for (const char *var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char *rank = std::getenv(var))
      quiet |= !job && llvm::StringRef(rank) != "0";
  if (quiet)
    llvm::consumeError(std::move(err));
  else
    llvm::errs() << "megrun: error: " << printableText(llvm::toString(std::move(err)), SIZE_MAX, /*keepNewlines=*/true)
                 << "\n";
  llvm::errs().clear_error();
  if (abortJob)
    job->abort(1);
  return 1;
}

/// A numeric flag's text into `value`; false, with `why` = `--<flag>: '<text>' is not a number` (an integer, a
/// non-negative one), where it is not.
template <typename T>
static bool parse(const cl::opt<std::string> &flag, T &value, std::string &why, bool nonNegative = false) {
  llvm::StringRef text(flag), what = "a number";
  bool bad;
  if constexpr (std::is_floating_point_v<T>) {
    bad = text.getAsDouble(value);
  } else {
    bad = text.getAsInteger(10, value);
    if constexpr (std::is_signed_v<T>)
      bad |= nonNegative && value < 0;
    what = nonNegative ? "a non-negative integer" : "an integer";
  }
  if (bad)
    why = ("--" + flag.ArgStr + ": '" + text + "' is not " + what).str();
  return !bad;
}

/// The flags as options of the run and of --generate, parsed and range-checked (Trainer::create checks the rest).
static llvm::Error parseOptions(TrainOptions &o, GenerateOptions &g) {
  o.mode = generatePrompt.getNumOccurrences() ? TrainOptions::Mode::Generate
           : evalMode                         ? TrainOptions::Mode::Evaluate
           : taskName.getNumOccurrences()     ? TrainOptions::Mode::ZeroShot
                                              : TrainOptions::Mode::Train;
  // Fine-tuning tasks train (runtime/data/TaskData.h); the others are zero-shot evaluations.
  bool finetune = taskOptions.task == "race" || taskOptions.task == "pair";
  if (finetune && o.mode == TrainOptions::Mode::ZeroShot) {
    o.mode = TrainOptions::Mode::Train;
    o.task = taskOptions.task;
    o.dataPath = taskOptions.dataPath;
    o.evalData = evalData;
    o.vocabFile = taskOptions.vocabFile;
    o.mergeFile = taskOptions.mergeFile;
    o.tokenizerFile = taskOptions.tokenizerFile;
    if (overlappingEvalText.getNumOccurrences() || strictLambada || dataPath.getNumOccurrences() ||
        dataPrefix.getNumOccurrences())
      return error("--task " + taskOptions.task + " takes its data from --task-data (not --data, --data-path, "
                   "--overlapping-eval or --strict-lambada)");
  } else if (evalData.getNumOccurrences()) {
    return error("--eval-data applies to --task race|pair only");
  }
  o.seedGiven = seedText.getNumOccurrences();
  o.dropout = !noDropout;
  g.newTokens = maxNewTokens;
  SamplingOptions &s = g.sampling;
  s.greedy = !temperatureText.getNumOccurrences() && !topKText.getNumOccurrences() && !topPText.getNumOccurrences();
  std::string why;
  if (!parse(stepsText, o.steps, why) || !parse(saveIntervalText, o.saveInterval, why, true) ||
      !parse(evalIntervalText, o.evalInterval, why, true) || !parse(evalBatchesText, o.evalBatches, why) ||
      !parse(seedText, o.seed, why, true) || !parse(validFractionText, o.validFraction, why) ||
      !parse(temperatureText, s.temperature, why) || !parse(topKText, s.topK, why) || !parse(topPText, s.topP, why) ||
      !parse(overlappingEvalText, taskOptions.overlappingEval, why, true) ||
      !parse(saveWeightsShardsText, o.saveWeightsShards, why, true) ||
      !parse(dumpActivationsStepText, o.dumpActivationsStep, why))
    return error(why);
  if (dumpActivationsStepText.getNumOccurrences() && o.dumpActivations.empty())
    return error("--dump-activations-step needs --dump-activations DIR");
  if (taskName.getNumOccurrences() && o.mode != TrainOptions::Mode::ZeroShot && !finetune)
    return error("--task runs alone (not with --generate or --eval)");
  bool taskFlags = taskData.getNumOccurrences() || overlappingEvalText.getNumOccurrences() || strictLambada ||
                   taskResult.getNumOccurrences() || vocabFile.getNumOccurrences() || mergeFile.getNumOccurrences() ||
                   tokenizerFile.getNumOccurrences();
  if (taskFlags && o.mode != TrainOptions::Mode::ZeroShot && !finetune)
    return error("--task-data, --overlapping-eval, --strict-lambada, --task-result, --vocab-file, --merge-file and "
                 "--tokenizer-file apply to --task only");
  if (o.mode == TrainOptions::Mode::ZeroShot)
    if (auto err = taskOptions.check())
      return err;
  s.seed = o.seed;
  if (!parse(collectiveTimeoutText, collectiveTimeout, why))
    return error(why);
  if (!(collectiveTimeout >= 0 && collectiveTimeout < 1e9))
    return error(llvm::formatv("--collective-timeout must be a number of seconds in [0, 1e9) (got {0})",
                               collectiveTimeoutText));
  if (cudaGraphsText != "true" && cudaGraphsText != "false")
    return error("--cuda-graphs must be true or false (got '" + cudaGraphsText + "')");
  backendSettings().cudaGraphs = cudaGraphsText == "true";
  if (dataPrefix.getNumOccurrences()) {
    if (dataPath.getNumOccurrences())
      return error("--data and --data-path both give the data (use one)");
    o.dataPath = dataPrefix;
    o.dataIndexed = true;
  }
  if (evalSplit != "valid" && evalSplit != "test")
    return error("unknown --eval-split '" + evalSplit + "' (expected valid or test)");
  o.evalTest = evalSplit == "test";
  if (splitText.getNumOccurrences() && validFractionText.getNumOccurrences())
    return error("--split and --valid-fraction both divide the data (use one)");
  if (!(o.validFraction >= 0 && o.validFraction < 1))
    return error(llvm::formatv("--valid-fraction must be in [0, 1) (got {0})", validFractionText));
  if (!s.greedy && o.mode != TrainOptions::Mode::Generate)
    return error("--temperature, --top-k and --top-p apply to --generate only");
  if ((!g.logitsPath.empty() || !g.prefillPlan.empty()) && o.mode != TrainOptions::Mode::Generate)
    return error("--dump-logits and --prefill-plan apply to --generate only");
  return o.mode == TrainOptions::Mode::Generate ? g.check() : llvm::Error::success();
}

/// Everything after the job exists: the root prints what the run returns.
static llvm::Error run(Job &job) {
  if (auto err = job.agree(parseOptions(trainOptions, generateOptions)))
    return err;
  job.setCollectiveTimeout(collectiveTimeout);
  auto trainer = Trainer::create(job, trainOptions);
  if (!trainer)
    return trainer.takeError();
  if (trainOptions.mode == TrainOptions::Mode::Generate) {
    auto generated = (*trainer)->generate(generateOptions);
    if (!generated)
      return generated.takeError();
    if (job.isRoot())
      llvm::outs() << "sample: " << generated->text << "\n";
    if (job.isRoot() && !generateOptions.logitsPath.empty())
      return writeLogits(*generated, generateOptions.logitsPath);
    return llvm::Error::success();
  }
  if (trainOptions.mode == TrainOptions::Mode::ZeroShot) {
    auto result = (*trainer)->zeroShot(taskOptions);
    if (!result)
      return result.takeError();
    auto rootFiles = [&]() -> llvm::Error {
      if (!job.isRoot())
        return llvm::Error::success();
      llvm::outs() << result->summary() << "\n";
      return taskResult.empty() ? llvm::Error::success()
                                : writeFileAtomically(taskResult, llvm::StringRef(result->json()));
    };
    if (auto err = job.agree(rootFiles()))
      return err;
  }
  if (trainOptions.mode == TrainOptions::Mode::Evaluate) {
    auto result = (*trainer)->evaluate();
    if (!result)
      return result.takeError();
    if (job.isRoot())
      llvm::outs() << llvm::formatv("eval: loss {0:F6} ppl {1:F4} over {2} tokens ({3:F1} tokens/s)\n", result->loss,
                                    result->perplexity, result->tokens,
                                    double(result->positions) / std::max(result->seconds, 1e-9));
  }
  if (trainOptions.task.empty())
    return (*trainer)->train(llvm::outs());
  // Fine-tuning: the steps, then the held-out accuracy.
  if (job.isRoot() && !(*trainer)->initializedHead().empty())
    llvm::outs() << "initialized the task head (not in --load-weights): "
                 << llvm::join((*trainer)->initializedHead(), ", ") << "\n";
  if (auto err = (*trainer)->train(llvm::outs()))
    return err;
  if (trainOptions.evalData.empty())
    return llvm::Error::success();
  auto accuracy = (*trainer)->taskAccuracy();
  if (!accuracy)
    return accuracy.takeError();
  return job.agree(job.isRoot() ? (llvm::outs() << accuracy->summary() << "\n",
                                   taskResult.empty() ? llvm::Error::success()
                                                      : writeFileAtomically(taskResult, llvm::StringRef(accuracy->json())))
                                : llvm::Error::success());
}

int main(int argc, char **argv) {
  // A write past the file-size limit fails with EFBIG (reported with the file) instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  cl::HideUnrelatedOptions(megrunCategory);
  if (auto bad = meg::tools::parseFlags(argc, argv,
                                        "meg plan executor: runs (trains, evaluates, samples from) the per-rank "
                                        "plans that megc --emit plan wrote\n"))
    return report(nullptr, error(*bad));
  if (auto err = checkBackendFlag(trainOptions.backend))
    return report(nullptr, std::move(err));
  if (auto err = Job::checkMode(ranksMode, trainOptions.backend))
    return report(nullptr, std::move(err));
  auto job = Job::create(ranksMode, &argc, &argv);
  if (!job)
    return report(nullptr, job.takeError());
  try {
    return report(job->get(), run(**job));
  } catch (const std::bad_alloc &) { // the last resort: sizes are checked before anything is allocated
    return report(job->get(), error("out of memory"));
  }
}
