//===- FuzzTokens.cpp - libFuzzer target: token files --------------------===//
//
// TokenFile::open on a file holding the input.
//
//===----------------------------------------------------------------------===//
#include "runtime/data/TokenData.h"

#include "FuzzFile.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef input(reinterpret_cast<const char *>(data), size);
  auto tokens = meg::runtime::TokenFile::open(meg::fuzz::writeInputFile(input, "tok"));
  if (!tokens) {
    llvm::consumeError(tokens.takeError());
    return 0;
  }
  volatile size_t sink = tokens->tokens().size() + tokens->meta().Flags.size();
  (void)sink;
  return 0;
}
