//===- ActivationDump.h - every value of one training step, on disk -*- C++ -*-===//
//
// What `megrun --dump-activations DIR` writes and `megdiff` reads: the values one training step computed (every
// result of every forward and backward step, in schedule order), each assembled to its global shape.
//
//   DIR/values.safetensors  one f32 tensor per value, named by its key (16-bit values widened exactly)
//   DIR/index.json          {"format": "meg activations", "version": 1, "mesh": "dp=D tp=T", "step": S,
//                            "backend": "cpu", "vocab_rows": R, "vocab_padded": P,
//                            "values_checksum": "<xxHash64 of values.safetensors, 16 hex digits>",
//                            "values": [ one object per value, one per line, in schedule order:
//                              {"pos": i, "step": plan step index, "key": "gelu:0123456789ab", "ir": "%111",
//                               "op": "gelu", "phase": "forward" | "backward", "result": r, "dtype": "f32",
//                               "shape": [...]} ]}
//
// `key` is the value's mesh-independent name (ir/ValueKey.h): a value with the same key in two dumps is the same
// quantity; `ir` is its `%N` in `megc --emit ir` of the plans that wrote the dump. vocab_rows and vocab_padded are
// the vocabulary and its tp-padded size (0 when the plans do not pad): a dim of the padded size in one dump and of
// the vocabulary's in the other is compared over the vocabulary's rows. values.safetensors is written first and
// index.json last, both atomically, so a dump with an index is complete; the checksum ties them together.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_IO_ACTIVATIONDUMP_H
#define MEG_RUNTIME_IO_ACTIVATIONDUMP_H

#include "runtime/io/Safetensors.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace meg::runtime {

/// One value of a dump (an entry of index.json).
struct DumpedValue {
  int64_t step = 0;     ///< plan step index
  std::string key;      ///< ir/ValueKey.h
  std::string ir;       ///< `%N`
  std::string op;       ///< the op that produced it
  std::string phase;    ///< "forward" or "backward"
  int64_t result = 0;   ///< which result of the step
  std::string dtype;    ///< the plan's element type: f32, bf16, f16, i32
  std::vector<int64_t> shape; ///< global shape
};

/// What a dump says about the run that wrote it.
struct DumpHeader {
  std::string mesh;    ///< "dp=D tp=T"
  int64_t step = 1;    ///< the training step dumped (1-based)
  std::string backend; ///< "cpu", "cuda"
  int64_t vocabRows = 0, vocabPadded = 0;
};

/// Writes DIR/values.safetensors then DIR/index.json (creating DIR). `values[i]` holds value `index[i]`'s
/// elements (its global shape's count). Errors name the file.
llvm::Error writeActivationDump(llvm::StringRef dir, const DumpHeader &header, llvm::ArrayRef<DumpedValue> index,
                                llvm::ArrayRef<std::vector<float>> values);

/// A dump read back and checked: index.json parsed, values.safetensors opened, its checksum and every value's
/// tensor (present, f32, of the listed shape) verified.
class ActivationDump {
public:
  /// Errors (`<file>: <what>`): no such dump, unreadable, malformed index, another format or version, checksum
  /// mismatch, a value missing or of another shape, a key listed twice.
  static llvm::Expected<ActivationDump> load(llvm::StringRef dir);

  const DumpHeader &header() const { return head; }
  llvm::ArrayRef<DumpedValue> values() const { return index; }
  /// The elements of value `i` (the index's order).
  llvm::ArrayRef<float> data(size_t i) const;
  llvm::StringRef path() const { return dirPath; }

private:
  ActivationDump() = default;
  std::string dirPath;
  DumpHeader head;
  std::vector<DumpedValue> index;
  std::shared_ptr<SafetensorsFile> file;
  std::vector<std::vector<float>> floats; ///< by index position
};

} // namespace meg::runtime

#endif
