//===- Sampler.cpp - choosing the next token from logits -----------------------===//
#include "runtime/train/Sampler.h"

#include "kernels/Philox.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

using namespace meg::runtime;

llvm::Error SamplingOptions::check() const {
  auto error = [](const llvm::Twine &what) { return llvm::createStringError(llvm::inconvertibleErrorCode(), what); };
  if (!(temperature >= 0))
    return error(llvm::formatv("--temperature must be >= 0 (got {0})", llvm::format("%g", temperature)));
  if (topK < 0)
    return error(llvm::formatv("--top-k must be >= 0 (got {0})", topK));
  if (!(topP > 0 && topP <= 1))
    return error(llvm::formatv("--top-p must be in (0, 1] (got {0})", llvm::format("%g", topP)));
  return llvm::Error::success();
}

double meg::runtime::samplingUniform(uint64_t seed, uint64_t position) {
  kernels::Philox4x32 ctr = {{uint32_t(position), uint32_t(position >> 32), 0, kSamplingStream}};
  kernels::Philox4x32 r = kernels::philox4x32(ctr, uint32_t(seed), uint32_t(seed >> 32));
  uint64_t high = r.v[0] >> 5, low = r.v[1] >> 6; // 27 + 26 bits
  return double((high << 26) | low) * 0x1p-53;
}

namespace {
/// The ids a sampling draw chooses from, most likely first, with their unnormalized probabilities.
struct Candidates {
  std::vector<int32_t> ids;
  std::vector<double> weights;
  double total = 0;
};
} // namespace

static Candidates filter(llvm::ArrayRef<float> logits, const SamplingOptions &options) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  size_t keep = order.size();
  if (options.topK > 0)
    keep = std::min(keep, size_t(options.topK));
  Candidates kept;
  double top = logits[order[0]];
  for (size_t i = 0; i < keep; ++i) {
    double w = std::exp((double(logits[order[i]]) - top) / options.temperature);
    kept.ids.push_back(order[i]);
    kept.weights.push_back(w);
    kept.total += w;
  }
  if (options.topP < 1) {
    // The shortest prefix whose share of the mass reaches topP.
    double mass = 0;
    size_t n = 0;
    while (n < kept.ids.size() && mass < options.topP * kept.total)
      mass += kept.weights[n++];
    kept.ids.resize(n);
    kept.weights.resize(n);
    kept.total = mass;
  }
  return kept;
}

std::vector<double> Sampler::distribution(llvm::ArrayRef<float> logits) const {
  assert(!logits.empty() && "no candidates to sample from");
  std::vector<double> probs(logits.size(), 0.0);
  if (isGreedy()) {
    probs[size_t(std::max_element(logits.begin(), logits.end()) - logits.begin())] = 1;
    return probs;
  }
  Candidates kept = filter(logits, options);
  for (size_t i = 0; i < kept.ids.size(); ++i)
    probs[size_t(kept.ids[i])] = kept.weights[i] / kept.total;
  return probs;
}

int32_t Sampler::sample(llvm::ArrayRef<float> logits, uint64_t position) const {
  assert(!logits.empty() && "no candidates to sample from");
  if (isGreedy())
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  Candidates kept = filter(logits, options);
  double target = samplingUniform(options.seed, position) * kept.total, mass = 0;
  for (size_t i = 0; i < kept.ids.size(); ++i) {
    mass += kept.weights[i];
    if (target < mass)
      return kept.ids[i];
  }
  return kept.ids.back(); // rounding: u * total at the very top of the mass
}
