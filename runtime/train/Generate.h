//===- Generate.h - text generation with an inference or decode plan -*- C++ -*-===//
//
// Generation from a GPT plan, byte-level tokens, the next token chosen from the logits of the last position (greedily
// or by a seeded draw: runtime/train/Sampler.h) and appended:
//   - an inference plan (megc --mode infer: input input_ids [1, S], output logits [1, S, V]): the prompt goes at
//     positions 0..n-1 (the causal mask keeps the rest of the window from mattering) and every new token reruns the
//     whole window; when the text is longer than S the window slides to its last S tokens. n new tokens cost n passes
//     over S positions.
//   - a decode plan (megc --mode decode: inputs input_ids [1, 1] and position [1, 1], output logits [1, 1, V], KV-cache
//     states `kv_cache.{k,v}:<layer>` [1, C, heads, head_dim]): one pass per token, each writing its keys and values
//     into the caches at its position and attending to the positions before it. The prompt (its prefill) is fed one
//     token per pass too, so n new tokens after a prompt of p cost p + n - 1 one-token passes; or, with a prefill
//     plan (a decode plan of T tokens per pass: megc --mode decode --decode-tokens T, same model, mesh and cache), in
//     ceil(p / T) passes of T positions (the last one padded with position -1: nothing written, rows ignored),
//     after which its caches are copied into the decode plan's and n - 1 one-token passes follow. The text must fit
//     the cache: p + n - 1 <= C (megc --seq), checked before any pass. A generation overwrites the caches from
//     position 0.
// Both give the same logits at every position (within float rounding) and, greedily, the same text.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_GENERATE_H
#define MEG_RUNTIME_TRAIN_GENERATE_H

#include "runtime/train/Sampler.h"
#include "runtime/train/Session.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace meg::runtime {

struct GenerateOptions {
  std::string prompt;
  int64_t newTokens = 100;
  SamplingOptions sampling; ///< greedy unless told otherwise
  /// --dump-logits FILE: keep the logits of every position computed (GenerateResult::logits) for writeLogits.
  std::string logitsPath;
  /// --prefill-plan DIR: a decode plan of several tokens per pass that computes the prompt (Trainer::generate loads it
  /// into a second session with the same weights).
  std::string prefillPlan;

  /// Errors (as megrun words them): no new token, bad sampling options (SamplingOptions::check).
  llvm::Error check() const;
};

struct GenerateResult {
  std::string text; ///< the prompt followed by the chosen bytes
  /// With GenerateOptions::logitsPath: row p (vocab floats, the model's real ids) holds the logits computed at text
  /// position p, the ones that predict token p + 1, for p = 0 .. length - 2, in order. An inference plan computes the
  /// prompt's rows in its first pass (positions of the first window) and one row per later pass.
  std::vector<float> logits;
  int64_t vocab = 0;
  int64_t passes = 0;  ///< forward passes run
  double seconds = 0;  ///< wall time of the passes (feeding and reading the logits included)
};

/// Collective. Generates `options.newTokens` bytes after the prompt; with a decode plan, `prefill` (a session of a
/// prefill plan, or null) computes the prompt.
llvm::Expected<GenerateResult> generate(Session &session, const GenerateOptions &options, Session *prefill = nullptr);

/// Writes result.logits to `path` as safetensors: one f32 tensor "logits" [positions, vocab], and the metadata
/// "passes" and "seconds" (for test/bench/decode_throughput.sh).
llvm::Error writeLogits(const GenerateResult &result, llvm::StringRef path);

} // namespace meg::runtime

#endif
