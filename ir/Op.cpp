//===- Op.cpp - the static op table -----------------------------------------===//
#include "ir/Op.h"

#include "llvm/ADT/StringMap.h"

#include <iterator>

using namespace meg::ir;

namespace {
using enum OpTrait; // the Traits column names the flags unqualified

const OpInfo kOpInfos[] = {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary)                              \
  {OpKind::Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary},
#include "ir/Ops.def"
};
static_assert(std::size(kOpInfos) == kNumOpKinds, "one OpInfo per op");

} // namespace

const OpInfo &meg::ir::opInfo(OpKind k) { return kOpInfos[unsigned(k)]; }
llvm::StringRef meg::ir::opName(OpKind k) { return opInfo(k).name; }

std::optional<OpKind> meg::ir::parseOpKind(llvm::StringRef name) {
  static const llvm::StringMap<OpKind> byName = [] {
    llvm::StringMap<OpKind> m;
    for (const OpInfo &info : kOpInfos)
      m[info.name] = info.kind;
    return m;
  }();
  auto it = byName.find(name);
  if (it == byName.end())
    return std::nullopt;
  return it->second;
}
