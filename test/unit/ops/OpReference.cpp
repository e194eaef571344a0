//===- OpReference.cpp - plain references of every op, in double ------------===//
#include "OpReference.h"

#include "kernels/Half.h"
#include "kernels/Philox.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace meg;
using namespace meg::optest;
using ir::DType;
using ir::Node;

namespace {

using Shape = std::vector<int64_t>;
using Ins = std::vector<const HostTensor *>;
using Outs = std::vector<HostTensor>;
using Ctx = runtime::StepContext;

// --- index helpers ---------------------------------------------------------------------------------------------

Shape resultShape(const Node &n, unsigned i = 0) {
  const auto &s = n.getResult(i)->getType().shape;
  return Shape(s.begin(), s.end());
}
HostTensor resultLike(const Node &n, unsigned i = 0) {
  return HostTensor(n.getResult(i)->getType().dtype, resultShape(n, i));
}
std::vector<int64_t> unravel(int64_t flat, const Shape &shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}
int64_t ravel(const std::vector<int64_t> &idx, const Shape &shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + idx[d];
  return flat;
}
/// The element of `in` (numpy-broadcast, aligned right) that output index `idx` reads.
int64_t broadcastIndex(const std::vector<int64_t> &idx, const Shape &in) {
  size_t lead = idx.size() - in.size();
  int64_t flat = 0;
  for (size_t d = 0; d < in.size(); ++d)
    flat = flat * in[d] + (in[d] == 1 ? 0 : idx[lead + d]);
  return flat;
}
int64_t attrInt(const Node &n, const char *k) { return *n.getAttrs().getInt(k); }
double attrFloat(const Node &n, const char *k) { return *n.getAttrs().getFloat(k); }
std::string attrSym(const Node &n, const char *k) { return n.getAttrs().getSymbol(k)->str(); }
/// Rows x last-dim view of a tensor.
std::pair<int64_t, int64_t> rowsCols(const HostTensor &t) {
  int64_t cols = t.shape.empty() ? 1 : t.shape.back();
  return {t.numel() / cols, cols};
}
bool keep(const Ctx &ctx, uint32_t stream, uint64_t index, double p) {
  if (!ctx.dropout || p <= 0)
    return true;
  return kernels::dropoutKeep(kernels::PhiloxKey{ctx.seed, stream, ctx.step}, index, float(p));
}

// --- graph interface, constants ----------------------------------------------------------------------------------

Outs refFill(const Node &n, const Ins &, const Ctx &) {
  HostTensor y = resultLike(n);
  std::fill(y.data.begin(), y.data.end(), attrFloat(n, "value"));
  return {y};
}

// --- lookups and contractions ------------------------------------------------------------------------------------

Outs refEmbedding(const Node &n, const Ins &in, const Ctx &) {
  const HostTensor &table = *in[0], &ids = *in[1];
  HostTensor y = resultLike(n);
  int64_t vocab = table.shape[0], h = table.shape[1];
  for (int64_t t = 0; t < ids.numel(); ++t) {
    int64_t id = int64_t(ids.data[t]);
    for (int64_t j = 0; j < h; ++j)
      y.data[t * h + j] = id >= 0 && id < vocab ? table.data[id * h + j] : 0.0;
  }
  return {y};
}

/// einsum over every combination of the distinct letters of "ab,bc->ac".
Outs refContract(const Node &n, const Ins &in, const Ctx &) {
  std::string spec = n.getAttrs().getString("spec")->str();
  size_t comma = spec.find(','), arrow = spec.find("->");
  std::string terms[3] = {spec.substr(0, comma), spec.substr(comma + 1, arrow - comma - 1), spec.substr(arrow + 2)};
  std::string letters;
  std::vector<int64_t> size;
  for (int side = 0; side < 2; ++side)
    for (size_t i = 0; i < terms[side].size(); ++i)
      if (letters.find(terms[side][i]) == std::string::npos) {
        letters += terms[side][i];
        size.push_back(in[side]->shape[i]);
      }
  HostTensor y = resultLike(n);
  Shape shapes[3] = {in[0]->shape, in[1]->shape, y.shape};
  std::vector<int64_t> at(letters.size(), 0);
  int64_t total = 1;
  for (int64_t s : size)
    total *= s;
  auto offset = [&](int term) {
    std::vector<int64_t> idx;
    for (char c : terms[term])
      idx.push_back(at[letters.find(c)]);
    return ravel(idx, shapes[term]);
  };
  for (int64_t k = 0; k < total; ++k) {
    at = unravel(k, size);
    y.data[offset(2)] += in[0]->data[offset(0)] * in[1]->data[offset(1)];
  }
  return {y};
}

// --- elementwise ------------------------------------------------------------------------------------------------

template <typename F> Outs binary(const Node &n, const Ins &in, F f) {
  HostTensor y = resultLike(n);
  for (int64_t i = 0; i < y.numel(); ++i) {
    auto idx = unravel(i, y.shape);
    y.data[i] = f(in[0]->data[broadcastIndex(idx, in[0]->shape)], in[1]->data[broadcastIndex(idx, in[1]->shape)]);
  }
  return {y};
}
template <typename F> Outs unary(const Node &n, const Ins &in, F f) {
  HostTensor y = resultLike(n);
  for (int64_t i = 0; i < y.numel(); ++i)
    y.data[i] = f(in[0]->data[i], i);
  return {y};
}

double geluOf(const std::string &form, double x) {
  if (form == "erf")
    return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
double geluSlope(const std::string &form, double x) {
  if (form == "erf")
    return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-x * x / 2) / std::sqrt(2 * M_PI);
  double u = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x), t = std::tanh(u);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * std::sqrt(2 / M_PI) * (1 + 3 * 0.044715 * x * x);
}

