//===- OpShapes.cpp - shape and type rules, one per op ----------------------===//
//
// Each rule checks its operands' types and its attributes and returns the result types (replicated; sharding is
// assigned by the sharding passes). Messages are lower-case fragments; the caller prefixes the op and location.
// The table at the bottom is built from Ops.def, so an op without a rule does not compile.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace meg::ir;
using llvm::ArrayRef;
using llvm::Expected;

namespace {

using Types = llvm::SmallVector<TensorType, 1>;
using Shape = llvm::SmallVector<int64_t, 4>;

llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string shapeStr(ArrayRef<int64_t> s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

Types one(TensorType t) { return Types{TensorType(t.dtype, t.shape)}; }

llvm::Error needFloat(const TensorType &t, llvm::StringRef what) {
  if (!isFloat(t.dtype))
    return fail(llvm::formatv("{0} must be a float tensor, got {1}", what, dtypeName(t.dtype)));
  return llvm::Error::success();
}

llvm::Error needInt(const TensorType &t, llvm::StringRef what) {
  if (t.dtype != DType::I32)
    return fail(llvm::formatv("{0} must be i32, got {1}", what, dtypeName(t.dtype)));
  return llvm::Error::success();
}

Expected<int64_t> intAttr(const AttrDict &a, llvm::StringRef key) {
  if (!a.has(key))
    return fail("missing attribute '" + key + "'");
  if (auto v = a.getInt(key))
    return *v;
  return fail("attribute '" + key + "' must be an integer");
}

/// Several required integer attributes at once; the first missing or ill-typed one is the error.
template <size_t N> Expected<std::array<int64_t, N>> intAttrs(const AttrDict &a, const char *const (&keys)[N]) {
  std::array<int64_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    auto v = intAttr(a, keys[i]);
    if (!v)
      return v.takeError();
    out[i] = *v;
  }
  return out;
}

Expected<double> floatAttr(const AttrDict &a, llvm::StringRef key) {
  if (!a.has(key))
    return fail("missing attribute '" + key + "'");
  if (auto v = a.getFloat(key))
    return *v;
  return fail("attribute '" + key + "' must be a number");
}

Expected<const std::vector<int64_t> *> intsAttr(const AttrDict &a, llvm::StringRef key) {
  if (!a.has(key))
    return fail("missing attribute '" + key + "'");
  if (auto *v = a.getInts(key))
    return v;
  return fail("attribute '" + key + "' must be an integer list");
}

Expected<llvm::StringRef> symAttr(const AttrDict &a, llvm::StringRef key, ArrayRef<llvm::StringRef> allowed) {
  if (!a.has(key))
    return fail("missing attribute '" + key + "'");
  auto v = a.getSymbol(key);
  if (!v || !llvm::is_contained(allowed, *v))
    return fail("attribute '" + key + "' must be one of " + llvm::join(allowed, ", "));
  return *v;
}

Expected<bool> boolAttr(const AttrDict &a, llvm::StringRef key, std::optional<bool> dflt = std::nullopt) {
  if (!a.has(key)) {
    if (dflt)
      return *dflt;
    return fail("missing attribute '" + key + "'");
  }
  if (auto v = a.getBool(key))
    return *v;
  return fail("attribute '" + key + "' must be true or false");
}

llvm::Error checkDim(int64_t dim, unsigned rank, llvm::StringRef key = "dim") {
  if (dim < 0 || dim >= int64_t(rank))
    return fail(llvm::formatv("attribute '{0}' = {1} is out of range for rank {2}", key, dim, rank));
  return llvm::Error::success();
}

//===-- graph interface ------------------------------------------------------===//

Expected<Types> sourceRule(ArrayRef<TensorType>, const AttrDict &) {
  return fail("the type of a source op is declared, not inferred");
}
Expected<Types> inferParam(ArrayRef<TensorType> ops, const AttrDict &a) { return sourceRule(ops, a); }
Expected<Types> inferInput(ArrayRef<TensorType> ops, const AttrDict &a) { return sourceRule(ops, a); }
Expected<Types> inferOutput(ArrayRef<TensorType>, const AttrDict &) { return Types{}; }

//===-- lookups and contractions --------------------------------------------===//

Expected<Types> inferEmbedding(ArrayRef<TensorType> ops, const AttrDict &) {
  const TensorType &table = ops[0], &ids = ops[1];
  if (auto e = needFloat(table, "the table"))
    return e;
  if (auto e = needInt(ids, "the ids"))
    return e;
  if (table.rank() != 2)
    return fail("the table must have rank 2, got " + shapeStr(table.shape));
  Shape out(ids.shape.begin(), ids.shape.end());
  out.push_back(table.shape[1]);
  return Types{TensorType(table.dtype, out)};
}

} // namespace

