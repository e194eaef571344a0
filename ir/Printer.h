//===- Printer.h - textual IR output ----------------------------*- C++ -*-===//
//
// Prints a Graph in the textual form of docs/ir.md. The output is stable (values renumbered %0, %1, ... in program
// order, attributes sorted by key) and parses back to a graph that prints identically.
//
//   graph @gpt2 mesh(dp=1, tp=1) {
//     %0 = input() {name = "input_ids"} : i32[2,16]
//     %1 = param() {init = normal, name = "transformer.wte.weight", std = 0.02} : f32[256,64]
//     %2 = embedding(%1, %0) : f32[2,16,64]
//     output(%2) {name = "hidden"}
//   }
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_PRINTER_H
#define MEG_IR_PRINTER_H

#include "ir/Graph.h"

#include "llvm/ADT/DenseMap.h"

#include <string>

namespace llvm {
class raw_ostream;
}

namespace meg::ir {

/// The printed number of every value of a graph: results in program order, a node's results consecutively.
class ValueNumbering {
public:
  explicit ValueNumbering(const Graph &g);
  /// The number of `v`, or -1 when `v` is not a result of a node of the graph.
  int64_t lookup(const Value *v) const;

private:
  llvm::DenseMap<const Value *, unsigned> numbers;
};

/// Prints a whole graph, ending with a newline.
void printGraph(const Graph &g, llvm::raw_ostream &os);
std::string graphToString(const Graph &g);

/// Prints one node (no indentation, no newline), e.g. `%2 = add(%0, %1) : f32[2,3]`. Operands that are not values
/// of the numbered graph print as `%<unknown>` (null: `%<null>`), so broken graphs can still be shown.
void printNode(const Node &n, const ValueNumbering &numbering, llvm::raw_ostream &os);

} // namespace meg::ir

#endif
