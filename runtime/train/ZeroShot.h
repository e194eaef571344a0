//===- ZeroShot.h - zero-shot WikiText perplexity and LAMBADA accuracy -*- C++ -*-===//
//
// The paper's zero-shot evaluations (Table 3) as Megatron-LM's tasks/zeroshot_gpt ran them, on a GPT inference plan
// (megc --mode infer: input_ids [B, S] in, logits [B, S, V] out; S is the window):
//   - wikitext: the detokenized test file's tokens in windows (runtime/data/ZeroShotData.h, LmWindows; B windows a
//     run), each scored target's loss -log softmax(logits)[target] summed in double; loss = sum / (tokens - 1),
//     ppl = exp(min(20, loss)), token_ratio = (tokens - 1) / (original_tokens - 1), adjusted_ppl =
//     exp(min(20, loss * token_ratio)) (Megatron's evaluate.py);
//   - lambada: each example's context and target in one window (context + target must fit in S + 1 tokens); correct
//     when the argmax of the logits (first maximum, over the real vocabulary) is the target at every target position;
//     accuracy = correct / total.
// Tokens: GPT-2 BPE when vocab and merges files (or a tokenizer.json) are given, else byte level (the model's vocabulary must then be 256).
// The logits are assembled over tp (Session::assembleOutput); only ids below the model's vocabulary count, never
// Megatron's padding.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_ZEROSHOT_H
#define MEG_RUNTIME_TRAIN_ZEROSHOT_H

#include "runtime/train/Session.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace meg::runtime {

struct ZeroShotOptions {
  std::string task;             ///< "wikitext" or "lambada"
  std::string dataPath;         ///< --task-data
  int64_t overlappingEval = 0;  ///< wikitext: targets scored per later window; 0: the window (disjoint windows)
  bool strictLambada = false;   ///< the last whitespace word is the target (else the last token)
  std::string vocabFile, mergeFile; ///< GPT-2 BPE; empty: byte level
  std::string tokenizerFile;        ///< GPT-2 BPE from a Hugging Face tokenizer.json

  /// Errors (as megrun words them): an unknown task, no data, one BPE file without the other, a negative overlap.
  llvm::Error check() const;
};

struct ZeroShotResult {
  std::string task;
  // wikitext
  double loss = 0, ppl = 0, adjustedPpl = 0, tokenRatio = 0;
  int64_t tokens = 0, originalTokens = 0, windows = 0;
  // lambada
  int64_t correct = 0, total = 0;
  double accuracy = 0;
  std::vector<uint8_t> exampleCorrect; ///< per example, in file order

  /// One line for stdout, e.g. `wikitext: ppl 12.3 adjusted_ppl 45.6 ...`.
  std::string summary() const;
  /// The JSON object --task-result writes.
  std::string json() const;
};

/// Collective. Runs the task on the session's plan (an inference plan with input_ids and logits).
llvm::Expected<ZeroShotResult> runZeroShot(Session &session, const ZeroShotOptions &options);

} // namespace meg::runtime

#endif
