//===- Json.cpp - JSON parsing with bounded nesting -----------------------===//
#include "ir/Json.h"

#include "llvm/Support/FormatVariadic.h"

using namespace meg;

llvm::Expected<llvm::json::Value> meg::parseJson(llvm::StringRef text) {
  unsigned depth = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i; // the escaped character cannot end the string
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"')
      inString = true;
    else if ((c == '[' || c == '{') && ++depth > kMaxJsonDepth)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     llvm::formatv("JSON nested deeper than {0} levels (at byte {1})", kMaxJsonDepth, i));
    else if ((c == ']' || c == '}') && depth > 0)
      --depth;
  }
  return llvm::json::parse(text);
}
