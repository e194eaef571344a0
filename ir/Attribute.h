//===- Attribute.h - node attributes ----------------------------*- C++ -*-===//
//
// Attributes are a sorted name -> value dictionary, so printing is deterministic. Values are booleans, integers,
// floats, strings, integer lists, or symbols (bare identifiers such as `tanh`, `sum`, `tp`).
//   {approx = tanh, dims = [2], eps = 1.0e-05, keepdim = true, name = "transformer.wte.weight"}
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_ATTRIBUTE_H
#define MEG_IR_ATTRIBUTE_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace llvm {
class raw_ostream;
}

namespace meg::ir {

struct Symbol {
  std::string name;
  bool operator==(const Symbol &o) const { return name == o.name; }
};

using AttrValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, Symbol>;

class AttrDict {
public:
  void set(llvm::StringRef key, AttrValue v) { map[key.str()] = std::move(v); }
  bool has(llvm::StringRef key) const { return map.find(key) != map.end(); }
  const AttrValue *get(llvm::StringRef key) const;
  void erase(llvm::StringRef key) { map.erase(key.str()); }

  std::optional<int64_t> getInt(llvm::StringRef key) const;
  /// A float attribute; an integer attribute converts.
  std::optional<double> getFloat(llvm::StringRef key) const;
  std::optional<bool> getBool(llvm::StringRef key) const;
  std::optional<llvm::StringRef> getString(llvm::StringRef key) const;
  std::optional<llvm::StringRef> getSymbol(llvm::StringRef key) const;
  const std::vector<int64_t> *getInts(llvm::StringRef key) const;

  bool empty() const { return map.empty(); }
  auto begin() const { return map.begin(); }
  auto end() const { return map.end(); }
  bool operator==(const AttrDict &o) const { return map == o.map; }

  void print(llvm::raw_ostream &os) const;

private:
  std::map<std::string, AttrValue, std::less<>> map;
};

void printAttrValue(llvm::raw_ostream &os, const AttrValue &v);
/// Shortest decimal that reads back to the same double; always has a '.' or exponent.
std::string formatDouble(double d);

} // namespace meg::ir

#endif
