//===- Op.h - op kinds and the static op table ------------------*- C++ -*-===//
//
// The kinds, arities and traits of ir/Ops.def. Passes ask the traits (isCollective, mayOverwriteOperand, ...)
// instead of listing op kinds.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_OP_H
#define MEG_IR_OP_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace meg::ir {

enum class OpKind : uint16_t {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary) Enum,
#include "ir/Ops.def"
};

constexpr unsigned kNumOpKinds = 0
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary) +1
#include "ir/Ops.def"
    ;

/// The traits column of Ops.def (its header comment defines each); an op's traits are an OR of these flags.
enum class OpTrait : uint8_t {
  None = 0,
  External = 1 << 0,
  InPlace = 1 << 1,
  Alias = 1 << 2,
  Collective = 1 << 3,
  YieldsWritten = 1 << 4,
};
constexpr OpTrait operator|(OpTrait a, OpTrait b) { return OpTrait(uint8_t(a) | uint8_t(b)); }

struct OpInfo {
  OpKind kind;
  llvm::StringRef name;
  int minOperands;
  int maxOperands; // -1 = variadic
  int numResults; // -1 = one per operand
  OpTrait traits;
  unsigned writesMask; // bit i = operand i is updated in place
  llvm::StringRef summary;
};

const OpInfo &opInfo(OpKind k);
llvm::StringRef opName(OpKind k);
std::optional<OpKind> parseOpKind(llvm::StringRef name);

/// NumResults == -1 in Ops.def: result i belongs to operand i (all_reduce_bucket).
inline bool hasResultPerOperand(OpKind k) { return opInfo(k).numResults < 0; }
/// The number of results a node of kind `k` with `numOperands` operands has.
inline unsigned numResultsOf(OpKind k, unsigned numOperands) {
  return hasResultPerOperand(k) ? numOperands : unsigned(opInfo(k).numResults);
}

/// Whether op `k` has every flag of `t`.
inline bool hasTrait(OpKind k, OpTrait t) { return (uint8_t(opInfo(k).traits) & uint8_t(t)) == uint8_t(t); }
/// The operands an op updates in place (bit i = operand i): the WritesMask column of Ops.def.
inline unsigned writtenOperands(OpKind k) { return opInfo(k).writesMask; }
/// External: the result lives outside the activation arena (param, input, state).
inline bool isExternal(OpKind k) { return hasTrait(k, OpTrait::External); }
/// InPlace: the result may overwrite an operand of the same size (result i only operand i when
/// hasResultPerOperand).
inline bool mayOverwriteOperand(OpKind k) { return hasTrait(k, OpTrait::InPlace); }
/// Alias: the result is its operand's storage (reshape).
inline bool aliasesOperand(OpKind k) { return hasTrait(k, OpTrait::Alias); }
/// YieldsWritten: the result is the written operand 0 after the op (accumulate): its storage when that is not an
/// activation (optimizer state), so it takes no arena memory.
inline bool yieldsWrittenOperand(OpKind k) { return hasTrait(k, OpTrait::YieldsWritten); }
/// Collective: communication over the mesh axis of the `axis` attribute, inserted by partition (all_reduce,
/// all_gather, reduce_scatter, and shard, which moves nothing).
inline bool isCollective(OpKind k) { return hasTrait(k, OpTrait::Collective); }

} // namespace meg::ir

#endif
