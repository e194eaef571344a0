//===- Generate.cpp - text generation with an inference or decode plan ---------===//
#include "runtime/train/Generate.h"

#include "runtime/data/BatchSource.h"
#include "runtime/data/Tokenizer.h"
#include "runtime/io/Safetensors.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <chrono>

using namespace meg::runtime;

static llvm::Error fail(const llvm::Twine &msg) { return llvm::createStringError(llvm::inconvertibleErrorCode(), msg); }

llvm::Error GenerateOptions::check() const {
  if (newTokens < 1)
    return fail("--max-new-tokens must be positive (got " + llvm::Twine(newTokens) + ")");
  return sampling.check();
}

namespace {

/// What both plan kinds share: the plan's logits width and vocabulary, the tokens so far, the sampler, the rows kept.
struct Generation {
  Session &session;
  const GenerateOptions &options;
  int64_t width = 0; ///< floats between logits rows (the padded vocabulary)
  std::vector<int32_t> tokens;
  GenerateResult result;
  Sampler sampler;
  StepContext ctx;

  Generation(Session &session, const GenerateOptions &options) : session(session), options(options),
                                                                  sampler(options.sampling) {
    ctx.dropout = false;
    ctx.evaluation = true;
  }

  /// Checks the logits output [1, S, width] and the vocabulary, and encodes the prompt.
  llvm::Error start(const PlanOutput &logits) {
    const LoadedPlan &plan = session.plan();
    const Shape &out = logits.tensor.globalShape;
    if (out.size() != 3 || out[0] != 1)
      return fail(llvm::formatv("{0}: --generate needs micro-batch 1 (megc --micro-batch 1)", plan.path));
    // The logits may be wider than the vocabulary (Megatron's padding, masked to -inf): rows are `width` apart, and
    // only real ids are candidates.
    width = out[2];
    result.vocab = modelVocabSize(plan);
    if (result.vocab < 256)
      return fail(llvm::formatv("{0}: byte-level generation needs a vocabulary of at least 256, the model has {1}",
                                plan.path, result.vocab));
    tokens = ByteTokenizer().encode(options.prompt);
    if (tokens.empty())
      return fail("--generate needs a non-empty prompt");
    return llvm::Error::success();
  }

  /// Feeds `batch`, runs a pass and returns the logits (every row of the output).
  llvm::Expected<std::vector<float>> pass(const GlobalBatch &batch) { return pass(session, batch); }
  llvm::Expected<std::vector<float>> pass(Session &on, const GlobalBatch &batch) {
    auto start = std::chrono::steady_clock::now();
    if (auto err = on.feed(batch))
      return err;
    if (auto ran = on.forward(ctx); !ran)
      return ran.takeError();
    ++result.passes;
    auto logits = on.assembleOutput("logits");
    result.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return logits;
  }

  void keep(const std::vector<float> &all, size_t row) {
    if (!options.logitsPath.empty())
      result.logits.insert(result.logits.end(), all.begin() + row * size_t(width),
                           all.begin() + row * size_t(width) + size_t(result.vocab));
  }

  /// Appends the token chosen from row `row` of `all`. Only byte ids can be printed: the candidates are ids 0..255
  /// (real ids, never padding).
  void choose(const std::vector<float> &all, size_t row) {
    llvm::ArrayRef<float> logits(all.data() + row * size_t(width), 256);
    tokens.push_back(sampler.sample(logits, tokens.size()));
  }

