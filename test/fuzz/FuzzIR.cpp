//===- FuzzIR.cpp - libFuzzer target: the IR text parser -----------------===//
//
// parseGraph (which verifies the graph) on arbitrary text; a graph it accepts is printed and parsed again, which must
// succeed: the printer's output is the parser's language.
//
//===----------------------------------------------------------------------===//
#include "ir/Parser.h"
#include "ir/Printer.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  auto graph = meg::ir::parseGraph(text, "fuzz.mir");
  if (!graph) {
    llvm::consumeError(graph.takeError());
    return 0;
  }
  std::string printed = meg::ir::graphToString(**graph);
  auto again = meg::ir::parseGraph(printed, "printed.mir");
  if (!again) {
    std::string message = llvm::toString(again.takeError());
    std::fprintf(stderr, "printed graph does not parse: %s\n%s\n", message.c_str(), printed.c_str());
    std::abort();
  }
  return 0;
}
