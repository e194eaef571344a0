//===- Generate.cpp - greedy decoding with an inference plan -------------------===//
#include "runtime/train/Generate.h"

#include "runtime/data/BatchSource.h"
#include "runtime/data/Tokenizer.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>

using namespace meg::runtime;

static llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

llvm::Expected<std::string> meg::runtime::generateGreedy(Session &session, llvm::StringRef prompt, int64_t newTokens) {
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
  std::vector<int32_t> tokens = bytes.encode(prompt);
  if (tokens.empty())
    return fail("--generate needs a non-empty prompt");
  StepContext ctx;
  ctx.dropout = false;
  ctx.evaluation = true;
  for (int64_t t = 0; t < newTokens; ++t) {
    size_t begin = tokens.size() > size_t(seq) ? tokens.size() - size_t(seq) : 0;
    GlobalBatch batch;
    IntTensor &window = batch.tensors["input_ids"];
    window.shape = {1, seq};
    window.data.assign(size_t(seq), 0);
    std::copy(tokens.begin() + begin, tokens.end(), window.data.begin());
    if (auto err = session.feed(batch))
      return std::move(err);
    if (auto ran = session.forward(ctx); !ran)
      return ran.takeError();
    auto all = session.assembleOutput("logits");
    if (!all)
      return all.takeError();
    size_t last = tokens.size() - begin - 1;
    // Only byte ids can be printed: the argmax is over ids 0..255 (real ids, never padding).
    const float *row = all->data() + last * size_t(width);
    tokens.push_back(int32_t(std::max_element(row, row + 256) - row));
  }
  return bytes.decode(tokens);
}