/// Parses "ab,bc->ac" into the three letter strings; shared with the sharding and gradient rules.
Expected<std::array<std::string, 3>> meg::ir::parseContractSpec(llvm::StringRef spec) {
  auto [ins, out] = spec.split("->");
  auto [a, b] = ins.split(',');
  if (!spec.contains("->") || !ins.contains(','))
    return fail("spec '" + spec + "' is not of the form 'ab,bc->ac'");
  std::array<std::string, 3> parts{a.str(), b.str(), out.str()};
  for (const std::string &p : parts) {
    for (size_t i = 0; i < p.size(); ++i) {
      if (p[i] < 'a' || p[i] > 'z')
        return fail("spec '" + spec + "' has a character that is not a letter a-z");
      if (p.find(p[i], i + 1) != std::string::npos)
        return fail("spec '" + spec + "' repeats letter '" + std::string(1, p[i]) + "' in one term");
    }
  }
  for (char c : parts[2])
    if (parts[0].find(c) == std::string::npos && parts[1].find(c) == std::string::npos)
      return fail("spec '" + spec + "': output letter '" + std::string(1, c) + "' is in no input");
  for (int side = 0; side < 2; ++side)
    for (char c : parts[side])
      if (parts[1 - side].find(c) == std::string::npos && parts[2].find(c) == std::string::npos)
        return fail("spec '" + spec + "': letter '" + std::string(1, c) + "' appears in one input only");
  return parts;
}

namespace {

Expected<Types> inferContract(ArrayRef<TensorType> ops, const AttrDict &a) {
  auto spec = a.getString("spec");
  if (!spec)
    return fail("missing string attribute 'spec'");
  auto parts = parseContractSpec(*spec);
  if (!parts)
    return parts.takeError();
  if (ops[0].dtype != ops[1].dtype)
    return fail("operand dtypes differ");
  if (auto e = needFloat(ops[0], "operands"))
    return e;
  int64_t size[26];
  std::fill(std::begin(size), std::end(size), -1);
  for (int side = 0; side < 2; ++side) {
    const std::string &letters = (*parts)[side];
    const TensorType &t = ops[side];
    if (letters.size() != t.rank())
      return fail(llvm::formatv("spec term '{0}' has {1} letters but operand {2} has rank {3}", letters,
                                letters.size(), side, t.rank()));
    for (size_t i = 0; i < letters.size(); ++i) {
      int64_t &s = size[letters[i] - 'a'];
      if (s != -1 && s != t.shape[i])
        return fail(llvm::formatv("letter '{0}' has size {1} and {2}", letters[i], s, t.shape[i]));
      s = t.shape[i];
    }
  }
  Shape out;
  for (char c : (*parts)[2])
    out.push_back(size[c - 'a']);
  return Types{TensorType(ops[0].dtype, out)};
}

//===-- elementwise ---------------------------------------------------------===//

Expected<Types> broadcastRule(ArrayRef<TensorType> ops, const AttrDict &) {
  const TensorType &x = ops[0], &y = ops[1];
  if (x.dtype != y.dtype)
    return fail(llvm::formatv("operand dtypes {0} and {1} differ", dtypeName(x.dtype), dtypeName(y.dtype)));
  unsigned rank = std::max(x.rank(), y.rank());
  Shape out(rank);
  for (unsigned i = 0; i < rank; ++i) {
    int64_t dx = i < rank - x.rank() ? 1 : x.shape[i - (rank - x.rank())];
    int64_t dy = i < rank - y.rank() ? 1 : y.shape[i - (rank - y.rank())];
    if (dx != dy && dx != 1 && dy != 1)
      return fail("operand shapes " + shapeStr(x.shape) + " and " + shapeStr(y.shape) + " do not broadcast");
    out[i] = dx == 1 ? dy : dx;
  }
  return Types{TensorType(x.dtype, out)};
}
Expected<Types> inferAdd(ArrayRef<TensorType> o, const AttrDict &a) { return broadcastRule(o, a); }
Expected<Types> inferSub(ArrayRef<TensorType> o, const AttrDict &a) { return broadcastRule(o, a); }
Expected<Types> inferMul(ArrayRef<TensorType> o, const AttrDict &a) { return broadcastRule(o, a); }
Expected<Types> inferDiv(ArrayRef<TensorType> o, const AttrDict &a) { return broadcastRule(o, a); }
Expected<Types> inferMaximum(ArrayRef<TensorType> o, const AttrDict &a) { return broadcastRule(o, a); }

Expected<Types> floatUnary(ArrayRef<TensorType> ops) {
  if (auto e = needFloat(ops[0], "the operand"))
    return e;
  return one(ops[0]);
}

Expected<Types> inferScale(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto f = floatAttr(a, "factor"); !f)
    return f.takeError();
  return floatUnary(ops);
}
Expected<Types> inferExp(ArrayRef<TensorType> ops, const AttrDict &) { return floatUnary(ops); }
Expected<Types> inferLog(ArrayRef<TensorType> ops, const AttrDict &) { return floatUnary(ops); }
Expected<Types> inferTanh(ArrayRef<TensorType> ops, const AttrDict &) { return floatUnary(ops); }

