//===- OpRules.h - per-op rules collected from Ops.def ----------*- C++ -*-===//
//
// Each concern of an op is one function per op, named after its Ops.def enum and collected into a table indexed by
// OpKind. Passes and tools call these entry points; nothing outside the tables switches over op kinds.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_OPRULES_H
#define MEG_IR_OPRULES_H

#include "ir/Graph.h"

#include "llvm/Support/Error.h"

#include <array>
#include <string>

namespace meg::ir {

/// Shape/type rule: checks operand types and attributes and returns the result types (sharding replicated).
/// Errors are plain messages without location; callers prefix the op and its location.
using ShapeRule = llvm::Expected<llvm::SmallVector<TensorType, 1>> (*)(llvm::ArrayRef<TensorType> operands,
                                                                       const AttrDict &attrs);
ShapeRule shapeRule(OpKind k);
llvm::Expected<llvm::SmallVector<TensorType, 1>> inferTypes(OpKind k, llvm::ArrayRef<TensorType> operands,
                                                            const AttrDict &attrs);

/// Splits an einsum spec "ab,bc->ac" into its three terms, checking letters (shared by every contract rule).
llvm::Expected<std::array<std::string, 3>> parseContractSpec(llvm::StringRef spec);

/// Floating-point operations of one execution of the node (global, unsharded), counting a multiply-add as 2.
using FlopRule = double (*)(const Node &n);
FlopRule flopRule(OpKind k);
double countFlops(const Node &n);

} // namespace meg::ir

#endif
