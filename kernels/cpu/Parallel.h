// Parallel loops for the CPU kernels (OpenMP).
//
// Work is cut into chunks whose boundaries depend only on the problem size, never on the number of threads, and
// every output element is produced by exactly one chunk in a fixed order. Our kernels' results are therefore
// bit-identical whatever OMP_NUM_THREADS is. Reductions that cross chunks must combine per-chunk partials in chunk
// order. The exception is the GEMM (Contract.cpp): OpenBLAS threads each call itself and rounds differently with 1 and
// 2 threads (deterministic for a given count). Cutting GEMMs into our own tiles of single-threaded BLAS calls would
// fix that, but Debian's OpenMP build of OpenBLAS is not safe to call from inside parallel regions of several rank
// threads at once (results changed from run to run when we tried), so runs compared byte for byte pin the count.
#ifndef MEG_KERNELS_CPU_PARALLEL_H
#define MEG_KERNELS_CPU_PARALLEL_H

#include <algorithm>
#include <cstdint>

namespace meg::kernels::cpu {

/// Rough number of scalar operations one chunk should carry to amortize the fork/join cost.
constexpr int64_t kChunkWork = 1 << 15;

/// Items per chunk when each item costs about `workPerItem` scalar operations.
inline int64_t grainFor(int64_t workPerItem) {
  return std::max<int64_t>(1, kChunkWork / std::max<int64_t>(1, workPerItem));
}

/// Calls fn(begin, end) for consecutive chunks [begin, end) of [0, count), each `grain` items long (the last may be
/// shorter). Chunks run in parallel; a single chunk runs inline.
template <typename Fn> void parallelFor(int64_t count, int64_t grain, Fn &&fn) {
  if (count <= 0)
    return;
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = (count + grain - 1) / grain;
  if (chunks == 1) {
    fn(int64_t(0), count);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c)
    fn(c * grain, std::min(count, (c + 1) * grain));
}

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_PARALLEL_H
