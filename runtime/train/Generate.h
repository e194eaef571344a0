//===- Generate.h - text generation with an inference plan ------*- C++ -*-===//
//
// Generation from a GPT inference plan (megc --mode infer: input input_ids [1, S], output logits [1, S, V]): the
// prompt's byte-level tokens go at positions 0..n-1 (the causal mask keeps the rest of the window from mattering),
// the next token is chosen from the logits at position n-1 (greedily or by a seeded draw: runtime/train/Sampler.h)
// and appended, and when the text is longer than S the window slides to its last S tokens. No KV cache: each token
// reruns the window, which is fine for a demo on a small model.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_GENERATE_H
#define MEG_RUNTIME_TRAIN_GENERATE_H

#include "runtime/train/Sampler.h"
#include "runtime/train/Session.h"

#include "llvm/Support/Error.h"

#include <string>

namespace meg::runtime {

struct GenerateOptions {
  std::string prompt;
  int64_t newTokens = 100;
  SamplingOptions sampling; ///< greedy unless told otherwise

  /// Errors (as megrun words them): no new token, bad sampling options (SamplingOptions::check).
  llvm::Error check() const;
};

/// Collective. The prompt followed by `options.newTokens` chosen bytes.
llvm::Expected<std::string> generate(Session &session, const GenerateOptions &options);

} // namespace meg::runtime

#endif
