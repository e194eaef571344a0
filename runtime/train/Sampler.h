//===- Sampler.h - choosing the next token from logits ----------*- C++ -*-===//
//
// How --generate picks each next token from the logits of the last position:
//   - greedy (the default, and whenever the temperature is 0): the argmax, the lowest id among equal logits;
//   - sampling: the candidates are ordered by logit (descending, ties by id), cut to the first topK (0: all), turned
//     into probabilities softmax(logit / temperature) in double, cut to the shortest prefix whose mass is >= topP
//     (nucleus sampling, Holtzman et al. 2019; 1: all), renormalized, and one is drawn with a uniform number u in
//     [0, 1): the first candidate whose cumulative probability exceeds u times the kept mass.
// The filters are applied in Hugging Face's order (temperature, top-k, top-p), so top-k 1 is greedy.
// u is counter-based (Philox4x32-10, kernels/Philox.h): key = the seed, counter = (position low, position high,
// 0, kSamplingStream), with `position` the token's index in the text (prompt included), 53 bits from the first two
// output words. A draw is therefore a pure function of (seed, position, logits): the same seed gives the same text
// whatever the thread count or the tensor-parallel split, and each position gets its own independent number.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_SAMPLER_H
#define MEG_RUNTIME_TRAIN_SAMPLER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace meg::runtime {

struct SamplingOptions {
  bool greedy = true;       ///< argmax; false: draw from the filtered distribution
  double temperature = 1.0; ///< > 0 to sample; 0 means greedy
  int64_t topK = 0;         ///< keep the topK most likely ids; 0: off
  double topP = 1.0;        ///< keep the shortest most-likely prefix with mass >= topP, in (0, 1]; 1: off
  uint64_t seed = 1234;     ///< Philox key of the draws

  /// Errors (as megrun words them): a negative temperature, topK < 0, topP outside (0, 1].
  llvm::Error check() const;
};

/// The Philox stream (counter word 3) of the sampling draws: "SAMP", apart from the dropout and init streams.
constexpr uint32_t kSamplingStream = 0x53414d50u;

/// The uniform number in [0, 1) (53 bits) of the draw for token `position` under `seed`.
double samplingUniform(uint64_t seed, uint64_t position);

class Sampler {
public:
  explicit Sampler(SamplingOptions options) : options(options) {}

  /// The probabilities the draw for `logits` is made from (one per id; 0 for the ids the filters drop). Greedy: 1 at
  /// the argmax.
  std::vector<double> distribution(llvm::ArrayRef<float> logits) const;
  /// The id chosen for the token at `position` (its index in the text) from `logits` (non-empty).
  int32_t sample(llvm::ArrayRef<float> logits, uint64_t position) const;

private:
  bool isGreedy() const { return options.greedy || options.temperature == 0; }
  SamplingOptions options;
};

} // namespace meg::runtime

#endif
