//===- IndexedDataset.h - Megatron's indexed datasets (.bin + .idx) -*- C++ -*-===//
//
// The files Megatron-LM's tools/preprocess_data.py writes and its GPT datasets read
// (megatron/core/datasets/indexed_dataset.py), for a prefix P: P.bin holds the tokens of every sequence, P.idx
// describes them (all integers little-endian):
//
//   offset        size   field
//        0           9   "MMIDIDX\0\0"
//        9           8   u64 version, 1
//       17           1   u8 dtype code of the tokens in P.bin: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
//                        6 float64, 7 float32, 8 uint16
//       18           8   u64 sequence count N
//       26           8   u64 document count D (entries of the document index: documents + 1)
//       34         4 N   i32 sequence lengths (tokens)
//    34+4N         8 N   i64 sequence pointers (byte offsets into P.bin)
//   34+12N         8 D   i64 document index: the sequence index where each document starts, from 0 up to N
//                        (document d = sequences [index[d], index[d+1]))
//   [34+12N+8D     N     i8 sequence modes: multimodal datasets only; ignored]
//
// Megatron's writer stores a vocabulary below 65500 as uint16, else int32, and one sequence per document (with
// --append-eod the end-of-document id is its last token). meg reads every dtype code (float values must be
// non-negative integers below 2^31) and flattens the sequences, in order, into one token stream; the document index
// gives the documents' token ranges (for --split). Errors name the file and what is wrong.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_DATA_INDEXEDDATASET_H
#define MEG_RUNTIME_DATA_INDEXEDDATASET_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace meg::runtime {

struct IndexedDataset {
  uint8_t dtypeCode = 0;
  std::shared_ptr<std::vector<int32_t>> tokens; ///< every sequence, in order
  /// Token offset where each document starts, plus the stream's end (documents + 1 entries).
  std::vector<uint64_t> documentStarts;
  uint64_t sequences = 0;

  uint64_t documents() const { return documentStarts.empty() ? 0 : documentStarts.size() - 1; }
};

/// Reads PREFIX.idx and PREFIX.bin (see above).
llvm::Expected<IndexedDataset> readIndexedDataset(llvm::StringRef prefix);

/// Megatron's choice of token dtype: uint16 (code 8) below 65500 ids, else int32 (code 4).
uint8_t indexedDatasetDTypeFor(uint32_t vocabSize);

/// Writes PREFIX.bin and PREFIX.idx, atomically, with one sequence per document: document d is
/// tokens[documentEnds[d-1], documentEnds[d]) (the first from 0); the dtype is indexedDatasetDTypeFor(vocabSize).
llvm::Error writeIndexedDataset(llvm::StringRef prefix, llvm::ArrayRef<int32_t> tokens,
                                llvm::ArrayRef<uint64_t> documentEnds, uint32_t vocabSize);

} // namespace meg::runtime

#endif