Expected<Types> inferGelu(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto s = symAttr(a, "approx", {"tanh", "erf"}); !s)
    return s.takeError();
  return floatUnary(ops);
}

llvm::Error checkProbability(const AttrDict &a, llvm::StringRef key, bool required) {
  if (!required && !a.has(key))
    return llvm::Error::success();
  auto p = floatAttr(a, key);
  if (!p)
    return p.takeError();
  if (!(*p >= 0.0 && *p < 1.0))
    return fail("attribute '" + key + "' must be in [0, 1)");
  return llvm::Error::success();
}

Expected<Types> inferDropout(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto e = checkProbability(a, "p", true))
    return e;
  if (auto s = intAttr(a, "stream"); !s)
    return s.takeError();
  return floatUnary(ops);
}

Expected<Types> inferCast(ArrayRef<TensorType> ops, const AttrDict &a) {
  auto s = symAttr(a, "dtype", {"f32", "bf16", "f16"});
  if (!s)
    return s.takeError();
  if (auto e = needFloat(ops[0], "the operand"))
    return e;
  return Types{TensorType(*parseDType(*s), ops[0].shape)};
}

// The vocabulary-padding mask: `valid` may be the whole dim (nothing masked); `value` may be -inf.
Expected<Types> inferMaskPadding(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &x = ops[0];
  auto attrs = intAttrs(a, {"dim", "valid"});
  if (!attrs)
    return attrs.takeError();
  auto [dim, valid] = *attrs;
  if (auto e = checkDim(dim, x.rank()))
    return e;
  if (valid < 0 || valid > x.shape[dim])
    return fail(llvm::formatv("attribute 'valid' = {0} is outside [0, {1}] (dim {2})", valid, x.shape[dim], dim));
  if (auto v = floatAttr(a, "value"); !v)
    return v.takeError();
  return floatUnary(ops);
}

//===-- normalization and attention ------------------------------------------===//

Expected<Types> inferLayerNorm(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &x = ops[0];
  if (auto e = needFloat(x, "the input"))
    return e;
  if (x.rank() == 0)
    return fail("the input must have rank >= 1");
  for (unsigned i = 1; i < 3; ++i)
    if (ops[i].shape != Shape{x.shape.back()} || ops[i].dtype != x.dtype)
      return fail(llvm::formatv("{0} must be {1}[{2}], got {3}", i == 1 ? "the gain" : "the bias",
                                dtypeName(x.dtype), x.shape.back(), ops[i].str()));
  if (auto eps = floatAttr(a, "eps"); !eps)
    return eps.takeError();
  return one(x);
}

Expected<Types> inferSoftmax(ArrayRef<TensorType> ops, const AttrDict &) {
  if (ops[0].rank() == 0)
    return fail("the input must have rank >= 1");
  return floatUnary(ops);
}