Outs refAdd(const Node &n, const Ins &in, const Ctx &) { return binary(n, in, [](double a, double b) { return a + b; }); }
Outs refSub(const Node &n, const Ins &in, const Ctx &) { return binary(n, in, [](double a, double b) { return a - b; }); }
Outs refMul(const Node &n, const Ins &in, const Ctx &) { return binary(n, in, [](double a, double b) { return a * b; }); }
Outs refDiv(const Node &n, const Ins &in, const Ctx &) { return binary(n, in, [](double a, double b) { return a / b; }); }
Outs refMaximum(const Node &n, const Ins &in, const Ctx &) {
  return binary(n, in, [](double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); });
}
Outs refScale(const Node &n, const Ins &in, const Ctx &) {
  double f = attrFloat(n, "factor");
  return unary(n, in, [f](double x, int64_t) { return x * f; });
}
Outs refExp(const Node &n, const Ins &in, const Ctx &) {
  return unary(n, in, [](double x, int64_t) { return std::exp(x); });
}
Outs refLog(const Node &n, const Ins &in, const Ctx &) {
  return unary(n, in, [](double x, int64_t) { return std::log(x); });
}
Outs refTanh(const Node &n, const Ins &in, const Ctx &) {
  return unary(n, in, [](double x, int64_t) { return std::tanh(x); });
}
Outs refGelu(const Node &n, const Ins &in, const Ctx &) {
  std::string form = attrSym(n, "approx");
  return unary(n, in, [&](double x, int64_t) { return geluOf(form, x); });
}
Outs refDropout(const Node &n, const Ins &in, const Ctx &ctx) {
  double p = attrFloat(n, "p");
  uint32_t stream = uint32_t(attrInt(n, "stream"));
  return unary(n, in, [&](double x, int64_t i) { return keep(ctx, stream, uint64_t(i), p) ? x / (1 - p) : 0.0; });
}
// f32 -> i32 truncates toward zero; i32 -> f32 is exact for the values fed; bf16 and f16 round to nearest even.
Outs refCast(const Node &n, const Ins &in, const Ctx &) {
  DType to = n.getResult()->getType().dtype;
  return unary(n, in, [to](double x, int64_t) -> double {
    switch (to) {
    case DType::I32:
      return std::trunc(x);
    case DType::BF16:
      return kernels::bf16ToFloat(kernels::floatToBf16(float(x)));
    case DType::F16:
      return kernels::f16ToFloat(kernels::floatToF16(float(x)));
    default:
      return x;
    }
  });
}
Outs refMaskPadding(const Node &n, const Ins &in, const Ctx &) {
  int64_t dim = attrInt(n, "dim"), valid = attrInt(n, "valid");
  double value = attrFloat(n, "value");
  const Shape &shape = in[0]->shape;
  return unary(n, in, [&](double x, int64_t i) { return unravel(i, shape)[dim] >= valid ? value : x; });
}

