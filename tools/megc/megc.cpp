//===- megc.cpp - the meg compiler driver -----------------------------------===//
//
//   megc MODEL.json|FILE.mir [--tp N] [--dp N] [--micro-batch B] [--seq S] [--mode train|infer|decode]
//        [--emit ir|plan|report|dot] [-o PATH] [--passes P] [--print-ir-after-all] [--print-ir-after=NAME]
//        [--time-passes] [--dp-bucket-bytes N] [--make-vocab-size-divisible-by N]
//        [--recompute-granularity full|selective [--recompute-method uniform|block] [--recompute-num-layers N]]
//        [--bf16 | --fp16 [--initial-loss-scale S --min-loss-scale M --loss-scale-window W --hysteresis H |
//                          --loss-scale S]]
//        [--global-batch-size G] [--sequence-parallel] [--use-distributed-optimizer]
//   megc verify PLAN_DIR   (tools/megc/VerifyCommand.h: the plan set loads and its collective order is proven)
//
// A .json input is a model description (frontend), as is a Hugging Face model folder (its config.json); anything
// else is textual IR. Passes: --passes runs that
// pipeline; otherwise a model description runs the default pipeline (passes/Pipeline.cpp) and textual IR is taken
// as it is, except that --emit plan always compiles. --emit ir and dot print the graph after the passes, --emit
// plan ends the pipeline with lower-to-plan. Output goes to stdout or to -o, which is written only on success
// (temp file + rename). Every error is one line `megc: error: <message>` on stderr and exit code 1.
//
//===----------------------------------------------------------------------===//
#include "frontend/Frontend.h"
#include "frontend/ModelConfig.h"
#include "frontend/Report.h"
#include "ir/File.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Dot.h"
#include "passes/Pipeline.h"
#include "tools/common/ParseFlags.h"
#include "tools/megc/VerifyCommand.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <unistd.h>
#include <optional>
#include <csignal>
#include <new>

using namespace meg;
namespace cl = llvm::cl;

