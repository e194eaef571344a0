//===- TaskData.h - BERT fine-tuning examples (multiple choice, sentence pairs) -*- C++ -*-===//
//
// The text side of fine-tuning a BERT with a task head (frontend/Bert.cpp: BertForMultipleChoice,
// BertForSequenceClassification), from jsonl files, one example per line (blank lines skipped):
//   race (multiple choice, RACE's shape with one question per line):
//     {"article": str, "question": str, "options": [C strings], "answer": "A".."D"}
//     Each option o becomes one row: qa = the question with its "_" replaced by o when it has one, else
//     question + " " + o (Megatron's tasks/race); row = [CLS] article [SEP] qa [SEP] [PAD]..., token types 0 for
//     [CLS] article [SEP], 1 for qa [SEP], 0 for padding; attention mask 1 but 0 on padding. Rows longer than S are
//     cut from the article side (its end); a qa longer than S - 3 is cut at its end and leaves no article.
//     label = the answer's index (A = 0).
//   pair (sequence classification): {"text_a": str, "text_b": str (optional), "label": int in [0, num_labels)}
//     row = [CLS] a [SEP] b [SEP] (or [CLS] a [SEP] without text_b); too long: the longer text loses its last
//     token until the row fits (Hugging Face's longest_first truncation).
// Tokens: byte level when the model's vocabulary is 256 (BERT's specials 253..255 never occur in UTF-8 text), else
// GPT-2 BPE (vocab.json + merges.txt or tokenizer.json) whose ids must lie below the specials (V - 3); special ids as
// pre-training's (runtime/data/BertData.h).
// Errors: `<file>:<line>: <what>` (not JSON, a missing or mistyped key, an option count other than the model's C, an
// answer or label out of range), `<file>: no examples`.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_DATA_TASKDATA_H
#define MEG_RUNTIME_DATA_TASKDATA_H

#include "runtime/data/Batch.h"
#include "runtime/data/BertData.h"
#include "runtime/data/Tokenizer.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace meg::runtime {

enum class TaskKind { Race, Pair };

/// "race" | "pair".
std::optional<TaskKind> parseTaskKind(llvm::StringRef name);

struct TaskDataOptions {
  TaskKind kind = TaskKind::Race;
  int64_t seq = 0;       ///< S
  int64_t choices = 4;   ///< race: options per example (the plan's C)
  int64_t numLabels = 2; ///< pair: classes
  BertSpecialIds ids;
};

/// Every example of a file laid out as rows: `rowsPerExample` (C for race, 1 for pair) rows of S ids each.
struct TaskExamples {
  int64_t rowsPerExample = 1, seq = 0;
  std::vector<int32_t> inputIds, tokenTypes, mask; ///< [examples, rowsPerExample, S]
  std::vector<int32_t> labels;                    ///< [examples]
  int64_t size() const { return int64_t(labels.size()); }
};

/// The tokenizer of a task: GPT-2 BPE from `tokenizerFile` or `vocabFile` + `mergeFile`, else byte level (the
/// model's vocabulary `modelVocab` must then be 256). Errors: BPE ids that reach BERT's specials, other vocabularies.
llvm::Expected<std::unique_ptr<Tokenizer>> makeTaskTokenizer(llvm::StringRef vocabFile, llvm::StringRef mergeFile,
                                                             llvm::StringRef tokenizerFile, int64_t modelVocab);

/// Reads and lays out a task file (see above).
llvm::Expected<TaskExamples> readTaskExamples(llvm::StringRef path, const Tokenizer &tokenizer,
                                              const TaskDataOptions &options);

/// The batch of examples `examples` (file indices): input_ids, token_type_ids, attention_mask [B, C, S] for race or
/// [B, S] for pair, and labels [B].
GlobalBatch taskBatch(const TaskExamples &data, llvm::ArrayRef<int64_t> examples, bool choices);

/// The examples of global batch `step` of B rows: every example once per epoch, in an order shuffled per epoch from
/// `seed` (Fisher-Yates over SplitMix64(seed, epoch)).
std::vector<int64_t> taskBatchExamples(int64_t numExamples, int64_t rows, uint64_t step, uint64_t seed);

} // namespace meg::runtime

#endif