// --- normalization and attention ---------------------------------------------------------------------------------

/// Per row of x: mean and 1 / sqrt(biased variance + eps).
std::pair<double, double> rowStats(const double *x, int64_t cols, double eps) {
  double mean = 0, var = 0;
  for (int64_t j = 0; j < cols; ++j)
    mean += x[j] / cols;
  for (int64_t j = 0; j < cols; ++j)
    var += (x[j] - mean) * (x[j] - mean) / cols;
  return {mean, 1 / std::sqrt(var + eps)};
}

Outs refLayerNorm(const Node &n, const Ins &in, const Ctx &) {
  HostTensor y = resultLike(n);
  auto [rows, cols] = rowsCols(*in[0]);
  double eps = attrFloat(n, "eps");
  for (int64_t r = 0; r < rows; ++r) {
    const double *x = &in[0]->data[r * cols];
    auto [mean, rstd] = rowStats(x, cols, eps);
    for (int64_t j = 0; j < cols; ++j)
      y.data[r * cols + j] = (x[j] - mean) * rstd * in[1]->data[j] + in[2]->data[j];
  }
  return {y};
}

Outs refSoftmax(const Node &n, const Ins &in, const Ctx &) {
  HostTensor y = resultLike(n);
  auto [rows, cols] = rowsCols(*in[0]);
  for (int64_t r = 0; r < rows; ++r) {
    const double *x = &in[0]->data[r * cols];
    double mx = *std::max_element(x, x + cols), sum = 0;
    for (int64_t j = 0; j < cols; ++j)
      sum += std::exp(x[j] - mx);
    for (int64_t j = 0; j < cols; ++j)
      y.data[r * cols + j] = std::exp(x[j] - mx) / sum;
  }
  return {y};
}

/// Attention over [b, s, h, d] tensors, one (batch, head, query) row at a time: the probabilities P (0 where not
/// allowed) and the dropout factors keep / (1 - p) of the global [b, h, s, s] probability tensor.
struct AttentionRows {
  int64_t B, S, H, D;
  double scale, p;
  bool causal;
  uint32_t stream;
  const HostTensor *mask;
  const Ctx &ctx;

  AttentionRows(const Node &n, const Ins &in, const Ctx &ctx, const HostTensor *mask)
      : B(in[0]->shape[0]), S(in[0]->shape[1]), H(in[0]->shape[2]), D(in[0]->shape[3]),
        scale(attrFloat(n, "scale")), p(n.getAttrs().getFloat("dropout").value_or(0.0)),
        causal(*n.getAttrs().getBool("causal")), stream(uint32_t(n.getAttrs().getInt("stream").value_or(0))),
        mask(mask), ctx(ctx) {}

  int64_t at(int64_t b, int64_t s, int64_t h) const { return ((b * S + s) * H + h) * D; }
  std::vector<double> probs(const HostTensor &q, const HostTensor &k, int64_t b, int64_t h, int64_t i) const {
    std::vector<double> s(S, -std::numeric_limits<double>::infinity());
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < S; ++j) {
      if ((causal && j > i) || (mask && mask->data[b * S + j] == 0))
        continue;
      double dot = 0;
      for (int64_t d = 0; d < D; ++d)
        dot += q.data[at(b, i, h) + d] * k.data[at(b, j, h) + d];
      s[j] = scale * dot;
      mx = std::max(mx, s[j]);
    }
    double sum = 0;
    for (int64_t j = 0; j < S; ++j)
      sum += std::isinf(s[j]) ? 0 : std::exp(s[j] - mx);
    for (int64_t j = 0; j < S; ++j)
      s[j] = std::isinf(s[j]) ? 0 : std::exp(s[j] - mx) / sum;
    return s;
  }
  double factor(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return keep(ctx, stream, uint64_t(((b * H + h) * S + i) * S + j), p) ? 1 / (1 - (ctx.dropout ? p : 0)) : 0;
  }
};

