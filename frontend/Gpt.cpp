//===- Gpt.cpp - GPT-2 (GPT2LMHeadModel) -> ir::Graph ------------------------===//
//
// Pre-LN decoder, causal attention, GeLU (tanh form) MLP of n_inner, learned positions, output layer tied to the
// word embedding (vocabulary padded for tp, padding logits masked), mean cross-entropy over the (already shifted)
// labels. Parameters carry HF's names; the fused
// QKV weight is [h, 3, heads, head_dim] (HF Conv1D [h, 3h], same element order) so the heads dim can be split.
// Decode mode: t new tokens per sequence (input_ids [b, t], 1 to generate, more to prefill a prompt) at `position`
// [b, t] (their position embedding rows, and the cache slots their keys and values are written to); each layer's
// attention is decode_attention against that layer's KV-cache states of `seq` positions, so the logits [b, t, V]
// equal the infer graph's at those positions.
//
//===----------------------------------------------------------------------===//
#include "frontend/Builder.h"
#include "frontend/Frontend.h"

#include <cmath>

using namespace meg;
using namespace meg::frontend;
using ir::Value;

llvm::Expected<std::unique_ptr<ir::Graph>> meg::frontend::buildGpt(const ModelConfig &c, const BuildOptions &opts) {
  assert(c.family == ModelFamily::GPT2 && "not a GPT-2 config");
  const int64_t b = c.microBatch, s = c.seq, h = c.hidden, n = c.numHeads, d = c.headDim(), f = c.ffnHidden;
  const bool train = opts.mode == BuildMode::Train, decode = opts.mode == BuildMode::Decode;
  const int64_t t = decode ? opts.decodeTokens : s; // positions computed per pass
  // Megatron / GPT-2 init: N(0, std) everywhere, each residual branch's output projection scaled by 1/sqrt(2L).
  const double std = c.initStd, outStd = c.initStd / std::sqrt(2.0 * double(c.numLayers));

  auto graph = std::make_unique<ir::Graph>(graphNameFor(c.name));
  Builder B(*graph, /*dropoutEnabled=*/train);

  Value *ids = B.input("input_ids", ir::DType::I32, {b, t});
  Value *position = decode ? B.input("position", ir::DType::I32, {b, t}) : nullptr;
  Value *labels = train ? B.input("labels", ir::DType::I32, {b, s}) : nullptr;

  // Embeddings: word + position (rows 0..s-1, broadcast over the batch).
  // The word embedding has Megatron's padded vocabulary rows; only the first vocab_size exist in HF files.
  const int64_t vp = c.paddedVocab(opts.tp);
  Value *wte = B.param("transformer.wte.weight", {vp, h}, ParamInit::normal(std), "vh", {}, c.vocabSize);
  Value *wpe = B.param("transformer.wpe.weight", {c.maxPositions, h}, ParamInit::normal(std), "ph");
  Value *tokens = B.embedding(wte, ids);
  Value *positions = decode ? B.embedding(wpe, position) : B.slice(wpe, 0, 0, s);
  Value *x = B.add(tokens, positions);
  x = B.dropout(x, c.embdDropout);

  for (int64_t i = 0; i < c.numLayers; ++i) {
    std::string p = "transformer.h." + std::to_string(i) + ".";

    // Attention: x + dropout(proj(attention(split(qkv(ln_1(x)))))).
    Value *a = B.layerNorm(x, p + "ln_1", c.layerNormEps);
    Value *qkv = B.dense(a, p + "attn.c_attn", "bsi,itnd->bstnd", {h, 3, n, d}, {3, n, d}, std, {h, 3 * h}, {3 * h});
    Value *q = B.select(qkv, 2, 0);
    Value *k = B.select(qkv, 2, 1);
    Value *v = B.select(qkv, 2, 2);
    Value *o = decode ? B.decodeAttention(q, k, v, position, p + "attn", s)
                      : B.attention(q, k, v, /*mask=*/nullptr, /*causal=*/true, c.attnDropout);
    Value *proj = B.dense(o, p + "attn.c_proj", "bsnd,ndo->bso", {n, d, h}, {h}, outStd, {h, h});
    x = B.add(x, B.dropout(proj, c.residDropout));

    // MLP: x + dropout(c_proj(gelu(c_fc(ln_2(x))))).
    Value *m = B.layerNorm(x, p + "ln_2", c.layerNormEps);
    Value *g = B.gelu(B.dense(m, p + "mlp.c_fc", "bsi,if->bsf", {h, f}, {f}, std), c.activation);
    Value *out = B.dense(g, p + "mlp.c_proj", "bsf,fo->bso", {f, h}, {h}, outStd);
    x = B.add(x, B.dropout(out, c.residDropout));
  }
  x = B.layerNorm(x, "transformer.ln_f", c.layerNormEps);

  // Tied output layer: logits = x . wte^T (no lm_head parameter); the padding columns are -inf.
  Value *logits = B.maskVocabPadding(B.contract(x, wte, "bsh,vh->bsv"), c.vocabSize);
  if (train)
    B.output(B.crossEntropy(logits, labels), "loss");
  else
    B.output(logits, "logits");

  if (auto err = B.finish())
    return err;
  return graph;
}
