//===- DumpDiff.cpp - the first value where two activation dumps differ -------===//
#include "runtime/io/DumpDiff.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"

#include <cmath>
#include <limits>

using namespace meg;
using namespace meg::runtime;

static std::string shapeText(llvm::ArrayRef<int64_t> shape) {
  return "[" + llvm::join(llvm::map_range(shape, [](int64_t d) { return std::to_string(d); }), ",") + "]";
}

/// The box of `a` and `b` to compare: their shape, or along one vocabulary-padded dim the vocabulary's rows.
static std::optional<std::vector<int64_t>> commonBox(const DumpedValue &a, const DumpHeader &ha, const DumpedValue &b,
                                                     const DumpHeader &hb) {
  if (a.shape == b.shape)
    return a.shape;
  if (a.shape.size() != b.shape.size())
    return std::nullopt;
  std::vector<int64_t> box = a.shape;
  int differing = 0;
  for (size_t d = 0; d < a.shape.size(); ++d) {
    if (a.shape[d] == b.shape[d])
      continue;
    ++differing;
    // The larger side must be its dump's padded vocabulary, the smaller hold at least the vocabulary.
    bool aLarger = a.shape[d] > b.shape[d];
    const DumpHeader &large = aLarger ? ha : hb;
    int64_t big = std::max(a.shape[d], b.shape[d]), small = std::min(a.shape[d], b.shape[d]);
    if (large.vocabPadded == 0 || big != large.vocabPadded || small < large.vocabRows)
      return std::nullopt;
    box[d] = large.vocabRows;
  }
  if (differing != 1)
    return std::nullopt;
  return box;
}

static std::vector<int64_t> strides(llvm::ArrayRef<int64_t> shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;)
    s[d - 1] = s[d] * shape[d];
  return s;
}

static ValueDiff compare(llvm::ArrayRef<float> a, llvm::ArrayRef<int64_t> shapeA, llvm::ArrayRef<float> b,
                         llvm::ArrayRef<int64_t> shapeB, llvm::ArrayRef<int64_t> box, const DiffTolerance &tol) {
  ValueDiff diff;
  std::vector<int64_t> sa = strides(shapeA), sb = strides(shapeB), idx(box.size(), 0);
  int64_t n = 1;
  for (int64_t d : box)
    n *= d;
  diff.compared = n;
  for (int64_t i = 0; i < n; ++i) {
    int64_t ia = 0, ib = 0;
    for (size_t d = 0; d < box.size(); ++d) {
      ia += idx[d] * sa[d];
      ib += idx[d] * sb[d];
    }
    float x = a[size_t(ia)], y = b[size_t(ib)];
    double abs = 0, rel = 0;
    bool differs = false;
    if (std::isnan(x) || std::isnan(y)) {
      differs = std::isnan(x) != std::isnan(y);
      abs = rel = differs ? std::numeric_limits<double>::infinity() : 0;
    } else if (x != y) {
      abs = std::fabs(double(y) - double(x));
      rel = x != 0 ? abs / std::fabs(double(x)) : std::numeric_limits<double>::infinity();
      differs = std::isinf(abs) || abs > tol.atol + tol.rtol * std::fabs(double(x));
    }
    diff.differing += differs;
    if (abs > diff.maxAbs || (diff.whereAbs.empty() && differs)) {
      diff.maxAbs = abs;
      diff.whereAbs = idx;
      diff.absA = x, diff.absB = y;
    }
    if (rel > diff.maxRel) {
      diff.maxRel = rel;
      diff.whereRel = idx;
      diff.relA = x, diff.relB = y;
    }
    for (size_t d = box.size(); d-- > 0;) {
      if (++idx[d] < box[d])
        break;
      idx[d] = 0;
    }
  }
  return diff;
}

llvm::Expected<DumpDiff> meg::runtime::diffDumps(const ActivationDump &a, const ActivationDump &b,
                                                 const DiffTolerance &tol) {
  llvm::StringMap<size_t> inB;
  for (size_t j = 0; j < b.values().size(); ++j)
    inB[b.values()[j].key] = j;
  DumpDiff result;
  for (size_t i = 0; i < a.values().size(); ++i) {
    const DumpedValue &va = a.values()[i];
    auto it = inB.find(va.key);
    if (it == inB.end())
      continue;
    const DumpedValue &vb = b.values()[it->second];
    auto box = commonBox(va, a.header(), vb, b.header());
    if (!box)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "value '" + va.key + "' (" + va.op + ") is " + shapeText(va.shape) + " in " +
                                         a.path() + " but " + shapeText(vb.shape) + " in " + b.path());
    ValueDiff d = compare(a.data(i), va.shape, b.data(it->second), vb.shape, *box, tol);
    d.posA = i;
    d.posB = it->second;
    size_t k = result.values.size();
    if (d.differing && !result.first)
      result.first = k;
    if (!result.largestAbs || d.maxAbs > result.values[*result.largestAbs].maxAbs)
      result.largestAbs = k;
    result.values.push_back(std::move(d));
  }
  result.matched = result.values.size();
  result.onlyA = a.values().size() - result.matched;
  result.onlyB = b.values().size() - result.matched;
  return result;
}