  llvm::Expected<GenerateResult> finish() {
    auto text = ByteTokenizer().decode(tokens);
    if (!text)
      return text.takeError();
    result.text = std::move(*text);
    return std::move(result);
  }
};

/// An inference plan: every new token reruns the (sliding) window.
llvm::Expected<GenerateResult> generateInfer(Generation &g, int64_t seq) {
  for (int64_t t = 0; t < g.options.newTokens; ++t) {
    size_t begin = g.tokens.size() > size_t(seq) ? g.tokens.size() - size_t(seq) : 0;
    GlobalBatch batch;
    IntTensor &window = batch.tensors["input_ids"];
    window.shape = {1, seq};
    window.data.assign(size_t(seq), 0);
    std::copy(g.tokens.begin() + begin, g.tokens.end(), window.data.begin());
    auto all = g.pass(batch);
    if (!all)
      return all.takeError();
    size_t last = g.tokens.size() - begin - 1;
    for (size_t row = t == 0 ? 0 : last; row <= last; ++row)
      g.keep(*all, row);
    g.choose(*all, last);
  }
  return g.finish();
}

/// The positions of a decode plan's KV cache: dim 1 of its `kv_cache.` states.
std::optional<int64_t> cacheLength(const LoadedPlan &plan) {
  for (const PlanParam &s : plan.states)
    if (llvm::StringRef(s.name).startswith("kv_cache.") && s.globalShape.size() == 4)
      return s.globalShape[1];
  return std::nullopt;
}

/// The decode plan's inputs input_ids and position [1, T] and output logits (checked), or an error naming what.
llvm::Expected<const PlanOutput *> decodeInterface(const LoadedPlan &plan, llvm::StringRef flag, int64_t &tokens) {
  std::optional<size_t> ids = plan.findInput("input_ids"), position = plan.findInput("position");
  const PlanOutput *logits = plan.findOutput("logits");
  if (plan.mode != "decode" || !ids || !position || !logits || plan.inputs.size() != 2 ||
      plan.inputs[*ids].globalShape.size() != 2 || plan.inputs[*ids].globalShape[0] != 1 ||
      plan.inputs[*position].globalShape != plan.inputs[*ids].globalShape)
    return fail(plan.path + ": " + flag + " needs a GPT decode plan of micro-batch 1 (megc --mode decode " +
                "--micro-batch 1: input_ids and position [1, T] in, logits out)");
  tokens = plan.inputs[*ids].globalShape[1];
  return logits;
}

/// Runs the prompt through the prefill session T positions a pass, keeps its rows, chooses the first new token and
/// hands the caches to the decode session (same plan states, rank by rank).
llvm::Error prefillPrompt(Generation &g, Session &prefill) {
  const LoadedPlan &plan = prefill.plan(), &decode = g.session.plan();
  int64_t t = 0;
  auto logits = decodeInterface(plan, "--prefill-plan", t);
  if (!logits)
    return logits.takeError();
  if ((*logits)->tensor.globalShape.size() != 3 || (*logits)->tensor.globalShape[2] != g.width ||
      prefill.world() != g.session.world() || plan.states.size() != decode.states.size() ||
      !llvm::all_of(llvm::zip(plan.states, decode.states), [](auto pair) {
        return std::get<0>(pair).name == std::get<1>(pair).name &&
               std::get<0>(pair).globalShape == std::get<1>(pair).globalShape;
      }))
    return fail(plan.path + ": the prefill plan is not of the decode plan's model, mesh and KV cache");
  int64_t prompt = int64_t(g.tokens.size());
  for (int64_t start = 0; start < prompt; start += t) {
    GlobalBatch batch;
    IntTensor &ids = batch.tensors["input_ids"], &position = batch.tensors["position"];
    ids.shape = position.shape = {1, t};
    for (int64_t i = 0; i < t; ++i) {
      bool real = start + i < prompt;
      ids.data.push_back(real ? g.tokens[size_t(start + i)] : 0);
      position.data.push_back(real ? int32_t(start + i) : -1);
    }
    auto all = g.pass(prefill, batch);
    if (!all)
      return all.takeError();
    int64_t rows = std::min(t, prompt - start);
    for (int64_t row = 0; row < rows; ++row)
      g.keep(*all, size_t(row));
    if (start + t >= prompt)
      g.choose(*all, size_t(rows - 1));
  }
  for (int r = 0; r < prefill.world(); ++r) {
    if (!prefill.hosts(r))
      continue;
    for (size_t i = 0; i < plan.states.size(); ++i) {
      std::vector<float> values(size_t(prefill.plan(r).states[i].numel()));
      prefill.backend(r).readState(i, values);
      g.session.backend(r).writeState(i, values);
    }
  }
  return llvm::Error::success();
}

/// A decode plan: one pass per token, prompt included (or the prompt from a prefill session).
llvm::Expected<GenerateResult> generateDecode(Generation &g, Session *prefill) {
  const LoadedPlan &plan = g.session.plan();
  std::optional<int64_t> cache = cacheLength(plan);
  if (!cache)
    return fail(plan.path + ": the decode plan has no KV-cache state (kv_cache.*)");
  int64_t prompt = int64_t(g.tokens.size()), needed = prompt + g.options.newTokens - 1;
  if (needed > *cache)
    return fail(llvm::formatv("{0}: the prompt ({1} tokens) and --max-new-tokens {2} need {3} positions, but the "
                              "decode plan's KV cache holds {4} (megc --mode decode --seq)",
                              plan.path, prompt, g.options.newTokens, needed, *cache));
  int64_t first = 0;
  if (prefill) {
    if (auto err = prefillPrompt(g, *prefill))
      return err;
    first = prompt;
  }
  for (int64_t p = first; p < needed; ++p) {
    GlobalBatch batch;
    batch.tensors["input_ids"] = IntTensor{{1, 1}, {g.tokens[size_t(p)]}};
    batch.tensors["position"] = IntTensor{{1, 1}, {int32_t(p)}};
    auto all = g.pass(batch);
    if (!all)
      return all.takeError();
    g.keep(*all, 0);
    if (p >= prompt - 1)
      g.choose(*all, 0);
  }
  return g.finish();
}

} // namespace

