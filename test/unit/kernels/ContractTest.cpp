// Contract (einsum via sgemm) against a naive double-precision einsum.
#include "kernels/cpu/Contract.h"

#include "TestUtil.h"

#include <map>

namespace meg::kernels::cpu {
namespace {

using test::expectNear;
using test::randomFloats;

/// Naive einsum: loops over every assignment of every letter.
std::vector<double> referenceEinsum(const std::string &spec, const std::vector<int64_t> &shapeA,
                                    const std::vector<float> &a, const std::vector<int64_t> &shapeB,
                                    const std::vector<float> &b) {
  size_t comma = spec.find(','), arrow = spec.find("->");
  std::string la = spec.substr(0, comma), lb = spec.substr(comma + 1, arrow - comma - 1), lo = spec.substr(arrow + 2);
  std::map<char, int64_t> size;
  for (size_t d = 0; d < la.size(); ++d)
    size[la[d]] = shapeA[d];
  for (size_t d = 0; d < lb.size(); ++d)
    size[lb[d]] = shapeB[d];
  std::string letters;
  for (auto &[c, s] : size)
    letters += c;
  auto offset = [&](const std::string &l, const std::map<char, int64_t> &idx) {
    int64_t off = 0;
    for (char c : l)
      off = off * size[c] + idx.at(c);
    return off;
  };
  int64_t outNumel = 1;
  for (char c : lo)
    outNumel *= size[c];
  std::vector<double> out(outNumel, 0.0);
  std::map<char, int64_t> idx;
  for (char c : letters)
    idx[c] = 0;
  for (auto &[c, s] : size)
    if (s == 0)
      return out;
  while (true) {
    out[offset(lo, idx)] += static_cast<double>(a[offset(la, idx)]) * b[offset(lb, idx)];
    int d = static_cast<int>(letters.size()) - 1;
    for (; d >= 0; --d) {
      if (++idx[letters[d]] < size[letters[d]])
        break;
      idx[letters[d]] = 0;
    }
    if (d < 0)
      return out;
  }
}

struct Case {
  std::string spec;
  std::vector<int64_t> shapeA, shapeB;
};

/// Runs the plan for `c` with beta = 0 and beta = 1 and compares with the reference; returns the plan.
ContractPlan checkCase(const Case &c) {
  SCOPED_TRACE(c.spec);
  ContractPlan plan = ContractPlan::build(c.spec, c.shapeA.data(), static_cast<int>(c.shapeA.size()), c.shapeB.data(),
                                          static_cast<int>(c.shapeB.size()));
  EXPECT_TRUE(plan.ok()) << plan.parseError;
  if (!plan.ok())
    return plan;
  int64_t na = 1, nb = 1, no = 1;
  for (int64_t s : c.shapeA)
    na *= s;
  for (int64_t s : c.shapeB)
    nb *= s;
  for (int64_t s : plan.outShape)
    no *= s;
  std::vector<float> a = randomFloats(na, 1), b = randomFloats(nb, 2);
  std::vector<double> expected = referenceEinsum(c.spec, c.shapeA, a, c.shapeB, b);
  EXPECT_EQ(static_cast<int64_t>(expected.size()), no);
  std::vector<float> scratch(plan.scratchFloats);
  // NaN in out must not leak through with beta = 0.
  std::vector<float> out(no, std::nanf(""));
  contract(plan, a.data(), b.data(), out.data(), scratch.data(), 0.0f);
  expectNear(out, expected, 1e-5, "beta=0");
  // beta = 1 accumulates.
  std::vector<float> init = randomFloats(no, 3);
  std::vector<double> expectedAcc(no);
  for (int64_t i = 0; i < no; ++i)
    expectedAcc[i] = expected[i] + init[i];
  contract(plan, a.data(), b.data(), init.data(), scratch.data(), 1.0f);
  expectNear(init, expectedAcc, 1e-5, "beta=1");
  return plan;
}

TEST(Contract, MegatronSpecs) {
  const Case cases[] = {
      {"bsi,io->bso", {2, 3, 5}, {5, 4}},
      {"bsi,itnd->bstnd", {2, 3, 6}, {6, 3, 2, 4}},
      {"bsnd,ndo->bso", {2, 3, 2, 4}, {2, 4, 5}},
      {"bsh,vh->bsv", {2, 3, 8}, {7, 8}},
      {"bhqd,bhkd->bhqk", {2, 3, 5, 4}, {2, 3, 6, 4}},
      {"bhqk,bhkd->bhqd", {2, 3, 5, 6}, {2, 3, 6, 4}},
  };
  for (const Case &c : cases) {
    ContractPlan plan = checkCase(c);
    // Every one of these is laid out for a GEMM already: no copies.
    EXPECT_EQ(plan.scratchFloats, 0) << c.spec;
  }
}

TEST(Contract, UsesTransposeFlagsInsteadOfCopies) {
  int64_t a[] = {2, 3, 8}, b[] = {7, 8};
  ContractPlan plan = ContractPlan::build("bsh,vh->bsv", a, 3, b, 2);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan.transB);
  EXPECT_FALSE(plan.transA);
  EXPECT_EQ(plan.m, 6);
  EXPECT_EQ(plan.n, 7);
  EXPECT_EQ(plan.k, 8);
  EXPECT_EQ(plan.outShape, (std::vector<int64_t>{2, 3, 7}));

