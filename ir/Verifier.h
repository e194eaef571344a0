//===- Verifier.h - structural and type checks of a graph -------*- C++ -*-===//
//
// verifyGraph checks, node by node in program order: arity against Ops.def, operands defined earlier in the same
// graph, the op's shape rule (ir/OpShapes.cpp) against the declared result types (dtype and shape; sharding is set
// by later passes and not compared), the naming and init attributes of param/input/output, and that every split
// dim divides by its mesh axis. The first problem is returned as one error:
//   <file>:<line>:<col>: '<op>' <problem>        when the node was parsed from text
//   '<op>' (node #N) <problem>                   otherwise (N = position in program order)
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_VERIFIER_H
#define MEG_IR_VERIFIER_H

#include "ir/Graph.h"

#include "llvm/Support/Error.h"

#include <string>

namespace meg::ir {

llvm::Error verifyGraph(const Graph &g, llvm::StringRef filename = "");

/// The arity problem of an op used with these counts ("expects 2 operands, got 1"), or "" when they fit Ops.def.
std::string arityProblem(OpKind k, unsigned numOperands, unsigned numResults);

/// Whether `name` can be printed as a graph name: [A-Za-z_][A-Za-z0-9_.-]*.
bool isValidGraphName(llvm::StringRef name);

} // namespace meg::ir

#endif
