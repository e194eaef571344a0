//===- GpuTestUtil.h - helpers for the CUDA tests ---------------*- C++ -*-===//
//
// GpuTest skips (GTEST_SKIP, with the reason) on machines without a usable CUDA device, so CI on CPU hosts shows
// every GPU test as skipped rather than passed. DeviceArray moves test data to and from the device; expectClose
// compares a GPU result with the CPU kernel's (the reference) elementwise.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_TEST_GPU_GPUTESTUTIL_H
#define MEG_TEST_GPU_GPUTESTUTIL_H

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace meg::gputest {

/// Empty when a CUDA device can be used; otherwise why not.
inline const std::string &noDeviceReason() {
  static const std::string reason = [] {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess)
      return std::string("no CUDA device: cudaGetDeviceCount returned ") + cudaGetErrorName(err) + " (" +
             cudaGetErrorString(err) + ")";
    if (count == 0)
      return std::string("no CUDA device: cudaGetDeviceCount returned 0 devices");
    return std::string();
  }();
  return reason;
}

class GpuTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!noDeviceReason().empty())
      GTEST_SKIP() << noDeviceReason();
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  }
  void TearDown() override {
    if (stream)
      cudaStreamDestroy(stream);
  }
  /// Waits for the stream and checks that nothing failed asynchronously.
  void sync() { ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess) << cudaGetErrorString(cudaGetLastError()); }

  cudaStream_t stream = nullptr;
  std::mt19937 rng{1234};
};

template <typename T> class DeviceArray {
public:
  explicit DeviceArray(size_t n) : n(n) {
    EXPECT_EQ(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemset(ptr, 0, std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);
  }
  explicit DeviceArray(const std::vector<T> &host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(ptr); }
  DeviceArray(const DeviceArray &) = delete;
  DeviceArray &operator=(const DeviceArray &) = delete;

  void upload(const std::vector<T> &host) {
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> download() const {
    std::vector<T> host(n);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  T *get() const { return static_cast<T *>(ptr); }

private:
  void *ptr = nullptr;
  size_t n;
};

inline std::vector<float> randomFloats(std::mt19937 &rng, size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

inline std::vector<int32_t> randomInts(std::mt19937 &rng, size_t n, int32_t lo, int32_t hi) {
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t &x : v)
    x = dist(rng);
  return v;
}

/// |gpu_i - cpu_i| <= rtol * (|cpu_i| + mean |cpu|) for every i (the mean term keeps near-zero entries of a tensor
/// to the tensor's scale); NaN and inf must match exactly.
inline void expectClose(const std::vector<float> &gpu, const std::vector<float> &cpu, double rtol,
                        const std::string &what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  double meanAbs = 0;
  for (float c : cpu)
    meanAbs += std::isfinite(c) ? std::fabs(c) : 0.0;
  meanAbs /= std::max<size_t>(cpu.size(), 1);
  size_t bad = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    bool ok = std::isfinite(cpu[i]) ? std::fabs(double(gpu[i]) - cpu[i]) <= rtol * (std::fabs(cpu[i]) + meanAbs)
                                    : (std::isnan(cpu[i]) ? std::isnan(gpu[i]) : gpu[i] == cpu[i]);
    if (!ok && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: gpu " << gpu[i] << " cpu " << cpu[i];
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << cpu.size() << " elements differ";
}

constexpr double kF32Tol = 1e-5;
constexpr double kBf16Tol = 2e-2;
/// f16 keeps 3 more mantissa bits than bf16: one rounding step is 2^-11 relative instead of 2^-8.
constexpr double kF16Tol = 5e-3;

} // namespace meg::gputest

#endif
