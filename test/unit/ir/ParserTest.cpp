// The textual IR parser on valid input: types, attribute values, free-form layout, and print -> parse -> print.
#include "ir/OpRules.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"

#include <gtest/gtest.h>

using namespace meg::ir;

namespace {

TensorType mustParseType(llvm::StringRef text) {
  auto t = parseTensorType(text);
  EXPECT_TRUE(bool(t)) << llvm::toString(t.takeError());
  return t ? *t : TensorType();
}

TEST(ParserTypes, RoundTrip) {
  for (llvm::StringRef text : {"f32[]", "i32[2,16]", "bf16[1]", "f16[3,0]", "f32[8,1024@tp,768] partial(tp,sum)",
                               "f32[8@dp,4] partial(dp,sum) partial(tp,max)", "f32[] partial(dp,sum)",
                               "f32[8@dp,16@tp]"})
    EXPECT_EQ(mustParseType(text).str(), text);
}

TEST(ParserTypes, Fields) {
  TensorType t = mustParseType("f32[8,1024@tp,768] partial(tp,sum)");
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(t.shape, (llvm::SmallVector<int64_t, 4>{8, 1024, 768}));
  EXPECT_EQ(t.sharding.dimAxis(0), std::nullopt);
  EXPECT_EQ(t.sharding.dimAxis(1), MeshAxis::TP);
  EXPECT_EQ(t.sharding.partialOver(MeshAxis::TP), ReduceKind::Sum);
  EXPECT_EQ(t.sharding.partialOver(MeshAxis::DP), std::nullopt);
  // Spaces anywhere between tokens; the partial order in the text does not matter.
  TensorType u = mustParseType("f32 [ 8 , 1024@tp , 768 ]  partial( tp , sum )");
  EXPECT_EQ(u, t);
  EXPECT_EQ(mustParseType("f32[2] partial(tp,max) partial(dp,sum)").str(), "f32[2] partial(dp,sum) partial(tp,max)");
  // A split that ends in replicated dims equals the canonical sharding.
  EXPECT_EQ(mustParseType("f32[4@tp,2]"), TensorType(DType::F32, {4, 2}, [] {
              Sharding s;
              s.setDimAxis(0, 2, MeshAxis::TP);
              return s;
            }()));
}

TEST(ParserAttrs, Values) {
  auto value = [](llvm::StringRef text) {
    auto v = parseAttrValue(text);
    EXPECT_TRUE(bool(v)) << text.str() << ": " << llvm::toString(v.takeError());
    return v ? *v : AttrValue();
  };
  EXPECT_EQ(value("true"), AttrValue(true));
  EXPECT_EQ(value("false"), AttrValue(false));
  EXPECT_EQ(value("42"), AttrValue(int64_t(42)));
  EXPECT_EQ(value("-100"), AttrValue(int64_t(-100)));
  EXPECT_EQ(value("+7"), AttrValue(int64_t(7)));
  EXPECT_EQ(value("-9223372036854775808"), AttrValue(std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(value("1.5"), AttrValue(1.5));
  EXPECT_EQ(value("1e-5"), AttrValue(1e-5));
  EXPECT_EQ(value("1.0e-05"), AttrValue(1e-5));
  EXPECT_EQ(value("2E3"), AttrValue(2000.0));
  EXPECT_EQ(value("-inf"), AttrValue(-std::numeric_limits<double>::infinity()));
  EXPECT_EQ(value("inf"), AttrValue(std::numeric_limits<double>::infinity()));
  EXPECT_EQ(value("[]"), AttrValue(std::vector<int64_t>{}));
  EXPECT_EQ(value("[ 1, 2 ,-3 ]"), AttrValue(std::vector<int64_t>{1, 2, -3}));
  EXPECT_EQ(value("\"x\\n\\x41\\101\""), AttrValue(std::string("x\nAA")));
  EXPECT_EQ(value("tanh"), AttrValue(Symbol{"tanh"}));
}

TEST(ParserGraph, FreeFormInputIsRenumbered) {
  const char *text = R"(// leading comment
graph @free-form.v1 mesh(tp=2, dp=1)   // mesh axes in any order
{
  %ids = input() {name = "ids"} : i32[2,4]
  %w.te = param() { std = 0.5 , name = "wte", init = normal } : f32[16,8@tp]
  %e
     =
  embedding( %w.te ,%ids ) // comment between tokens
  : f32[2,4,8]
  %99 = scale(%e) {factor = 3} : f32[2,4,8]
  output(%99) {name = "y"}  {}
})";
  // `{}` after the output's attributes is a second, empty dictionary: not allowed.
  auto bad = parseGraph(text, "f.mir");
  ASSERT_FALSE(bool(bad));
  EXPECT_EQ(llvm::toString(bad.takeError()), "f.mir:11:29: expected a node or '}', found '{'");

  std::string good = text;
  good.replace(good.find("  {}"), 4, "");
  auto g = parseGraph(good, "f.mir");
  ASSERT_TRUE(bool(g)) << llvm::toString(g.takeError());
  EXPECT_EQ(graphToString(**g), "graph @free-form.v1 mesh(dp=1, tp=2) {\n"
                                "  %0 = input() {name = \"ids\"} : i32[2,4]\n"
                                "  %1 = param() {init = normal, name = \"wte\", std = 0.5} : f32[16,8@tp]\n"
                                "  %2 = embedding(%1, %0) : f32[2,4,8]\n"
                                "  %3 = scale(%2) {factor = 3} : f32[2,4,8]\n"
                                "  output(%3) {name = \"y\"}\n"
                                "}\n");
  // Locations point at the op names.
  auto nodes = (*g)->getNodes();
  EXPECT_EQ(nodes[0]->loc.line, 4u);
  EXPECT_EQ(nodes[0]->loc.col, 10u);
  EXPECT_EQ(nodes[2]->loc.line, 8u);
  EXPECT_EQ(nodes[2]->loc.col, 3u);
  EXPECT_EQ(nodes[4]->loc.line, 11u);
  EXPECT_EQ(nodes[4]->loc.col, 3u);
}

TEST(ParserGraph, EmptyAttrDictAndNoMesh) {
  auto g = parseGraph("graph @g { %a = input() {name = \"a\"} : f32[2]\n %b = exp(%a) {} : f32[2] }");
  ASSERT_TRUE(bool(g)) << llvm::toString(g.takeError());
  EXPECT_EQ((*g)->getMesh(), Mesh());
  EXPECT_EQ(graphToString(**g), "graph @g mesh(dp=1, tp=1) {\n"
                                "  %0 = input() {name = \"a\"} : f32[2]\n"
                                "  %1 = exp(%0) : f32[2]\n"
                                "}\n");
}

// The parser keeps declared types; the verifier (run by the parser) accepts sharded declarations whose dtype and
// shape match the shape rule.
TEST(ParserGraph, KeepsDeclaredSharding) {
  auto g = parseGraph(R"(graph @g mesh(dp=1, tp=2) {
  %0 = input() {name = "x"} : f32[4,6@tp]
  %1 = exp(%0) : f32[4,6] partial(tp,sum)
})");
  ASSERT_TRUE(bool(g)) << llvm::toString(g.takeError());
  EXPECT_EQ((*g)->getNodes()[1]->getResult()->getType().str(), "f32[4,6] partial(tp,sum)");
}

AttrDict attrs(std::initializer_list<std::pair<const char *, AttrValue>> kv) {
  AttrDict a;
  for (auto &[k, v] : kv)
    a.set(k, v);
  return a;
}

Value *build(Graph &g, OpKind k, llvm::ArrayRef<Value *> operands, AttrDict a = {}) {
  auto n = g.build(k, operands, std::move(a));
  EXPECT_TRUE(bool(n)) << llvm::toString(n.takeError());
  return n && (*n)->getNumResults() ? (*n)->getResult() : nullptr;
}

// A GPT-2-like block built through the shape rules, then print -> parse -> print.
TEST(ParserGraph, RoundTripOfBuiltGraph) {
  Graph g("gpt2.block");
  g.setMesh(Mesh{{1, 2}});
  auto param = [&](const char *name, llvm::ArrayRef<int64_t> shape, const char *init, Sharding s = {}) {
    AttrDict a = attrs({{"name", std::string(name)}, {"init", Symbol{init}}});
    if (llvm::StringRef(init) == "normal")
      a.set("std", 0.02);
    return g.append(OpKind::Param, {}, a, {TensorType(DType::F32, shape, s)})->getResult();
  };
  Sharding cols;
  cols.setDimAxis(1, 2, MeshAxis::TP);
  Value *ids = g.append(OpKind::Input, {}, attrs({{"name", std::string("input_ids")}}),
                        {TensorType(DType::I32, {2, 16})})->getResult();
  Value *labels = g.append(OpKind::Input, {}, attrs({{"name", std::string("labels\t\"quoted\"")}}),
                           {TensorType(DType::I32, {2, 16})})->getResult();
  Value *wte = param("transformer.wte.weight", {256, 64}, "normal");
  Value *lnG = param("ln.weight", {64}, "ones");
  Value *lnB = param("ln.bias", {64}, "zeros");
  Value *fc = param("mlp.c_fc.weight", {64, 256}, "normal", cols);
  Value *h = build(g, OpKind::Embedding, {wte, ids});
  Value *x = build(g, OpKind::LayerNorm, {h, lnG, lnB}, attrs({{"eps", 1e-5}}));
  Value *y = build(g, OpKind::Contract, {x, fc}, attrs({{"spec", std::string("bsh,hf->bsf")}}));
  y = build(g, OpKind::Gelu, {y}, attrs({{"approx", Symbol{"tanh"}}}));
  y = build(g, OpKind::Dropout, {y}, attrs({{"p", 0.1}, {"stream", int64_t(1)}}));
  y = build(g, OpKind::Scale, {y}, attrs({{"factor", 1.0 / 3}}));
  Value *q = build(g, OpKind::Reshape, {x}, attrs({{"shape", std::vector<int64_t>{2, 16, 4, 16}}}));
  Value *att = build(g, OpKind::Attention, {q, q, q}, attrs({{"causal", true}, {"scale", 0.25}}));
  att = build(g, OpKind::Reshape, {att}, attrs({{"shape", std::vector<int64_t>{2, 16, 64}}}));
  Value *logits = build(g, OpKind::Contract, {att, wte}, attrs({{"spec", std::string("bsh,vh->bsv")}}));
  Value *mx = build(g, OpKind::ReduceMax, {logits}, attrs({{"dims", std::vector<int64_t>{2}}, {"keepdim", true}}));
  Value *sh = build(g, OpKind::Sub, {logits, mx});
  Value *lse = build(g, OpKind::Log, {build(g, OpKind::ReduceSum, {build(g, OpKind::Exp, {sh})},
                                            attrs({{"dims", std::vector<int64_t>{2}}, {"keepdim", false}}))});
  Value *nll = build(g, OpKind::Sub, {lse, build(g, OpKind::Pick, {sh, labels})});
  Value *mask = build(g, OpKind::ValidMask, {labels}, attrs({{"ignore", int64_t(-100)}}));
  Value *loss = build(g, OpKind::ReduceSum, {build(g, OpKind::Mul, {nll, mask})},
                      attrs({{"dims", std::vector<int64_t>{0, 1}}, {"keepdim", false}}));
  build(g, OpKind::Output, {loss}, attrs({{"name", std::string("loss")}}));
  build(g, OpKind::Output, {y}, attrs({{"name", std::string("mlp")}}));
  ASSERT_FALSE(bool(verifyGraph(g)));

  std::string first = graphToString(g);
  auto parsed = parseGraph(first, "roundtrip.mir");
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError()) << "\n" << first;
  EXPECT_EQ(graphToString(**parsed), first);
  EXPECT_EQ((*parsed)->getMesh(), g.getMesh());
  EXPECT_EQ((*parsed)->getName(), "gpt2.block");
  // Same nodes, same attributes, same types.
  auto a = g.getNodes(), b = (*parsed)->getNodes();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]->getKind(), b[i]->getKind());
    EXPECT_TRUE(a[i]->getAttrs() == b[i]->getAttrs()) << i;
    for (unsigned r = 0; r < a[i]->getNumResults(); ++r)
      EXPECT_EQ(a[i]->getResult(r)->getType(), b[i]->getResult(r)->getType());
    EXPECT_EQ(b[i]->loc.line, i + 2);
  }
}

TEST(ParserGraph, ReadsFiles) {
  auto missing = parseGraphFile("/nonexistent/dir/x.mir");
  ASSERT_FALSE(bool(missing));
  EXPECT_EQ(llvm::toString(missing.takeError()), "cannot read '/nonexistent/dir/x.mir': no such file or directory");
}

} // namespace
