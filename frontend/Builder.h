//===- Builder.h - graph-construction helpers for the model builders -*- C++ -*-===//
//
// The layers GPT-2 and BERT share: parameters with their init, linear layers (contract + bias), layer norm,
// dropout, GeLU, attention and the decomposed cross-entropy. Every op goes through Graph::build (shape inference).
//
// Errors are sticky: the first failing op is remembered, every later op returns null, and finish() reports the
// error. A failure here means a frontend bug or a configuration the validator missed, never a crash.
//
// Random streams: every dropout node and every attention with dropout > 0 gets the next `stream` number (1, 2, ...
// in program order). Dropout with p == 0 (and every dropout in infer mode) is not emitted at all; attention then
// carries dropout = 0.0 and no stream.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_FRONTEND_BUILDER_H
#define MEG_FRONTEND_BUILDER_H

#include "frontend/ModelConfig.h"
#include "ir/Graph.h"

#include "llvm/ADT/Twine.h"

#include <optional>
#include <string>

namespace meg::frontend {

/// How a parameter is initialized (the `init`/`std` attributes of `param`).
struct ParamInit {
  enum Kind { Normal, Zeros, Ones } kind = Zeros;
  double std = 0;
  static ParamInit normal(double std) { return {Normal, std}; }
  static ParamInit zeros() { return {Zeros, 0}; }
  static ParamInit ones() { return {Ones, 0}; }
};

class Builder {
public:
  using Value = ir::Value;

  /// `dropoutEnabled` = false (infer mode) drops every dropout.
  Builder(ir::Graph &graph, bool dropoutEnabled) : graph(graph), dropoutEnabled(dropoutEnabled) {}

  // Graph interface.
  /// `letters` names each dim with the letter it has in the model's contract specs; the param's `axes` attribute
  /// spells them out (see axisName in Builder.cpp), which is all a sharding strategy looks at.
  /// `vocabRows` < shape[0] marks a vocab-padded parameter: only its first vocabRows rows exist in Hugging Face
  /// files (attribute `vocab_rows`; 0 = no padding).
  Value *param(const llvm::Twine &name, llvm::ArrayRef<int64_t> shape, ParamInit init, llvm::StringRef letters,
               llvm::ArrayRef<int64_t> hfShape = {}, int64_t vocabRows = 0);
  Value *input(llvm::StringRef name, ir::DType dtype, llvm::ArrayRef<int64_t> shape);
  void output(Value *v, llvm::StringRef name);

  /// Any op, with shape inference. Null when an operand is null or inference fails (the error is kept).
  Value *op(ir::OpKind kind, llvm::ArrayRef<Value *> operands, ir::AttrDict attrs = {});

  // Elementwise.
  Value *add(Value *a, Value *b) { return op(ir::OpKind::Add, {a, b}); }
  Value *sub(Value *a, Value *b) { return op(ir::OpKind::Sub, {a, b}); }
  Value *mul(Value *a, Value *b) { return op(ir::OpKind::Mul, {a, b}); }
  Value *div(Value *a, Value *b) { return op(ir::OpKind::Div, {a, b}); }
  Value *tanh(Value *x) { return op(ir::OpKind::Tanh, {x}); }
  Value *gelu(Value *x, Activation act);
  /// Inverted dropout with the next stream; returns x unchanged (no node) when p == 0 or dropout is disabled.
  Value *dropout(Value *x, double p);

  // Layout.
  Value *contract(Value *a, Value *b, llvm::StringRef spec);
  Value *slice(Value *x, int64_t dim, int64_t start, int64_t size);
  Value *select(Value *x, int64_t dim, int64_t index);
  Value *reshape(Value *x, llvm::ArrayRef<int64_t> shape);
  Value *embedding(Value *table, Value *ids) { return op(ir::OpKind::Embedding, {table, ids}); }

  // Layers with their parameters, named `<prefix>.weight` / `<prefix>.bias`.
  /// x . W (spec) + b, W ~ normal(std), b = 0. Shapes are IR shapes; hf shapes are given when they differ.
  Value *dense(Value *x, const llvm::Twine &prefix, llvm::StringRef spec, llvm::ArrayRef<int64_t> weightShape,
               llvm::ArrayRef<int64_t> biasShape, double std, llvm::ArrayRef<int64_t> hfWeightShape = {},
               llvm::ArrayRef<int64_t> hfBiasShape = {});
  /// contract(x, w){spec} + b.
  Value *linear(Value *x, Value *w, Value *b, llvm::StringRef spec) { return add(contract(x, w, spec), b); }
  /// Layer norm over the last dim with gain (ones) and bias (zeros) params of that size.
  Value *layerNorm(Value *x, const llvm::Twine &prefix, double eps);
  /// Fused attention over q, k, v [b,s,n,d] (mask i32[b,s] or null); scale = 1/sqrt(d).
  Value *attention(Value *q, Value *k, Value *v, Value *mask, bool causal, double dropoutP);
  /// Decoding with a KV cache: q, k, v [b,t,n,d] of the new tokens at `position` i32[b,t] against the states
  /// `kv_cache.k:<prefix>` and `kv_cache.v:<prefix>` [b,cache,n,d] (logical axes batch, cache, heads, head_dim: split
  /// over tp on heads like the QKV weight); scale = 1/sqrt(d).
  Value *decodeAttention(Value *q, Value *k, Value *v, Value *position, const llvm::Twine &prefix, int64_t cache);

  /// Logits [..., Vp] of a padded vocabulary with the columns at or beyond `vocab` set to -inf (no node when
  /// Vp == vocab).
  Value *maskVocabPadding(Value *logits, int64_t vocab);

  /// Mean cross-entropy of logits [..., V] against labels i32[...], ignoring label -100 (torch's
  /// cross_entropy(ignore_index=-100)), decomposed so that sharding rules see the pieces. Result f32[].
  Value *crossEntropy(Value *logits, Value *labels);

  /// The next random stream number (1, 2, ...).
  int64_t nextStream() { return ++lastStream; }
  bool isDropoutEnabled() const { return dropoutEnabled; }
  ir::Graph &getGraph() { return graph; }

  /// The first error, or success.
  llvm::Error finish();

private:
  ir::Graph &graph;
  bool dropoutEnabled;
  int64_t lastStream = 0;
  std::optional<std::string> firstError;
};

/// A graph name the printer accepts, derived from a model name ([A-Za-z_][A-Za-z0-9_.-]*).
std::string graphNameFor(llvm::StringRef modelName);

} // namespace meg::frontend

#endif
