//===- ZeroShot.cpp - zero-shot WikiText perplexity and LAMBADA accuracy -------===//
#include "runtime/train/ZeroShot.h"

#include "runtime/data/BatchSource.h"
#include "runtime/data/Tokenizer.h"
#include "runtime/data/ZeroShotData.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <cstdio>

using namespace meg::runtime;

static llvm::Error fail(const llvm::Twine &msg) { return llvm::createStringError(llvm::inconvertibleErrorCode(), msg); }

static std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

llvm::Error ZeroShotOptions::check() const {
  if (task != "wikitext" && task != "lambada")
    return fail("unknown --task '" + task + "' (expected wikitext or lambada)");
  if (dataPath.empty())
    return fail("--task " + task + " needs --task-data FILE");
  if (vocabFile.empty() != mergeFile.empty())
    return fail("GPT-2 BPE needs both --vocab-file and --merge-file");
  if (!tokenizerFile.empty() && !vocabFile.empty())
    return fail("--tokenizer-file and --vocab-file/--merge-file both give the BPE (use one)");
  if (overlappingEval < 0)
    return fail(llvm::formatv("--overlapping-eval must be positive (got {0})", overlappingEval));
  if (overlappingEval && task != "wikitext")
    return fail("--overlapping-eval applies to --task wikitext only");
  if (strictLambada && task != "lambada")
    return fail("--strict-lambada applies to --task lambada only");
  return llvm::Error::success();
}

std::string ZeroShotResult::summary() const {
  if (task == "wikitext")
    return llvm::formatv("wikitext: ppl {0:F4} adjusted_ppl {1:F4} loss {2:F6} tokens {3} original_tokens {4} "
                         "windows {5}",
                         ppl, adjustedPpl, loss, tokens, originalTokens, windows);
  return llvm::formatv("lambada: accuracy {0:F4} correct {1} total {2}", accuracy, correct, total);
}

std::string ZeroShotResult::json() const {
  std::string out = "{\"task\": \"" + task + "\"";
  if (task == "wikitext") {
    out += ", \"loss\": " + number(loss) + ", \"ppl\": " + number(ppl) + ", \"adjusted_ppl\": " + number(adjustedPpl) +
           ", \"token_ratio\": " + number(tokenRatio) + ", \"tokens\": " + std::to_string(tokens) +
           ", \"original_tokens\": " + std::to_string(originalTokens) + ", \"windows\": " + std::to_string(windows);
  } else {
    out += ", \"accuracy\": " + number(accuracy) + ", \"correct\": " + std::to_string(correct) +
           ", \"total\": " + std::to_string(total) + ", \"per_example\": [";
    for (size_t i = 0; i < exampleCorrect.size(); ++i)
      out += (i ? ", " : "") + std::to_string(int(exampleCorrect[i]));
    out += "]";
  }
  return out + "}\n";
}