Outs refAttention(const Node &n, const Ins &in, const Ctx &ctx) {
  AttentionRows a(n, in, ctx, in.size() == 4 ? in[3] : nullptr);
  HostTensor y = resultLike(n);
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.H; ++h)
      for (int64_t i = 0; i < a.S; ++i) {
        std::vector<double> P = a.probs(*in[0], *in[1], b, h, i);
        for (int64_t j = 0; j < a.S; ++j)
          for (int64_t d = 0; d < a.D; ++d)
            y.data[a.at(b, i, h) + d] += P[j] * a.factor(b, h, i, j) * in[2]->data[a.at(b, j, h) + d];
      }
  return {y};
}

// --- layout ------------------------------------------------------------------------------------------------------

Outs refReshape(const Node &n, const Ins &in, const Ctx &) {
  HostTensor y = resultLike(n);
  y.data = in[0]->data;
  return {y};
}
Outs refTranspose(const Node &n, const Ins &in, const Ctx &) {
  HostTensor y = resultLike(n);
  const auto &perm = *n.getAttrs().getInts("perm");
  for (int64_t i = 0; i < y.numel(); ++i) {
    auto out = unravel(i, y.shape);
    std::vector<int64_t> src(out.size());
    for (size_t d = 0; d < perm.size(); ++d)
      src[perm[d]] = out[d];
    y.data[i] = in[0]->data[ravel(src, in[0]->shape)];
  }
  return {y};
}
/// y[idx] = x[idx with `dim` mapped by f] for every result index.
template <typename F> HostTensor gatherDim(const Node &n, const HostTensor &x, F f) {
  HostTensor y = resultLike(n);
  for (int64_t i = 0; i < y.numel(); ++i)
    y.data[i] = x.data[ravel(f(unravel(i, y.shape)), x.shape)];
  return y;
}
Outs refSlice(const Node &n, const Ins &in, const Ctx &) {
  int64_t dim = attrInt(n, "dim"), start = attrInt(n, "start");
  return {gatherDim(n, *in[0], [&](std::vector<int64_t> idx) {
    idx[dim] += start;
    return idx;
  })};
}
Outs refSelect(const Node &n, const Ins &in, const Ctx &) {
  int64_t dim = attrInt(n, "dim"), index = attrInt(n, "index");
  return {gatherDim(n, *in[0], [&](std::vector<int64_t> idx) {
    idx.insert(idx.begin() + dim, index);
    return idx;
  })};
}

// --- reductions and loss pieces ----------------------------------------------------------------------------------

Outs reduce(const Node &n, const Ins &in, bool max) {
  HostTensor y = resultLike(n);
  const auto &dims = *n.getAttrs().getInts("dims");
  bool keepdim = *n.getAttrs().getBool("keepdim");
  std::fill(y.data.begin(), y.data.end(), max ? -std::numeric_limits<double>::infinity() : 0.0);
  for (int64_t i = 0; i < in[0]->numel(); ++i) {
    auto idx = unravel(i, in[0]->shape);
    std::vector<int64_t> out;
    for (size_t d = 0; d < idx.size(); ++d) {
      bool reduced = std::find(dims.begin(), dims.end(), int64_t(d)) != dims.end();
      if (!reduced || keepdim)
        out.push_back(reduced ? 0 : idx[d]);
    }
    double x = in[0]->data[i], &o = y.data[ravel(out, y.shape)];
    o = max ? std::max(o, x) : o + x;
  }
  return {y};
}
Outs refReduceSum(const Node &n, const Ins &in, const Ctx &) { return reduce(n, in, false); }
Outs refReduceMax(const Node &n, const Ins &in, const Ctx &) { return reduce(n, in, true); }

