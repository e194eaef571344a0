//===- Tokenizer.h - byte and GPT-2 BPE tokenizers ------------------------===//
//
// ByteTokenizer: id = byte value (vocabulary 256).
//
// Gpt2BpeTokenizer: Hugging Face's GPT2Tokenizer (the slow, Python one),
// step for step:
//  1. split out special tokens ("<|endoftext|>" when the vocabulary has it;
//     matched exactly, no whitespace stripping, as HF's AddedToken(lstrip=
//     False, rstrip=False));
//  2. pre-tokenize each remaining piece with the pattern
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
//       ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     (a hand-written scanner over UTF-8 code points, see Tokenizer.cpp);
//  3. map each piece's UTF-8 bytes through bytes_to_unicode;
//  4. apply BPE merges by rank (merges.txt: the first line and the last line
//     are dropped, exactly as HF's `read().split("\n")[1:-1]`);
//  5. look the symbols up in vocab.json (unknown -> the unk token).
// decode() inverts steps 5..3 and returns the raw bytes (HF would replace
// invalid UTF-8 with U+FFFD).
//
// Unicode classes (\p{L}, \p{N}, \s) are exact for ASCII; above ASCII they
// come from a range table generated with Python's `regex` 2026.5.9 (Unicode
// 17), the module HF's tokenizer uses. Bytes that are not valid UTF-8 (which
// a Python str cannot contain) are treated as single "other" characters.
//
//===----------------------------------------------------------------------===//

#ifndef MEG_RUNTIME_DATA_TOKENIZER_H
#define MEG_RUNTIME_DATA_TOKENIZER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace meg::runtime {

/// Tokenizer kinds; the numbers are stored in token files (TokenData.h).
enum class TokenizerKind : uint32_t { Byte = 0, Gpt2Bpe = 1 };

class Tokenizer {
public:
  virtual ~Tokenizer();
  virtual TokenizerKind kind() const = 0;
  /// Number of ids: every id produced by encode() is < vocabSize().
  virtual uint32_t vocabSize() const = 0;
  virtual std::vector<int32_t> encode(llvm::StringRef Text) const = 0;
  /// The bytes for `Ids`; an error for an id outside the vocabulary.
  virtual llvm::Expected<std::string>
  decode(llvm::ArrayRef<int32_t> Ids) const = 0;
};

class ByteTokenizer final : public Tokenizer {
public:
  TokenizerKind kind() const override { return TokenizerKind::Byte; }
  uint32_t vocabSize() const override { return 256; }
  std::vector<int32_t> encode(llvm::StringRef Text) const override;
  llvm::Expected<std::string>
  decode(llvm::ArrayRef<int32_t> Ids) const override;
};

class Gpt2BpeTokenizer final : public Tokenizer {
public:
  /// Loads vocab.json and merges.txt. Errors name the file and the problem.
  static llvm::Expected<std::unique_ptr<Gpt2BpeTokenizer>>
  load(llvm::StringRef VocabJsonPath, llvm::StringRef MergesTxtPath);
  /// Same, from the two files' contents (names used in error messages).
  static llvm::Expected<std::unique_ptr<Gpt2BpeTokenizer>>
  fromStrings(llvm::StringRef VocabJson, llvm::StringRef MergesTxt,
              llvm::StringRef VocabName = "vocab.json",
              llvm::StringRef MergesName = "merges.txt");

  /// Loads a Hugging Face tokenizers file (tokenizer.json) of a byte-level BPE: "model": {"type": "BPE", "vocab":
  /// {token: id}, "merges": ["a b", ...] or [["a", "b"], ...]}; the same tokenizer as vocab.json + merges.txt
  /// (TokenizerJson.cpp). Errors name the file and the key.
  static llvm::Expected<std::unique_ptr<Gpt2BpeTokenizer>>
  loadTokenizerJson(llvm::StringRef TokenizerJsonPath);

  TokenizerKind kind() const override { return TokenizerKind::Gpt2Bpe; }
  /// Largest id in vocab.json plus one (50257 for GPT-2).
  uint32_t vocabSize() const override { return VocabSize; }
  std::vector<int32_t> encode(llvm::StringRef Text) const override;
  llvm::Expected<std::string>
  decode(llvm::ArrayRef<int32_t> Ids) const override;

  /// The BPE symbols of `Text` (HF's `tokenize`), e.g. {"Hello", "Ġworld"}.
  std::vector<std::string> tokenize(llvm::StringRef Text) const;
  /// Id of `Token` in the vocabulary, or -1.
  int32_t tokenToId(llvm::StringRef Token) const;
  /// The id used for symbols missing from the vocabulary, or -1 if none.
  int32_t unkId() const { return UnkId; }
  /// Id of "<|endoftext|>", or -1.
  int32_t endOfTextId() const { return tokenToId("<|endoftext|>"); }

private:
  Gpt2BpeTokenizer() = default;
  /// BPE-merges one pre-token (already mapped through bytes_to_unicode).
  std::vector<std::string> bpe(llvm::StringRef Token) const;
  void encodeOrdinary(llvm::StringRef Text, std::vector<int32_t> &Out) const;
  /// Calls `Callback(Segment, IsSpecial)` for the special tokens of `Text`
  /// and the ordinary text between them, in order.
  void forEachSegment(
      llvm::StringRef Text,
      llvm::function_ref<void(llvm::StringRef, bool)> Callback) const;

  llvm::StringMap<int32_t> Encoder;
  std::vector<std::string> Decoder;     // id -> token ("" for holes)
  llvm::StringMap<uint32_t> MergeRanks; // "first second" -> rank
  std::vector<std::string> SpecialTokens;
  uint32_t VocabSize = 0;
  int32_t UnkId = -1;
  mutable std::mutex CacheMutex;
  mutable llvm::StringMap<std::vector<int32_t>> Cache;
};

/// HF's GPT-2 pre-tokenization: the pieces matched by the pattern above, in
/// order (their concatenation is `Text`).
std::vector<llvm::StringRef> gpt2PreTokenize(llvm::StringRef Text);

/// HF's bytes_to_unicode(): the code point that byte `B` is shown as.
uint32_t gpt2ByteToCodePoint(uint8_t B);

} // namespace meg::runtime

#endif // MEG_RUNTIME_DATA_TOKENIZER_H
