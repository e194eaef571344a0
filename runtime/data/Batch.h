//===- Batch.h - one step's named integer tensors ---------------*- C++ -*-===//
//
// What every batch source produces (runtime/data/BatchSource.h for plans, runtime/data/BertData.h for sentence
// pairs): the GLOBAL batch of one step, named i32 tensors with their global shapes.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_DATA_BATCH_H
#define MEG_RUNTIME_DATA_BATCH_H

#include "llvm/ADT/SmallVector.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace meg::runtime {

/// A label that does not count in the loss (PyTorch's ignore_index).
constexpr int32_t kIgnoreLabel = -100;

struct IntTensor {
  llvm::SmallVector<int64_t, 4> shape;
  std::vector<int32_t> data;
};

/// Named i32 tensors of one step, global shapes.
struct GlobalBatch {
  std::map<std::string, IntTensor> tensors;
  /// Label positions that count in the loss (labels != -100).
  int64_t targetTokens() const {
    auto it = tensors.find("labels");
    if (it == tensors.end())
      return 0;
    int64_t n = 0;
    for (int32_t l : it->second.data)
      n += l != kIgnoreLabel;
    return n;
  }
};

} // namespace meg::runtime

#endif
