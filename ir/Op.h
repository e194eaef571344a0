//===- Op.h - op kinds and the static op table ------------------*- C++ -*-===//
#ifndef MEG_IR_OP_H
#define MEG_IR_OP_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace meg::ir {

enum class OpKind : uint16_t {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Summary) Enum,
#include "ir/Ops.def"
};

constexpr unsigned kNumOpKinds = 0
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Summary) +1
#include "ir/Ops.def"
    ;

struct OpInfo {
  OpKind kind;
  llvm::StringRef name;
  int minOperands;
  int maxOperands; // -1 = variadic
  int numResults;
  llvm::StringRef summary;
};

const OpInfo &opInfo(OpKind k);
llvm::StringRef opName(OpKind k);
std::optional<OpKind> parseOpKind(llvm::StringRef name);
/// The operands an op updates in place (bit i = operand i), from OP_WRITES in Ops.def.
unsigned writtenOperands(OpKind k);
/// True for ops whose result lives outside the activation arena (OP_EXTERNAL in Ops.def: param, input, state).
bool isExternal(OpKind k);
/// OP_INPLACE in Ops.def: the result may overwrite an operand of the same size.
bool mayOverwriteOperand(OpKind k);
/// OP_ALIAS in Ops.def: the result is its operand's storage (reshape).
bool aliasesOperand(OpKind k);

} // namespace meg::ir

#endif
