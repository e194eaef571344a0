//===- Init.cpp - seeded parameter initialization ------------------------------===//
#include "runtime/train/Init.h"

#include "kernels/Philox.h"

#include "llvm/Support/Parallel.h"

#include <algorithm>
#include <cmath>

using namespace meg;
using namespace meg::runtime;

uint64_t meg::runtime::fnv1a64(llvm::StringRef data) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {
/// The Box-Muller pair of counter k: (r cos t, r sin t).
struct NormalPair {
  double z[2];
};
NormalPair normalPair(uint64_t seed, uint64_t nameHash, uint64_t k) {
  kernels::Philox4x32 ctr = {{uint32_t(k), uint32_t(k >> 32), uint32_t(nameHash), uint32_t(nameHash >> 32)}};
  kernels::Philox4x32 r = kernels::philox4x32(ctr, uint32_t(seed), uint32_t(seed >> 32));
  double u1 = (double(r.v[0]) + 1.0) * 0x1p-32; // (0, 1]
  double u2 = double(r.v[1]) * 0x1p-32;         // [0, 1)
  double radius = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * M_PI * u2;
  return {{radius * std::cos(angle), radius * std::sin(angle)}};
}
} // namespace

double meg::runtime::initNormal(uint64_t seed, uint64_t nameHash, uint64_t globalIndex) {
  return normalPair(seed, nameHash, globalIndex >> 1).z[globalIndex & 1];
}

std::vector<float> meg::runtime::initParamShard(const PlanParam &p, uint64_t seed) {
  std::vector<float> out(size_t(p.numel()), 0.0f);
  if (p.init == ParamInit::Zeros || out.empty())
    return out;
  if (p.init == ParamInit::Ones || p.init == ParamInit::Constant) {
    std::fill(out.begin(), out.end(), p.init == ParamInit::Ones ? 1.0f : float(p.value));
    return out;
  }
  // Lines (runs along the last dim) are independent: fill them in parallel, each from its global index.
  size_t rank = p.shape.size();
  std::vector<int64_t> globalStride(rank, 1);
  for (size_t d = rank; d-- > 1;)
    globalStride[d - 1] = globalStride[d] * p.globalShape[d];
  uint64_t hash = fnv1a64(p.name);
  int64_t inner = rank ? p.shape.back() : 1;
  int64_t lines = int64_t(out.size()) / inner;
  auto fillLines = [&](int64_t begin, int64_t end) {
    for (int64_t line = begin; line < end; ++line) {
      // Global index of the line's first element, and whether it is a vocab padding row.
      int64_t base = 0, rest = line, row0 = 0;
      for (size_t d = rank >= 1 ? rank - 1 : 0; d-- > 0;) {
        int64_t i = rest % p.shape[d];
        rest /= p.shape[d];
        base += (i + p.offset[d]) * globalStride[d];
        if (d == 0)
          row0 = i + p.offset[0];
      }
      if (rank)
        base += p.offset[rank - 1];
      float *dst = out.data() + line * inner;
      if (p.vocabRows > 0 && rank >= 2 && row0 >= p.vocabRows)
        continue; // stays zero
      // Consecutive elements share a Box-Muller pair: draw each pair once.
      uint64_t cached = ~0ull;
      NormalPair pair{};
      for (int64_t j = 0; j < inner; ++j) {
        uint64_t g = uint64_t(base + j);
        if ((g >> 1) != cached) {
          cached = g >> 1;
          pair = normalPair(seed, hash, cached);
        }
        dst[j] = float(p.std * pair.z[g & 1]);
      }
    }
  };
  constexpr int64_t kChunkElements = 1 << 18;
  int64_t linesPerChunk = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, inner));
  int64_t chunks = (lines + linesPerChunk - 1) / linesPerChunk;
  if (chunks <= 1)
    fillLines(0, lines);
  else
    llvm::parallelForEachN(0, size_t(chunks), [&](size_t c) {
      fillLines(int64_t(c) * linesPerChunk, std::min(lines, int64_t(c + 1) * linesPerChunk));
    });
  return out;
}
