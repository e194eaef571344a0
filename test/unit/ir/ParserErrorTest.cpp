// Parser and verifier diagnostics on textual IR: one error, `file:line:col: message`, the column at the culprit.
#include "ir/Parser.h"

#include <gtest/gtest.h>

using namespace meg::ir;

namespace {

struct ErrorCase {
  const char *name;
  const char *text;
  const char *message;
};

// Most cases are a graph body: line 1 is `graph @t {`, the body starts on line 2.
#define BODY(lines) "graph @t {\n" lines "}\n"
#define X "  %0 = input() {name = \"x\"} : f32[2,3]\n"

const ErrorCase kCases[] = {
    // Lexical.
    {"unterminated_string", BODY("  %0 = input() {name = \"x} : f32[2]\n"), "t.mir:2:24: unterminated string"},
    {"string_at_eof", "graph @t {\n  %0 = input() {name = \"x", "t.mir:2:24: unterminated string"},
    {"unknown_escape", BODY("  %0 = input() {name = \"a\\qb\"} : f32[2]\n"), "t.mir:2:26: unknown escape sequence '\\q'"},
    {"stray_character", BODY("  %0 = input() $\n"), "t.mir:2:16: unexpected character '$'"},
    {"stray_minus", BODY(X "  %1 = scale(%0) {factor = -x} : f32[2,3]\n"), "t.mir:3:28: unexpected character '-'"},
    {"bare_percent", BODY("  % = input()\n"), "t.mir:2:3: expected a value name after '%'"},
    {"bare_at", "graph @1 {}", "t.mir:1:7: expected a name after '@'"},
    // Graph structure.
    {"not_a_graph", "func @t {}", "t.mir:1:1: expected 'graph', found 'func'"},
    {"empty_file", "// nothing\n", "t.mir:2:1: expected 'graph', found end of file"},
    {"no_graph_name", "graph t {}", "t.mir:1:7: expected a graph name '@name', found 't'"},
    {"missing_close_brace", "graph @t {\n" X, "t.mir:3:1: expected a node or '}', found end of file"},
    {"trailing_garbage", BODY(X) "extra\n", "t.mir:4:1: unexpected 'extra' after the graph"},
    {"second_graph", BODY("") "graph @u {}\n", "t.mir:3:1: unexpected 'graph' after the graph"},
    {"mesh_unknown_axis", "graph @t mesh(pp=2) {}", "t.mir:1:15: unknown mesh axis 'pp'"},
    {"mesh_duplicate_axis", "graph @t mesh(dp=2, dp=2) {}", "t.mir:1:21: duplicate mesh axis 'dp'"},
    {"mesh_zero", "graph @t mesh(dp=1, tp=0) {}", "t.mir:1:24: mesh axis size must be positive, got 0"},
    // Nodes.
    {"unknown_op", BODY("  %0 = frobnicate() : f32[2]\n"), "t.mir:2:8: unknown op 'frobnicate'"},
    {"undefined_value", BODY(X "  %1 = exp(%7) : f32[2,3]\n"), "t.mir:3:12: undefined value '%7'"},
    {"use_of_own_result", BODY("  %0 = exp(%0) : f32[2]\n"), "t.mir:2:12: undefined value '%0'"},
    {"redefined_value", BODY(X "  %0 = exp(%0) : f32[2,3]\n"), "t.mir:3:3: redefinition of value '%0'"},
    {"redefined_in_one_node", BODY("  %a, %a = input() : f32[2], f32[2]\n"), "t.mir:2:7: redefinition of value '%a'"},
    {"missing_comma", BODY(X "  %1 = input() {name = \"y\"} : f32[2,3]\n  %2 = add(%0 %1) : f32[2,3]\n"), "t.mir:4:15: expected ',' or ')', found '%1'"},
    {"too_few_operands", BODY(X "  %1 = add(%0) : f32[2,3]\n"), "t.mir:3:8: 'add' expects 2 operands, got 1"},
    {"too_many_operands", BODY(X "  %1 = exp(%0, %0) : f32[2,3]\n"), "t.mir:3:8: 'exp' expects 1 operand, got 2"},
    {"attention_operands", BODY(X "  %1 = attention(%0, %0) : f32[2,3]\n"),
     "t.mir:3:8: 'attention' expects 3 to 4 operands, got 2"},
    {"too_many_results", BODY(X "  %1, %2 = exp(%0) : f32[2,3], f32[2,3]\n"),
     "t.mir:3:12: 'exp' expects 1 result, got 2"},
    {"result_of_output", BODY(X "  %1 = output(%0) {name = \"y\"} : f32[2,3]\n"),
     "t.mir:3:8: 'output' expects no results, got 1"},
    {"missing_result", BODY(X "  exp(%0) : f32[2,3]\n"), "t.mir:3:3: 'exp' expects 1 result, got 0"},
    {"type_count", BODY(X "  %1 = exp(%0) : f32[2,3], f32[2,3]\n"), "t.mir:3:16: expected 1 result type, found 2"},
    {"missing_types", BODY(X "  %1 = exp(%0)\n"), "t.mir:4:1: expected ':' and the result types, found '}'"},
    {"types_without_results", BODY(X "  output(%0) {name = \"y\"} : f32[2,3]\n"),
     "t.mir:3:27: result types given for a node without results"},
    // Attributes.
    {"attr_missing_equal", BODY("  %0 = input() {name \"x\"} : f32[2]\n"),
     "t.mir:2:22: expected '=', found string \"x\""},
    {"attr_missing_value", BODY(X "  %1 = scale(%0) {factor = } : f32[2,3]\n"),
     "t.mir:3:28: expected an attribute value, found '}'"},
    {"attr_missing_brace", BODY("  %0 = input() {name = \"x\" : f32[2]\n"),
     "t.mir:2:28: expected ',' or '}', found ':'"},
    {"attr_duplicate", BODY("  %0 = input() {name = \"x\", name = \"y\"} : f32[2]\n"),
     "t.mir:2:29: duplicate attribute 'name'"},
    {"attr_bad_list", BODY(X "  %1 = reshape(%0) {shape = [2,x]} : f32[6]\n"),
     "t.mir:3:32: expected an integer, found 'x'"},
    {"attr_float_range", BODY(X "  %1 = scale(%0) {factor = 1e999} : f32[2,3]\n"),
     "t.mir:3:28: float 1e999 is out of range"},
    {"attr_int_range", BODY(X "  %1 = select(%0) {dim = 0, index = 9223372036854775808} : f32[3]\n"),
     "t.mir:3:37: integer 9223372036854775808 is out of range"},
    // Types.
    {"unknown_dtype", BODY("  %0 = input() {name = \"x\"} : f64[2]\n"), "t.mir:2:31: unknown dtype 'f64'"},
    {"missing_type", BODY("  %0 = input() {name = \"x\"} : [2]\n"), "t.mir:2:31: expected a type, found '['"},
    {"dim_not_integer", BODY("  %0 = input() {name = \"x\"} : f32[2,]\n"),
     "t.mir:2:37: expected an integer, found ']'"},
    {"negative_dim", BODY("  %0 = input() {name = \"x\"} : f32[-2]\n"), "t.mir:2:35: negative dimension size -2"},
    {"bad_sharding_axis", BODY("  %0 = input() {name = \"x\"} : f32[2@xp]\n"), "t.mir:2:37: unknown mesh axis 'xp'"},
    {"axis_splits_two_dims", BODY("  %0 = input() {name = \"x\"} : f32[2@tp,4@tp]\n"),
     "t.mir:2:42: mesh axis 'tp' already splits dim 0"},
    {"duplicate_partial", BODY("  %0 = input() {name = \"x\"} : f32[2] partial(tp,sum) partial(tp,max)\n"),
     "t.mir:2:62: duplicate partial axis 'tp'"},
    {"unknown_reduction", BODY("  %0 = input() {name = \"x\"} : f32[2] partial(tp,min)\n"),
     "t.mir:2:49: unknown reduction 'min'"},
    {"partial_bad_axis", BODY("  %0 = input() {name = \"x\"} : f32[2] partial(xp,sum)\n"),
     "t.mir:2:46: unknown mesh axis 'xp'"},
    // Verifier (runs after parsing; points at the op name).
    {"shape_mismatch", BODY(X "  %1 = input() {name = \"y\"} : f32[4]\n  %2 = add(%0, %1) : f32[2,3]\n"),
     "t.mir:4:8: 'add' operand shapes [2,3] and [4] do not broadcast"},
    {"declared_type_mismatch", BODY(X "  %1 = exp(%0) : f32[3,2]\n"),
     "t.mir:3:8: 'exp' result #0 is declared f32[3,2] but inferred f32[2,3]"},
    {"declared_dtype_mismatch", BODY(X "  %1 = exp(%0) : bf16[2,3]\n"),
     "t.mir:3:8: 'exp' result #0 is declared bf16[2,3] but inferred f32[2,3]"},
    {"contract_mismatch",
     BODY(X "  %1 = input() {name = \"y\"} : f32[4,5]\n  %2 = contract(%0, %1) {spec = \"ij,jk->ik\"} : f32[2,5]\n"),
     "t.mir:4:8: 'contract' letter 'j' has size 3 and 4"},
    {"missing_attribute", BODY(X "  %1 = gelu(%0) : f32[2,3]\n"), "t.mir:3:8: 'gelu' missing attribute 'approx'"},
    {"param_without_name", BODY("  %0 = param() {init = zeros} : f32[2]\n"),
     "t.mir:2:8: 'param' missing attribute 'name'"},
    {"name_not_string", BODY("  %0 = input() {name = x} : f32[2]\n"),
     "t.mir:2:8: 'input' attribute 'name' must be a string"},
    {"duplicate_name", BODY(X "  %1 = input() {name = \"x\"} : f32[2]\n"), "t.mir:3:8: 'input' duplicate name \"x\""},
    {"param_bad_init", BODY("  %0 = param() {init = uniform, name = \"w\"} : f32[2]\n"),
     "t.mir:2:8: 'param' attribute 'init' must be one of normal, zeros, ones"},
    {"param_normal_without_std", BODY("  %0 = param() {init = normal, name = \"w\"} : f32[2]\n"),
     "t.mir:2:8: 'param' missing attribute 'std' (init = normal needs it)"},
    {"split_not_divisible", "graph @t mesh(dp=1, tp=4) {\n  %0 = input() {name = \"x\"} : f32[6@tp]\n}\n",
     "t.mir:2:8: 'input' result #0 dim 0 of size 6 is not divisible by tp=4"},
};

void PrintTo(const ErrorCase &c, std::ostream *os) { *os << c.name; }

class ParserErrors : public testing::TestWithParam<ErrorCase> {};

TEST_P(ParserErrors, ExactMessage) {
  const ErrorCase &c = GetParam();
  auto g = parseGraph(c.text, "t.mir");
  ASSERT_FALSE(bool(g)) << "parsed:\n" << c.text;
  EXPECT_EQ(llvm::toString(g.takeError()), c.message) << c.text;
}

INSTANTIATE_TEST_SUITE_P(IR, ParserErrors, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<ErrorCase> &info) { return std::string(info.param.name); });

TEST(ParserErrorsOther, TypeAndAttrEntryPoints) {
  auto t = parseTensorType("f32[2] extra", "<type>");
  ASSERT_FALSE(bool(t));
  EXPECT_EQ(llvm::toString(t.takeError()), "<type>:1:8: unexpected 'extra' after the type");
  auto v = parseAttrValue("[1,2", "<attr>");
  ASSERT_FALSE(bool(v));
  EXPECT_EQ(llvm::toString(v.takeError()), "<attr>:1:5: expected ',' or ']', found end of file");
}

} // namespace
