// The textual IR printer: types, attribute values and whole graphs, in the exact format of docs/ir.md.
#include "ir/Parser.h"
#include "ir/Printer.h"

#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

using namespace meg::ir;

namespace {

std::string attrStr(const AttrValue &v) {
  std::string s;
  llvm::raw_string_ostream os(s);
  printAttrValue(os, v);
  return os.str();
}

Sharding split(std::initializer_list<std::optional<MeshAxis>> dims) {
  Sharding s;
  s.dims.assign(dims.begin(), dims.end());
  return s;
}

TEST(PrinterTypes, ReplicatedAndScalar) {
  EXPECT_EQ(TensorType(DType::I32, {2, 16}).str(), "i32[2,16]");
  EXPECT_EQ(TensorType(DType::F32, {}).str(), "f32[]");
  EXPECT_EQ(TensorType(DType::BF16, {1}).str(), "bf16[1]");
  EXPECT_EQ(TensorType(DType::F16, {3, 0}).str(), "f16[3,0]");
}

TEST(PrinterTypes, Sharded) {
  Sharding s = split({std::nullopt, MeshAxis::TP, std::nullopt});
  s.partial[unsigned(MeshAxis::TP)] = ReduceKind::Sum;
  EXPECT_EQ(TensorType(DType::F32, {8, 1024, 768}, s).str(), "f32[8,1024@tp,768] partial(tp,sum)");

  Sharding t = split({MeshAxis::DP});
  t.partial[unsigned(MeshAxis::TP)] = ReduceKind::Max;
  t.partial[unsigned(MeshAxis::DP)] = ReduceKind::Sum;
  EXPECT_EQ(TensorType(DType::F32, {8, 4}, t).str(), "f32[8@dp,4] partial(dp,sum) partial(tp,max)");

  Sharding scalarPartial;
  scalarPartial.partial[unsigned(MeshAxis::DP)] = ReduceKind::Sum;
  EXPECT_EQ(TensorType(DType::F32, {}, scalarPartial).str(), "f32[] partial(dp,sum)");
}

TEST(PrinterAttrs, Scalars) {
  EXPECT_EQ(attrStr(true), "true");
  EXPECT_EQ(attrStr(false), "false");
  EXPECT_EQ(attrStr(int64_t(0)), "0");
  EXPECT_EQ(attrStr(int64_t(-100)), "-100");
  EXPECT_EQ(attrStr(std::numeric_limits<int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(attrStr(std::vector<int64_t>{}), "[]");
  EXPECT_EQ(attrStr(std::vector<int64_t>{1, 2, -3}), "[1,2,-3]");
  EXPECT_EQ(attrStr(Symbol{"tanh"}), "tanh");
  EXPECT_EQ(attrStr(std::string("transformer.h.0.ln_1.weight")), "\"transformer.h.0.ln_1.weight\"");
}

TEST(PrinterAttrs, Floats) {
  EXPECT_EQ(attrStr(0.1), "0.1");
  EXPECT_EQ(attrStr(0.02), "0.02");
  EXPECT_EQ(attrStr(1e-5), "1e-05");
  EXPECT_EQ(attrStr(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(attrStr(2.0), "2.0");
  EXPECT_EQ(attrStr(100.0), "100.0");
  EXPECT_EQ(attrStr(0.0), "0.0");
  EXPECT_EQ(attrStr(-0.0), "-0.0");
  EXPECT_EQ(attrStr(1e300), "1e+300");
  EXPECT_EQ(attrStr(5e-324), "5e-324");
  EXPECT_EQ(attrStr(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(attrStr(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(attrStr(std::numeric_limits<double>::quiet_NaN()), "nan");
}

// Every printed float reads back to the same bits (nan: a nan of the same sign).
TEST(PrinterAttrs, FloatsRoundTripExactly) {
  const double values[] = {0.1,
                           1e-5,
                           1.0 / 3,
                           -0.0,
                           0.0,
                           2.0,
                           -2.5,
                           0.125,
                           1e300,
                           -1.7976931348623157e308,
                           std::numeric_limits<double>::max(),
                           std::numeric_limits<double>::min(),
                           std::numeric_limits<double>::denorm_min(),
                           2.2250738585072009e-308,
                           123456789012345678.0,
                           1e16,
                           0.1 + 0.2,
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()};
  for (double d : values) {
    std::string text = attrStr(d);
    SCOPED_TRACE(text);
    auto parsed = parseAttrValue(text);
    ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
    auto *back = std::get_if<double>(&*parsed);
    ASSERT_NE(back, nullptr) << "did not read back as a float";
    EXPECT_EQ(std::memcmp(back, &d, sizeof d), 0);
    EXPECT_EQ(attrStr(*back), text);
  }
  for (double nan : {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::quiet_NaN()}) {
    std::string text = attrStr(nan);
    auto parsed = parseAttrValue(text);
    ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
    double back = std::get<double>(*parsed);
    EXPECT_TRUE(std::isnan(back));
    EXPECT_EQ(std::signbit(back), std::signbit(nan));
    EXPECT_EQ(attrStr(back), text);
  }
}

TEST(PrinterAttrs, StringEscapesRoundTrip) {
  const std::string values[] = {"", "a\"b\\c\nd\te", std::string("\x01\x7f", 2), "caf\xc3\xa9", "//not a comment",
                                std::string("nul\0byte", 8)};
  EXPECT_EQ(attrStr(std::string("a\"b\\c\nd\te")), "\"a\\\"b\\\\c\\nd\\te\"");
  EXPECT_EQ(attrStr(std::string("caf\xc3\xa9")), "\"caf\\303\\251\"");
  for (const std::string &s : values) {
    std::string text = attrStr(s);
    SCOPED_TRACE(text);
    auto parsed = parseAttrValue(text);
    ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
    ASSERT_TRUE(std::holds_alternative<std::string>(*parsed));
    EXPECT_EQ(std::get<std::string>(*parsed), s);
  }
}

TEST(PrinterAttrs, DictIsSortedByKey) {
  AttrDict a;
  a.set("std", 0.02);
  a.set("name", std::string("w"));
  a.set("init", Symbol{"normal"});
  std::string s;
  llvm::raw_string_ostream os(s);
  a.print(os);
  EXPECT_EQ(os.str(), "{init = normal, name = \"w\", std = 0.02}");
}

AttrDict named(llvm::StringRef name) {
  AttrDict a;
  a.set("name", name.str());
  return a;
}

TEST(PrinterGraph, ExactFormat) {
  Graph g("gpt2");
  Node *ids = g.append(OpKind::Input, {}, named("input_ids"), {TensorType(DType::I32, {2, 16})});
  AttrDict pa = named("transformer.wte.weight");
  pa.set("init", Symbol{"normal"});
  pa.set("std", 0.02);
  Node *wte = g.append(OpKind::Param, {}, pa, {TensorType(DType::F32, {256, 64})});
  Node *emb = g.append(OpKind::Embedding, {wte->getResult(), ids->getResult()}, {},
                       {TensorType(DType::F32, {2, 16, 64})});
  // Not a valid op use (add has one result), but the printer shows what it is given.
  Node *two = g.append(OpKind::Add, {emb->getResult(), emb->getResult()}, {},
                       {TensorType(DType::F32, {2}), TensorType(DType::F32, {3})});
  g.append(OpKind::Output, {two->getResult(1)}, named("loss"), {});
  EXPECT_EQ(graphToString(g), "graph @gpt2 mesh(dp=1, tp=1) {\n"
                              "  %0 = input() {name = \"input_ids\"} : i32[2,16]\n"
                              "  %1 = param() {init = normal, name = \"transformer.wte.weight\", std = 0.02} : "
                              "f32[256,64]\n"
                              "  %2 = embedding(%1, %0) : f32[2,16,64]\n"
                              "  %3, %4 = add(%2, %2) : f32[2], f32[3]\n"
                              "  output(%4) {name = \"loss\"}\n"
                              "}\n");
}

TEST(PrinterGraph, MeshAndEmptyGraph) {
  Graph g("tiny-model.v2");
  g.setMesh(Mesh{{2, 4}});
  EXPECT_EQ(graphToString(g), "graph @tiny-model.v2 mesh(dp=2, tp=4) {\n}\n");
}

TEST(PrinterGraph, NumbersFollowProgramOrderAfterInsertion) {
  Graph g("g");
  Node *x = g.append(OpKind::Input, {}, named("x"), {TensorType(DType::F32, {4})});
  Node *out = g.append(OpKind::Output, {x->getResult()}, named("y"), {});
  AttrDict f;
  f.set("factor", 2.0);
  Node *s = g.insertBefore(out, OpKind::Scale, {x->getResult()}, f, {TensorType(DType::F32, {4})});
  out->setOperand(0, s->getResult());
  g.insertBefore(x, OpKind::Input, {}, named("first"), {TensorType(DType::F32, {1})});
  EXPECT_EQ(graphToString(g), "graph @g mesh(dp=1, tp=1) {\n"
                              "  %0 = input() {name = \"first\"} : f32[1]\n"
                              "  %1 = input() {name = \"x\"} : f32[4]\n"
                              "  %2 = scale(%1) {factor = 2.0} : f32[4]\n"
                              "  output(%2) {name = \"y\"}\n"
                              "}\n");
}

TEST(PrinterGraph, ForeignAndNullOperandsDoNotCrash) {
  Graph other("other");
  Node *foreign = other.append(OpKind::Input, {}, named("f"), {TensorType(DType::F32, {4})});
  Graph g("g");
  Node *x = g.append(OpKind::Input, {}, named("x"), {TensorType(DType::F32, {4})});
  g.append(OpKind::Add, {x->getResult(), foreign->getResult()}, {}, {TensorType(DType::F32, {4})});
  g.append(OpKind::Output, {nullptr}, named("y"), {});
  std::string s = graphToString(g);
  EXPECT_NE(s.find("%1 = add(%0, %<unknown>) : f32[4]"), std::string::npos) << s;
  EXPECT_NE(s.find("output(%<null>)"), std::string::npos) << s;
}

} // namespace
