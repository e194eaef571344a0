//===- Op.cpp - the static op table -----------------------------------------===//
#include "ir/Op.h"

#include "llvm/ADT/StringMap.h"

#include <array>

using namespace meg::ir;

static const OpInfo kOpInfos[] = {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Summary)                                                  \
  {OpKind::Enum, Name, MinOperands, MaxOperands, NumResults, Summary},
#include "ir/Ops.def"
};

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

unsigned meg::ir::writtenOperands(OpKind k) {
  static const auto masks = [] {
    std::array<unsigned, kNumOpKinds> m{};
#define OP_WRITES(Enum, Mask) m[unsigned(OpKind::Enum)] = Mask;
#include "ir/Ops.def"
    return m;
  }();
  return masks[unsigned(k)];
}

bool meg::ir::isExternal(OpKind k) {
  static const auto external = [] {
    std::array<bool, kNumOpKinds> e{};
#define OP_EXTERNAL(Enum) e[unsigned(OpKind::Enum)] = true;
#include "ir/Ops.def"
    return e;
  }();
  return external[unsigned(k)];
}

bool meg::ir::mayOverwriteOperand(OpKind k) {
  static const auto inplace = [] {
    std::array<bool, kNumOpKinds> e{};
#define OP_INPLACE(Enum) e[unsigned(OpKind::Enum)] = true;
#include "ir/Ops.def"
    return e;
  }();
  return inplace[unsigned(k)];
}

bool meg::ir::aliasesOperand(OpKind k) {
  static const auto alias = [] {
    std::array<bool, kNumOpKinds> e{};
#define OP_ALIAS(Enum) e[unsigned(OpKind::Enum)] = true;
#include "ir/Ops.def"
    return e;
  }();
  return alias[unsigned(k)];
}
