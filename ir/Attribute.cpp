//===- Attribute.cpp - node attributes --------------------------------------===//
#include "ir/Attribute.h"

#include "llvm/Support/raw_ostream.h"

#include <charconv>

using namespace meg::ir;

const AttrValue *AttrDict::get(llvm::StringRef key) const {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

std::optional<int64_t> AttrDict::getInt(llvm::StringRef key) const {
  if (auto *v = get(key))
    if (auto *i = std::get_if<int64_t>(v))
      return *i;
  return std::nullopt;
}

std::optional<double> AttrDict::getFloat(llvm::StringRef key) const {
  if (auto *v = get(key)) {
    if (auto *d = std::get_if<double>(v))
      return *d;
    if (auto *i = std::get_if<int64_t>(v))
      return double(*i);
  }
  return std::nullopt;
}

std::optional<bool> AttrDict::getBool(llvm::StringRef key) const {
  if (auto *v = get(key))
    if (auto *b = std::get_if<bool>(v))
      return *b;
  return std::nullopt;
}

std::optional<llvm::StringRef> AttrDict::getString(llvm::StringRef key) const {
  if (auto *v = get(key))
    if (auto *s = std::get_if<std::string>(v))
      return llvm::StringRef(*s);
  return std::nullopt;
}

std::optional<llvm::StringRef> AttrDict::getSymbol(llvm::StringRef key) const {
  if (auto *v = get(key))
    if (auto *s = std::get_if<Symbol>(v))
      return llvm::StringRef(s->name);
  return std::nullopt;
}

const std::vector<int64_t> *AttrDict::getInts(llvm::StringRef key) const {
  if (auto *v = get(key))
    return std::get_if<std::vector<int64_t>>(v);
  return nullptr;
}

std::string meg::ir::formatDouble(double d) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) // "inf"/"nan" contain 'n'
    s += ".0";
  return s;
}

void meg::ir::printAttrValue(llvm::raw_ostream &os, const AttrValue &v) {
  std::visit(
      [&](const auto &x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>)
          os << (x ? "true" : "false");
        else if constexpr (std::is_same_v<T, int64_t>)
          os << x;
        else if constexpr (std::is_same_v<T, double>)
          os << formatDouble(x);
        else if constexpr (std::is_same_v<T, std::string>) {
          os << '"';
          os.write_escaped(x);
          os << '"';
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          os << '[';
          for (size_t i = 0; i < x.size(); ++i)
            os << (i ? "," : "") << x[i];
          os << ']';
        } else
          os << x.name;
      },
      v);
}

void AttrDict::print(llvm::raw_ostream &os) const {
  if (map.empty())
    return;
  os << '{';
  bool first = true;
  for (auto &[k, v] : map) {
    os << (first ? "" : ", ") << k << " = ";
    printAttrValue(os, v);
    first = false;
  }
  os << '}';
}
