//===- FuzzCheckpoint.cpp - libFuzzer target: training checkpoints -------===//
//
// Checkpoint::load on a file made of the input: the input is the payload (a safetensors file with the checkpoint's
// metadata), framed with the magic, its size and its xxHash64 as saveCheckpoint writes them, so the fuzzer gets past
// the checksum into the payload's parsing (the header's own checks are tested in test/lit/checkpoint). An input
// starting with the magic is written as it is, to reach the header checks too.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/AtomicFile.h"
#include "runtime/train/Checkpoint.h"

#include "FuzzFile.h"

#include "llvm/Support/Endian.h"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef input(reinterpret_cast<const char *>(data), size);
  std::string file;
  if (input.startswith(meg::runtime::CheckpointMagic)) {
    file = input.str();
  } else {
    char header[16];
    llvm::support::endian::write64le(header, input.size());
    llvm::support::endian::write64le(header + 8, meg::runtime::checksum(input));
    file = (meg::runtime::CheckpointMagic + llvm::StringRef(header, 16) + input).str();
  }
  auto ckpt = meg::runtime::Checkpoint::load(meg::fuzz::writeInputFile(file, "ckpt"));
  if (!ckpt) {
    llvm::consumeError(ckpt.takeError());
    return 0;
  }
  volatile uint64_t sink = ckpt->state().step + ckpt->identity().hash;
  (void)sink;
  return 0;
}
