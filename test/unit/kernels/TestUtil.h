// Shared helpers for the CPU kernel tests: random inputs, tolerance checks, central finite differences and an
// OpenMP thread-count guard.
//
// Tolerance convention: expectNear(actual, expected, rtol) accepts |a_i - e_i| <= rtol * (|e_i| + max_j |e_j|),
// i.e. relative to the element and to the tensor's scale (so near-zero elements of an O(1) tensor are judged on
// the tensor's scale instead of failing on float rounding).
#ifndef MEG_TEST_UNIT_KERNELS_TESTUTIL_H
#define MEG_TEST_UNIT_KERNELS_TESTUTIL_H

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace meg::kernels::test {

inline std::vector<float> randomFloats(size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(gen);
  return v;
}

inline std::vector<double> toDouble(const std::vector<float> &v) { return std::vector<double>(v.begin(), v.end()); }

inline void expectNear(const std::vector<float> &actual, const std::vector<double> &expected, double rtol,
                       const std::string &what = "") {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  double scale = 0;
  for (double e : expected)
    scale = std::max(scale, std::fabs(e));
  int reported = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    double tol = rtol * (std::fabs(expected[i]) + scale);
    if (!(std::fabs(actual[i] - expected[i]) <= tol) && reported++ < 5)
      ADD_FAILURE() << what << " element " << i << ": got " << actual[i] << ", expected " << expected[i]
                    << " (tolerance " << tol << ")";
  }
}

inline void expectNear(const std::vector<float> &actual, const std::vector<float> &expected, double rtol,
                       const std::string &what = "") {
  expectNear(actual, toDouble(expected), rtol, what);
}

/// Central differences of `loss` at x: (L(x + h e_i) - L(x - h e_i)) / 2h, in double.
inline std::vector<double> numericGradient(const std::function<double(const std::vector<double> &)> &loss,
                                           std::vector<double> x, double h = 1e-5) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double saved = x[i];
    x[i] = saved + h;
    double up = loss(x);
    x[i] = saved - h;
    double down = loss(x);
    x[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

inline double dot(const std::vector<double> &a, const std::vector<double> &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

inline bool bitEqual(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// Sets the OpenMP thread count for its lifetime.
class ThreadCount {
public:
  explicit ThreadCount(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved); }
  ThreadCount(const ThreadCount &) = delete;
  ThreadCount &operator=(const ThreadCount &) = delete;

private:
  int saved;
};

/// Runs fn() under 1, 2 and 3 OpenMP threads and expects bit-identical outputs.
inline void expectThreadInvariant(const std::function<std::vector<float>()> &fn, const std::string &what) {
  std::vector<float> one;
  {
    ThreadCount t(1);
    one = fn();
  }
  for (int n : {2, 3}) {
    ThreadCount t(n);
    EXPECT_TRUE(bitEqual(one, fn())) << what << " differs between 1 and " << n << " threads";
  }
}

} // namespace meg::kernels::test

#endif // MEG_TEST_UNIT_KERNELS_TESTUTIL_H