namespace {

/// The plan's shape: B rows of S positions, logits rows `width` apart of which the first `vocab` are real.
struct InferShape {
  int64_t rows = 0, seq = 0, width = 0, vocab = 0;
};

llvm::Expected<InferShape> inferShape(const LoadedPlan &plan) {
  std::optional<size_t> ids = plan.findInput("input_ids");
  const PlanOutput *logits = plan.findOutput("logits");
  if (plan.mode != "infer" || !ids || !logits || plan.inputs.size() != 1)
    return fail(plan.path + ": --task needs a GPT inference plan (megc --mode infer: input_ids in, logits out), this "
                            "one is a " + plan.mode + " plan");
  const Shape &in = plan.inputs[*ids].globalShape;
  const Shape &out = logits->tensor.globalShape;
  if (in.size() != 2 || out.size() != 3 || out[0] != in[0] || out[1] != in[1])
    return fail(plan.path + ": input_ids and logits are not [B, S] and [B, S, V]");
  InferShape s{in[0], in[1], out[2], modelVocabSize(plan)};
  if (s.vocab <= 0 || s.vocab > s.width)
    return fail(llvm::formatv("{0}: the model's vocabulary ({1}) does not fit its logits ({2})", plan.path, s.vocab,
                              s.width));
  return s;
}

llvm::Expected<std::unique_ptr<Tokenizer>> makeTokenizer(const ZeroShotOptions &o, int64_t vocab) {
  std::unique_ptr<Tokenizer> tok;
  if (!o.vocabFile.empty() || !o.tokenizerFile.empty()) {
    auto bpe = o.tokenizerFile.empty() ? Gpt2BpeTokenizer::load(o.vocabFile, o.mergeFile)
                                       : Gpt2BpeTokenizer::loadTokenizerJson(o.tokenizerFile);
    if (!bpe)
      return bpe.takeError();
    tok = std::move(*bpe);
  } else if (vocab == 256) {
    tok = std::make_unique<ByteTokenizer>();
  } else {
    return fail(llvm::formatv("the model's vocabulary is {0}: give the GPT-2 BPE files (--vocab-file, --merge-file) "
                              "(byte-level tokens need a vocabulary of 256)",
                              vocab));
  }
  if (int64_t(tok->vocabSize()) > vocab)
    return fail(llvm::formatv("the tokenizer has {0} ids, the model's vocabulary only {1}", tok->vocabSize(), vocab));
  return tok;
}

/// The padding id: Megatron pads with the end-of-document id (it is never scored).
int32_t padId(const Tokenizer &tok) {
  if (auto *bpe = dynamic_cast<const Gpt2BpeTokenizer *>(&tok))
    return std::max(bpe->endOfTextId(), 0);
  return 0;
}

/// Runs `rows` (each S input tokens; fewer than B: the rest padded) and returns the full logits.
llvm::Expected<std::vector<float>> runRows(Session &session, const InferShape &shape,
                                           llvm::ArrayRef<std::vector<int32_t>> rows, int32_t pad, uint32_t step) {
  GlobalBatch batch;
  IntTensor &ids = batch.tensors["input_ids"];
  ids.shape = {shape.rows, shape.seq};
  ids.data.assign(size_t(shape.rows * shape.seq), pad);
  for (size_t r = 0; r < rows.size(); ++r)
    std::copy(rows[r].begin(), rows[r].end(), ids.data.begin() + int64_t(r) * shape.seq);
  if (auto err = session.feed(batch))
    return err;
  StepContext ctx;
  ctx.dropout = false;
  ctx.evaluation = true;
  ctx.step = step;
  if (auto ran = session.forward(ctx); !ran)
    return ran.takeError();
  return session.assembleOutput("logits");
}

/// -log softmax(row)[target] over the real vocabulary, in double.
double tokenLoss(const float *row, int64_t vocab, int32_t target) {
  double max = row[0];
  for (int64_t v = 1; v < vocab; ++v)
    max = std::max(max, double(row[v]));
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v)
    sum += std::exp(double(row[v]) - max);
  return max + std::log(sum) - double(row[target]);
}

int32_t argmax(const float *row, int64_t vocab) {
  int64_t best = 0;
  for (int64_t v = 1; v < vocab; ++v)
    if (row[v] > row[best])
      best = v;
  return int32_t(best);
}

llvm::Expected<std::string> readText(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return llvm::createStringError(buffer.getError(), path + ": cannot read: " + buffer.getError().message());
  return (*buffer)->getBuffer().str();
}

