// A program outside meg built against an installed meg (find_package(meg), test/install): it parses and prints a
// tiny graph (meg::ir), tokenizes bytes (meg::data), loads a plan set written by the installed megc and prepares the
// CPU backend on rank 0 (meg::train). install-test.cmake checks what it prints.
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "runtime/data/Tokenizer.h"
#include "runtime/plan/Plan.h"
#include "runtime/plan/plan_generated.h"
#include "runtime/train/BackendRegistry.h"
#include "runtime/train/Session.h"

#include "llvm/Support/raw_ostream.h"

#include <string>

static const char *const kGraph = R"(graph @tiny mesh(dp=1, tp=2) {
  %x = input() {name = "x"} : f32[2,8]
  %w = param() {init = normal, name = "w", std = 0.02} : f32[8,4@tp]
  %y = contract(%x, %w) {spec = "bh,hf->bf"} : f32[2,4@tp]
  output(%y) {name = "y"}
}
)";

static int fail(llvm::Error err) {
  llvm::errs() << "consumer: error: " << llvm::toString(std::move(err)) << "\n";
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    llvm::errs() << "usage: consumer PLAN_DIR\n";
    return 2;
  }

  // meg::ir: parse, print, and print what the printed text parses to.
  auto graph = meg::ir::parseGraph(kGraph, "tiny.mir");
  if (!graph)
    return fail(graph.takeError());
  std::string printed = meg::ir::graphToString(**graph);
  llvm::outs() << printed;
  auto again = meg::ir::parseGraph(printed, "printed.mir");
  if (!again)
    return fail(again.takeError());
  llvm::outs() << "round trip: " << (meg::ir::graphToString(**again) == printed ? "identical" : "DIFFERENT") << "\n";

  // meg::data: byte tokenizer.
  meg::runtime::ByteTokenizer tokenizer;
  llvm::outs() << "tokens:";
  for (int32_t id : tokenizer.encode("meg"))
    llvm::outs() << " " << id;
  llvm::outs() << "\n";

  // meg::plan + meg::train: the plan set of the installed megc, and the CPU backend prepared for rank 0.
  auto plans = meg::runtime::loadPlanSet(argv[1]);
  if (!plans)
    return fail(plans.takeError());
  const meg::runtime::LoadedPlan &plan = plans->front();
  llvm::outs() << "plans: " << plans->size() << " ranks, mesh " << plan.meshDp << " x " << plan.meshTp << "\n";
  meg::runtime::BackendPlace place;
  place.localRanks = static_cast<int>(plans->size());
  auto backend = meg::runtime::createBackend("cpu", place);
  if (!backend)
    return fail(backend.takeError());
  if (llvm::Error err = (*backend)->prepare(plan))
    return fail(std::move(err));
  llvm::outs() << "backend " << (*backend)->name() << ": prepared rank " << plan.rank << " (" << plan.params.size()
               << " params)\n";
  return 0;
}
