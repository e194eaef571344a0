//===- Builder.cpp - graph-construction helpers for the model builders ------===//
#include "frontend/Builder.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <limits>
#include <numeric>

using namespace meg;
using namespace meg::frontend;
using ir::AttrDict;
using ir::OpKind;
using ir::Value;

static AttrDict attrs(std::initializer_list<std::pair<const char *, ir::AttrValue>> kv) {
  AttrDict d;
  for (auto &[k, v] : kv)
    d.set(k, v);
  return d;
}

static std::vector<int64_t> ints(llvm::ArrayRef<int64_t> a) { return std::vector<int64_t>(a.begin(), a.end()); }

/// The logical axis behind each letter the builders use in contract specs. Strategies (passes/ShardParams.cpp) map
/// logical axes to mesh axes; e.g. Megatron splits heads, ffn and vocab over tp.
static llvm::StringRef axisName(char letter) {
  switch (letter) {
  case 'h': case 'i': case 'o': return "hidden";
  case 'n': return "heads";
  case 'd': return "head_dim";
  case 't': return "qkv";
  case 'f': return "ffn";
  case 'v': return "vocab";
  case 'p': return "position";
  case 'y': return "token_type";
  case 'c': return "classes";
  default: llvm_unreachable("a parameter dim letter without a logical axis name");
  }
}

Value *Builder::param(const llvm::Twine &name, llvm::ArrayRef<int64_t> shape, ParamInit init, llvm::StringRef letters,
                      llvm::ArrayRef<int64_t> hfShape, int64_t vocabRows) {
  assert(letters.size() == shape.size() && "one letter per parameter dim");
  AttrDict a;
  a.set("name", name.str());
  std::string axes;
  for (char c : letters)
    axes += (axes.empty() ? "" : ",") + axisName(c).str();
  a.set("axes", axes);
  switch (init.kind) {
  case ParamInit::Normal:
    a.set("init", ir::Symbol{"normal"});
    a.set("std", init.std);
    break;
  case ParamInit::Zeros:
    a.set("init", ir::Symbol{"zeros"});
    break;
  case ParamInit::Ones:
    a.set("init", ir::Symbol{"ones"});
    break;
  }
  if (!hfShape.empty() && hfShape != shape) {
    assert(std::accumulate(hfShape.begin(), hfShape.end(), int64_t(1), std::multiplies<>()) ==
               std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>()) &&
           "hf_shape must have the same element count as the IR shape");
    a.set("hf_shape", ints(hfShape));
  }
  if (vocabRows > 0 && vocabRows < shape[0])
    a.set("vocab_rows", vocabRows);
  return graph.append(OpKind::Param, {}, std::move(a), {ir::TensorType(ir::DType::F32, shape)})->getResult();
}

Value *Builder::input(llvm::StringRef name, ir::DType dtype, llvm::ArrayRef<int64_t> shape) {
  return graph.append(OpKind::Input, {}, attrs({{"name", name.str()}}), {ir::TensorType(dtype, shape)})->getResult();
}

void Builder::output(Value *v, llvm::StringRef name) {
  if (v)
    op(OpKind::Output, {v}, attrs({{"name", name.str()}}));
}

Value *Builder::op(OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict a) {
  if (firstError || llvm::is_contained(operands, nullptr))
    return nullptr;
  auto node = graph.build(kind, operands, std::move(a));
  if (!node) {
    firstError = llvm::toString(node.takeError());
    return nullptr;
  }
  return (*node)->getNumResults() ? (*node)->getResult() : nullptr;
}

llvm::Error Builder::finish() {
  if (firstError)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "internal error building graph @" +
                                                                       graph.getName() + ": " + *firstError);
  return llvm::Error::success();
}

Value *Builder::gelu(Value *x, Activation act) {
  return op(OpKind::Gelu, {x}, attrs({{"approx", ir::Symbol{activationName(act).str()}}}));
}

Value *Builder::dropout(Value *x, double p) {
  if (!dropoutEnabled || p == 0)
    return x;
  return op(OpKind::Dropout, {x}, attrs({{"p", p}, {"stream", nextStream()}}));
}

Value *Builder::contract(Value *a, Value *b, llvm::StringRef spec) {
  return op(OpKind::Contract, {a, b}, attrs({{"spec", spec.str()}}));
}

Value *Builder::slice(Value *x, int64_t dim, int64_t start, int64_t size) {
  return op(OpKind::Slice, {x}, attrs({{"dim", dim}, {"start", start}, {"size", size}}));
}

Value *Builder::select(Value *x, int64_t dim, int64_t index) {
  return op(OpKind::Select, {x}, attrs({{"dim", dim}, {"index", index}}));
}

Value *Builder::reshape(Value *x, llvm::ArrayRef<int64_t> shape) {
  return op(OpKind::Reshape, {x}, attrs({{"shape", ints(shape)}}));
}