namespace {

cl::OptionCategory megCategory("megc options");

cl::opt<std::string> inputPath(cl::Positional, cl::desc("<MODEL.json | MODEL_DIR/ | FILE.mir>"), cl::Required,
                               cl::cat(megCategory));
cl::opt<int> tpSize("tp", cl::desc("Tensor-parallel size (mesh axis tp)"), cl::value_desc("N"), cl::init(1),
                    cl::cat(megCategory));
cl::opt<int> dpSize("dp", cl::desc("Data-parallel size (mesh axis dp)"), cl::value_desc("N"), cl::init(1),
                    cl::cat(megCategory));
cl::opt<int> microBatch("micro-batch", cl::desc("Micro-batch size (overrides the model description)"),
                        cl::value_desc("B"), cl::cat(megCategory));
cl::opt<int> seqLen("seq", cl::desc("Sequence length (overrides the model description)"), cl::value_desc("S"),
                    cl::cat(megCategory));
cl::opt<int> decodeTokens("decode-tokens",
                          cl::desc("--mode decode: new tokens per pass (default 1; a plan of more prefills prompts "
                                   "that many tokens at a time: megrun --prefill-plan)"),
                          cl::value_desc("T"), cl::init(1), cl::cat(megCategory));
cl::opt<int> vocabDivisibleBy("make-vocab-size-divisible-by",
                              cl::desc("Pad the vocabulary to a multiple of N x tp (Megatron-LM's flag; overrides the "
                                       "description's meg.vocab_divisible_by, default 128)"),
                              cl::value_desc("N"), cl::cat(megCategory));
cl::opt<std::string> head("head",
                          cl::desc("BERT's head: pretraining (MLM + NSP), multiple-choice (BertForMultipleChoice) or "
                                   "classification (BertForSequenceClassification); overrides the description's "
                                   "architectures and meg.head"),
                          cl::value_desc("pretraining|multiple-choice|classification"), cl::cat(megCategory));
cl::opt<std::string> mode("mode",
                          cl::desc("Graph to build: train (loss), infer (logits, no dropout) or decode (GPT: one new "
                                   "token per pass against a KV cache of --seq positions, default n_positions)"),
                          cl::value_desc("train|infer|decode"), cl::init("train"), cl::cat(megCategory));
cl::opt<std::string> emit("emit", cl::desc("What to write: ir, plan, report or dot"),
                          cl::value_desc("ir|plan|report|dot"), cl::init("ir"), cl::cat(megCategory));
cl::opt<std::string> outputPath("o", cl::desc("Output file (default: stdout)"), cl::value_desc("PATH"),
                                cl::init("-"), cl::cat(megCategory));
cl::opt<std::string> passes("passes",
                            cl::desc("Pass pipeline to run instead of the default one, e.g. 'autodiff,partition' "
                                     "('verify' leaves the graph as built)"),
                            cl::value_desc("P"), cl::cat(megCategory));
cl::opt<bool> printIrAfterAll("print-ir-after-all", cl::desc("Print the IR after every pass (to stderr)"),
                              cl::cat(megCategory));
cl::list<std::string> printIrAfter("print-ir-after", cl::desc("Print the IR after the named pass (to stderr)"),
                                   cl::value_desc("NAME"), cl::CommaSeparated, cl::cat(megCategory));
cl::opt<bool> timePasses("time-passes", cl::desc("Time each pass (report on stderr)"), cl::cat(megCategory));
cl::opt<bool> bf16("bf16", cl::desc("Mixed precision: bf16 compute, fp32 master weights and optimizer"),
                   cl::cat(megCategory));
cl::opt<bool> fp16("fp16", cl::desc("Mixed precision: fp16 compute, fp32 master weights and optimizer"),
                   cl::cat(megCategory));
cl::opt<long long> dpBucketBytes("dp-bucket-bytes",
                                 cl::desc("Bucket the dp all-reduces (reduce-scatters with the distributed "
                                          "optimizer) of gradients, at most N bytes per rank each, "
                                          "one collective per bucket; 0 = one per gradient (default 26214400)"),
                                 cl::value_desc("N"), cl::init(passes::BucketDpOptions().bytes),
                                 cl::cat(megCategory));

// Training (the optimizer pass), with Megatron-LM's flag names.
cl::OptionCategory optCategory("megc training options (Megatron-LM names)");
cl::opt<double> lr("lr", cl::desc("Peak learning rate (default 3e-4)"), cl::init(3e-4), cl::cat(optCategory));
cl::opt<double> minLr("min-lr", cl::desc("Learning rate at the end of the decay (default 0)"), cl::init(0.0),
                      cl::cat(optCategory));
cl::opt<int> warmupIters("lr-warmup-iters", cl::desc("Linear warm-up steps from 0 (default 0)"), cl::init(0),
                         cl::cat(optCategory));
cl::opt<int> decayIters("lr-decay-iters", cl::desc("Steps until min-lr is reached (default: --train-iters)"),
                        cl::init(0), cl::cat(optCategory));
cl::opt<int> trainIters("train-iters", cl::desc("Training steps the schedule is planned for (default 0)"),
                        cl::init(0), cl::cat(optCategory));
cl::opt<std::string> decayStyle("lr-decay-style", cl::desc("constant, linear or cosine (default constant)"),
                                cl::init("constant"), cl::cat(optCategory));
cl::opt<double> clipGrad("clip-grad", cl::desc("Global gradient-norm clipping threshold, 0 = off (default 1.0)"),
                         cl::init(1.0), cl::cat(optCategory));
cl::opt<double> weightDecay("weight-decay", cl::desc("AdamW decoupled weight decay; skips biases and LayerNorm gains "
                                                     "(default 0.01)"),
                            cl::init(0.01), cl::cat(optCategory));
cl::opt<double> adamBeta1("adam-beta1", cl::desc("Adam beta1 (default 0.9)"), cl::init(0.9), cl::cat(optCategory));
cl::opt<double> adamBeta2("adam-beta2", cl::desc("Adam beta2 (default 0.999)"), cl::init(0.999), cl::cat(optCategory));
cl::opt<double> adamEps("adam-eps", cl::desc("Adam epsilon (default 1e-8)"), cl::init(1e-8), cl::cat(optCategory));
// fp16 loss scaling (autodiff{loss_scale} and the optimizer pass's scaler), with Megatron-LM's flag names.
cl::opt<double> initialLossScale("initial-loss-scale", cl::desc("fp16: the dynamic loss scale at start (default 2^32)"),
                                 cl::init(4294967296.0), cl::cat(optCategory));
cl::opt<double> minLossScale("min-loss-scale", cl::desc("fp16: the dynamic loss scale's lower bound (default 1)"),
                             cl::init(1.0), cl::cat(optCategory));
cl::opt<int> lossScaleWindow("loss-scale-window",
                             cl::desc("fp16: clean steps in a row before the loss scale doubles (default 1000)"),
                             cl::init(1000), cl::cat(optCategory));
cl::opt<int> hysteresis("hysteresis", cl::desc("fp16: overflowing steps before the loss scale halves (default 2)"),
                        cl::init(2), cl::cat(optCategory));
cl::opt<double> fixedLossScale("loss-scale",
                               cl::desc("fp16: a fixed loss scale instead of the dynamic one (overflowing steps "
                                        "are still skipped)"),
                               cl::init(0.0), cl::cat(optCategory));
// Activation recompute (the recompute pass), with Megatron-LM's flag names.
cl::opt<std::string> recomputeGranularity(
    "recompute-granularity",
    cl::desc("Activation recompute: full (keep the inputs of layer groups, re-run the groups in the backward) or "
             "selective (re-run core attention); default none"),
    cl::value_desc("full|selective"), cl::cat(optCategory));
cl::opt<std::string> recomputeMethod("recompute-method",
                                     cl::desc("With full: uniform (groups of --recompute-num-layers layers, the "
                                              "default) or block (only the first --recompute-num-layers layers)"),
                                     cl::value_desc("uniform|block"), cl::cat(optCategory));
cl::opt<int> recomputeNumLayers("recompute-num-layers",
                                cl::desc("With full: layers per group (uniform) or layers recomputed (block); "
                                         "default 1"),
                                cl::value_desc("N"), cl::cat(optCategory));
cl::opt<int> globalBatchSize(
    "global-batch-size",
    cl::desc("Rows per training step over all dp ranks: m = G / (B x dp) micro-batches of B = --micro-batch-size rows "
             "per dp rank, gradients accumulated in fp32, one update (without it: one micro-batch of --micro-batch "
             "rows over all dp ranks)"),
    cl::value_desc("G"), cl::cat(optCategory));
cl::opt<bool> sequenceParallel(
    "sequence-parallel",
    cl::desc("Sequence parallelism (Korthikanti et al. 2022): LayerNorms, dropout and residual adds on s/tp tokens, "
             "reduce-scatter / all-gather around the tp GEMMs instead of all-reduces (strategy megatron-sp)"),
    cl::cat(optCategory));
cl::opt<bool> useDistributedOptimizer(
    "use-distributed-optimizer",
    cl::desc("ZeRO-1 (Megatron's distributed optimizer): fp32 masters and Adam state split over dp, gradients "
             "reduce-scattered, parameters all-gathered (optimizer{distributed=true}; dp = 1: no change)"),
    cl::cat(optCategory));
cl::opt<int> ppSize("pipeline-model-parallel-size",
                    cl::desc("Pipeline-parallel size P: the layers in P stages run with the 1F1B schedule over the "
                             "micro-batches of --global-batch-size (mesh dp x pp x tp)"),
                    cl::value_desc("P"), cl::init(1), cl::cat(optCategory));
cl::alias ppAlias("pp", cl::desc("Alias for --pipeline-model-parallel-size"), cl::aliasopt(ppSize));
cl::list<int> layersPerStage("num-layers-per-stage",
                             cl::desc("With --pp: the layers of each stage, first to last (default: an even split)"),
                             cl::value_desc("N,N,..."), cl::CommaSeparated, cl::cat(optCategory));
cl::alias microBatchSize("micro-batch-size", cl::desc("Alias for --micro-batch"), cl::aliasopt(microBatch));
cl::alias seqLength("seq-length", cl::desc("Alias for --seq"), cl::aliasopt(seqLen));

/// The optimizer pass's options from the training flags.
passes::OptimizerOptions optimizerOptions() {
  passes::OptimizerOptions o;
  o.lr = lr;
  o.minLr = minLr;
  o.warmup = warmupIters;
  o.decayIters = decayIters.getNumOccurrences() ? decayIters : trainIters;
  o.style = decayStyle;
  o.clip = clipGrad;
  o.weightDecay = weightDecay;
  o.beta1 = adamBeta1;
  o.beta2 = adamBeta2;
  o.eps = adamEps;
  o.lossScaleWindow = lossScaleWindow;
  o.hysteresis = hysteresis;
  o.minLossScale = minLossScale;
  o.dynamicLossScale = !fixedLossScale.getNumOccurrences();
  o.distributed = useDistributedOptimizer;
  return o;
}

/// Checks the loss-scaling flags: fp16 training only, values an fp32 scale can hold, fixed or dynamic.
llvm::Error checkLossScaleFlags(bool trains) {
  const cl::Option *flags[] = {&initialLossScale, &minLossScale, &lossScaleWindow, &hysteresis, &fixedLossScale};
  for (const cl::Option *o : flags)
    if (o->getNumOccurrences() && (!fp16 || !trains))
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "--" + o->ArgStr + " needs --fp16 training (bf16 and fp32 need no loss scaling)");
  auto scaleError = [](const cl::opt<double> &o) -> llvm::Error {
    if (o > 0 && o <= std::numeric_limits<float>::max())
      return llvm::Error::success();
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::formatv("--{0} must be a number in (0, 3.4e38] (an fp32 scale), got {1}", o.ArgStr,
                      llvm::format("%g", o.getValue())));
  };
  if (fixedLossScale.getNumOccurrences()) {
    for (const cl::Option *o : {flags[0], flags[1], flags[2], flags[3]})
      if (o->getNumOccurrences())
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       "--" + o->ArgStr + " applies to the dynamic loss scale, not --loss-scale");
    return scaleError(fixedLossScale);
  }
  for (const cl::opt<double> *o : {&initialLossScale, &minLossScale})
    if (auto err = scaleError(*o))
      return err;
  if (minLossScale > initialLossScale)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("--min-loss-scale {0} exceeds --initial-loss-scale {1}",
                                                 llvm::format("%g", minLossScale.getValue()),
                                                 llvm::format("%g", initialLossScale.getValue())));
  for (const cl::opt<int> *o : {&lossScaleWindow, &hysteresis})
    if (*o < 1 || *o > (1 << 24))
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          llvm::formatv("--{0} must be an integer in [1, 16777216], got {1}", o->ArgStr, o->getValue()));
  return llvm::Error::success();
}

llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

/// The recompute pass's options from the --recompute-* flags (checked by checkFlags); std::nullopt without them.
std::optional<passes::RecomputeOptions> recomputeOptions() {
  if (!recomputeGranularity.getNumOccurrences())
    return std::nullopt;
  passes::RecomputeOptions o;
  o.granularity = recomputeGranularity;
  if (recomputeMethod.getNumOccurrences())
    o.method = recomputeMethod;
  if (recomputeNumLayers.getNumOccurrences())
    o.numLayers = recomputeNumLayers;
  return o;
}

/// Checks the --recompute-* flags (Megatron's rules: method and num-layers only with full).
llvm::Error checkRecomputeFlags() {
  if (!recomputeGranularity.getNumOccurrences()) {
    for (const cl::Option *o : {static_cast<const cl::Option *>(&recomputeMethod),
                                static_cast<const cl::Option *>(&recomputeNumLayers)})
      if (o->getNumOccurrences())
        return makeError("--" + o->ArgStr + " needs --recompute-granularity full");
    return llvm::Error::success();
  }
  if (recomputeGranularity != "full" && recomputeGranularity != "selective")
    return makeError("unknown --recompute-granularity '" + recomputeGranularity + "' (expected full or selective)");
  if (recomputeGranularity == "selective")
    for (const cl::Option *o : {static_cast<const cl::Option *>(&recomputeMethod),
                                static_cast<const cl::Option *>(&recomputeNumLayers)})
      if (o->getNumOccurrences())
        return makeError("--" + o->ArgStr + " applies only to --recompute-granularity full (selective recomputes "
                         "core attention in every layer)");
  if (recomputeMethod.getNumOccurrences() && recomputeMethod != "uniform" && recomputeMethod != "block")
    return makeError("unknown --recompute-method '" + recomputeMethod + "' (expected uniform or block)");
  if (recomputeNumLayers.getNumOccurrences() && recomputeNumLayers < 1)
    return makeError("--recompute-num-layers must be positive (got " + llvm::Twine(int(recomputeNumLayers)) + ")");
  if (mode != "train")
    return makeError("--recompute-granularity needs --mode train (recompute re-runs the forward in the backward)");
  return llvm::Error::success();
}

