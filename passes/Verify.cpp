//===- Verify.cpp - the verifier as a pass ----------------------------------===//
//
// Runs ir::verifyGraph; useful at any point of a --passes pipeline (the pass manager also verifies after each pass
// unless told not to).
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"
#include "ir/Verifier.h"

using namespace meg;
using namespace meg::passes;

namespace {
class VerifyPass : public Pass {
public:
  llvm::StringRef getName() const override { return "verify"; }
  llvm::Error run(ir::Graph &g) override { return ir::verifyGraph(g); }
};
} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createVerifyPass(const VerifyOptions &) {
  return std::make_unique<VerifyPass>();
}
