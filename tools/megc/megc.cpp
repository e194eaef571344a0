//===- megc.cpp - the meg compiler driver -----------------------------------===//
//
//   megc MODEL.json|FILE.mir [--tp N] [--dp N] [--micro-batch B] [--seq S] [--mode train|infer]
//        [--emit ir|plan|report|dot] [-o PATH] [--passes P] [--print-ir-after-all] [--print-ir-after=NAME]
//        [--time-passes] [--dp-bucket-bytes N] [--make-vocab-size-divisible-by N]
//        [--recompute-granularity full|selective [--recompute-method uniform|block] [--recompute-num-layers N]]
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
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Dot.h"
#include "passes/Pipeline.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <optional>

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
cl::opt<int> vocabDivisibleBy("make-vocab-size-divisible-by",
                              cl::desc("Pad the vocabulary to a multiple of N x tp (Megatron-LM's flag; overrides the "
                                       "description's meg.vocab_divisible_by, default 128)"),
                              cl::value_desc("N"), cl::cat(megCategory));
cl::opt<std::string> mode("mode", cl::desc("Graph to build: train (loss) or infer (logits, no dropout)"),
                          cl::value_desc("train|infer"), cl::init("train"), cl::cat(megCategory));
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
                                 cl::desc("Bucket the dp all-reduces of gradients, at most N bytes per rank each, "
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
  return o;
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
  llvm::errs() << "megc: error: " << msg.take_until([](char c) { return c == '\n'; }).rtrim() << '\n';
  return 1;
}

