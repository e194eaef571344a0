//===- Generate.cpp - text generation with an inference plan ------------------===//
#include "runtime/train/Generate.h"

#include "runtime/data/BatchSource.h"
#include "runtime/data/Tokenizer.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>

using namespace meg::runtime;

static llvm::Error fail(const llvm::Twine &msg) { return llvm::createStringError(llvm::inconvertibleErrorCode(), msg); }

llvm::Error GenerateOptions::check() const {
  if (newTokens < 1)
    return fail("--max-new-tokens must be positive (got " + llvm::Twine(newTokens) + ")");
  return sampling.check();
}

llvm::Expected<std::string> meg::runtime::generate(Session &session, const GenerateOptions &options) {
  const LoadedPlan &plan = session.plan();
  std::optional<size_t> ids = plan.findInput("input_ids");
  const PlanOutput *logits = plan.findOutput("logits");
  if (plan.mode != "infer" || !ids || !logits || plan.inputs.size() != 1)
    return fail(plan.path + ": --generate needs a GPT inference plan (megc --mode infer: input_ids in, logits out)");
  const Shape &in = plan.inputs[*ids].globalShape;
  const Shape &out = logits->tensor.globalShape;
  if (in.size() != 2 || in[0] != 1 || out.size() != 3)
    return fail(llvm::formatv("{0}: --generate needs micro-batch 1 (megc --micro-batch 1), got input_ids {1}",
                              plan.path, in.size() == 2 ? in[0] : -1));
  // The logits may be wider than the vocabulary (Megatron's padding, masked to -inf): rows are `width` apart, and
  // only real ids are candidates.
  int64_t seq = in[1], width = out[2], vocab = modelVocabSize(plan);
  if (vocab < 256)
    return fail(llvm::formatv("{0}: byte-level generation needs a vocabulary of at least 256, the model has {1}",
                              plan.path, vocab));
  ByteTokenizer bytes;
  std::vector<int32_t> tokens = bytes.encode(options.prompt);
  if (tokens.empty())
    return fail("--generate needs a non-empty prompt");
  StepContext ctx;
  ctx.dropout = false;
  ctx.evaluation = true;
  Sampler sampler(options.sampling);
  for (int64_t t = 0; t < options.newTokens; ++t) {
    size_t begin = tokens.size() > size_t(seq) ? tokens.size() - size_t(seq) : 0;
    GlobalBatch batch;
    IntTensor &window = batch.tensors["input_ids"];
    window.shape = {1, seq};
    window.data.assign(size_t(seq), 0);
    std::copy(tokens.begin() + begin, tokens.end(), window.data.begin());
    if (auto err = session.feed(batch))
      return err;
    if (auto ran = session.forward(ctx); !ran)
      return ran.takeError();
    auto all = session.assembleOutput("logits");
    if (!all)
      return all.takeError();
    size_t last = tokens.size() - begin - 1;
    // Only byte ids can be printed: the candidates are ids 0..255 (real ids, never padding).
    llvm::ArrayRef<float> row(all->data() + last * size_t(width), 256);
    tokens.push_back(sampler.sample(row, tokens.size()));
  }
  return bytes.decode(tokens);
}
