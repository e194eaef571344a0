//===- MemoryPlanTest.cpp - the arena placement against a plain best-fit scan ---------------------------------===//
//
// passes::placeBuffers sweeps over time with a segment tree; these tests compare its offsets with the obvious
// quadratic scan (every placed buffer, in address order, per query) on random and transformer-shaped lifetimes,
// in the two orders memory-plan uses and in random orders.
//
//===----------------------------------------------------------------------===//
#include "passes/MemoryPlan.h"

#include "llvm/Support/MathExtras.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <tuple>

using namespace meg;
using passes::ArenaBuffer;

namespace {

/// The reference: for each buffer, walk all placed buffers by (begin, end), skip those not live at an overlapping
/// time, and take the smallest gap (the first on a tie) before one of them, or the top.
std::pair<std::vector<int64_t>, int64_t> referencePlace(const std::vector<ArenaBuffer> &buffers,
                                                        const std::vector<unsigned> &order, int64_t align) {
  struct Placed {
    int64_t begin, end;
    unsigned start, last;
  };
  std::vector<Placed> placed;
  std::vector<int64_t> offset(buffers.size(), -1);
  int64_t arena = 0;
  for (unsigned id : order) {
    const ArenaBuffer &b = buffers[id];
    int64_t best = -1, bestGap = 0, top = 0;
    for (const Placed &p : placed) {
      if (p.start > b.end || b.start > p.last)
        continue;
      int64_t candidate = int64_t(llvm::alignTo(top, align));
      int64_t gap = p.begin - candidate;
      if (gap >= b.size && (best < 0 || gap < bestGap)) {
        best = candidate;
        bestGap = gap;
      }
      top = std::max(top, p.end);
    }
    if (best < 0)
      best = int64_t(llvm::alignTo(top, align));
    offset[id] = best;
    arena = std::max(arena, best + b.size);
    Placed entry{best, best + b.size, b.start, b.end};
    auto at = std::upper_bound(placed.begin(), placed.end(), entry, [](const Placed &x, const Placed &y) {
      return std::tie(x.begin, x.end) < std::tie(y.begin, y.end);
    });
    placed.insert(at, entry);
  }
  return {offset, arena};
}

ArenaBuffer buffer(int64_t size, unsigned start, unsigned end) {
  ArenaBuffer b;
  b.size = size;
  b.start = start;
  b.end = end;
  return b;
}

/// Buffers in order of start (as computeLiveness makes them).
void sortByStart(std::vector<ArenaBuffer> &buffers) {
  std::stable_sort(buffers.begin(), buffers.end(),
                   [](const ArenaBuffer &a, const ArenaBuffer &b) { return a.start < b.start; });
}

std::vector<ArenaBuffer> randomBuffers(std::mt19937 &rng, unsigned n, unsigned horizon) {
  std::vector<int64_t> sizes = {4, 100, 256, 300, 512, 1024, 4096, 8192};
  std::vector<ArenaBuffer> buffers;
  for (unsigned i = 0; i < n; ++i) {
    unsigned start = rng() % horizon;
    unsigned length = rng() % 4 == 0 ? rng() % horizon : rng() % 8;
    buffers.push_back(buffer(sizes[rng() % sizes.size()], start, std::min(horizon, start + length)));
  }
  sortByStart(buffers);
  return buffers;
}

/// Forward activations live to their layer's backward, gradients to the end, temporaries one or two nodes.
std::vector<ArenaBuffer> transformerBuffers(unsigned layers) {
  std::vector<ArenaBuffer> buffers;
  unsigned perLayer = 10, end = 2 * layers * perLayer + 5;
  for (unsigned l = 0; l < layers; ++l)
    for (unsigned k = 0; k < perLayer; ++k) {
      unsigned fwd = l * perLayer + k, bwd = end - 5 - l * perLayer - k;
      buffers.push_back(buffer(k % 3 == 0 ? 32768 : 8192, fwd, bwd));
      buffers.push_back(buffer(24576, fwd, fwd + 1));
      buffers.push_back(buffer(8192, bwd, end));        // a gradient
      buffers.push_back(buffer(4096 + 4 * k, bwd, bwd + 2)); // a backward temporary
    }
  sortByStart(buffers);
  return buffers;
}

/// The two orders memory-plan tries, and `extra` random ones.
std::vector<std::vector<unsigned>> orders(const std::vector<ArenaBuffer> &buffers, std::mt19937 &rng,
                                          unsigned extra) {
  std::vector<unsigned> byDef(buffers.size());
  std::iota(byDef.begin(), byDef.end(), 0u);
  std::vector<unsigned> bySize = byDef;
  std::stable_sort(bySize.begin(), bySize.end(), [&](unsigned a, unsigned b) {
    if (buffers[a].size != buffers[b].size)
      return buffers[a].size > buffers[b].size;
    return buffers[a].start < buffers[b].start;
  });
  std::vector<std::vector<unsigned>> result = {byDef, bySize};
  for (unsigned i = 0; i < extra; ++i) {
    std::vector<unsigned> shuffled = byDef;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    result.push_back(shuffled);
  }
  return result;
}

void expectSamePlacement(const std::vector<ArenaBuffer> &buffers, const std::vector<unsigned> &order,
                         int64_t align) {
  auto [offsets, arena] = passes::placeBuffers(buffers, order, align);
  auto [expected, expectedArena] = referencePlace(buffers, order, align);
  ASSERT_EQ(offsets, expected);
  EXPECT_EQ(arena, expectedArena);
  // And it is a valid plan: no two buffers live at an overlapping time share a byte.
  for (size_t a = 0; a < buffers.size(); ++a)
    for (size_t b = a + 1; b < buffers.size(); ++b) {
      bool together = buffers[a].start <= buffers[b].end && buffers[b].start <= buffers[a].end;
      bool overlap = offsets[a] < offsets[b] + buffers[b].size && offsets[b] < offsets[a] + buffers[a].size;
      ASSERT_FALSE(together && overlap) << "buffers " << a << " and " << b;
    }
}

TEST(MemoryPlacement, RandomLifetimesMatchTheScan) {
  std::mt19937 rng(7);
  for (unsigned trial = 0; trial < 60; ++trial) {
    auto buffers = randomBuffers(rng, 20 + trial * 5, 10 + trial * 3);
    for (const auto &order : orders(buffers, rng, 2))
      for (int64_t align : {1, 64, 256})
        expectSamePlacement(buffers, order, align);
  }
}

TEST(MemoryPlacement, TransformerLifetimesMatchTheScan) {
  std::mt19937 rng(11);
  for (unsigned layers : {1u, 2u, 7u, 24u})
    for (const auto &order : orders(transformerBuffers(layers), rng, 1))
      expectSamePlacement(transformerBuffers(layers), order, 256);
}

TEST(MemoryPlacement, EmptyAndSingle) {
  EXPECT_EQ(passes::placeBuffers({}, {}, 256).second, 0);
  auto [offsets, arena] = passes::placeBuffers({buffer(10, 0, 0)}, {0u}, 256);
  EXPECT_EQ(offsets, std::vector<int64_t>{0});
  EXPECT_EQ(arena, 10);
}

} // namespace