Expected<Types> inferAttention(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &q = ops[0];
  if (auto e = needFloat(q, "q"))
    return e;
  if (q.rank() != 4)
    return fail("q must be [batch, seq, heads, head_dim], got " + shapeStr(q.shape));
  for (unsigned i = 1; i < 3; ++i)
    if (ops[i].shape != q.shape || ops[i].dtype != q.dtype)
      return fail(llvm::formatv("{0} must have q's type {1}, got {2}", i == 1 ? "k" : "v", q.str(), ops[i].str()));
  if (ops.size() == 4) {
    if (auto e = needInt(ops[3], "the mask"))
      return e;
    if (ops[3].shape != Shape{q.shape[0], q.shape[1]})
      return fail("the mask must be [batch, seq] = " + shapeStr({q.shape[0], q.shape[1]}) + ", got " +
                  shapeStr(ops[3].shape));
  }
  if (auto c = boolAttr(a, "causal"); !c)
    return c.takeError();
  if (auto s = floatAttr(a, "scale"); !s)
    return s.takeError();
  if (auto e = checkProbability(a, "dropout", false))
    return e;
  return one(q);
}

//===-- layout ---------------------------------------------------------------===//

Expected<Types> inferReshape(ArrayRef<TensorType> ops, const AttrDict &a) {
  auto shape = intsAttr(a, "shape");
  if (!shape)
    return shape.takeError();
  int64_t n = 1;
  for (int64_t d : **shape) {
    if (d <= 0)
      return fail("attribute 'shape' has a non-positive dim");
    n *= d;
  }
  if (n != ops[0].numElements())
    return fail("cannot reshape " + shapeStr(ops[0].shape) + " to " + shapeStr(**shape));
  return Types{TensorType(ops[0].dtype, **shape)};
}

Expected<Types> inferTranspose(ArrayRef<TensorType> ops, const AttrDict &a) {
  auto perm = intsAttr(a, "perm");
  if (!perm)
    return perm.takeError();
  const TensorType &x = ops[0];
  if ((*perm)->size() != x.rank())
    return fail("attribute 'perm' must have " + llvm::Twine(x.rank()) + " entries");
  llvm::SmallVector<bool, 8> seen(x.rank(), false);
  Shape out;
  for (int64_t p : **perm) {
    if (p < 0 || p >= int64_t(x.rank()) || seen[p])
      return fail("attribute 'perm' is not a permutation");
    seen[p] = true;
    out.push_back(x.shape[p]);
  }
  return Types{TensorType(x.dtype, out)};
}

Expected<Types> inferSlice(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &x = ops[0];
  auto attrs = intAttrs(a, {"dim", "start", "size"});
  if (!attrs)
    return attrs.takeError();
  auto [dim, start, size] = *attrs;
  if (auto e = checkDim(dim, x.rank()))
    return e;
  if (start < 0 || size <= 0 || size > x.shape[dim] || start > x.shape[dim] - size)
    return fail(llvm::formatv("range of {0} from {1} is outside dim {2} of size {3}", size, start, dim, x.shape[dim]));
  Shape out(x.shape.begin(), x.shape.end());
  out[dim] = size;
  return Types{TensorType(x.dtype, out)};
}

Expected<Types> inferSelect(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &x = ops[0];
  auto attrs = intAttrs(a, {"dim", "index"});
  if (!attrs)
    return attrs.takeError();
  auto [dim, index] = *attrs;
  if (auto e = checkDim(dim, x.rank()))
    return e;
  if (index < 0 || index >= x.shape[dim])
    return fail(llvm::formatv("index {0} is outside dim {1} of size {2}", index, dim, x.shape[dim]));
  Shape out(x.shape.begin(), x.shape.end());
  out.erase(out.begin() + dim);
  return Types{TensorType(x.dtype, out)};
}

//===-- reductions and loss pieces -------------------------------------------===//

Expected<Types> reduceRule(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &x = ops[0];
  auto dims = intsAttr(a, "dims");
  if (!dims)
    return dims.takeError();
  auto keep = boolAttr(a, "keepdim", false);
  if (!keep)
    return keep.takeError();
  int64_t prev = -1;
  for (int64_t d : **dims) {
    if (auto e = checkDim(d, x.rank(), "dims"))
      return e;
    if (d <= prev)
      return fail("attribute 'dims' must be sorted and unique");
    prev = d;
  }
  Shape out;
  for (unsigned i = 0; i < x.rank(); ++i) {
    bool reduced = llvm::is_contained(**dims, int64_t(i));
    if (!reduced)
      out.push_back(x.shape[i]);
    else if (*keep)
      out.push_back(1);
  }
  if (auto e = needFloat(x, "the operand"))
    return e;
  return Types{TensorType(x.dtype, out)};
}
Expected<Types> inferReduceSum(ArrayRef<TensorType> o, const AttrDict &a) { return reduceRule(o, a); }
Expected<Types> inferReduceMax(ArrayRef<TensorType> o, const AttrDict &a) { return reduceRule(o, a); }