llvm::Expected<ZeroShotResult> wikitext(Session &session, const ZeroShotOptions &o, const InferShape &shape,
                                        const Tokenizer &tok) {
  if (o.overlappingEval > shape.seq)
    return fail(llvm::formatv("--overlapping-eval {0} exceeds the plan's window (seq {1})", o.overlappingEval,
                              shape.seq));
  auto text = readText(o.dataPath);
  if (!text)
    return text.takeError();
  ZeroShotResult r;
  r.task = o.task;
  r.originalTokens = countOriginalTokens(*text);
  std::vector<int32_t> tokens = tok.encode(wikitextDetokenize(*text));
  r.tokens = int64_t(tokens.size());
  if (r.tokens < 2 || r.originalTokens < 2)
    return fail(o.dataPath + ": too little text to score (" + llvm::Twine(r.tokens) + " tokens)");
  int32_t pad = padId(tok);
  LmWindows windows(std::move(tokens), shape.seq, o.overlappingEval ? o.overlappingEval : shape.seq, pad);
  r.windows = windows.size();
  double total = 0;
  int64_t scoredCount = 0;
  std::vector<std::vector<int32_t>> inputs, targets;
  std::vector<std::vector<uint8_t>> scored;
  for (int64_t first = 0; first < windows.size(); first += shape.rows) {
    int64_t n = std::min(shape.rows, windows.size() - first);
    inputs.resize(size_t(n));
    targets.resize(size_t(n));
    scored.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i)
      windows.window(first + i, inputs[size_t(i)], targets[size_t(i)], scored[size_t(i)]);
    auto logits = runRows(session, shape, inputs, pad, uint32_t(first / shape.rows));
    if (!logits)
      return logits.takeError();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t t = 0; t < shape.seq; ++t)
        if (scored[size_t(i)][size_t(t)]) {
          total += tokenLoss(logits->data() + (i * shape.seq + t) * shape.width, shape.vocab,
                             targets[size_t(i)][size_t(t)]);
          ++scoredCount;
        }
  }
  assert(scoredCount == windows.targets() && "every target is scored once");
  r.loss = total / double(r.tokens - 1);
  r.ppl = std::exp(std::min(20.0, r.loss));
  r.tokenRatio = double(r.tokens - 1) / double(r.originalTokens - 1);
  r.adjustedPpl = std::exp(std::min(20.0, r.loss * r.tokenRatio));
  return r;
}

llvm::Expected<ZeroShotResult> lambada(Session &session, const ZeroShotOptions &o, const InferShape &shape,
                                       const Tokenizer &tok) {
  auto examples = readLambada(o.dataPath, tok, o.strictLambada);
  if (!examples)
    return examples.takeError();
  for (size_t e = 0; e < examples->size(); ++e) {
    size_t n = (*examples)[e].context.size() + (*examples)[e].target.size();
    if (int64_t(n) > shape.seq + 1)
      return fail(llvm::formatv("{0}: example {1} has {2} tokens, more than the plan's window holds (seq {3} + 1)",
                                o.dataPath, e + 1, n, shape.seq));
  }
  ZeroShotResult r;
  r.task = o.task;
  int32_t pad = padId(tok);
  std::vector<std::vector<int32_t>> inputs;
  for (size_t first = 0; first < examples->size(); first += size_t(shape.rows)) {
    size_t n = std::min(size_t(shape.rows), examples->size() - first);
    inputs.assign(n, {});
    for (size_t i = 0; i < n; ++i) {
      const LambadaExample &ex = (*examples)[first + i];
      inputs[i] = ex.context;
      inputs[i].insert(inputs[i].end(), ex.target.begin(), ex.target.end() - 1);
    }
    auto logits = runRows(session, shape, inputs, pad, uint32_t(first / size_t(shape.rows)));
    if (!logits)
      return logits.takeError();
    for (size_t i = 0; i < n; ++i) {
      const LambadaExample &ex = (*examples)[first + i];
      bool ok = true;
      for (size_t k = 0; k < ex.target.size(); ++k) {
        int64_t position = int64_t(ex.context.size() + k) - 1; // the position that predicts target k
        ok &= argmax(logits->data() + (int64_t(i) * shape.seq + position) * shape.width, shape.vocab) == ex.target[k];
      }
      r.exampleCorrect.push_back(ok);
      r.correct += ok;
    }
  }
  r.total = int64_t(examples->size());
  r.accuracy = double(r.correct) / double(r.total);
  return r;
}

} // namespace

llvm::Expected<ZeroShotResult> meg::runtime::runZeroShot(Session &session, const ZeroShotOptions &options) {
  auto shape = inferShape(session.plan());
  if (!shape)
    return shape.takeError();
  auto tok = makeTokenizer(options, shape->vocab);
  if (!tok)
    return tok.takeError();
  if (options.task == "wikitext")
    return wikitext(session, options, *shape, **tok);
  return lambada(session, options, *shape, **tok);
}
