//===- Safetensors.h - safetensors reader and writer ----------------------===//
//
// The safetensors format (https://github.com/huggingface/safetensors):
//
//   u64 little-endian N | N bytes of JSON header | data bytes
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end]} (offsets relative to the start of the data) plus an optional
// "__metadata__" object of string -> string. Validation follows the reference
// implementation: the tensors, sorted by offset, tile the data exactly (no
// overlap, no hole, nothing after the last tensor) and each tensor's byte
// size equals product(shape) * sizeof(dtype). Data is little-endian.
//
// The writer emits what the reference Python/Rust implementation emits:
// compact JSON with "__metadata__" first (when present, keys sorted), then
// the tensors in the reference's data order -- dtype descending in the
// reference's dtype order (U64, I64, F64, F32, U32, I32, BF16, F16, ...),
// ties by name -- so every tensor is aligned to its element size; contiguous
// offsets; the header padded with spaces to a multiple of 8 bytes. The output
// is deterministic and, for at most one metadata key, byte-identical to
// safetensors.torch.save_file.
//
//===----------------------------------------------------------------------===//

#ifndef MEG_RUNTIME_IO_SAFETENSORS_H
#define MEG_RUNTIME_IO_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class MemoryBuffer;
} // namespace llvm

namespace meg::runtime {

/// Element types of the safetensors format (names as in the header), in the
/// reference implementation's declaration order (the writer relies on it).
enum class SafetensorsDType : uint8_t {
  Bool,   // "BOOL"
  U8,     // "U8"
  I8,     // "I8"
  F8E5M2, // "F8_E5M2"
  F8E4M3, // "F8_E4M3"
  I16,    // "I16"
  U16,    // "U16"
  F16,    // "F16"
  BF16,   // "BF16"
  I32,    // "I32"
  U32,    // "U32"
  F32,    // "F32"
  F64,    // "F64"
  I64,    // "I64"
  U64,    // "U64"
};

/// The header spelling of `T`, e.g. "BF16".
llvm::StringRef dtypeName(SafetensorsDType T);
/// Parses a header spelling; std::nullopt when unknown.
std::optional<SafetensorsDType> parseDType(llvm::StringRef Name);
/// Bytes per element.
size_t dtypeSize(SafetensorsDType T);

/// One tensor of an open file; `Bytes` points into the file's buffer.
struct SafetensorsTensor {
  std::string Name;
  SafetensorsDType DType = SafetensorsDType::F32;
  std::vector<int64_t> Shape;
  uint64_t Begin = 0, End = 0; // offsets relative to the data start
  llvm::ArrayRef<uint8_t> Bytes;

  int64_t numElements() const;
};

/// A read-only, validated safetensors file (memory-mapped when large).
/// Movable; tensor byte views stay valid as long as the file object lives.
class SafetensorsFile {
public:
  /// Opens and validates `Path`. Every malformed input is an error of the
  /// form "<path>: <what is wrong>".
  static llvm::Expected<SafetensorsFile> open(llvm::StringRef Path);
  /// Parses a file already in memory; `Name` is used in error messages.
  static llvm::Expected<SafetensorsFile>
  fromBuffer(std::unique_ptr<llvm::MemoryBuffer> Buffer, llvm::StringRef Name);

  llvm::StringRef path() const { return Path; }
  /// Tensor names, sorted.
  std::vector<std::string> names() const;
  size_t size() const { return Tensors.size(); }
  bool contains(llvm::StringRef Name) const;
  /// The tensor called `Name`, or nullptr.
  const SafetensorsTensor *lookup(llvm::StringRef Name) const;
  /// The tensor called `Name`, or an error naming the file and the tensor.
  llvm::Expected<const SafetensorsTensor &> get(llvm::StringRef Name) const;
  /// The "__metadata__" entries (empty when absent).
  const std::map<std::string, std::string> &metadata() const {
    return Metadata;
  }

  /// Values of a F32/BF16/F16/F64 tensor as floats (error for other dtypes).
  llvm::Expected<std::vector<float>> toFloats(llvm::StringRef Name) const;
  /// Values of an I32/I64 tensor as int32 (error for other dtypes or when an
  /// I64 value does not fit).
  llvm::Expected<std::vector<int32_t>> toInt32(llvm::StringRef Name) const;

private:
  SafetensorsFile() = default;
  std::string Path;
  std::shared_ptr<llvm::MemoryBuffer> Buffer;
  std::map<std::string, SafetensorsTensor, std::less<>> Tensors;
  std::map<std::string, std::string> Metadata;
};

/// Collects tensors and writes them as one safetensors file.
class SafetensorsWriter {
public:
  /// Adds a tensor; the bytes are copied. Errors: empty or duplicate name,
  /// the reserved name "__metadata__", a negative dimension, or a byte count
  /// other than product(Shape) * dtypeSize(DType).
  llvm::Error add(llvm::StringRef Name, SafetensorsDType DType,
                  llvm::ArrayRef<int64_t> Shape, llvm::ArrayRef<uint8_t> Bytes);
  llvm::Error addF32(llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape,
                     llvm::ArrayRef<float> Values);
  /// Adds float values stored as `DType`: F32, or BF16 / F16 rounded to
  /// nearest even (kernels/Half.h).
  llvm::Error addFloats(llvm::StringRef Name, SafetensorsDType DType,
                        llvm::ArrayRef<int64_t> Shape,
                        llvm::ArrayRef<float> Values);
  llvm::Error addI32(llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape,
                     llvm::ArrayRef<int32_t> Values);
  llvm::Error addI64(llvm::StringRef Name, llvm::ArrayRef<int64_t> Shape,
                     llvm::ArrayRef<int64_t> Values);
  /// Sets a "__metadata__" entry (replacing an earlier value for `Key`).
  void setMetadata(llvm::StringRef Key, llvm::StringRef Value);

  size_t size() const { return Tensors.size(); }
  /// The complete file contents.
  std::string serialize() const;
  /// Writes the file atomically (see AtomicFile.h).
  llvm::Error write(llvm::StringRef Path) const;

private:
  struct Entry {
    std::string Name;
    SafetensorsDType DType;
    std::vector<int64_t> Shape;
    std::vector<uint8_t> Bytes;
  };
  /// Tensors in file order.
  std::vector<const Entry *> layout() const;
  std::string header() const;
  std::map<std::string, Entry, std::less<>> Tensors;
  std::map<std::string, std::string> Metadata;
};

} // namespace meg::runtime

#endif // MEG_RUNTIME_IO_SAFETENSORS_H