std::string lowerFirst(llvm::StringRef s) {
  std::string out = s.str();
  if (!out.empty())
    out[0] = llvm::toLower(out[0]);
  return out;
}

int fail(llvm::StringRef msg) {
  // One line, whatever the message.
  llvm::errs() << "megc: error: "
               << printableText(msg.take_until([](char c) { return c == '\n'; }).rtrim(), SIZE_MAX) << '\n';
  llvm::errs().clear_error();
  return 1;
}

/// Writes `text` to stdout, or atomically to `path` (temp file in the same directory, then rename).
llvm::Error writeOutput(llvm::StringRef path, llvm::StringRef text) {
  if (path == "-") {
    llvm::outs() << text;
    llvm::outs().flush();
    if (std::error_code ec = llvm::outs().error()) {
      llvm::outs().clear_error();
      return makeError("cannot write to standard output: " + lowerFirst(ec.message()));
    }
    return llvm::Error::success();
  }
  auto temp = llvm::sys::fs::TempFile::create(path + ".tmp-%%%%%%");
  if (!temp)
    return makeError(path + ": " + lowerFirst(llvm::toString(temp.takeError())));
  {
    llvm::raw_fd_ostream os(temp->FD, /*shouldClose=*/false);
    os << text;
    os.flush();
    if (os.has_error()) {
      std::string msg = os.error().message();
      os.clear_error();
      llvm::consumeError(temp->discard());
      return makeError(path + ": " + lowerFirst(msg));
    }
  }
  if (auto err = temp->keep(path))
    return makeError(path + ": " + lowerFirst(llvm::toString(std::move(err))));
  return llvm::Error::success();
}

