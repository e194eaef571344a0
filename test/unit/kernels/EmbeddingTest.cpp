// Embedding lookup on full and vocabulary-split tables; backward against a reference and central differences;
// thread-count invariance of the scatter-add.
#include "kernels/cpu/Embedding.h"

#include "TestUtil.h"

namespace meg::kernels::cpu {
namespace {

using test::dot;
using test::expectNear;
using test::expectThreadInvariant;
using test::numericGradient;
using test::randomFloats;
using test::toDouble;

std::vector<double> referenceLookup(const std::vector<double> &table, int64_t rows, int64_t dim,
                                    const std::vector<int32_t> &ids, int64_t rowOffset) {
  std::vector<double> out(ids.size() * dim, 0.0);
  for (size_t t = 0; t < ids.size(); ++t) {
    int64_t r = ids[t] - rowOffset;
    if (r >= 0 && r < rows)
      for (int64_t c = 0; c < dim; ++c)
        out[t * dim + c] = table[r * dim + c];
  }
  return out;
}

std::vector<int32_t> randomIds(size_t n, int32_t vocab, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> ids(n);
  for (int32_t &id : ids)
    id = dist(gen);
  return ids;
}

TEST(Embedding, ForwardOnSplitTablesSumsToFullLookup) {
  const int64_t vocab = 20, dim = 6, tokens = 30;
  std::vector<float> table = randomFloats(vocab * dim, 1);
  std::vector<int32_t> ids = randomIds(tokens, vocab, 2);
  std::vector<float> full(tokens * dim);
  embeddingForward(table.data(), vocab, dim, ids.data(), tokens, 0, full.data());
  expectNear(full, referenceLookup(toDouble(table), vocab, dim, ids, 0), 0.0, "full");

  // Two ranks with rows [0, 12) and [12, 20): each looks up its own rows, zeros elsewhere.
  std::vector<float> sum(tokens * dim, 0.0f);
  for (auto [offset, rows] : {std::pair<int64_t, int64_t>{0, 12}, {12, 8}}) {
    std::vector<float> shard(table.begin() + offset * dim, table.begin() + (offset + rows) * dim);
    std::vector<float> out(tokens * dim, std::nanf(""));
    embeddingForward(shard.data(), rows, dim, ids.data(), tokens, offset, out.data());
    expectNear(out, referenceLookup(toDouble(shard), rows, dim, ids, offset), 0.0, "shard");
    for (size_t i = 0; i < out.size(); ++i)
      sum[i] += out[i];
  }
  EXPECT_TRUE(test::bitEqual(sum, full));
}

TEST(Embedding, BackwardOverwritesAndMatchesFiniteDifferences) {
  const int64_t vocab = 9, dim = 5, tokens = 14, offset = 3, rows = 4;
  std::vector<int32_t> ids = randomIds(tokens, vocab, 3);
  ids[0] = ids[1] = 4; // repeated ids must add up
  std::vector<float> table = randomFloats(rows * dim, 4), dy = randomFloats(tokens * dim, 5);
  std::vector<float> dTable = randomFloats(rows * dim, 6); // stale values: the kernel overwrites them
  embeddingBackward(dy.data(), ids.data(), tokens, offset, rows, dim, dTable.data());
  std::vector<double> w = toDouble(dy);
  std::vector<double> expected =
      numericGradient([&](const std::vector<double> &t) { return dot(w, referenceLookup(t, rows, dim, ids, offset)); },
                      toDouble(table));
  expectNear(dTable, expected, 1e-6);
}

TEST(Embedding, BackwardIsThreadCountInvariant) {
  const int64_t vocab = 50, dim = 300, tokens = 4000;
  std::vector<int32_t> ids = randomIds(tokens, vocab, 7); // ~80 repeats per row
  std::vector<float> dy = randomFloats(tokens * dim, 8);
  expectThreadInvariant(
      [&] {
        std::vector<float> dTable(vocab * dim, 0.0f);
        embeddingBackward(dy.data(), ids.data(), tokens, 0, vocab, dim, dTable.data());
        return dTable;
      },
      "embedding backward");
}

} // namespace
} // namespace meg::kernels::cpu
