// Two-operand einsum via cblas_sgemm; see Contract.h for the math and the layout choice.
#include "kernels/cpu/Contract.h"

#include "kernels/cpu/Layout.h"
#include "kernels/cpu/Shape.h"

#include <cblas.h>

#include <algorithm>
#include <cassert>
#include <limits>

namespace meg::kernels::cpu {

namespace {

std::string quoted(char c) { return std::string("'") + c + "'"; }

/// Checks one operand's letters: a-z only, no repeats, one letter per dim.
std::string checkLetters(std::string_view letters, const char *what, int rank) {
  for (size_t i = 0; i < letters.size(); ++i) {
    char c = letters[i];
    if (c < 'a' || c > 'z')
      return std::string("invalid character ") + quoted(c) + " in " + what + " (letters a-z only)";
    if (letters.find(c, i + 1) != std::string_view::npos)
      return std::string("letter ") + quoted(c) + " repeated in " + what;
  }
  if (rank >= 0 && static_cast<int>(letters.size()) != rank)
    return std::string(what) + " has " + std::to_string(letters.size()) + " letters but rank " + std::to_string(rank);
  if (letters.size() > static_cast<size_t>(kMaxRank))
    return std::string(what) + " has rank above " + std::to_string(kMaxRank);
  return {};
}

bool has(std::string_view s, char c) { return s.find(c) != std::string_view::npos; }

/// The letters of `from` that satisfy `keep`, in `from`'s order.
template <typename Pred> std::string filtered(std::string_view from, Pred keep) {
  std::string out;
  for (char c : from)
    if (keep(c))
      out += c;
  return out;
}

/// perm[d] = position of to[d] in from (y's dim d is x's dim perm[d]).
std::vector<int> permutation(std::string_view from, std::string_view to) {
  std::vector<int> perm;
  for (char c : to)
    perm.push_back(static_cast<int>(from.find(c)));
  return perm;
}

void addUnique(std::vector<std::string> &list, std::string s) {
  if (std::find(list.begin(), list.end(), s) == list.end())
    list.push_back(std::move(s));
}

} // namespace

ContractPlan ContractPlan::build(std::string_view spec, const int64_t *shapeA, int rankA, const int64_t *shapeB,
                                 int rankB) {
  ContractPlan plan;
  auto fail = [&](std::string message) {
    plan.parseError = std::move(message);
    return plan;
  };
  size_t arrow = spec.find("->");
  if (arrow == std::string_view::npos || spec.find("->", arrow + 2) != std::string_view::npos)
    return fail("contract spec must look like 'A,B->OUT'");
  std::string_view inputs = spec.substr(0, arrow);
  size_t comma = inputs.find(',');
  if (comma == std::string_view::npos || inputs.find(',', comma + 1) != std::string_view::npos)
    return fail("contract spec needs exactly two operands before '->'");
  std::string la(inputs.substr(0, comma)), lb(inputs.substr(comma + 1)), lo(spec.substr(arrow + 2));
  if (std::string e = checkLetters(la, "first operand", rankA); !e.empty())
    return fail(e);
  if (std::string e = checkLetters(lb, "second operand", rankB); !e.empty())
    return fail(e);
  if (std::string e = checkLetters(lo, "output", -1); !e.empty())
    return fail(e);

  int64_t sizeOf[26];
  std::fill(std::begin(sizeOf), std::end(sizeOf), -1);
  for (int d = 0; d < rankA; ++d) {
    if (shapeA[d] < 0)
      return fail("negative dim in first operand");
    sizeOf[la[d] - 'a'] = shapeA[d];
  }
  for (int d = 0; d < rankB; ++d) {
    int64_t &s = sizeOf[lb[d] - 'a'];
    if (shapeB[d] < 0)
      return fail("negative dim in second operand");
    if (s >= 0 && s != shapeB[d])
      return fail("letter " + quoted(lb[d]) + " has size " + std::to_string(s) + " in the first operand but " +
                  std::to_string(shapeB[d]) + " in the second");
    s = shapeB[d];
  }
  for (char c : lo)
    if (!has(la, c) && !has(lb, c))
      return fail("output letter " + quoted(c) + " appears in no operand");
  for (char c : la + lb)
    if (!has(lo, c) && !(has(la, c) && has(lb, c)))
      return fail("letter " + quoted(c) + " is in one operand only and not in the output");

  auto isBatch = [&](char c) { return has(la, c) && has(lb, c) && has(lo, c); };
  auto isM = [&](char c) { return has(la, c) && !has(lb, c); };
  auto isN = [&](char c) { return has(lb, c) && !has(la, c); };
  auto isK = [&](char c) { return has(la, c) && has(lb, c) && !has(lo, c); };
  auto product = [&](std::string_view letters) {
    int64_t p = 1;
    for (char c : letters)
      p *= sizeOf[c - 'a'];
    return p;
  };
  for (char c : lo)
    plan.outShape.push_back(sizeOf[c - 'a']);
  int64_t numelA = product(la), numelB = product(lb), numelOut = product(lo);

  // Candidate orders inside each letter class: the order of some operand that holds the class.
  std::vector<std::string> batchOrders, mOrders, nOrders, kOrders;
  for (const std::string *s : {&lo, &la, &lb})
    addUnique(batchOrders, filtered(*s, isBatch));
  for (const std::string *s : {&la, &lo})
    addUnique(mOrders, filtered(*s, isM));
  for (const std::string *s : {&lb, &lo})
    addUnique(nOrders, filtered(*s, isN));
  for (const std::string *s : {&la, &lb})
    addUnique(kOrders, filtered(*s, isK));

  // Pick the orders that copy the fewest elements (first found on ties: deterministic).
  int64_t bestCost = std::numeric_limits<int64_t>::max();
  std::string bestB, bestM, bestN, bestK;
  for (const std::string &bo : batchOrders)
    for (const std::string &mo : mOrders)
      for (const std::string &no : nOrders)
        for (const std::string &ko : kOrders) {
          int64_t cost = 0;
          if (la != bo + mo + ko && la != bo + ko + mo)
            cost += numelA;
          if (lb != bo + ko + no && lb != bo + no + ko)
            cost += numelB;
          if (lo != bo + mo + no && lo != bo + no + mo)
            cost += numelOut;
          if (cost < bestCost) {
            bestCost = cost;
            bestB = bo, bestM = mo, bestN = no, bestK = ko;
          }
        }

  plan.batch = product(bestB);
  plan.m = product(bestM);
  plan.n = product(bestN);
  plan.k = product(bestK);
  std::string gemmA = bestB + bestM + bestK, gemmB = bestB + bestK + bestN, gemmOut = bestB + bestM + bestN;
  if (la == bestB + bestK + bestM && la != gemmA) {
    plan.transA = true;
  } else if (la != gemmA) {
    plan.permA = permutation(la, gemmA);
    plan.shapeA.assign(shapeA, shapeA + rankA);
    plan.scratchFloats += numelA;
  }
  if (lb == bestB + bestN + bestK && lb != gemmB) {
    plan.transB = true;
  } else if (lb != gemmB) {
    plan.permB = permutation(lb, gemmB);
    plan.shapeB.assign(shapeB, shapeB + rankB);
    plan.scratchFloats += numelB;
  }
  if (lo == bestB + bestN + bestM && lo != gemmOut) {
    plan.swapOutput = true;
  } else if (lo != gemmOut) {
    plan.permOut = permutation(gemmOut, lo);
    for (char c : gemmOut)
      plan.shapeGemmOut.push_back(sizeOf[c - 'a']);
    plan.scratchFloats += numelOut;
  }
  return plan;
}

void contract(const ContractPlan &plan, const float *a, const float *b, float *out, float *scratch, float beta) {
  assert(plan.ok() && "contract with an invalid plan");
  assert((plan.scratchFloats == 0 || scratch) && "contract needs scratch");
  int64_t numelOut = plan.batch * plan.m * plan.n;
  if (numelOut == 0)
    return;
  if (plan.k == 0) {
    if (beta == 0)
      fill(out, numelOut, 0);
    else
      for (int64_t i = 0; i < numelOut; ++i)
        out[i] *= beta;
    return;
  }
  const float *pa = a, *pb = b;
  if (!plan.permA.empty()) {
    transpose(a, plan.shapeA.data(), static_cast<int>(plan.shapeA.size()), plan.permA.data(), scratch);
    pa = scratch;
    scratch += plan.batch * plan.m * plan.k;
  }
  if (!plan.permB.empty()) {
    transpose(b, plan.shapeB.data(), static_cast<int>(plan.shapeB.size()), plan.permB.data(), scratch);
    pb = scratch;
    scratch += plan.batch * plan.k * plan.n;
  }
  float *pc = out;
  float gemmBeta = beta;
  if (!plan.permOut.empty()) {
    pc = scratch;
    gemmBeta = 0;
  }
  // Leading dims are the stored row lengths.
  int64_t lda = plan.transA ? plan.m : plan.k;
  int64_t ldb = plan.transB ? plan.k : plan.n;
  auto blasInt = [](int64_t v) {
    assert(v <= std::numeric_limits<blasint>::max() && "gemm dim too large for the BLAS integer type");
    return static_cast<blasint>(std::max<int64_t>(v, 1));
  };
  for (int64_t i = 0; i < plan.batch; ++i) {
    const float *ai = pa + i * plan.m * plan.k;
    const float *bi = pb + i * plan.k * plan.n;
    float *ci = pc + i * plan.m * plan.n;
    if (!plan.swapOutput) {
      cblas_sgemm(CblasRowMajor, plan.transA ? CblasTrans : CblasNoTrans, plan.transB ? CblasTrans : CblasNoTrans,
                  blasInt(plan.m), blasInt(plan.n), blasInt(plan.k), 1.0f, ai, blasInt(lda), bi, blasInt(ldb), gemmBeta,
                  ci, blasInt(plan.n));
    } else {
      // OUT^T [n, m] = op(B)^T [n, k] * op(A)^T [k, m].
      cblas_sgemm(CblasRowMajor, plan.transB ? CblasNoTrans : CblasTrans, plan.transA ? CblasNoTrans : CblasTrans,
                  blasInt(plan.n), blasInt(plan.m), blasInt(plan.k), 1.0f, bi, blasInt(ldb), ai, blasInt(lda), gemmBeta,
                  ci, blasInt(plan.m));
    }
  }
  if (!plan.permOut.empty())
    transpose(pc, plan.shapeGemmOut.data(), static_cast<int>(plan.shapeGemmOut.size()), plan.permOut.data(), out, beta);
}

} // namespace meg::kernels::cpu
