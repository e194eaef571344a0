//===- Documents.h - documents and sentences of a corpus -------*- C++ -*-===//
//
// Text side (megdata): a corpus file is cut into documents either as a whole
// (one document per file) or at separator lines, e.g. the fortunes files' `%`
// lines: a line whose text, without its "\n" (and a "\r" before it), is
// exactly the separator ends a document and belongs to none. Documents that
// hold nothing but ASCII whitespace (" \t\r\n\v\f") are dropped.
//
// Token side (BERT pre-training data, runtime/data/BertData.h): a token stream is
// cut into documents and each document into sentences:
//   - documents end at the end-of-document id (token files from megdata: GPT-2
//     BPE's <|endoftext|>, byte level's 0x1E, see TokenData.h); the id itself
//     belongs to no document. A stream without one that is byte-level text
//     (megrun --data FILE.txt) is cut at `%` lines and at blank lines instead
//     (the `%` line and the blank line belong to no document);
//   - a sentence ends after a token whose text ends in '.', '!' or '?' when the
//     next token begins with whitespace (or the document ends). Which ids do is
//     a per-id flag table (TokenFlag) that megdata computes from the tokenizer
//     and stores in the token file; for byte-level data it is known without
//     one. Without flags a document is a single sentence. A tail of whitespace
//     tokens after a document's last sentence end joins that sentence.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_DATA_DOCUMENTS_H
#define MEG_RUNTIME_DATA_DOCUMENTS_H

#include "runtime/data/Tokenizer.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <vector>

namespace meg::runtime {

/// Byte level's end-of-document id: ASCII "record separator", which text does
/// not contain.
constexpr int32_t ByteEndOfDocument = 0x1E;

/// Splits `Text` into documents (see above). An empty `SeparatorLine`: the
/// whole text is one document (none if it is all whitespace).
std::vector<llvm::StringRef> splitDocuments(llvm::StringRef Text,
                                            llvm::StringRef SeparatorLine);

/// Per-id flags for sentence splitting (bit set, one byte per id).
enum TokenFlag : uint8_t {
  EndsWithSentencePunct = 1, ///< the token's text ends in '.', '!' or '?'
  StartsWithSpace = 2,       ///< the token's text begins with ASCII whitespace
  AllSpace = 4,              ///< the token's text is all ASCII whitespace
};

/// The flags of every id of `Tok` (from its decoded bytes; ids that do not
/// decode, e.g. holes in a vocabulary, get 0).
std::vector<uint8_t> tokenFlags(const Tokenizer &Tok);

/// How a token stream is cut into documents and sentences.
struct DocumentRule {
  int32_t EndOfDocument = -1;      ///< -1: none
  bool ByteTextSeparators = false; ///< `%` lines and blank lines (byte level)
  std::vector<uint8_t> Flags;      ///< per id; empty: no sentence boundaries
};

/// The rule for a stream of the given kind with the stored metadata (an empty
/// `Flags` of byte-level data is filled in; byte-level data without an
/// end-of-document id is cut at `%` lines and blank lines).
DocumentRule documentRuleFor(TokenizerKind Kind, int32_t EndOfDocument,
                             llvm::ArrayRef<uint8_t> Flags);

/// Half-open token range [Begin, End) of a stream.
struct TokenRange {
  uint64_t Begin = 0, End = 0;
  uint64_t size() const { return End - Begin; }
};

/// The documents and sentences of a token stream. Sentences are numbered over
/// the whole stream; document D owns sentences [FirstSentence[D],
/// FirstSentence[D+1]). Empty documents are not kept.
class DocumentIndex {
public:
  /// Indexes `Tokens` (positions are indices into `Tokens`).
  static DocumentIndex build(llvm::ArrayRef<int32_t> Tokens,
                             const DocumentRule &Rule);

  size_t numDocuments() const { return Docs.size(); }
  size_t numSentences() const { return Sentences.size(); }
  TokenRange document(size_t D) const { return Docs[D]; }
  TokenRange sentence(size_t S) const { return Sentences[S]; }
  size_t firstSentence(size_t D) const { return FirstSentence[D]; }
  size_t endSentence(size_t D) const { return FirstSentence[D + 1]; }
  /// The sentence that holds token `Pos`, or the first one after it (the last
  /// sentence when `Pos` is past every one). Needs at least one sentence.
  size_t sentenceAt(uint64_t Pos) const;
  /// The document of sentence `S`.
  size_t documentOf(size_t S) const;

private:
  std::vector<TokenRange> Docs, Sentences;
  std::vector<size_t> FirstSentence; ///< numDocuments() + 1 entries
};

} // namespace meg::runtime

#endif // MEG_RUNTIME_DATA_DOCUMENTS_H