Expected<Types> inferPick(ArrayRef<TensorType> ops, const AttrDict &) {
  const TensorType &x = ops[0], &ids = ops[1];
  if (auto e = needFloat(x, "x"))
    return e;
  if (auto e = needInt(ids, "the ids"))
    return e;
  if (x.rank() == 0 || ids.shape != Shape(x.shape.begin(), x.shape.end() - 1))
    return fail("ids " + shapeStr(ids.shape) + " must be x " + shapeStr(x.shape) + " without its last dim");
  return Types{TensorType(x.dtype, ids.shape)};
}

Expected<Types> inferValidMask(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto e = needInt(ops[0], "the ids"))
    return e;
  if (auto v = intAttr(a, "ignore"); !v)
    return v.takeError();
  return Types{TensorType(DType::F32, ops[0].shape)};
}

//===-- collectives ----------------------------------------------------------===//

const llvm::StringRef kAxes[] = {"dp", "tp"};
const llvm::StringRef kReductions[] = {"sum", "max"};

Expected<Types> inferAllReduce(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto s = symAttr(a, "axis", kAxes); !s)
    return s.takeError();
  if (auto s = symAttr(a, "reduce", kReductions); !s)
    return s.takeError();
  return one(ops[0]);
}

// One packed buffer: every operand has the first one's dtype; result i has operand i's type.
Expected<Types> bucketTypes(ArrayRef<TensorType> ops) {
  Types out;
  for (unsigned i = 0; i < ops.size(); ++i) {
    if (ops[i].dtype != ops[0].dtype)
      return fail(llvm::formatv("operand {0} is {1} but operand 0 is {2}: a bucket has one dtype", i, ops[i].str(),
                                ops[0].str()));
    out.push_back(TensorType(ops[i].dtype, ops[i].shape));
  }
  return out;
}

Expected<Types> inferAllReduceBucket(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto s = symAttr(a, "axis", kAxes); !s)
    return s.takeError();
  if (auto s = symAttr(a, "reduce", kReductions); !s)
    return s.takeError();
  return bucketTypes(ops);
}

// reduce_scatter_bucket: as all_reduce_bucket, and `dims` names each operand's split dim (one per operand).
Expected<Types> inferReduceScatterBucket(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto s = symAttr(a, "axis", kAxes); !s)
    return s.takeError();
  if (auto s = symAttr(a, "reduce", kReductions); !s)
    return s.takeError();
  auto dims = intsAttr(a, "dims");
  if (!dims)
    return dims.takeError();
  if ((*dims)->size() != ops.size())
    return fail(llvm::formatv("attribute 'dims' has {0} entries for {1} operands (one per operand)",
                              (*dims)->size(), ops.size()));
  for (unsigned i = 0; i < ops.size(); ++i)
    if (auto e = checkDim((**dims)[i], ops[i].rank(), ("dims[" + llvm::Twine(i) + "]").str()))
      return e;
  return bucketTypes(ops);
}

Expected<Types> inferAllGather(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto s = symAttr(a, "axis", kAxes); !s)
    return s.takeError();
  auto dim = intAttr(a, "dim");
  if (!dim)
    return dim.takeError();
  if (auto e = checkDim(*dim, ops[0].rank()))
    return e;
  return one(ops[0]);
}

Expected<Types> inferReduceScatter(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto s = symAttr(a, "reduce", kReductions); !s)
    return s.takeError();
  return inferAllGather(ops, a);
}

//===-- constants, broadcasting and gradients --------------------------------===//

Expected<Types> inferFill(ArrayRef<TensorType>, const AttrDict &a) {
  if (auto v = floatAttr(a, "value"); !v)
    return v.takeError();
  auto shape = intsAttr(a, "shape");
  if (!shape)
    return shape.takeError();
  for (int64_t d : **shape)
    if (d <= 0)
      return fail("attribute 'shape' has a non-positive dim");
  return Types{TensorType(DType::F32, **shape)};
}

