//===- ReportTest.cpp - megc --emit report ----------------------------------===//
#include "frontend/Frontend.h"
#include "frontend/Report.h"

#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

using namespace meg;
using namespace meg::frontend;

namespace {

std::string reportOf(llvm::StringRef json) {
  auto c = parseModelConfig(json, "r.json");
  EXPECT_TRUE(bool(c));
  auto g = buildModel(*c, {BuildMode::Train});
  EXPECT_TRUE(bool(g));
  std::string s;
  llvm::raw_string_ostream os(s);
  printReport(**g, {&*c, BuildMode::Train}, os);
  return os.str();
}

TEST(Report, Totals) {
  std::string r = reportOf(R"({"model_type": "gpt2", "n_layer": 3, "n_embd": 16, "n_head": 2, "vocab_size": 32,
      "n_positions": 8, "meg": {"seq": 4}})");
  // wte 512 + wpe 128 + 3 * (12 * 256 + 13 * 16) + ln_f 32
  EXPECT_NE(r.find("\nparameters: 10512\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\nparameter bytes: 42048\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\nforward FLOPs: "), std::string::npos) << r;
  EXPECT_NE(r.find("model: r (gpt2, GPT2LMHeadModel)\n"), std::string::npos) << r;
  EXPECT_NE(r.find("  layer 0 (transformer.h.0.*): 3280 parameters\n"), std::string::npos) << r;
  EXPECT_NE(r.find("  layers 1..2: same shapes as layer 0 (3280 parameters each)\n"), std::string::npos) << r;
  EXPECT_EQ(r.find("transformer.h.1."), std::string::npos) << r;
  EXPECT_NE(r.find("attn.c_attn.weight"), std::string::npos) << r;
}

TEST(Report, ForwardFlopsSumEveryNode) {
  auto c = parseModelConfig(R"({"model_type": "gpt2", "n_layer": 1, "n_embd": 16, "n_head": 2, "vocab_size": 32,
      "n_positions": 8, "meg": {"seq": 4}})",
                            "f.json");
  ASSERT_TRUE(bool(c));
  auto g = buildModel(*c, {BuildMode::Infer});
  ASSERT_TRUE(bool(g));
  double flops = countGraphFlops(**g);
  // At least the matmuls: per token 2 * (3h*h + h*h + 2 * h*4h) + 2 * h*V, b * s = 4 tokens.
  double matmuls = 4 * 2.0 * (3 * 256 + 256 + 2 * 16 * 64 + 16 * 32);
  EXPECT_GE(flops, matmuls);
}

} // namespace