Outs refPick(const Node &n, const Ins &in, const Ctx &) {
  auto [rows, cols] = rowsCols(*in[0]);
  HostTensor y = resultLike(n);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t id = int64_t(in[1]->data[r]);
    y.data[r] = id >= 0 && id < cols ? in[0]->data[r * cols + id] : 0.0;
  }
  return {y};
}
Outs refValidMask(const Node &n, const Ins &in, const Ctx &) {
  double ignore = double(attrInt(n, "ignore"));
  return unary(n, in, [ignore](double id, int64_t) { return id != ignore ? 1.0 : 0.0; });
}
Outs refBroadcast(const Node &n, const Ins &in, const Ctx &) {
  HostTensor y = resultLike(n);
  for (int64_t i = 0; i < y.numel(); ++i)
    y.data[i] = in[0]->data[broadcastIndex(unravel(i, y.shape), in[0]->shape)];
  return {y};
}

// --- gradients ---------------------------------------------------------------------------------------------------

Outs refGeluGrad(const Node &n, const Ins &in, const Ctx &) {
  std::string form = attrSym(n, "approx");
  return binary(n, in, [&](double x, double dy) { return dy * geluSlope(form, x); });
}

Outs refLayerNormGrad(const Node &n, const Ins &in, const Ctx &) {
  const HostTensor &x = *in[0], &g = *in[1], &dy = *in[2];
  auto [rows, cols] = rowsCols(x);
  double eps = attrFloat(n, "eps");
  HostTensor dx = resultLike(n, 0), dg = resultLike(n, 1), db = resultLike(n, 2);
  for (int64_t r = 0; r < rows; ++r) {
    auto [mean, rstd] = rowStats(&x.data[r * cols], cols, eps);
    double meanGdy = 0, meanGdyXhat = 0;
    for (int64_t j = 0; j < cols; ++j) {
      double xhat = (x.data[r * cols + j] - mean) * rstd, gdy = g.data[j] * dy.data[r * cols + j];
      meanGdy += gdy / cols;
      meanGdyXhat += gdy * xhat / cols;
      dg.data[j] += dy.data[r * cols + j] * xhat;
      db.data[j] += dy.data[r * cols + j];
    }
    for (int64_t j = 0; j < cols; ++j) {
      double xhat = (x.data[r * cols + j] - mean) * rstd, gdy = g.data[j] * dy.data[r * cols + j];
      dx.data[r * cols + j] = rstd * (gdy - meanGdy - xhat * meanGdyXhat);
    }
  }
  return {dx, dg, db};
}

// out_i = sum_j P'_j v_j with P' = P * factor and P = softmax(s): dv_j += P'_j dout_i, dP_j = factor_j dout_i . v_j,
// ds_j = P_j (dP_j - sum_l P_l dP_l), dq_i += scale ds_j k_j, dk_j += scale ds_j q_i.
Outs refAttentionGrad(const Node &n, const Ins &in, const Ctx &ctx) {
  AttentionRows a(n, in, ctx, in.size() == 5 ? in[4] : nullptr);
  const HostTensor &q = *in[0], &k = *in[1], &v = *in[2], &dout = *in[3];
  HostTensor dq = resultLike(n, 0), dk = resultLike(n, 1), dv = resultLike(n, 2);
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t h = 0; h < a.H; ++h)
      for (int64_t i = 0; i < a.S; ++i) {
        std::vector<double> P = a.probs(q, k, b, h, i), dP(a.S, 0.0);
        double rowDot = 0;
        for (int64_t j = 0; j < a.S; ++j) {
          double f = a.factor(b, h, i, j), dot = 0;
          for (int64_t d = 0; d < a.D; ++d) {
            dv.data[a.at(b, j, h) + d] += P[j] * f * dout.data[a.at(b, i, h) + d];
            dot += dout.data[a.at(b, i, h) + d] * v.data[a.at(b, j, h) + d];
          }
          dP[j] = f * dot;
          rowDot += P[j] * dP[j];
        }
        for (int64_t j = 0; j < a.S; ++j) {
          double ds = a.scale * P[j] * (dP[j] - rowDot);
          for (int64_t d = 0; d < a.D; ++d) {
            dq.data[a.at(b, i, h) + d] += ds * k.data[a.at(b, j, h) + d];
            dk.data[a.at(b, j, h) + d] += ds * q.data[a.at(b, i, h) + d];
          }
        }
      }
  return {dq, dk, dv};
}

