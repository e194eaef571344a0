//===- HfCheckpoint.h - Hugging Face checkpoints as published ---*- C++ -*-===//
//
// A checkpoint as the Hugging Face hub publishes it, opened as one set of named tensors:
//   - a safetensors file;
//   - a sharded checkpoint's index (`model.safetensors.index.json`: {"metadata": {...}, "weight_map": {tensor name:
//     shard file name}}), the shards beside it;
//   - a model folder holding either of those (the index first, else `model.safetensors`).
// Every tensor the index names must be in the shard it names, and every tensor of a shard must be in the index.
// Tensors keep their stored dtype (F32, BF16, F16, ...); toFloats widens. Errors name the file.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_IO_HFCHECKPOINT_H
#define MEG_RUNTIME_IO_HFCHECKPOINT_H

#include "runtime/io/Safetensors.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>
#include <vector>

namespace meg::runtime {

/// The file names of a Hugging Face model folder.
inline constexpr const char *kHfWeightsFile = "model.safetensors";
inline constexpr const char *kHfIndexFile = "model.safetensors.index.json";

class HfCheckpoint {
public:
  /// Opens a safetensors file, an index file or a model folder (see above).
  static llvm::Expected<HfCheckpoint> open(llvm::StringRef path);

  /// The file that describes the checkpoint (the safetensors file or the index), for messages.
  llvm::StringRef path() const { return describedBy; }
  /// Every tensor name, sorted.
  std::vector<std::string> names() const;
  /// The tensor called `name`, or nullptr.
  const SafetensorsTensor *lookup(llvm::StringRef name) const;
  /// The values of a float tensor as f32; errors name the shard.
  llvm::Expected<std::vector<float>> toFloats(llvm::StringRef name) const;

private:
  HfCheckpoint() = default;
  std::string describedBy;
  std::vector<SafetensorsFile> files;
  std::map<std::string, size_t, std::less<>> fileOf; ///< tensor name -> index into files
};

} // namespace meg::runtime

#endif
