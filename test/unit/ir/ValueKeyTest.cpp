// Value keys (ir/ValueKey.h): the same quantity gets the same key whatever the mesh; collectives, casts and
// mask_padding are transparent to their consumers; different computations get different keys.
#include "ir/Parser.h"
#include "ir/ValueKey.h"

#include <gtest/gtest.h>

using namespace meg::ir;

namespace {

std::unique_ptr<Graph> parse(llvm::StringRef text) {
  auto g = parseGraph(text);
  EXPECT_TRUE(bool(g)) << (g ? "" : llvm::toString(g.takeError()));
  return g ? std::move(*g) : nullptr;
}

/// The key of the first node of kind `op` (its result `r`), in program order.
std::string keyOf(const Graph &g, const ValueKeys &keys, OpKind op, unsigned nth = 0, unsigned r = 0) {
  for (const auto &n : g)
    if (n->getKind() == op && nth-- == 0)
      return keys.lookup(n->getResult(r)).str();
  ADD_FAILURE() << "no such node";
  return "";
}

// One mesh: contract, then add. tp 2: the contract is partial, an all_reduce sums it, the add reads the all_reduce.
const char *tp1 = R"(graph @g mesh(dp=1, tp=1) {
  %x = input() {name = "x"} : f32[2,8]
  %w = param() {init = normal, name = "w", std = 0.02} : f32[8,4]
  %b = param() {init = zeros, name = "b"} : f32[4]
  %y = contract(%x, %w) {arena = [0], spec = "bi,io->bo"} : f32[2,4]
  %z = add(%y, %b) {arena = [64]} : f32[2,4]
  %e = exp(%z) {} : f32[2,4]
  output(%e) {name = "e"}
})";
const char *tp2 = R"(graph @g mesh(dp=1, tp=2) {
  %x = input() {name = "x"} : f32[2,8@tp]
  %w = param() {init = normal, name = "w", std = 0.02} : f32[8@tp,4]
  %b = param() {init = zeros, name = "b"} : f32[4]
  %y = contract(%x, %w) {arena = [128], spec = "bi,io->bo"} : f32[2,4] partial(tp,sum)
  %r = all_reduce(%y) {arena = [128], axis = tp, reduce = sum} : f32[2,4]
  %c = cast(%r) {dtype = bf16} : bf16[2,4]
  %d = cast(%c) {dtype = f32} : f32[2,4]
  %z = add(%d, %b) {arena = [8]} : f32[2,4]
  %e = exp(%z) {} : f32[2,4]
  output(%e) {name = "e"}
})";

TEST(ValueKey, SameQuantitySameKeyAcrossMeshes) {
  auto a = parse(tp1), b = parse(tp2);
  ASSERT_TRUE(a && b);
  ValueKeys ka(*a), kb(*b);
  for (OpKind op : {OpKind::Contract, OpKind::Add, OpKind::Exp})
    EXPECT_EQ(keyOf(*a, ka, op), keyOf(*b, kb, op)) << opName(op).str();
  EXPECT_EQ(llvm::StringRef(keyOf(*a, ka, OpKind::Add)).substr(0, 4), "add:");
  EXPECT_EQ(keyOf(*a, ka, OpKind::Add).size(), 4u + 12u);
  // The collective and the casts have keys of their own, found in no tp 1 graph.
  std::string reduce = keyOf(*b, kb, OpKind::AllReduce), cast = keyOf(*b, kb, OpKind::Cast);
  EXPECT_EQ(llvm::StringRef(reduce).substr(0, 11), "all_reduce:");
  EXPECT_NE(reduce, keyOf(*b, kb, OpKind::Contract));
  EXPECT_NE(cast, keyOf(*b, kb, OpKind::Cast, 1));
}

TEST(ValueKey, DifferentComputationsDifferentKeys) {
  auto g = parse(R"(graph @g {
  %x = input() {name = "x"} : f32[2,3,4]
  %a = select(%x) {dim = 1, index = 0} : f32[2,4]
  %b = select(%x) {dim = 1, index = 1} : f32[2,4]
  %c = select(%x) {dim = 1, index = 0} : f32[2,4]
  %d = scale(%a) {factor = 2.0} : f32[2,4]
  %e = scale(%a) {factor = 3.0} : f32[2,4]
  %f = scale(%c) {factor = 2.0} : f32[2,4]
  %g = select(%x) {dim = 1, index = 1, recompute = 0} : f32[2,4]
  %h = exp(%g) {} : f32[2,4]
  %i = exp(%b) {} : f32[2,4]
  output(%f) {name = "f"}
})");
  ASSERT_TRUE(g);
  ValueKeys k(*g);
  std::string a = keyOf(*g, k, OpKind::Select, 0), b = keyOf(*g, k, OpKind::Select, 1),
              c = keyOf(*g, k, OpKind::Select, 2);
  EXPECT_NE(a, b);
  // The same computation twice (a recomputed clone): the second gets #2.
  EXPECT_EQ(c, a + "#2");
  EXPECT_NE(keyOf(*g, k, OpKind::Scale, 0), keyOf(*g, k, OpKind::Scale, 1));
  EXPECT_NE(keyOf(*g, k, OpKind::Scale, 0), keyOf(*g, k, OpKind::Scale, 2));
  // A recompute clone (`recompute` is not hashed) is a duplicate, and what reads it is keyed as what reads the
  // original: %h and %i compute the same.
  EXPECT_EQ(keyOf(*g, k, OpKind::Select, 3), b + "#2");
  EXPECT_EQ(keyOf(*g, k, OpKind::Exp, 0) + "#2", keyOf(*g, k, OpKind::Exp, 1));
}

TEST(ValueKey, ExternalValuesByName) {
  auto g = parse(tp1);
  ASSERT_TRUE(g);
  ValueKeys k(*g);
  EXPECT_EQ(keyOf(*g, k, OpKind::Param), "param:w");
  EXPECT_EQ(keyOf(*g, k, OpKind::Input), "input:x");
}

} // namespace
