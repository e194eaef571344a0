//===- FuzzSafetensors.cpp - libFuzzer target: safetensors files ---------===//
//
// SafetensorsFile::fromBuffer (what open() runs on a file's bytes) on arbitrary bytes; every tensor of an accepted
// file is converted as the weight loaders do.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/Safetensors.h"

#include "llvm/Support/MemoryBuffer.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef bytes(reinterpret_cast<const char *>(data), size);
  auto file = meg::runtime::SafetensorsFile::fromBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(bytes, "fuzz.safetensors"), "fuzz.safetensors");
  if (!file) {
    llvm::consumeError(file.takeError());
    return 0;
  }
  for (const std::string &name : file->names()) {
    if (auto floats = file->toFloats(name); !floats)
      llvm::consumeError(floats.takeError());
    if (auto ints = file->toInt32(name); !ints)
      llvm::consumeError(ints.takeError());
  }
  return 0;
}
