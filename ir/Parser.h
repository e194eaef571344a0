//===- Parser.h - textual IR input ------------------------------*- C++ -*-===//
//
// Parses the textual form of docs/ir.md into a Graph, using the declared result types (no inference), then runs
// the verifier. Every problem is one error `<file>:<line>:<col>: <what>`, the column pointing at the offending
// token. Parsed nodes carry their position (the op name) in Node::loc.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_PARSER_H
#define MEG_IR_PARSER_H

#include "ir/Graph.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>

namespace meg::ir {

/// Parses one graph from `text`; `filename` only names the source in messages.
llvm::Expected<std::unique_ptr<Graph>> parseGraph(llvm::StringRef text, llvm::StringRef filename = "<input>");
/// Reads and parses a file ("-" = stdin).
llvm::Expected<std::unique_ptr<Graph>> parseGraphFile(llvm::StringRef path);

/// Parses one tensor type such as `f32[8,1024@tp,768] partial(tp,sum)` (the whole text). Errors carry
/// `<filename>:1:<col>`.
llvm::Expected<TensorType> parseTensorType(llvm::StringRef text, llvm::StringRef filename = "<type>");
/// Parses one attribute value such as `[1,2]`, `1.0e-05`, `"s"`, `tanh` (the whole text).
llvm::Expected<AttrValue> parseAttrValue(llvm::StringRef text, llvm::StringRef filename = "<attr>");

} // namespace meg::ir

#endif