Value *Builder::dense(Value *x, const llvm::Twine &prefix, llvm::StringRef spec, llvm::ArrayRef<int64_t> weightShape,
                      llvm::ArrayRef<int64_t> biasShape, double std, llvm::ArrayRef<int64_t> hfWeightShape,
                      llvm::ArrayRef<int64_t> hfBiasShape) {
  std::string p = prefix.str();
  auto [inputs, out] = spec.split("->");
  llvm::StringRef wLetters = inputs.split(',').second;
  Value *w = param(p + ".weight", weightShape, ParamInit::normal(std), wLetters, hfWeightShape);
  Value *b = param(p + ".bias", biasShape, ParamInit::zeros(), out.take_back(biasShape.size()), hfBiasShape);
  return linear(x, w, b, spec);
}

Value *Builder::layerNorm(Value *x, const llvm::Twine &prefix, double eps) {
  if (!x)
    return nullptr;
  int64_t n = x->getType().shape.empty() ? 1 : x->getType().shape.back();
  std::string p = prefix.str();
  Value *gain = param(p + ".weight", {n}, ParamInit::ones(), "h");
  Value *bias = param(p + ".bias", {n}, ParamInit::zeros(), "h");
  return op(OpKind::LayerNorm, {x, gain, bias}, attrs({{"eps", eps}}));
}

Value *Builder::attention(Value *q, Value *k, Value *v, Value *mask, bool causal, double dropoutP) {
  if (!q || q->getType().rank() != 4)
    return op(OpKind::Attention, {q, k, v}); // reports the shape problem (or propagates null)
  double scale = 1.0 / std::sqrt(double(q->getType().shape[3]));
  AttrDict a = attrs({{"causal", causal}, {"scale", scale}});
  if (dropoutEnabled && dropoutP > 0) {
    a.set("dropout", dropoutP);
    a.set("stream", nextStream());
  } else {
    a.set("dropout", 0.0);
  }
  llvm::SmallVector<Value *, 4> operands{q, k, v};
  if (mask)
    operands.push_back(mask);
  return op(OpKind::Attention, operands, std::move(a));
}

Value *Builder::decodeAttention(Value *q, Value *k, Value *v, Value *position, const llvm::Twine &prefix,
                                int64_t cache) {
  if (!q || q->getType().rank() != 4)
    return op(OpKind::DecodeAttention, {q, k, v}); // reports the shape problem (or propagates null)
  const auto &s = q->getType().shape;
  ir::TensorType cacheType(q->getType().dtype, {s[0], cache, s[2], s[3]});
  auto state = [&](llvm::StringRef which) {
    AttrDict a = attrs({{"name", ("kv_cache." + which + ":" + prefix).str()}});
    a.set("axes", std::string("batch,cache,heads,head_dim"));
    return graph.append(OpKind::State, {}, std::move(a), {cacheType})->getResult();
  };
  Value *kCache = state("k"), *vCache = state("v");
  double scale = 1.0 / std::sqrt(double(s[3]));
  return op(OpKind::DecodeAttention, {q, k, v, kCache, vCache, position}, attrs({{"scale", scale}}));
}

Value *Builder::maskVocabPadding(Value *logits, int64_t vocab) {
  if (!logits || logits->getType().rank() == 0 || logits->getType().shape.back() == vocab)
    return logits;
  int64_t dim = int64_t(logits->getType().rank()) - 1;
  return op(OpKind::MaskPadding, {logits},
            attrs({{"dim", dim}, {"valid", vocab}, {"value", -std::numeric_limits<double>::infinity()}}));
}

Value *Builder::crossEntropy(Value *logits, Value *labels) {
  if (!logits || !labels)
    return nullptr;
  const ir::TensorType &lt = labels->getType();
  int64_t last = lt.rank(); // the class dim of the logits
  std::vector<int64_t> allDims(lt.rank());
  std::iota(allDims.begin(), allDims.end(), 0);

  // log-sum-exp, stabilized by the per-token max.
  Value *m = op(OpKind::ReduceMax, {logits}, attrs({{"dims", std::vector<int64_t>{last}}, {"keepdim", true}, {"stop_gradient", true}}));
  Value *e = op(OpKind::Exp, {sub(logits, m)});
  Value *se = op(OpKind::ReduceSum, {e}, attrs({{"dims", std::vector<int64_t>{last}}, {"keepdim", false}}));
  Value *logSe = op(OpKind::Log, {se});
  Value *lse = add(logSe, reshape(m, lt.shape));
  // Per-token loss lse - logit[target], averaged over the tokens whose label is not -100.
  Value *target = op(OpKind::Pick, {logits, labels});
  Value *tok = sub(lse, target);
  Value *mask = op(OpKind::ValidMask, {labels}, attrs({{"ignore", int64_t(-100)}}));
  Value *total = op(OpKind::ReduceSum, {mul(tok, mask)}, attrs({{"dims", allDims}, {"keepdim", false}}));
  Value *count = op(OpKind::ReduceSum, {mask}, attrs({{"dims", allDims}, {"keepdim", false}}));
  return div(total, count);
}

std::string meg::frontend::graphNameFor(llvm::StringRef modelName) {
  std::string out;
  for (char c : modelName)
    out += (llvm::isAlnum(c) || c == '_' || c == '.' || c == '-') ? c : '_';
  if (out.empty() || !(llvm::isAlpha(out[0]) || out[0] == '_'))
    out.insert(out.begin(), '_');
  return out;
}