Expected<Types> inferBroadcast(ArrayRef<TensorType> ops, const AttrDict &a) {
  auto shape = intsAttr(a, "shape");
  if (!shape)
    return shape.takeError();
  const TensorType &x = ops[0];
  const auto &out = **shape;
  bool ok = x.rank() <= out.size();
  for (unsigned i = 0; ok && i < x.rank(); ++i) {
    int64_t d = x.shape[i], o = out[out.size() - x.rank() + i];
    ok = d == o || d == 1;
  }
  if (!ok)
    return fail("cannot broadcast " + shapeStr(x.shape) + " to " + shapeStr(out));
  return Types{TensorType(x.dtype, out)};
}

llvm::Error sameType(const TensorType &a, const TensorType &b, llvm::StringRef what) {
  if (a.dtype != b.dtype || a.shape != b.shape)
    return fail(what + " must have type " + TensorType(a.dtype, a.shape).str() + ", got " +
                TensorType(b.dtype, b.shape).str());
  return llvm::Error::success();
}

Expected<Types> inferGeluGrad(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto e = sameType(ops[0], ops[1], "dy"))
    return e;
  return inferGelu(ops.take_front(), a);
}

Expected<Types> inferLayerNormGrad(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto e = sameType(ops[0], ops[2], "dy"))
    return e;
  TensorType bias = ops[1];
  auto fwd = inferLayerNorm({ops[0], ops[1], bias}, a);
  if (!fwd)
    return fwd.takeError();
  return Types{one(ops[0])[0], one(ops[1])[0], one(ops[1])[0]};
}

Expected<Types> inferAttentionGrad(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto e = sameType(ops[0], ops[3], "dout"))
    return e;
  llvm::SmallVector<TensorType, 4> fwd{ops[0], ops[1], ops[2]};
  if (ops.size() == 5)
    fwd.push_back(ops[4]);
  auto r = inferAttention(fwd, a);
  if (!r)
    return r.takeError();
  return Types{(*r)[0], (*r)[0], (*r)[0]};
}

Expected<Types> inferEmbeddingGrad(ArrayRef<TensorType> ops, const AttrDict &a) {
  auto fwd = inferEmbedding(ops.take_front(2), a);
  if (!fwd)
    return fwd.takeError();
  if (auto e = sameType((*fwd)[0], ops[2], "dy"))
    return e;
  return one(ops[0]);
}

Expected<Types> inferPickGrad(ArrayRef<TensorType> ops, const AttrDict &a) {
  auto fwd = inferPick(ops.take_front(2), a);
  if (!fwd)
    return fwd.takeError();
  if (auto e = sameType((*fwd)[0], ops[2], "dy"))
    return e;
  return one(ops[0]);
}

Expected<Types> inferSliceGrad(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &dy = ops[0];
  auto attrs = intAttrs(a, {"dim", "start", "full"});
  if (!attrs)
    return attrs.takeError();
  auto [dim, start, full] = *attrs;
  if (auto e = checkDim(dim, dy.rank()))
    return e;
  if (start < 0 || dy.shape[dim] > full || start > full - dy.shape[dim])
    return fail(llvm::formatv("range of {0} from {1} is outside a dim of size {2}", dy.shape[dim], start, full));
  Shape out(dy.shape.begin(), dy.shape.end());
  out[dim] = full;
  return Types{TensorType(dy.dtype, out)};
}

Expected<Types> inferSelectGrad(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &dy = ops[0];
  auto attrs = intAttrs(a, {"dim", "index", "size"});
  if (!attrs)
    return attrs.takeError();
  auto [dim, index, size] = *attrs;
  if (auto e = checkDim(dim, dy.rank() + 1))
    return e;
  if (index < 0 || index >= size)
    return fail(llvm::formatv("index {0} is outside a dim of size {1}", index, size));
  Shape out(dy.shape.begin(), dy.shape.end());
  out.insert(out.begin() + dim, size);
  return Types{TensorType(dy.dtype, out)};
}

Expected<Types> inferShard(ArrayRef<TensorType> ops, const AttrDict &a) { return inferAllGather(ops, a); }

//===-- optimizer ------------------------------------------------------------===//

Expected<Types> inferState(ArrayRef<TensorType> ops, const AttrDict &a) { return sourceRule(ops, a); }