Outs refEmbeddingGrad(const Node &n, const Ins &in, const Ctx &) {
  const HostTensor &ids = *in[1], &dy = *in[2];
  HostTensor dt = resultLike(n);
  int64_t vocab = dt.shape[0], h = dt.shape[1];
  for (int64_t t = 0; t < ids.numel(); ++t) {
    int64_t id = int64_t(ids.data[t]);
    if (id >= 0 && id < vocab)
      for (int64_t j = 0; j < h; ++j)
        dt.data[id * h + j] += dy.data[t * h + j];
  }
  return {dt};
}
Outs refPickGrad(const Node &n, const Ins &in, const Ctx &) {
  HostTensor dx = resultLike(n);
  auto [rows, cols] = rowsCols(dx);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t id = int64_t(in[1]->data[r]);
    if (id >= 0 && id < cols)
      dx.data[r * cols + id] = in[2]->data[r];
  }
  return {dx};
}
/// y = zeros of the result shape with x placed where f(index) says (nullopt: stays 0).
template <typename F> HostTensor scatterDim(const Node &n, const HostTensor &x, F f) {
  HostTensor y = resultLike(n);
  for (int64_t i = 0; i < y.numel(); ++i)
    if (auto src = f(unravel(i, y.shape)))
      y.data[i] = x.data[ravel(*src, x.shape)];
  return y;
}
Outs refSliceGrad(const Node &n, const Ins &in, const Ctx &) {
  int64_t dim = attrInt(n, "dim"), start = attrInt(n, "start"), size = in[0]->shape[size_t(dim)];
  return {scatterDim(n, *in[0], [&](std::vector<int64_t> idx) -> std::optional<std::vector<int64_t>> {
    if (idx[dim] < start || idx[dim] >= start + size)
      return std::nullopt;
    idx[dim] -= start;
    return idx;
  })};
}
Outs refSelectGrad(const Node &n, const Ins &in, const Ctx &) {
  int64_t dim = attrInt(n, "dim"), index = attrInt(n, "index");
  return {scatterDim(n, *in[0], [&](std::vector<int64_t> idx) -> std::optional<std::vector<int64_t>> {
    if (idx[dim] != index)
      return std::nullopt;
    idx.erase(idx.begin() + dim);
    return idx;
  })};
}

// --- collectives: on the GLOBAL value every collective is the identity (they only move or complete shards) -------

Outs refIdentity(const Node &n, const Ins &in, const Ctx &) {
  HostTensor y = resultLike(n);
  y.data = in[0]->data;
  return {y};
}

// Each result is its own operand's value (all_reduce_bucket, reduce_scatter_bucket: the assembled operands are the
// reduced values, the assembled results their concatenated blocks).
Outs refIdentityEach(const Node &n, const Ins &in, const Ctx &) {
  Outs out;
  for (unsigned i = 0; i < n.getNumResults(); ++i) {
    HostTensor y = resultLike(n, i);
    y.data = in[i]->data;
    out.push_back(std::move(y));
  }
  return out;
}

// --- optimizer ---------------------------------------------------------------------------------------------------

