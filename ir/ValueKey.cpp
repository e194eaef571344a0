//===- ValueKey.cpp - names of values that do not depend on the mesh ---------===//
#include "ir/ValueKey.h"

#include "ir/Attribute.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

using namespace meg::ir;

bool meg::ir::isKeyTransparent(OpKind k) {
  return isCollective(k) || k == OpKind::Cast || k == OpKind::MaskPadding;
}

ValueKeys::ValueKeys(const Graph &g) {
  llvm::StringMap<unsigned> uses; // hash text -> nodes so far with it
  for (const auto &node : g) {
    const Node &n = *node;
    if (isExternal(n.getKind())) {
      std::string key = (n.getName() + ":" + n.getAttrs().getString("name").value_or("")).str();
      for (unsigned r = 0; r < n.getNumResults(); ++r)
        own[n.getResult(r)] = seen[n.getResult(r)] = key;
      continue;
    }
    std::string text;
    llvm::raw_string_ostream os(text);
    os << n.getName() << '{';
    for (const auto &[key, value] : n.getAttrs()) {
      if (key == "arena" || key == "shape" || key == "recompute")
        continue;
      os << key << '=';
      printAttrValue(os, value);
      os << ';';
    }
    os << "}(";
    for (const Value *v : n.getOperands()) {
      auto it = seen.find(v);
      os << (it == seen.end() ? llvm::StringRef("?") : llvm::StringRef(it->second)) << ',';
    }
    os << ')';
    for (unsigned r = 0; r < n.getNumResults(); ++r) {
      std::string one = os.str() + "#" + std::to_string(r);
      unsigned k = ++uses[one];
      std::string key;
      llvm::raw_string_ostream ks(key);
      ks << n.getName() << ':' << llvm::format_hex_no_prefix(llvm::xxHash64(one) >> 16, 12);
      const Value *v = n.getResult(r);
      // Consumers of a clone see the original's key: what reads a recomputed value is keyed as without recompute.
      std::string base = ks.str();
      own[v] = k > 1 ? base + "#" + std::to_string(k) : base;
      if (isKeyTransparent(n.getKind())) {
        unsigned from = hasResultPerOperand(n.getKind()) ? r : 0;
        auto it = from < n.getNumOperands() ? seen.find(n.getOperand(from)) : seen.end();
        // Copied before seen[v] inserts: growing the map would invalidate `it`.
        std::string key = it == seen.end() ? base : it->second;
        seen[v] = std::move(key);
      } else {
        seen[v] = base;
      }
    }
  }
}

llvm::StringRef ValueKeys::lookup(const Value *v) const {
  auto it = own.find(v);
  return it == own.end() ? llvm::StringRef() : llvm::StringRef(it->second);
}