llvm::Expected<GenerateResult> meg::runtime::generate(Session &session, const GenerateOptions &options,
                                                      Session *prefill) {
  const LoadedPlan &plan = session.plan();
  std::optional<size_t> ids = plan.findInput("input_ids");
  const PlanOutput *logits = plan.findOutput("logits");
  Generation g(session, options);
  if (plan.mode == "decode") {
    int64_t t = 0;
    auto decodeLogits = decodeInterface(plan, "--generate", t);
    if (!decodeLogits)
      return decodeLogits.takeError();
    if (t != 1)
      return fail(llvm::formatv("{0}: --generate needs a decode plan of one token per pass (this one takes {1}: "
                                "give it as --prefill-plan)",
                                plan.path, t));
    if (auto err = g.start(**decodeLogits))
      return err;
    return generateDecode(g, prefill);
  }
  if (prefill)
    return fail(plan.path + ": --prefill-plan goes with a decode plan (megc --mode decode)");
  if (plan.mode != "infer" || !ids || !logits || plan.inputs.size() != 1)
    return fail(plan.path + ": --generate needs a GPT inference plan (megc --mode infer: input_ids in, logits out)");
  const Shape &in = plan.inputs[*ids].globalShape;
  if (in.size() != 2 || in[0] != 1)
    return fail(llvm::formatv("{0}: --generate needs micro-batch 1 (megc --micro-batch 1), got input_ids {1}",
                              plan.path, in.size() == 2 ? in[0] : -1));
  if (auto err = g.start(*logits))
    return err;
  return generateInfer(g, in[1]);
}

llvm::Error meg::runtime::writeLogits(const GenerateResult &result, llvm::StringRef path) {
  SafetensorsWriter writer;
  int64_t rows = result.vocab ? int64_t(result.logits.size()) / result.vocab : 0;
  if (auto err = writer.addF32("logits", {rows, result.vocab}, result.logits))
    return err;
  writer.setMetadata("passes", std::to_string(result.passes));
  writer.setMetadata("seconds", llvm::formatv("{0:F6}", result.seconds).str());
  return writer.write(path);
}
