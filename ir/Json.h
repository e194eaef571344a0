//===- Json.h - JSON parsing with bounded nesting ---------------*- C++ -*-===//
//
// llvm::json::parse recurses once per nesting level, so a hostile file nested tens of thousands of levels deep
// (a model config, a safetensors or checkpoint header, vocab.json, the model string inside a plan) overflows the
// stack. parseJson scans the text first and refuses nesting deeper than a bound that no real file of ours comes
// near, then parses. Every JSON the tools read goes through it.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_JSON_H
#define MEG_IR_JSON_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

namespace meg {

/// The deepest nesting of arrays and objects parseJson accepts.
constexpr unsigned kMaxJsonDepth = 64;

/// llvm::json::parse after checking that no array or object nests deeper than kMaxJsonDepth.
llvm::Expected<llvm::json::Value> parseJson(llvm::StringRef text);

} // namespace meg

#endif