/// Operand `i` (what) is a scalar f32[] (optimizer and loss-scaler scalars).
llvm::Error needScalar(ArrayRef<TensorType> ops, unsigned i, llvm::StringRef what) {
  if (ops[i].dtype != DType::F32 || ops[i].rank() != 0)
    return fail(llvm::formatv("operand {0} ({1}) must be f32[], got {2}", i, what, ops[i].str()));
  return llvm::Error::success();
}

Expected<Types> inferLrSchedule(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (ops.size() == 1)
    if (auto e = needScalar(ops, 0, "updates"))
      return e;
  for (llvm::StringRef key : {"lr", "min_lr"})
    if (auto v = floatAttr(a, key); !v)
      return v.takeError();
  for (llvm::StringRef key : {"warmup", "decay_iters"})
    if (auto v = intAttr(a, key); !v)
      return v.takeError();
  if (auto s = symAttr(a, "style", {"constant", "linear", "cosine"}); !s)
    return s.takeError();
  return Types{TensorType(DType::F32, {})};
}

Expected<Types> inferSumSquares(ArrayRef<TensorType> ops, const AttrDict &) {
  if (auto e = needFloat(ops[0], "the operand"))
    return e;
  return Types{TensorType(DType::F32, {})};
}

Expected<Types> inferClipScale(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (auto v = floatAttr(a, "max_norm"); !v)
    return v.takeError();
  if (ops[0].dtype != DType::F32 || ops[0].rank() != 0)
    return fail("the squared norm must be f32[], got " + ops[0].str());
  return Types{TensorType(DType::F32, {}), TensorType(DType::F32, {})};
}

Expected<Types> inferAdamW(ArrayRef<TensorType> ops, const AttrDict &a) {
  static const char *names[] = {"the gradient", "m", "v"};
  for (unsigned i = 1; i < 4; ++i)
    if (auto e = sameType(ops[0], ops[i], names[i - 1]))
      return e;
  if (ops.size() == 7)
    return fail("updates and found_inf come together (6 or 8 operands, got 7)");
  static const char *scalars[] = {"lr", "grad scale", "updates", "found_inf"};
  for (unsigned i = 4; i < ops.size(); ++i)
    if (auto e = needScalar(ops, i, scalars[i - 4]))
      return e;
  for (llvm::StringRef key : {"beta1", "beta2", "eps", "weight_decay"})
    if (auto v = floatAttr(a, key); !v)
      return v.takeError();
  return Types{};
}

//===-- loss scaling ---------------------------------------------------------===//

Expected<Types> inferNonfinite(ArrayRef<TensorType> ops, const AttrDict &) {
  if (auto e = needFloat(ops[0], "the operand"))
    return e;
  return Types{TensorType(DType::F32, {})};
}

Expected<Types> inferLossScaleUpdate(ArrayRef<TensorType> ops, const AttrDict &a) {
  static const char *names[] = {"found_inf", "scale", "growth tracker", "hysteresis tracker", "updates"};
  for (unsigned i = 0; i < 5; ++i)
    if (auto e = needScalar(ops, i, names[i]))
      return e;
  for (llvm::StringRef key : {"growth_factor", "backoff_factor", "min_scale"})
    if (auto v = floatAttr(a, key); !v)
      return v.takeError();
  for (llvm::StringRef key : {"growth_interval", "hysteresis"})
    if (auto v = intAttr(a, key); !v)
      return v.takeError();
  double growth = *a.getFloat("growth_factor"), backoff = *a.getFloat("backoff_factor");
  double minScale = *a.getFloat("min_scale");
  if (!(growth >= 1) || !(backoff > 0 && backoff <= 1) || !(minScale > 0) || !std::isfinite(growth * minScale))
    return fail(llvm::formatv("need growth_factor >= 1, 0 < backoff_factor <= 1 and min_scale > 0, got {0}, {1}, {2}",
                              growth, backoff, minScale));
  if (*a.getInt("growth_interval") < 1 || *a.getInt("hysteresis") < 1)
    return fail("growth_interval and hysteresis must be >= 1");
  return Types{};
}