  int64_t q[] = {2, 3, 5, 4}, k[] = {2, 3, 6, 4};
  ContractPlan scores = ContractPlan::build("bhqd,bhkd->bhqk", q, 4, k, 4);
  ASSERT_TRUE(scores.ok());
  EXPECT_EQ(scores.batch, 6);
  EXPECT_TRUE(scores.transB);
}

TEST(Contract, LayoutsNeedingTransposesOrCopies) {
  const Case cases[] = {
      {"ki,kj->ij", {5, 3}, {5, 4}},                   // A^T B
      {"mk,kn->nm", {3, 5}, {5, 4}},                   // output as (A B)^T
      {"bsi,io->obs", {2, 3, 5}, {5, 4}},              // output permuted
      {"bqhd,bkhd->bhqk", {2, 5, 3, 4}, {2, 6, 3, 4}}, // BSHD attention scores: operands permuted
      {"sbh,hv->bsv", {3, 2, 4}, {4, 5}},              // M letters out of order
      {"i,j->ij", {3}, {4}},                           // outer product (no K)
      {"ij,ij->", {3, 4}, {3, 4}},                     // full contraction to a scalar
      {"bij,bjk->bik", {3, 0, 2}, {3, 2, 4}},          // empty M
      {"ik,kj->ij", {3, 0}, {0, 4}},                   // empty K: out = beta * out
  };
  for (const Case &c : cases)
    checkCase(c);
}

TEST(Contract, BadSpecsReportErrors) {
  int64_t a[] = {2, 3, 5}, b[] = {5, 4};
  struct Bad {
    const char *spec;
    const char *message;
  };
  const Bad bads[] = {
      {"bsi,io", "must look like"},
      {"bsi->bs", "exactly two operands"},
      {"bsi,io,o->bso", "exactly two operands"},
      {"bsI,io->bsI", "invalid character 'I'"},
      {"bsb,io->bso", "letter 'b' repeated in first operand"},
      {"bsi,io->bsoo", "letter 'o' repeated in output"},
      {"bs,io->bso", "first operand has 2 letters but rank 3"},
      {"bsi,io->bsx", "output letter 'x' appears in no operand"},
      {"bsi,io->bo", "letter 's' is in one operand only"},
      {"bsi,io->bso->x", "must look like"},
  };
  for (const Bad &bad : bads) {
    ContractPlan plan = ContractPlan::build(bad.spec, a, 3, b, 2);
    EXPECT_FALSE(plan.ok()) << bad.spec;
    EXPECT_NE(plan.parseError.find(bad.message), std::string::npos) << bad.spec << ": " << plan.parseError;
  }
  int64_t wrongB[] = {6, 4};
  ContractPlan mismatch = ContractPlan::build("bsi,io->bso", a, 3, wrongB, 2);
  EXPECT_EQ(mismatch.parseError, "letter 'i' has size 5 in the first operand but 6 in the second");
}

TEST(Contract, LargerShapesMatchReference) {
  // Big enough for OpenBLAS to use its blocked, threaded paths.
  checkCase({"bsh,hv->bsv", {2, 37, 65}, {65, 129}});
  checkCase({"bhqd,bhkd->bhqk", {2, 4, 33, 16}, {2, 4, 33, 16}});
}

} // namespace
} // namespace meg::kernels::cpu
