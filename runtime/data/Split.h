//===- Split.h - Megatron's --split: train, valid and test ------*- C++ -*-===//
//
// Megatron-LM's `--split 969,30,1` (get_train_valid_test_split_): up to three weights, separated by ',' or '/'
// (missing ones are 0), normalized to sum 1; over `size` units the bounds are b0 = 0, b(i+1) = b(i) +
// round(w(i) * size) (Python's round: half to even), then every bound but b0 is moved by the same amount so that b3 =
// size. Split i is [b(i), b(i+1)). Megatron's units are documents; meg's are the documents of an indexed dataset and
// the tokens of a token or text file.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_DATA_SPLIT_H
#define MEG_RUNTIME_DATA_SPLIT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>

namespace meg::runtime {

/// The weights of a --split string. Errors: a weight that is not a non-negative number, more than three, a zero sum.
llvm::Expected<std::array<double, 3>> parseSplit(llvm::StringRef text);

/// The four bounds of the train, valid and test splits of `size` units.
std::array<uint64_t, 4> splitBounds(const std::array<double, 3> &weights, uint64_t size);

} // namespace meg::runtime

#endif
