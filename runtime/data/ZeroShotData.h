//===- ZeroShotData.h - the text side of zero-shot evaluation ---*- C++ -*-===//
//
// What Megatron-LM's zero-shot GPT tasks (tasks/zeroshot_gpt: datasets.py, detokenizer.py; the paper's Table 3)
// do to their data before the model sees it, step for step:
//
// WikiText (the word-level test file as published, e.g. wiki.test.tokens):
//   - original tokens = len(text.strip().split(" ")): the pieces between single spaces of the stripped file (so
//     newlines join words, and two spaces make an empty piece), counted before detokenizing;
//   - wikitextDetokenize: Megatron's wikitext_detokenizer, its replacements in its order: "s '" -> "s'"; the literal
//     pattern /' D/ (D a digit) -> /'[0-9]/ (Megatron's regex replacement is that literal text); " @-@ " -> "-",
//     " @,@ " -> ",", " @.@ " -> "."; " : " -> ": " and likewise ;  .  !  ?  , ; whitespace just inside each pair
//     of (), [], {}, "" and '' dropped (the first closing character after an opening one closes it, as the
//     non-greedy regexes do); "= = = =" -> "====", "= = =" -> "===", "= =" -> "=="; " ° " -> "°"; " \n" -> "\n",
//     "\n " -> "\n"; " N " -> " 1 "; " 's" -> "'s". Whitespace is ASCII's (Python's \s and str.strip() also take
//     Unicode spaces; published WikiText has none);
//   - the detokenized text is tokenized whole, and cut into windows (LmWindows, Megatron's _LMDataset).
// LAMBADA (jsonl, one {"text": ...} per line; blank lines skipped):
//   - default: the text's tokens; the last token is the target, the rest the context;
//   - strict (--strict-lambada): the last whitespace-separated word w is the target, tokenized as " " + w; the context
//     is the text before the last occurrence of w, stripped, tokenized.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_DATA_ZEROSHOTDATA_H
#define MEG_RUNTIME_DATA_ZEROSHOTDATA_H

#include "runtime/data/Tokenizer.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace meg::runtime {

/// Megatron's wikitext_detokenizer (see above).
std::string wikitextDetokenize(llvm::StringRef text);
/// Megatron's count of WikiText's original tokens: len(text.strip().split(" ")).
int64_t countOriginalTokens(llvm::StringRef text);

/// Megatron's _LMDataset: windows of seq + 1 tokens starting every `overlap` tokens (overlap = seq: disjoint
/// windows); window 0 scores all its seq targets, every later window only its last `overlap` (the targets before
/// were scored by an earlier window). Windows past the end are padded with `pad`, unscored. Every target (each token
/// but the first) is scored exactly once.
class LmWindows {
public:
  LmWindows(std::vector<int32_t> tokens, int64_t seq, int64_t overlap, int32_t pad);
  int64_t size() const { return count; }
  /// Window `i`: `input` gets its seq input tokens, `target` the token each position predicts, `scored` whether
  /// that position's loss counts.
  void window(int64_t i, std::vector<int32_t> &input, std::vector<int32_t> &target, std::vector<uint8_t> &scored) const;
  /// Targets scored over all windows: tokens - 1.
  int64_t targets() const { return tokens.empty() ? 0 : int64_t(tokens.size()) - 1; }

private:
  std::vector<int32_t> tokens;
  int64_t seq, overlap, count;
  int32_t pad;
};

struct LambadaExample {
  std::vector<int32_t> context, target;
};

/// Reads a LAMBADA jsonl file and tokenizes each example (see above). Errors: `<path>:<line>: <what>` for a line that
/// is not a JSON object with a string "text", a text without a word, or an example with no context token.
llvm::Expected<std::vector<LambadaExample>> readLambada(llvm::StringRef path, const Tokenizer &tokenizer,
                                                        bool strict);

} // namespace meg::runtime

#endif