/// Writes `text` to stdout, or atomically to `path` (temp file in the same directory, then rename).
llvm::Error writeOutput(llvm::StringRef path, llvm::StringRef text) {
  if (path == "-") {
    llvm::outs() << text;
    llvm::outs().flush();
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

/// Checks the flags that do not depend on the input.
llvm::Error checkFlags(bool isModel) {
  if (tpSize < 1)
    return makeError("--tp must be positive (got " + llvm::Twine(int(tpSize)) + ")");
  if (dpSize < 1)
    return makeError("--dp must be positive (got " + llvm::Twine(int(dpSize)) + ")");
  if (microBatch.getNumOccurrences() && microBatch < 1)
    return makeError("--micro-batch must be positive (got " + llvm::Twine(int(microBatch)) + ")");
  if (seqLen.getNumOccurrences() && seqLen < 1)
    return makeError("--seq must be positive (got " + llvm::Twine(int(seqLen)) + ")");
  if (vocabDivisibleBy.getNumOccurrences() && vocabDivisibleBy < 1)
    return makeError("--make-vocab-size-divisible-by must be positive (got " + llvm::Twine(int(vocabDivisibleBy)) +
                     ")");
  if (dpBucketBytes < 0)
    return makeError("--dp-bucket-bytes must not be negative (got " + llvm::Twine(int64_t(dpBucketBytes)) + ")");
  if (!frontend::parseBuildMode(mode))
    return makeError("unknown --mode '" + mode + "' (expected train or infer)");
  if (!llvm::is_contained(llvm::ArrayRef<llvm::StringRef>{"ir", "plan", "report", "dot"}, emit.getValue()))
    return makeError("unknown --emit '" + emit + "' (expected ir, plan, report or dot)");
  if (auto err = checkRecomputeFlags())
    return err;
  if (!isModel)
    for (const cl::Option *o : {static_cast<const cl::Option *>(&microBatch),
                                static_cast<const cl::Option *>(&seqLen), static_cast<const cl::Option *>(&mode),
                                static_cast<const cl::Option *>(&vocabDivisibleBy),
                                static_cast<const cl::Option *>(&recomputeGranularity)})
      if (o->getNumOccurrences())
        return makeError("--" + o->ArgStr + " applies only to a model description (.json input)");
  if (bf16 && fp16)
    return makeError("--bf16 and --fp16 are mutually exclusive");
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
  frontend::BuildMode buildMode = *frontend::parseBuildMode(mode);
  if (isModel) {
    frontend::ConfigOverrides overrides;
    if (microBatch.getNumOccurrences())
      overrides.microBatch = microBatch;
    if (seqLen.getNumOccurrences())
      overrides.seq = seqLen;
    if (vocabDivisibleBy.getNumOccurrences())
      overrides.vocabDivisibleBy = vocabDivisibleBy;
    auto loaded = frontend::loadModelConfig(inputPath, overrides);
    if (!loaded)
      return loaded.takeError();
    config = std::move(*loaded);
    if (recomputeNumLayers.getNumOccurrences() && recomputeNumLayers > config->numLayers)
      return makeError("--recompute-num-layers " + llvm::Twine(int(recomputeNumLayers)) + " exceeds the " +
                       llvm::Twine(config->numLayers) + " layers of the model");
    // The vocabulary is padded for this tp (Megatron: to a multiple of vocab_divisible_by x tp).
    auto built = frontend::buildModel(*config, {buildMode, tpSize});
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
  pipelineOptions.recompute = recomputeOptions();
  if (dpBucketBytes == 0)
    pipelineOptions.bucketDp.reset();
  else
    pipelineOptions.bucketDp->bytes = dpBucketBytes;
  if (emit == "plan") {
    passes::LowerToPlanOptions &lower = pipelineOptions.lowerToPlan.emplace();
    lower.dir = outputPath;
    if (isModel) {
      lower.mode = frontend::buildModeName(buildMode).str();
      lower.model = frontend::modelDescriptionPath(inputPath);
    } else {
      lower.mode = graph->findNamed(ir::OpKind::Output, "loss") ? "train" : "infer";
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
      auto built = frontend::buildModel(half, {buildMode, tpSize});
      if (!built)
        return built.takeError();
      fewer = std::move(*built);
      fewer->setMesh(graph->getMesh());
      model.dims = {.microBatch = config->microBatch, .seq = config->seq, .hidden = config->hidden,
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

/// Parses the command line. llvm::cl prints some problems itself to stderr (a bad option value, a missing value),
/// so stderr is captured while parsing and every problem becomes one line of ours.
bool parseCommandLine(int argc, char **argv, std::string &error) {
  std::string clErrors;
  llvm::raw_string_ostream clErrs(clErrors);
  llvm::errs().flush();
  FILE *capture = std::tmpfile();
  int savedStderr = capture ? ::dup(2) : -1;
  if (savedStderr >= 0)
    ::dup2(::fileno(capture), 2);
  bool ok = cl::ParseCommandLineOptions(
      argc, argv, "meg compiler: model description or textual IR -> IR, report or per-rank plans\n", &clErrs);
  llvm::errs().flush();
  if (savedStderr >= 0) {
    ::dup2(savedStderr, 2);
    ::close(savedStderr);
    std::rewind(capture);
    std::string printed;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), capture)) > 0;)
      printed.append(buf, n);
    clErrors = printed + clErrs.str();
  }
  if (capture)
    std::fclose(capture);
  if (ok)
    return true;
  // First line, without cl's "<program>: " prefix and "  Try: '<program> --help'" tail.
  llvm::StringRef msg = llvm::StringRef(clErrors).trim();
  msg = msg.take_until([](char c) { return c == '\n'; });
  std::string program = llvm::sys::path::filename(argv[0]).str();
  if (msg.consume_front(program))
    msg = msg.ltrim(": ");
  msg = msg.split("  Try:").first.rtrim(" .!");
  error = msg.empty() ? "bad command line" : lowerFirst(msg);
  return false;
}

} // namespace

int main(int argc, char **argv) {
  cl::HideUnrelatedOptions({&megCategory, &optCategory});
  std::string clError;
  if (!parseCommandLine(argc, argv, clError))
    return fail(clError);

  auto out = run();
  if (!out)
    return fail(llvm::toString(out.takeError()));
  if (emit != "plan") // the plan directory is already written
    if (auto err = writeOutput(outputPath, *out))
    return fail(llvm::toString(std::move(err)));
  return 0;
}
