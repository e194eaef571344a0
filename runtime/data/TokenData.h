//===- TokenData.h - token files, text corpora and the batcher -----------===//
//
// Token file format (all integers little-endian):
//
//   offset  size  field
//        0     8  magic "MEGTOK01"
//        8     4  u32 version (1 or 2)
//       12     4  u32 vocabulary size V (> 0)
//       16     8  u64 token count T
//       24     4  u32 tokenizer kind (0 = byte, 1 = gpt2-bpe)
//   version 1:
//       28  4*T   tokens, int32 each, every one in [0, V)
//   version 2 (written when there is document metadata, e.g. by megdata):
//       28     4  i32 end-of-document id E (-1: none, else in [0, V)); it
//                 follows every document (GPT-2 BPE: <|endoftext|>; byte
//                 level: 0x1E, runtime/data/Documents.h)
//       32     4  u32 F: size of the per-id flag table, 0 or V
//       36     F  one byte of TokenFlag bits per id (Documents.h: sentence
//                 ends), then zero bytes up to a multiple of 4 (P = padded F)
//   36+P  4*T     tokens, int32 each, every one in [0, V)
//
// Tokens are always int32 (not uint16 for small vocabularies): one layout,
// 4-byte aligned after the header, the same dtype as input_ids.
// The file size must be exactly header + 4*T.
//
// The Batcher cuts a token stream into non-overlapping windows of S+1 tokens
// (window w = tokens[w*(S+1), (w+1)*(S+1)) of its split; a partial window at
// the end of a split is dropped). The train split is the first
// (1 - ValidFraction) of the stream, the valid split the rest; or, with
// SplitBounds (Megatron's --split), the three ranges they give. Each epoch
// visits every window once in a Fisher-Yates order drawn from splitmix64
// seeded with Seed + Epoch (identical on every platform). Global window g
// (counting across epochs) is window order(g / W)[g % W]; step t consumes
// the B windows g = t*B .. t*B+B-1, so a batch may straddle two epochs.
// Row i of a batch: input_ids = window[0..S), labels = window[1..S+1).
//
//===----------------------------------------------------------------------===//

#ifndef MEG_RUNTIME_DATA_TOKENDATA_H
#define MEG_RUNTIME_DATA_TOKENDATA_H

#include "runtime/data/Tokenizer.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace meg::runtime {

constexpr llvm::StringLiteral TokenFileMagic = "MEGTOK01";
constexpr uint32_t TokenFileVersion = 2;   ///< the newest; 1 is read too
constexpr size_t TokenFileHeaderSize = 28; ///< version 1's header

/// Document metadata of a token file (version 2).
struct TokenFileMeta {
  int32_t EndOfDocument = -1;
  std::vector<uint8_t> Flags; ///< empty or one entry per id
};

/// Writes a token file atomically: version 1 when `Meta` is empty, else
/// version 2. Errors: vocabulary size 0, a token outside [0, VocabSize) (the
/// message gives its index), an end-of-document id outside it, or a flag table
/// whose size is not VocabSize.
llvm::Error writeTokenFile(llvm::StringRef Path, llvm::ArrayRef<int32_t> Tokens,
                           uint32_t VocabSize, TokenizerKind Kind,
                           const TokenFileMeta &Meta = {});

/// A validated token file, loaded into memory.
class TokenFile {
public:
  /// Reads and validates `Path`: magic, version, kind, vocabulary size, file
  /// size, and every token < vocabulary size. Errors read "<path>: <what>".
  static llvm::Expected<TokenFile> open(llvm::StringRef Path);

  llvm::StringRef path() const { return Path; }
  uint32_t vocabSize() const { return VocabSize; }
  TokenizerKind kind() const { return Kind; }
  llvm::ArrayRef<int32_t> tokens() const { return *Tokens; }
  uint32_t version() const { return Version; }
  /// Version 2's metadata (version 1: none).
  const TokenFileMeta &meta() const { return Meta; }
  /// The tokens, shareable with Batchers without a copy.
  std::shared_ptr<const std::vector<int32_t>> sharedTokens() const {
    return Tokens;
  }

private:
  TokenFile() = default;
  std::string Path;
  uint32_t VocabSize = 0;
  TokenizerKind Kind = TokenizerKind::Byte;
  uint32_t Version = TokenFileVersion;
  TokenFileMeta Meta;
  std::shared_ptr<const std::vector<int32_t>> Tokens;
};

/// How text files become documents (runtime/data/Documents.h).
struct CorpusOptions {
  /// A line holding exactly this ends a document; empty: one document per
  /// file.
  std::string SeparatorLine;
  /// Appended after every document when >= 0.
  int32_t EndOfDocument = -1;
};

/// Token stream built from text files with a tokenizer.
struct TextCorpus {
  std::vector<int32_t> Tokens;
  uint32_t VocabSize = 0;
  TokenizerKind Kind = TokenizerKind::Byte;
  TokenFileMeta Meta; ///< end-of-document id and flags (fromFiles)
  uint64_t Documents = 0;
  uint64_t Bytes = 0; ///< bytes of document text tokenized
  /// Where each document ends in Tokens (after its end-of-document id), by fromFiles(..., CorpusOptions).
  std::vector<uint64_t> DocumentEnds;

