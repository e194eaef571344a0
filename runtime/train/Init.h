//===- Init.h - seeded parameter initialization -----------------*- C++ -*-===//
//
// Megatron's init (normal(0, std) for weights, zeros for biases, ones for LayerNorm gains), independent of the
// number of ranks: element i (row-major index in the param's GLOBAL IR shape) of param `name` is std * z_i with
//   (z_2k, z_2k+1) = sqrt(-2 ln u1) (cos(2 pi u2), sin(2 pi u2))   (Box-Muller),
//   (u1, u2) from Philox4x32-10 with key = seed and counter = (k low, k high, h low, h high),
//   h = FNV-1a 64 of the name, u1 = (w0 + 1) / 2^32 in (0, 1], u2 = w1 / 2^32, computed in double. A shard therefore holds exactly its part of
// the unsharded tensor. Rows of a vocab-padded table at or beyond vocab_rows are zero (they never exist in a
// Hugging Face file, so saving and loading reproduces the same weights).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_INIT_H
#define MEG_RUNTIME_TRAIN_INIT_H

#include "runtime/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <vector>

namespace meg::runtime {

/// FNV-1a 64-bit hash.
uint64_t fnv1a64(llvm::StringRef data);

/// The standard normal draw for element `globalIndex` of the stream (seed, nameHash).
double initNormal(uint64_t seed, uint64_t nameHash, uint64_t globalIndex);

/// This rank's shard of `param` (param.numel() floats), initialized from `seed`.
std::vector<float> initParamShard(const PlanParam &param, uint64_t seed);

} // namespace meg::runtime

#endif
