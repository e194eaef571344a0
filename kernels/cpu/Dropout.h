// Inverted dropout with counter-based (Philox) masks keyed by GLOBAL element index.
//
// y_i = keep_i ? x_i / (1 - p) : 0,   keep_i = uniform(key, globalIndex(i)) >= p,   p == 0: y = x exactly.
// The tensor may be a shard of a larger (global) tensor: GlobalView gives the local shape, the global shape and the
// shard's offset per dim, and globalIndex(i) is the row-major index in the global tensor of local element i. A
// shard therefore draws exactly the mask the unsharded tensor draws on the same elements.
// Backward applies the same (recomputed) mask and scale to dy.
#ifndef MEG_KERNELS_CPU_DROPOUT_H
#define MEG_KERNELS_CPU_DROPOUT_H

#include "kernels/Philox.h"

#include <cstdint>

namespace meg::kernels::cpu {

struct GlobalView {
  const int64_t *localShape = nullptr;
  /// Null means the local tensor is the whole tensor (globalShape = localShape, offset = 0).
  const int64_t *globalShape = nullptr;
  const int64_t *offset = nullptr;
  int rank = 0;
};

void dropoutForward(const float *x, const GlobalView &view, float p, const PhiloxKey &key, float *y);
/// dx is overwritten (dx == dy is allowed).
void dropoutBackward(const float *dy, const GlobalView &view, float p, const PhiloxKey &key, float *dx);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_DROPOUT_H