Expected<Types> inferAccumulate(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (ops[0].dtype != DType::F32)
    return fail("the accumulator must be f32, got " + ops[0].str());
  if (auto e = needFloat(ops[1], "the operand"))
    return e;
  if (ops[0].shape != ops[1].shape)
    return fail("the operand " + ops[1].str() + " does not have the accumulator's shape " + ops[0].str());
  auto m = a.getInt("micro_batches");
  if (!m || *m < 1)
    return fail("needs a positive integer attribute 'micro_batches'");
  return Types{TensorType(DType::F32, ops[0].shape)};
}

//===-- pipeline point-to-point ----------------------------------------------===//

/// send and recv: the value keeps its type; `peer` is a pipeline stage.
Expected<Types> pointToPoint(ArrayRef<TensorType> ops, const AttrDict &a) {
  if (ops.size() != 1)
    return fail("needs exactly one operand (recv: the token of its send)");
  auto peer = a.getInt("peer");
  if (!peer || *peer < 0)
    return fail("needs a non-negative integer attribute 'peer' (a pipeline stage)");
  return one(ops[0]);
}
Expected<Types> inferSend(ArrayRef<TensorType> ops, const AttrDict &a) { return pointToPoint(ops, a); }
Expected<Types> inferRecv(ArrayRef<TensorType> ops, const AttrDict &a) { return pointToPoint(ops, a); }
//===-- decoding ---------------------------------------------------------------===//

// q, k, v [b, t, n, d] (one type), caches [b, cache, n, d] of q's dtype, position i32[b, t], scale.
Expected<Types> inferDecodeAttention(ArrayRef<TensorType> ops, const AttrDict &a) {
  const TensorType &q = ops[0];
  if (auto e = needFloat(q, "q"))
    return e;
  if (q.rank() != 4)
    return fail("q must be [batch, tokens, heads, head_dim], got " + shapeStr(q.shape));
  for (unsigned i = 1; i < 3; ++i)
    if (ops[i].shape != q.shape || ops[i].dtype != q.dtype)
      return fail(llvm::formatv("{0} must have q's type {1}, got {2}", i == 1 ? "k" : "v", q.str(), ops[i].str()));
  for (unsigned i = 3; i < 5; ++i) {
    const TensorType &c = ops[i];
    if (c.dtype != q.dtype || c.rank() != 4 || c.shape[0] != q.shape[0] || c.shape[2] != q.shape[2] ||
        c.shape[3] != q.shape[3] || c.shape[1] < 1)
      return fail(llvm::formatv("{0} must be {1}[{2},cache,{3},{4}], got {5}", i == 3 ? "k_cache" : "v_cache",
                                dtypeName(q.dtype), q.shape[0], q.shape[2], q.shape[3], c.str()));
  }
  if (ops[4].shape != ops[3].shape)
    return fail("v_cache " + ops[4].str() + " must have k_cache's shape " + ops[3].str());
  if (auto e = needInt(ops[5], "the position"))
    return e;
  if (ops[5].shape != Shape{q.shape[0], q.shape[1]})
    return fail("the position must be [batch, tokens] = " + shapeStr({q.shape[0], q.shape[1]}) + ", got " +
                shapeStr(ops[5].shape));
  if (auto s = floatAttr(a, "scale"); !s)
    return s.takeError();
  return one(q);
}

constexpr ShapeRule kShapeRules[] = {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary) &infer##Enum,
#include "ir/Ops.def"
};
static_assert(std::size(kShapeRules) == kNumOpKinds, "every op needs a shape rule");

} // namespace

ShapeRule meg::ir::shapeRule(OpKind k) { return kShapeRules[unsigned(k)]; }

Expected<llvm::SmallVector<TensorType, 1>> meg::ir::inferTypes(OpKind k, ArrayRef<TensorType> operands,
                                                               const AttrDict &attrs) {
  const OpInfo &info = opInfo(k);
  int n = operands.size();
  if (n < info.minOperands || (info.maxOperands >= 0 && n > info.maxOperands)) {
    if (info.minOperands == info.maxOperands)
      return fail(llvm::formatv("expects {0} operand{1}, got {2}", info.minOperands,
                                info.minOperands == 1 ? "" : "s", n));
    if (info.maxOperands < 0)
      return fail(llvm::formatv("expects at least {0} operand{1}, got {2}", info.minOperands,
                                info.minOperands == 1 ? "" : "s", n));
    return fail(llvm::formatv("expects {0} to {1} operands, got {2}", info.minOperands, info.maxOperands, n));
  }
  return kShapeRules[unsigned(k)](operands, attrs);
}
