//===- FuzzConfig.cpp - libFuzzer target: the model-config parser --------===//
//
// parseModelConfig on arbitrary bytes; an accepted config's derived sizes are computed as megc does.
//
//===----------------------------------------------------------------------===//
#include "frontend/ModelConfig.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  auto config = meg::frontend::parseModelConfig(text, "fuzz.json");
  if (!config) {
    llvm::consumeError(config.takeError());
    return 0;
  }
  volatile int64_t sink = config->headDim() + config->paddedVocab(1) + config->paddedVocab(8);
  (void)sink;
  return 0;
}
