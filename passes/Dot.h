//===- Dot.h - the graph as Graphviz ------------------------------*- C++ -*-===//
//
// `megc --emit dot`: one Graphviz node per IR node, in program order, labelled with its results, op, attributes
// (the `name` alone where there is one; never the memory plan's `arena`) and result types, shardings included
// (`f32[256@tp,64]`, `partial(tp,sum)`); one edge per operand, from the producer to the user (labelled with the
// value when the producer has several results). Collectives (Ops.def trait Collective) are filled, one colour per
// mesh axis; parameters, inputs and optimizer state (External) are grey ellipses, outputs inverted houses. Written
// with Boost.Graph's write_graphviz (passes/Dot.cpp; Boost stays out of this header).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_DOT_H
#define MEG_PASSES_DOT_H

#include "ir/Graph.h"

namespace llvm {
class raw_ostream;
}

namespace meg::passes {

/// Writes `g` as a Graphviz digraph.
void writeDot(const ir::Graph &g, llvm::raw_ostream &os);

} // namespace meg::passes

#endif