/// Checks --pipeline-model-parallel-size and --num-layers-per-stage.
llvm::Error checkPipelineFlags(bool isModel) {
  if (ppSize < 1)
    return makeError("--pipeline-model-parallel-size must be positive (got " + llvm::Twine(int(ppSize)) + ")");
  if (layersPerStage.getNumOccurrences() && ppSize == 1)
    return makeError("--num-layers-per-stage needs --pipeline-model-parallel-size > 1");
  if (ppSize == 1)
    return llvm::Error::success();
  if (!isModel)
    return makeError("--pipeline-model-parallel-size applies only to a model description (.json input)");
  if (mode != "train")
    return makeError("--pipeline-model-parallel-size needs --mode train (the 1F1B training schedule)");
  if (layersPerStage.getNumOccurrences() && int(layersPerStage.size()) != ppSize)
    return makeError(llvm::formatv("--num-layers-per-stage gives {0} stages, --pipeline-model-parallel-size {1}",
                                   layersPerStage.size(), int(ppSize))
                         .str());
  return llvm::Error::success();
}

/// Checks the flags that do not depend on the input.
llvm::Error checkFlags(bool isModel) {
  if (tpSize < 1)
    return makeError("--tp must be positive (got " + llvm::Twine(int(tpSize)) + ")");
  if (dpSize < 1)
    return makeError("--dp must be positive (got " + llvm::Twine(int(dpSize)) + ")");
  if (auto err = checkPipelineFlags(isModel))
    return err;
  if (microBatch.getNumOccurrences() && microBatch < 1)
    return makeError("--micro-batch must be positive (got " + llvm::Twine(int(microBatch)) + ")");
  if (globalBatchSize.getNumOccurrences() && globalBatchSize < 1)
    return makeError("--global-batch-size must be positive (got " + llvm::Twine(int(globalBatchSize)) + ")");
  if (globalBatchSize.getNumOccurrences() && mode != "train")
    return makeError("--global-batch-size needs --mode train (gradient accumulation)");
  if (useDistributedOptimizer && mode != "train")
    return makeError("--use-distributed-optimizer needs --mode train (it lays out the optimizer state)");
  if (seqLen.getNumOccurrences() && seqLen < 1)
    return makeError("--seq must be positive (got " + llvm::Twine(int(seqLen)) + ")");
  if (vocabDivisibleBy.getNumOccurrences() && vocabDivisibleBy < 1)
    return makeError("--make-vocab-size-divisible-by must be positive (got " + llvm::Twine(int(vocabDivisibleBy)) +
                     ")");
  if (dpBucketBytes < 0)
    return makeError("--dp-bucket-bytes must not be negative (got " + llvm::Twine(int64_t(dpBucketBytes)) + ")");
  if (head.getNumOccurrences() && !frontend::parseBertHead(head))
    return makeError("unknown --head '" + head + "' (expected pretraining, multiple-choice or classification)");
  if (head.getNumOccurrences() && !isModel)
    return makeError("--head applies only to a model description (.json input)");
  if (!frontend::parseBuildMode(mode))
    return makeError("unknown --mode '" + mode + "' (expected train, infer or decode)");
  if (decodeTokens.getNumOccurrences() && (mode != "decode" || decodeTokens < 1))
    return makeError("--decode-tokens needs --mode decode and a positive count (got " + llvm::Twine(int(decodeTokens)) +
                     ")");
  if (mode == "decode" && (dpSize > 1 || bf16 || fp16 || sequenceParallel))
    return makeError("--mode decode runs in fp32 on dp 1 without --sequence-parallel (the KV cache is split over tp "
                     "only)");
  if (!llvm::is_contained(llvm::ArrayRef<llvm::StringRef>{"ir", "plan", "report", "dot"}, emit.getValue()))
    return makeError("unknown --emit '" + emit + "' (expected ir, plan, report or dot)");
  if (auto err = checkRecomputeFlags())
    return err;
  if (!isModel)
    for (const cl::Option *o : {static_cast<const cl::Option *>(&microBatch),
                                static_cast<const cl::Option *>(&seqLen), static_cast<const cl::Option *>(&mode),
                                static_cast<const cl::Option *>(&vocabDivisibleBy),
                                static_cast<const cl::Option *>(&recomputeGranularity),
                                static_cast<const cl::Option *>(&globalBatchSize),
                                static_cast<const cl::Option *>(&useDistributedOptimizer)})
      if (o->getNumOccurrences())
        return makeError("--" + o->ArgStr + " applies only to a model description (.json input)");
  if (bf16 && fp16)
    return makeError("--bf16 and --fp16 are mutually exclusive");
  if (auto err = checkLossScaleFlags(isModel && *frontend::parseBuildMode(mode) == frontend::BuildMode::Train))
    return err;
  if (emit == "plan" && outputPath == "-")
    return makeError("--emit plan needs -o DIR");
  return llvm::Error::success();
}