  /// Tokenizes `Text` as one document.
  static TextCorpus fromText(llvm::StringRef Text, const Tokenizer &Tok);
  /// Tokenizes each file as one document, in order; when `Separator` >= 0
  /// it is appended after every document (e.g. GPT-2's <|endoftext|>).
  static llvm::Expected<TextCorpus> fromFiles(llvm::ArrayRef<std::string> Paths,
                                              const Tokenizer &Tok,
                                              int32_t Separator = -1);
  /// Splits each file into documents (Options.SeparatorLine), tokenizes each
  /// document on its own and appends Options.EndOfDocument after each. Meta
  /// gets the end-of-document id and the tokenizer's flag table. Errors: an
  /// unreadable file, an end-of-document id outside the vocabulary.
  static llvm::Expected<TextCorpus> fromFiles(llvm::ArrayRef<std::string> Paths,
                                              const Tokenizer &Tok,
                                              const CorpusOptions &Options);
  /// writeTokenFile(Path, Tokens, VocabSize, Kind, Meta).
  llvm::Error write(llvm::StringRef Path) const;
};

enum class DataSplit { Train, Valid, Test };

struct BatcherOptions {
  int64_t SeqLen = 0;       ///< S: tokens per row
  int64_t MicroBatch = 0;   ///< B: rows per step, over all dp ranks
  double ValidFraction = 0; ///< the last fraction of the stream, in [0, 1)
  uint64_t Seed = 0;
  DataSplit Split = DataSplit::Train;
  bool Shuffle = true; ///< false: windows in stream order every epoch
  /// With 4 entries: the token bounds of the train, valid and test splits (runtime/data/Split.h), used instead of
  /// ValidFraction; empty: train and valid by ValidFraction (no test split).
  std::vector<uint64_t> SplitBounds;
};

/// Where the next batch starts: window `Index` of epoch `Epoch`'s order.
struct BatcherPosition {
  uint64_t Epoch = 0;
  uint64_t Index = 0;
  bool operator==(const BatcherPosition &O) const = default;
};
/// {"epoch": E, "index": I}, for checkpoints.
llvm::json::Value toJSON(const BatcherPosition &P);
bool fromJSON(const llvm::json::Value &V, BatcherPosition &P,
              llvm::json::Path Path);

/// One data-parallel rank's share of a step: row-major [Rows, SeqLen].
struct Batch {
  int64_t Rows = 0;
  int64_t SeqLen = 0;
  std::vector<int32_t> InputIds;
  std::vector<int32_t> Labels;
  /// Stream offset of each row's window (index into the whole stream).
  std::vector<uint64_t> RowOffsets;
  BatcherPosition Start; ///< position of the step's first window (all ranks)
};

class Batcher {
public:
  /// Errors: S or B not positive, ValidFraction outside [0, 1), or a split
  /// too short for one window of S+1 tokens.
  static llvm::Expected<Batcher>
  create(std::shared_ptr<const std::vector<int32_t>> Tokens,
         const BatcherOptions &Options);
  /// Same, copying `Tokens`.
  static llvm::Expected<Batcher> create(llvm::ArrayRef<int32_t> Tokens,
                                        const BatcherOptions &Options);

  const BatcherOptions &options() const { return Options; }
  /// W: windows per epoch in this split.
  uint64_t windowsPerEpoch() const { return NumWindows; }
  /// Token range [first, first + count) of this split in the stream.
  uint64_t splitBegin() const { return SplitBegin; }
  uint64_t splitSize() const { return SplitSize; }

  /// The rows [r*B/dp, (r+1)*B/dp) of step `Step` (counted from epoch 0,
  /// index 0), independent of position(). Errors: DpSize not dividing B, or
  /// DpRank >= DpSize.
  llvm::Expected<Batch> batchFor(uint64_t Step, unsigned DpRank = 0,
                                 unsigned DpSize = 1) const;
  /// The rows of this rank from the step at position(), then advances the
  /// position by B windows (every dp rank advances alike).
  llvm::Expected<Batch> next(unsigned DpRank = 0, unsigned DpSize = 1);

  BatcherPosition position() const { return Position; }
  /// Restores a saved position. Error: Index >= windowsPerEpoch().
  llvm::Error setPosition(BatcherPosition P);
  /// The position at which step `Step` starts.
  BatcherPosition positionOfStep(uint64_t Step) const;

  /// Window order of an epoch (a permutation of [0, W)).
  std::vector<uint64_t> epochOrder(uint64_t Epoch) const;

private:
  Batcher() = default;
  llvm::Expected<Batch> batchAt(uint64_t FirstWindow, unsigned DpRank,
                                unsigned DpSize) const;
  /// Window of global window number `G` (cached per epoch).
  uint64_t windowOf(uint64_t G) const;

  struct OrderCache {
    std::mutex Mutex;
    uint64_t Epochs[2] = {~0ull, ~0ull};
    std::vector<uint64_t> Orders[2];
  };

  std::shared_ptr<const std::vector<int32_t>> Tokens;
  BatcherOptions Options;
  uint64_t SplitBegin = 0, SplitSize = 0, NumWindows = 0;
  BatcherPosition Position;
  std::unique_ptr<OrderCache> Cache;
};

/// splitmix64 (Steele, Lea, Flood 2014): the batcher's generator.
class SplitMix64 {
public:
  explicit SplitMix64(uint64_t Seed) : State(Seed) {}
  uint64_t next();
  /// Uniform in [0, N) without modulo bias (N > 0).
  uint64_t below(uint64_t N);

private:
  uint64_t State;
};

} // namespace meg::runtime

#endif // MEG_RUNTIME_DATA_TOKENDATA_H
