// Transpose, slice, select and their backward against references and central differences.
#include "kernels/cpu/Layout.h"

#include "TestUtil.h"

#include <algorithm>

namespace meg::kernels::cpu {
namespace {

using test::dot;
using test::expectNear;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

const std::vector<int64_t> kShape = {2, 3, 4, 5};

std::vector<double> referenceTranspose(const std::vector<double> &x, const std::vector<int64_t> &shape,
                                       const std::vector<int> &perm) {
  std::vector<double> y(x.size());
  std::vector<int64_t> ys(shape.size());
  for (size_t d = 0; d < shape.size(); ++d)
    ys[d] = shape[perm[d]];
  for (size_t i = 0; i < x.size(); ++i) {
    std::vector<int64_t> idx(shape.size());
    int64_t rest = i;
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      idx[d] = rest % shape[d];
      rest /= shape[d];
    }
    int64_t off = 0;
    for (size_t d = 0; d < shape.size(); ++d)
      off = off * ys[d] + idx[perm[d]];
    y[off] = x[i];
  }
  return y;
}

TEST(Layout, TransposeEveryPermutation) {
  std::vector<float> x = randomFloats(120, 1);
  std::vector<int> perm = {0, 1, 2, 3};
  do {
    SCOPED_TRACE(testing::Message() << perm[0] << perm[1] << perm[2] << perm[3]);
    std::vector<float> y(120, std::nanf(""));
    transpose(x.data(), kShape.data(), 4, perm.data(), y.data());
    std::vector<double> expected = referenceTranspose(toDouble(x), kShape, perm);
    expectNear(y, expected, 0.0, "transpose");
    // beta = 1 accumulates.
    std::vector<float> acc = randomFloats(120, 2);
    std::vector<double> expectedAcc(120);
    for (int i = 0; i < 120; ++i)
      expectedAcc[i] = expected[i] + acc[i];
    transpose(x.data(), kShape.data(), 4, perm.data(), acc.data(), 1.0f);
    expectNear(acc, expectedAcc, 1e-7, "accumulate");
    // Backward: transpose by the inverse permutation equals the finite-difference gradient.
    int inverse[4];
    invertPermutation(perm.data(), 4, inverse);
    std::vector<int64_t> ys = {kShape[perm[0]], kShape[perm[1]], kShape[perm[2]], kShape[perm[3]]};
    std::vector<float> dy = randomFloats(120, 3), dx(120);
    transpose(dy.data(), ys.data(), 4, inverse, dx.data());
    std::vector<double> w = toDouble(dy);
    expectNear(
        dx,
        numericGradient([&](const std::vector<double> &v) { return dot(w, referenceTranspose(v, kShape, perm)); },
                        toDouble(x)),
        1e-7, "backward");
  } while (std::next_permutation(perm.begin(), perm.end()));
}

TEST(Layout, LargeTransposeUsesParallelRows) {
  std::vector<int64_t> shape = {64, 48, 33};
  std::vector<int> perm = {2, 0, 1};
  std::vector<float> x = randomFloats(64 * 48 * 33, 4), y(x.size());
  transpose(x.data(), shape.data(), 3, perm.data(), y.data());
  expectNear(y, referenceTranspose(toDouble(x), shape, perm), 0.0);
}

std::vector<double> referenceSlice(const std::vector<double> &x, int dim, int64_t start, int64_t length) {
  std::vector<double> y;
  for (size_t i = 0; i < x.size(); ++i) {
    int64_t rest = i, idx[4];
    for (int d = 3; d >= 0; --d) {
      idx[d] = rest % kShape[d];
      rest /= kShape[d];
    }
    if (idx[dim] >= start && idx[dim] < start + length)
      y.push_back(x[i]);
  }
  return y;
}

TEST(Layout, SliceAndSelectWithBackward) {
  std::vector<float> x = randomFloats(120, 5);
  for (int dim = 0; dim < 4; ++dim) {
    for (auto [start, length] : {std::pair<int64_t, int64_t>{0, 1}, {1, kShape[dim] - 1}, {kShape[dim] - 1, 1}}) {
      SCOPED_TRACE(testing::Message() << "dim " << dim << " start " << start << " length " << length);
      std::vector<double> expected = referenceSlice(toDouble(x), dim, start, length);
      std::vector<float> y(expected.size());
      slice(x.data(), kShape.data(), 4, dim, start, length, y.data());
      expectNear(y, expected, 0.0, "slice");
      std::vector<float> dy = randomFloats(y.size(), 6), dx(120, std::nanf(""));
      sliceBackward(dy.data(), kShape.data(), 4, dim, start, length, dx.data());
      std::vector<double> w = toDouble(dy);
      expectNear(
          dx,
          numericGradient([&](const std::vector<double> &v) { return dot(w, referenceSlice(v, dim, start, length)); },
                          toDouble(x)),
          1e-7, "slice backward");
      if (length != 1)
        continue;
      // select is the length-1 slice with the dim dropped: same data layout.
      std::vector<float> s(y.size()), ds(120, std::nanf(""));
      select(x.data(), kShape.data(), 4, dim, start, s.data());
      EXPECT_TRUE(test::bitEqual(s, y));
      selectBackward(dy.data(), kShape.data(), 4, dim, start, ds.data());
      EXPECT_TRUE(test::bitEqual(ds, dx));
    }
  }
}

TEST(Layout, CopyAndFill) {
  std::vector<float> x = randomFloats(100003, 7), y(100003);
  copy(x.data(), 100003, y.data());
  EXPECT_TRUE(test::bitEqual(x, y));
  fill(y.data(), 100003, 2.5f);
  EXPECT_EQ(y, std::vector<float>(100003, 2.5f));
}

} // namespace
} // namespace meg::kernels::cpu
