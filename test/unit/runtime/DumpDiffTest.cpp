// Activation dumps (runtime/io/ActivationDump.h) round-trip, and megdiff's comparison (runtime/io/DumpDiff.h): the
// tolerance rule, NaN and infinities, matching by key in the first dump's order, vocabulary padding.
#include "runtime/io/ActivationDump.h"
#include "runtime/io/DumpDiff.h"

#include "TestUtil.h"

#include <cmath>
#include <limits>

using namespace meg::runtime;
using meg::runtime::test::TempDir;

namespace {

DumpedValue value(const std::string &key, std::vector<int64_t> shape, int64_t step = 0) {
  DumpedValue v;
  v.step = step;
  v.key = key;
  v.ir = "%" + std::to_string(step);
  v.op = key.substr(0, key.find(':'));
  v.phase = "forward";
  v.dtype = "f32";
  v.shape = std::move(shape);
  return v;
}

ActivationDump writeAndLoad(const std::string &dir, const DumpHeader &h, const std::vector<DumpedValue> &index,
                            const std::vector<std::vector<float>> &values) {
  EXPECT_FALSE(bool(writeActivationDump(dir, h, index, values)));
  auto dump = ActivationDump::load(dir);
  if (!dump) {
    ADD_FAILURE() << llvm::toString(dump.takeError());
    std::abort();
  }
  return std::move(*dump);
}

TEST(ActivationDump, RoundTrip) {
  TempDir d;
  DumpHeader h{"dp=1 tp=2", 3, "cpu", 5, 8};
  auto dump = writeAndLoad(d.path("a"), h, {value("gelu:1", {2, 2}, 7), value("exp:2", {}, 9)},
                           {{1, 2, 3, 4}, {5}});
  EXPECT_EQ(dump.header().mesh, "dp=1 tp=2");
  EXPECT_EQ(dump.header().step, 3);
  EXPECT_EQ(dump.header().vocabPadded, 8);
  ASSERT_EQ(dump.values().size(), 2u);
  EXPECT_EQ(dump.values()[0].ir, "%7");
  EXPECT_EQ(dump.values()[1].op, "exp");
  EXPECT_EQ(std::vector<float>(dump.data(0).begin(), dump.data(0).end()), (std::vector<float>{1, 2, 3, 4}));
  // Two values of one key cannot be written.
  EXPECT_TRUE(bool(llvm::errorToBool(
      writeActivationDump(d.path("b"), h, {value("a:1", {1}), value("a:1", {1})}, {{1}, {2}}))));
}

TEST(DumpDiff, FirstDifferenceInTheFirstDumpsOrder) {
  TempDir d;
  DumpHeader h{"dp=1 tp=1", 1, "cpu", 0, 0};
  float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  auto a = writeAndLoad(d.path("a"), h,
                        {value("only:a", {1}), value("x:1", {3}), value("y:2", {2}), value("z:3", {2})},
                        {{0}, {1, nan, inf}, {100, 0}, {1, 1}});
  // B lists them in another order, has one of its own, and y differs by more than atol + rtol * |a| (100 * 1e-5 +
  // 1e-5 = 0.00101) at index 1 only; z differs too, but later in A's order.
  auto b = writeAndLoad(d.path("b"), h,
                        {value("z:3", {2}), value("only:b", {1}), value("y:2", {2}), value("x:1", {3})},
                        {{1, 2}, {0}, {100.001f, 0.0f}, {1, nan, inf}});
  auto diff = diffDumps(a, b, DiffTolerance{});
  ASSERT_TRUE(bool(diff)) << llvm::toString(diff.takeError());
  EXPECT_EQ(diff->matched, 3u);
  EXPECT_EQ(diff->onlyA, 1u);
  EXPECT_EQ(diff->onlyB, 1u);
  ASSERT_TRUE(diff->first.has_value());
  const ValueDiff &first = diff->values[*diff->first];
  EXPECT_EQ(a.values()[first.posA].key, "z:3"); // y's 0.001 at 100 is within tolerance
  EXPECT_EQ(first.differing, 1);
  EXPECT_EQ(first.whereAbs, (std::vector<int64_t>{1}));
  EXPECT_DOUBLE_EQ(first.maxAbs, 1.0);
  EXPECT_EQ(diff->values[0].differing, 0); // NaN = NaN, inf = inf

  // Tighter: y is first now.
  auto tight = diffDumps(a, b, DiffTolerance{0, 1e-4});
  ASSERT_TRUE(bool(tight));
  EXPECT_EQ(a.values()[tight->values[*tight->first].posA].key, "y:2");
}

TEST(DumpDiff, NanAgainstANumberDiffers) {
  TempDir d;
  DumpHeader h{"dp=1 tp=1", 1, "cpu", 0, 0};
  auto a = writeAndLoad(d.path("a"), h, {value("x:1", {2})}, {{1, 2}});
  auto b = writeAndLoad(d.path("b"), h, {value("x:1", {2})}, {{1, std::nanf("")}});
  auto diff = diffDumps(a, b, DiffTolerance{1, 1});
  ASSERT_TRUE(bool(diff));
  ASSERT_TRUE(diff->first.has_value());
  EXPECT_TRUE(std::isinf(diff->values[0].maxAbs));
}

TEST(DumpDiff, VocabularyPaddingAndShapeMismatch) {
  TempDir d;
  // A: vocabulary 3, not padded; B: padded to 4 (the padding column holds anything).
  auto a = writeAndLoad(d.path("a"), {"dp=1 tp=1", 1, "cpu", 0, 0}, {value("logits:1", {2, 3})},
                        {{1, 2, 3, 4, 5, 6}});
  auto b = writeAndLoad(d.path("b"), {"dp=1 tp=4", 1, "cpu", 3, 4}, {value("logits:1", {2, 4})},
                        {{1, 2, 3, -1e9f, 4, 5, 6, 7}});
  auto diff = diffDumps(a, b, DiffTolerance{});
  ASSERT_TRUE(bool(diff)) << llvm::toString(diff.takeError());
  EXPECT_FALSE(diff->first.has_value());
  EXPECT_EQ(diff->values[0].compared, 6);
  // Without B's padding, the shapes are simply different.
  auto c = writeAndLoad(d.path("c"), {"dp=1 tp=4", 1, "cpu", 0, 0}, {value("logits:1", {2, 4})},
                        {{1, 2, 3, 0, 4, 5, 6, 0}});
  auto bad = diffDumps(a, c, DiffTolerance{});
  ASSERT_FALSE(bool(bad));
  EXPECT_NE(llvm::toString(bad.takeError()).find("is [2,3] in"), std::string::npos);
}

} // namespace