// Megatron's schedule at the 1-based step ctx.step + 1 (or the count of applied updates + 1, operand 0, truncated
// like the kernels' integer step): linear warm-up from 0, then decay to min_lr.
Outs refLrSchedule(const Node &n, const Ins &in, const Ctx &ctx) {
  double lr = attrFloat(n, "lr"), minLr = attrFloat(n, "min_lr");
  double t = (in.empty() ? double(ctx.step) : std::trunc(in[0]->data[0])) + 1, warmup = double(attrInt(n, "warmup")), decay = double(attrInt(n, "decay_iters"));
  std::string style = attrSym(n, "style");
  double value;
  if (warmup > 0 && t <= warmup)
    value = lr * t / warmup;
  else if (style == "constant")
    value = lr;
  else if (t >= decay)
    value = minLr;
  else {
    double ratio = (t - warmup) / (decay - warmup);
    value = minLr + (lr - minLr) * (style == "cosine" ? 0.5 * (1 + std::cos(M_PI * ratio)) : 1 - ratio);
  }
  HostTensor y = resultLike(n);
  y.data[0] = value;
  return {y};
}
Outs refSumSquares(const Node &n, const Ins &in, const Ctx &) {
  HostTensor y = resultLike(n);
  for (double x : in[0]->data)
    y.data[0] += x * x;
  return {y};
}
// torch.nn.utils.clip_grad_norm_: coefficient min(1, max_norm / (norm + 1e-6)), and the norm.
Outs refClipScale(const Node &n, const Ins &in, const Ctx &) {
  double norm = std::sqrt(in[0]->data[0]);
  HostTensor coeff = resultLike(n, 0), out = resultLike(n, 1);
  coeff.data[0] = std::min(1.0, attrFloat(n, "max_norm") / (norm + 1e-6));
  out.data[0] = norm;
  return {coeff, out};
}
// torch.optim.AdamW at step t = ctx.step + 1 (or the count of applied updates + 1, operand 6) on the clipped
// gradient; returns the new param, m and v (unchanged when found_inf, operand 7, is set).
Outs refAdamW(const Node &n, const Ins &in, const Ctx &ctx) {
  HostTensor p = *in[0], m = *in[2], v = *in[3];
  bool counted = in.size() == 8;
  if (counted && in[7]->data[0] != 0)
    return {p, m, v};
  double lr = in[4]->data[0], clip = in[5]->data[0];
  double t = (counted ? std::trunc(in[6]->data[0]) : double(ctx.step)) + 1;
  double b1 = attrFloat(n, "beta1"), b2 = attrFloat(n, "beta2"), eps = attrFloat(n, "eps");
  double wd = attrFloat(n, "weight_decay");
  for (int64_t i = 0; i < p.numel(); ++i) {
    double g = in[1]->data[i] * clip;
    m.data[i] = b1 * m.data[i] + (1 - b1) * g;
    v.data[i] = b2 * v.data[i] + (1 - b2) * g * g;
    double mhat = m.data[i] / (1 - std::pow(b1, t)), vhat = v.data[i] / (1 - std::pow(b2, t));
    p.data[i] = p.data[i] * (1 - lr * wd) - lr * mhat / (std::sqrt(vhat) + eps);
  }
  return {p, m, v};
}
// Gradient accumulation: acc + x / micro_batches, from zero at micro-batch 0; the new accumulator, then the result
// (the same values).
Outs refAccumulate(const Node &n, const Ins &in, const Ctx &ctx) {
  HostTensor acc = *in[0];
  double m = double(*n.getAttrs().getInt("micro_batches"));
  for (int64_t i = 0; i < acc.numel(); ++i)
    acc.data[i] = (ctx.microBatch == 0 ? 0.0 : acc.data[i]) + in[1]->data[i] / m;
  return {acc, acc};
}

// --- decoding ----------------------------------------------------------------------------------------------------

// decode_attention: each new token's k, v stored at its cache position (in token order), then softmax attention of
// each query over cache positions 0..position; a position outside the cache writes nothing and gives 0. Returns the
// new caches, then the result.
Outs refDecodeAttention(const Node &n, const Ins &in, const Ctx &) {
  const Shape &qs = in[0]->shape; // [b, t, heads, d]
  int64_t B = qs[0], T = qs[1], H = qs[2], D = qs[3], C = in[3]->shape[1];
  HostTensor kc = *in[3], vc = *in[4], out = resultLike(n);
  auto pos = [&](int64_t b, int64_t t) { return int64_t(in[5]->data[size_t(b * T + t)]); };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      if (int64_t p = pos(b, t); p >= 0 && p < C)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t d = 0; d < D; ++d) {
            kc.data[size_t(ravel({b, p, h, d}, kc.shape))] = in[1]->data[size_t(ravel({b, t, h, d}, qs))];
            vc.data[size_t(ravel({b, p, h, d}, vc.shape))] = in[2]->data[size_t(ravel({b, t, h, d}, qs))];
          }
  double scale = attrFloat(n, "scale");
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        int64_t p = pos(b, t);
        if (p < 0 || p >= C)
          continue;
        std::vector<double> s(size_t(p + 1));
        double mx = -std::numeric_limits<double>::infinity(), sum = 0;
        for (int64_t j = 0; j <= p; ++j) {
          for (int64_t d = 0; d < D; ++d)
            s[size_t(j)] += in[0]->data[size_t(ravel({b, t, h, d}, qs))] * kc.data[size_t(ravel({b, j, h, d}, kc.shape))];
          s[size_t(j)] *= scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        for (double &x : s)
          sum += (x = std::exp(x - mx));
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j <= p; ++j)
            acc += s[size_t(j)] / sum * vc.data[size_t(ravel({b, j, h, d}, vc.shape))];
          out.data[size_t(ravel({b, t, h, d}, qs))] = acc;
        }
      }
  return {kc, vc, out};
}