/// Runs the compiler and returns the output text.
llvm::Expected<std::string> run() {
  bool isModel = llvm::StringRef(inputPath).endswith(".json") || llvm::sys::fs::is_directory(inputPath);
  if (auto err = checkFlags(isModel))
    return err;

  std::unique_ptr<ir::Graph> graph;
  std::optional<frontend::ModelConfig> config;
  int64_t microBatchesPerStep = 1;
  frontend::BuildMode buildMode = *frontend::parseBuildMode(mode);
  if (isModel) {
    frontend::ConfigOverrides overrides;
    if (microBatch.getNumOccurrences())
      overrides.microBatch = microBatch;
    if (seqLen.getNumOccurrences())
      overrides.seq = seqLen;
    if (vocabDivisibleBy.getNumOccurrences())
      overrides.vocabDivisibleBy = vocabDivisibleBy;
    if (head.getNumOccurrences())
      overrides.head = frontend::parseBertHead(head);
    auto loaded = frontend::loadModelConfig(inputPath, overrides);
    if (!loaded)
      return loaded.takeError();
    config = std::move(*loaded);
    if (sequenceParallel && config->head == frontend::BertHead::MultipleChoice)
      return makeError("--sequence-parallel does not apply to the multiple-choice head (its inputs are [b, choices, "
                       "s], not [b, s])");
    // A decode plan's KV cache holds the whole context the model has positions for, unless --seq says otherwise.
    if (buildMode == frontend::BuildMode::Decode && !seqLen.getNumOccurrences())
      config->seq = config->maxPositions;
    if (decodeTokens > config->seq)
      return makeError(llvm::formatv("--decode-tokens {0} exceeds the KV cache's {1} positions (--seq)",
                                     int(decodeTokens), config->seq)
                           .str());
    // --global-batch-size G: the graph is one micro-batch of B rows per dp rank (B x dp rows), run m times a step.
    if (globalBatchSize.getNumOccurrences()) {
      int64_t rows = config->microBatch * int64_t(dpSize);
      if (globalBatchSize % rows != 0)
        return makeError(llvm::formatv("--global-batch-size {0} is not a multiple of micro-batch x dp = {1} x {2} = "
                                       "{3}",
                                       int(globalBatchSize), config->microBatch, int(dpSize), rows)
                             .str());
      config->microBatch = rows;
      microBatchesPerStep = globalBatchSize / rows;
    }
    if (recomputeNumLayers.getNumOccurrences() && recomputeNumLayers > config->numLayers)
      return makeError("--recompute-num-layers " + llvm::Twine(int(recomputeNumLayers)) + " exceeds the " +
                       llvm::Twine(config->numLayers) + " layers of the model");
    // The vocabulary is padded for this tp (Megatron: to a multiple of vocab_divisible_by x tp).
    auto built = frontend::buildModel(*config, {buildMode, tpSize, decodeTokens});
    if (!built)
      return built.takeError();
    graph = std::move(*built);
    if (auto err = ir::verifyGraph(*graph, inputPath))
      return makeError("internal error: the frontend built an invalid graph: " + llvm::toString(std::move(err)));
  } else {
    auto parsed = ir::parseGraphFile(inputPath);
    if (!parsed)
      return parsed.takeError();
    graph = std::move(*parsed);
  }
  // The mesh: --tp/--dp for a model description; a .mir file keeps its own unless the flags are given.
  if (isModel || tpSize.getNumOccurrences() || dpSize.getNumOccurrences()) {
    ir::Mesh mesh = graph->getMesh();
    if (isModel || tpSize.getNumOccurrences())
      mesh.size[unsigned(ir::MeshAxis::TP)] = tpSize;
    if (isModel || dpSize.getNumOccurrences())
      mesh.size[unsigned(ir::MeshAxis::DP)] = dpSize;
    graph->setMesh(mesh);
  }
  passes::PipelineOptions pipelineOptions;
  pipelineOptions.differentiate = isModel && buildMode == frontend::BuildMode::Train;
  pipelineOptions.optimizer = optimizerOptions();
  if (bf16 || fp16)
    pipelineOptions.mixedPrecision = passes::MixedPrecisionOptions{.dtype = bf16 ? "bf16" : "f16"};
  if (fp16 && pipelineOptions.differentiate)
    pipelineOptions.autodiff.lossScale = fixedLossScale.getNumOccurrences() ? fixedLossScale : initialLossScale;
  pipelineOptions.recompute = recomputeOptions();
  if (sequenceParallel)
    pipelineOptions.shardParams.strategy = "megatron-sp";
  if (microBatchesPerStep > 1)
    pipelineOptions.gradAccum = passes::GradAccumOptions{.microBatches = microBatchesPerStep};
  if (ppSize > 1) {
    passes::PipelineStagesOptions &stages = pipelineOptions.pipeline.emplace();
    stages.stages = ppSize;
    for (int n : layersPerStage)
      stages.layers += (stages.layers.empty() ? "" : ":") + std::to_string(n);
  }
  if (dpBucketBytes == 0)
    pipelineOptions.bucketDp.reset();
  else
    pipelineOptions.bucketDp->bytes = dpBucketBytes;
  // Sequence parallelism's LayerNorm and bias gradients are summed over tp: bucketed too.
  if (pipelineOptions.bucketDp && sequenceParallel)
    pipelineOptions.bucketDp->tp = true;
  if (emit == "plan") {
    passes::LowerToPlanOptions &lower = pipelineOptions.lowerToPlan.emplace();
    lower.dir = outputPath;
    if (isModel) {
      lower.mode = frontend::buildModeName(buildMode).str();
      lower.model = frontend::modelDescriptionPath(inputPath);
    } else {
      lower.mode = graph->findNamed(ir::OpKind::Output, "loss")                 ? "train"
                   : graph->nodesOfKind(ir::OpKind::DecodeAttention).empty() ? "infer"
                                                                             : "decode";
    }
  }

  // The pipeline: --passes (with --emit plan, then lower-to-plan), else the default one where it applies. --emit
  // report prints the graph as it stands and compiles a copy (planReportLines).
  std::optional<passes::PassManager> pm;
  if (passes.getNumOccurrences()) {
    auto parsed = passes::PassManager::parse(passes);
    if (!parsed)
      return parsed.takeError();
    pm = std::move(*parsed);
    if (pipelineOptions.lowerToPlan)
      if (auto err = pm->add(passes::createLowerToPlanPass(*pipelineOptions.lowerToPlan)))
        return err;
  } else if (emit == "plan" || (isModel && emit != "report")) {
    auto built = passes::buildDefaultPipeline(pipelineOptions);
    if (!built)
      return built.takeError();
    pm = std::move(*built);
  }
  if (pm) {
    passes::PipelineConfig pipelineConfig;
    pipelineConfig.timePasses = timePasses;
    pipelineConfig.printStream = &llvm::errs();
    if (printIrAfterAll)
      pipelineConfig.printIRAfter.push_back("*");
    pipelineConfig.printIRAfter.insert(pipelineConfig.printIRAfter.end(), printIrAfter.begin(), printIrAfter.end());
    if (auto err = pm->run(*graph, pipelineConfig))
      return err;
  }

  std::string out;
  llvm::raw_string_ostream os(out);
  if (emit == "ir") {
    ir::printGraph(*graph, os);
  } else if (emit == "dot") {
    passes::writeDot(*graph, os);
  } else if (emit == "report") {
    frontend::ReportContext ctx;
    if (config) {
      ctx.config = &*config;
      ctx.mode = buildMode;
      ctx.tp = tpSize;
    }
    frontend::printReport(*graph, ctx, os);
    // Activation bytes per layer: the same model with about half the layers (a multiple of the recompute groups),
    // compiled the same way; the arena difference per layer (passes/Report.h).
    std::unique_ptr<ir::Graph> fewer;
    passes::ReportModel model;
    int64_t group = pipelineOptions.recompute ? pipelineOptions.recompute->numLayers : 1;
    if (config && pipelineOptions.differentiate && config->numLayers >= 2 * group) {
      frontend::ModelConfig half = *config;
      half.numLayers = config->numLayers / 2 / group * group;
      auto built = frontend::buildModel(half, {buildMode, tpSize, decodeTokens});
      if (!built)
        return built.takeError();
      fewer = std::move(*built);
      fewer->setMesh(graph->getMesh());
      // The rows one rank holds (the graph's micro-batch is split over dp).
      model.dims = {.microBatch = config->microBatch / int64_t(dpSize), .seq = config->seq, .hidden = config->hidden,
                    .heads = config->numHeads, .layers = config->numLayers, .fewerLayers = half.numLayers};
      model.fewer = fewer.get();
    }
    auto lines = passes::planReportLines(*graph, pipelineOptions, &model);
    if (!lines)
      return lines.takeError();
    for (const std::string &line : *lines)
      os << line << '\n';
  }
  os.flush();
  return out;
}

} // namespace

int main(int argc, char **argv) {
  // A write past the file-size limit fails with EFBIG (reported with the file) instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  if (isVerifyCommand(argc, argv)) // megc verify PLAN_DIR
    return runVerifyCommand(argc, argv);
  cl::HideUnrelatedOptions({&megCategory, &optCategory});
  if (auto bad = meg::tools::parseFlags(
          argc, argv, "meg compiler: model description or textual IR -> IR, report or per-rank plans\n"))
    return fail(*bad);

  llvm::Expected<std::string> out = std::string();
  try {
    out = run();
  } catch (const std::bad_alloc &) { // the last resort: sizes are bounded before anything is built
    return fail("out of memory");
  }
  if (!out)
    return fail(llvm::toString(out.takeError()));
  if (emit != "plan") // the plan directory is already written
    if (auto err = writeOutput(outputPath, *out))
    return fail(llvm::toString(std::move(err)));
  return 0;
}
