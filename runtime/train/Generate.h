//===- Generate.h - greedy decoding with an inference plan ------*- C++ -*-===//
//
// Greedy sampling from a GPT inference plan (megc --mode infer: input input_ids [1, S], output logits [1, S, V]):
// the prompt's byte-level tokens go at positions 0..n-1 (the causal mask keeps the rest of the window from
// mattering), the argmax of the logits at position n-1 is appended, and when the text is longer than S the window
// slides to its last S tokens. No KV cache: each token reruns the window, which is fine for a demo on a small model.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_GENERATE_H
#define MEG_RUNTIME_TRAIN_GENERATE_H

#include "runtime/train/Session.h"

#include "llvm/Support/Error.h"

#include <string>

namespace meg::runtime {

/// The prompt followed by `newTokens` greedily chosen bytes.
llvm::Expected<std::string> generateGreedy(Session &session, llvm::StringRef prompt, int64_t newTokens);

} // namespace meg::runtime

#endif
