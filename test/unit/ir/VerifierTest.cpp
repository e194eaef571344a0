// The verifier on graphs built in memory (no source positions): messages name the node by its position.
#include "ir/Verifier.h"

#include <gtest/gtest.h>

using namespace meg::ir;

namespace {

AttrDict named(llvm::StringRef name) {
  AttrDict a;
  a.set("name", name.str());
  return a;
}

std::string verifyMessage(const Graph &g) {
  llvm::Error e = verifyGraph(g);
  return e ? llvm::toString(std::move(e)) : "";
}

TEST(Verifier, AcceptsValidGraph) {
  Graph g("ok");
  Node *x = g.append(OpKind::Input, {}, named("x"), {TensorType(DType::F32, {2, 3})});
  auto y = g.build(OpKind::Exp, {x->getResult()});
  ASSERT_TRUE(bool(y));
  g.append(OpKind::Output, {(*y)->getResult()}, named("y"), {});
  EXPECT_EQ(verifyMessage(g), "");
}

TEST(Verifier, ShapeRuleFailureNamesNodeIndex) {
  Graph g("g");
  Node *a = g.append(OpKind::Input, {}, named("a"), {TensorType(DType::F32, {2, 3})});
  Node *b = g.append(OpKind::Input, {}, named("b"), {TensorType(DType::F32, {4})});
  g.append(OpKind::Add, {a->getResult(), b->getResult()}, {}, {TensorType(DType::F32, {2, 3})});
  EXPECT_EQ(verifyMessage(g), "'add' (node #2) operand shapes [2,3] and [4] do not broadcast");
}

TEST(Verifier, LocationAndFilename) {
  Graph g("g");
  Node *a = g.append(OpKind::Input, {}, named("a"), {TensorType(DType::F32, {2})});
  Node *n = g.append(OpKind::Exp, {a->getResult()}, {}, {TensorType(DType::F32, {3})});
  n->loc = Loc{7, 9};
  llvm::Error e = verifyGraph(g, "m.mir");
  EXPECT_EQ(llvm::toString(std::move(e)), "m.mir:7:9: 'exp' result #0 is declared f32[3] but inferred f32[2]");
  EXPECT_EQ(verifyMessage(g), "7:9: 'exp' result #0 is declared f32[3] but inferred f32[2]");
}

TEST(Verifier, Arity) {
  Graph g("g");
  Node *a = g.append(OpKind::Input, {}, named("a"), {TensorType(DType::F32, {2})});
  g.append(OpKind::Add, {a->getResult()}, {}, {TensorType(DType::F32, {2})});
  EXPECT_EQ(verifyMessage(g), "'add' (node #1) expects 2 operands, got 1");

  Graph h("h");
  Node *b = h.append(OpKind::Input, {}, named("b"), {TensorType(DType::F32, {2})});
  h.append(OpKind::Exp, {b->getResult()}, {}, {});
  EXPECT_EQ(verifyMessage(h), "'exp' (node #1) expects 1 result, got 0");
}

TEST(Verifier, OperandsMustBeDefinedEarlierInTheSameGraph) {
  Graph other("other");
  Node *foreign = other.append(OpKind::Input, {}, named("f"), {TensorType(DType::F32, {2})});
  Graph g("g");
  Node *out = g.append(OpKind::Output, {foreign->getResult()}, named("y"), {});
  EXPECT_EQ(verifyMessage(g), "'output' (node #0) operand #0 is not a value of this graph");

  Node *x = g.insertBefore(nullptr, OpKind::Input, {}, named("x"), {TensorType(DType::F32, {2})});
  out->setOperand(0, x->getResult());
  EXPECT_EQ(verifyMessage(g), "'output' (node #0) operand #0 is used before its definition");

  out->setOperand(0, nullptr);
  EXPECT_EQ(verifyMessage(g), "'output' (node #0) operand #0 is null");
}

TEST(Verifier, SourceNodes) {
  auto check = [](AttrDict a, OpKind k = OpKind::Param) {
    Graph g("g");
    g.append(k, {}, a, {TensorType(DType::F32, {4, 2})});
    return verifyMessage(g);
  };
  AttrDict p = named("w");
  EXPECT_EQ(check(p), "'param' (node #0) missing attribute 'init'");
  p.set("init", std::string("zeros"));
  EXPECT_EQ(check(p), "'param' (node #0) attribute 'init' must be one of normal, zeros, ones");
  p.set("init", Symbol{"zeros"});
  EXPECT_EQ(check(p), "");
  p.set("init", Symbol{"normal"});
  EXPECT_EQ(check(p), "'param' (node #0) missing attribute 'std' (init = normal needs it)");
  p.set("std", std::string("0.02"));
  EXPECT_EQ(check(p), "'param' (node #0) attribute 'std' must be a number");
  p.set("std", -1.0);
  EXPECT_EQ(check(p), "'param' (node #0) attribute 'std' must be finite and non-negative");
  p.set("std", 0.02);
  EXPECT_EQ(check(p), "");
  p.set("hf_shape", std::vector<int64_t>{2, 4});
  EXPECT_EQ(check(p), "");
  p.set("hf_shape", std::vector<int64_t>{3, 4});
  EXPECT_EQ(check(p), "'param' (node #0) attribute 'hf_shape' [3,4] has a different element count than [4,2]");
  p.set("hf_shape", std::vector<int64_t>{4, 2});
  p.set("vocab_rows", int64_t(3)); // a vocab-padded table: 3 of its 4 rows exist in HF files
  EXPECT_EQ(check(p), "");
  p.set("vocab_rows", int64_t(5));
  EXPECT_EQ(check(p), "'param' (node #0) attribute 'vocab_rows' = 5 must be in [1, 4] (rows of dim 0 that exist in "
                      "Hugging Face files)");
  p.set("vocab_rows", 3.0);
  EXPECT_EQ(check(p), "'param' (node #0) attribute 'vocab_rows' must be an integer");
  p.set("vocab_rows", int64_t(3));
  p.set("hf_shape", std::vector<int64_t>{2, 4});
  EXPECT_EQ(check(p), "'param' (node #0) attribute 'vocab_rows' needs 'hf_shape' to keep dim 0 of [4,2]");
  p.erase("vocab_rows");

  EXPECT_EQ(check({}, OpKind::Input), "'input' (node #0) missing attribute 'name'");
  EXPECT_EQ(check(named(""), OpKind::Input), "'input' (node #0) attribute 'name' must not be empty");

  // Names are unique per kind: an input and a param may share one.
  Graph g("g");
  AttrDict w = named("x");
  w.set("init", Symbol{"ones"});
  Node *in = g.append(OpKind::Input, {}, named("x"), {TensorType(DType::F32, {2})});
  g.append(OpKind::Param, {}, w, {TensorType(DType::F32, {2})});
  g.append(OpKind::Output, {in->getResult()}, named("x"), {});
  EXPECT_EQ(verifyMessage(g), "");
  g.append(OpKind::Output, {in->getResult()}, named("x"), {});
  EXPECT_EQ(verifyMessage(g), "'output' (node #3) duplicate name \"x\"");
}

TEST(Verifier, Sharding) {
  Graph g("g");
  g.setMesh(Mesh{{2, 4}});
  Sharding s;
  s.setDimAxis(0, 2, MeshAxis::DP);
  s.setDimAxis(1, 2, MeshAxis::TP);
  g.append(OpKind::Input, {}, named("ok"), {TensorType(DType::F32, {6, 8}, s)});
  EXPECT_EQ(verifyMessage(g), "");
  g.append(OpKind::Input, {}, named("bad"), {TensorType(DType::F32, {6, 6}, s)});
  EXPECT_EQ(verifyMessage(g), "'input' (node #1) result #0 dim 1 of size 6 is not divisible by tp=4");

  Graph h("h");
  Sharding twice;
  twice.dims = {MeshAxis::TP, MeshAxis::TP};
  h.append(OpKind::Input, {}, named("x"), {TensorType(DType::F32, {2, 2}, twice)});
  EXPECT_EQ(verifyMessage(h), "'input' (node #0) result #0 splits dims 0 and 1 over mesh axis 'tp'");

  Graph k("k");
  Node *n = k.append(OpKind::Input, {}, named("x"), {TensorType(DType::F32, {2})});
  Sharding tooLong;
  tooLong.dims = {std::nullopt, MeshAxis::TP};
  TensorType t(DType::F32, {2});
  t.sharding = tooLong;
  n->getResult()->setType(t);
  EXPECT_EQ(verifyMessage(k), "'input' (node #0) result #0 sharding names 2 dims but the type has rank 1");
}

TEST(Verifier, GraphLevel) {
  Graph g("has space");
  EXPECT_EQ(verifyMessage(g), "graph name 'has space' is not an identifier");
  Graph h("h");
  h.setMesh(Mesh{{0, 1}});
  EXPECT_EQ(verifyMessage(h), "mesh axis 'dp' has size 0");
}

} // namespace
