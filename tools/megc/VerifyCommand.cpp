//===- VerifyCommand.cpp - `megc verify PLAN_DIR` ------------------------------===//
//
// Loads a plan directory the way megrun does (runtime/plan/Plan.h loadPlanSet: every rank's plan verified, then the
// set's collective order proven, runtime/plan/CollectiveOrder.h) and prints one line:
//   <dir>: ok: dp D [x pp P] x tp T = N ranks, C collectives and P point-to-point messages per rank in a proven order
// or the first problem as `megc: error: <what>` with exit code 1.
//
//===----------------------------------------------------------------------===//
#include "tools/megc/VerifyCommand.h"

#include "ir/File.h"
#include "runtime/plan/CollectiveOrder.h"
#include "runtime/plan/Plan.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace meg;

bool meg::isVerifyCommand(int argc, char **argv) { return argc >= 2 && llvm::StringRef(argv[1]) == "verify"; }

int meg::runVerifyCommand(int argc, char **argv) {
  auto fail = [](const llvm::Twine &what) {
    llvm::errs() << "megc: error: " << printableText(what.str(), SIZE_MAX) << "\n";
    return 1;
  };
  if (argc != 3 || llvm::StringRef(argv[2]).startswith("-"))
    return fail("usage: megc verify PLAN_DIR");
  llvm::StringRef dir = argv[2];
  auto plans = runtime::loadPlanSet(dir);
  if (!plans)
    return fail(llvm::StringRef(llvm::toString(plans.takeError())).split('\n').first);
  const runtime::LoadedPlan &first = plans->front();
  runtime::CommOrderSummary s = runtime::summarize(runtime::commEvents(first));
  // Pipeline stages: the mesh is dp x pp x tp, and the messages are rank 0's over a step (every micro-batch).
  std::string pp = first.meshPp > 1 ? llvm::formatv(" x pp {0}", first.meshPp).str() : "";
  llvm::outs() << llvm::formatv("{0}: ok: dp {1}{2} x tp {3} = {4} ranks, {5} collectives and {6} point-to-point "
                                "messages per rank in a proven order\n",
                                dir, first.meshDp, pp, first.meshTp, first.world(), s.collectives, s.pointToPoint);
  return 0;
}