// --- loss scaling ------------------------------------------------------------------------------------------------

Outs refNonfinite(const Node &n, const Ins &in, const Ctx &) {
  HostTensor y = resultLike(n);
  for (double x : in[0]->data)
    if (!std::isfinite(float(x)))
      y.data[0] = 1;
  return {y};
}
// Megatron-LM's DynamicGradScaler.update, and the count of applied updates; returns the new scale, growth tracker,
// hysteresis tracker and count.
Outs refLossScaleUpdate(const Node &n, const Ins &in, const Ctx &) {
  HostTensor scale = *in[1], growth = *in[2], hysteresis = *in[3], updates = *in[4];
  if (in[0]->data[0] != 0) {
    growth.data[0] = 0;
    hysteresis.data[0] -= 1;
    if (hysteresis.data[0] <= 0)
      scale.data[0] = std::max(scale.data[0] * attrFloat(n, "backoff_factor"), attrFloat(n, "min_scale"));
  } else {
    updates.data[0] += 1;
    growth.data[0] += 1;
    if (growth.data[0] == double(attrInt(n, "growth_interval"))) {
      growth.data[0] = 0;
      hysteresis.data[0] = double(attrInt(n, "hysteresis"));
      scale.data[0] *= attrFloat(n, "growth_factor");
    }
  }
  return {scale, growth, hysteresis, updates};
}

} // namespace

const std::map<std::string, ReferenceFn> &meg::optest::referenceTable() {
  static const std::map<std::string, ReferenceFn> table = {
      {"param", nullptr},
      {"input", nullptr},
      {"output", nullptr},
      {"state", nullptr},
      {"fill", &refFill},
      {"embedding", &refEmbedding},
      {"contract", &refContract},
      {"add", &refAdd},
      {"sub", &refSub},
      {"mul", &refMul},
      {"div", &refDiv},
      {"scale", &refScale},
      {"exp", &refExp},
      {"log", &refLog},
      {"tanh", &refTanh},
      {"gelu", &refGelu},
      {"dropout", &refDropout},
      {"cast", &refCast},
      {"mask_padding", &refMaskPadding},
      {"layernorm", &refLayerNorm},
      {"softmax", &refSoftmax},
      {"attention", &refAttention},
      {"reshape", &refReshape},
      {"transpose", &refTranspose},
      {"slice", &refSlice},
      {"select", &refSelect},
      {"reduce_sum", &refReduceSum},
      {"reduce_max", &refReduceMax},
      {"pick", &refPick},
      {"valid_mask", &refValidMask},
      {"broadcast", &refBroadcast},
      {"gelu_grad", &refGeluGrad},
      {"layernorm_grad", &refLayerNormGrad},
      {"attention_grad", &refAttentionGrad},
      {"embedding_grad", &refEmbeddingGrad},
      {"pick_grad", &refPickGrad},
      {"slice_grad", &refSliceGrad},
      {"select_grad", &refSelectGrad},
      {"all_reduce", &refIdentity},
      {"all_gather", &refIdentity},
      {"reduce_scatter", &refIdentity},
      {"all_reduce_bucket", &refIdentityEach},
      {"reduce_scatter_bucket", &refIdentityEach},
      {"shard", &refIdentity},
      {"lr_schedule", &refLrSchedule},
      {"sum_squares", &refSumSquares},
      {"clip_scale", &refClipScale},
      {"adamw", &refAdamW},
      {"maximum", &refMaximum},
      {"nonfinite", &refNonfinite},
      {"loss_scale_update", &refLossScaleUpdate},
      {"accumulate", &refAccumulate},
      {"send", &refIdentity},
      {"recv", &refIdentity},
      {"decode_attention", &refDecodeAttention},
  };
  return table;
}
