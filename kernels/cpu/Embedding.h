// Embedding lookup on a (possibly vocabulary-split) table.
//
// Forward:  out[t, :] = table[ids[t] - rowOffset, :] if 0 <= ids[t] - rowOffset < rows, else 0.
//           On a tensor-parallel rank the table holds rows [rowOffset, rowOffset + rows) of the full vocabulary;
//           summing the ranks' outputs (all-reduce) gives the full lookup.
// Backward: dTable[r, :] = sum of dy[t, :] over the tokens t with ids[t] - rowOffset == r (0 for no token), tokens
//           added in order t = 0, 1, ...
//           Parallel over column blocks, so no two threads touch one element: bit-identical for any thread count.
#ifndef MEG_KERNELS_CPU_EMBEDDING_H
#define MEG_KERNELS_CPU_EMBEDDING_H

#include <cstdint>

namespace meg::kernels::cpu {

/// table [rows, dim], ids [tokens], out [tokens, dim] (overwritten).
void embeddingForward(const float *table, int64_t rows, int64_t dim, const int32_t *ids, int64_t tokens,
                      int64_t rowOffset, float *out);

/// dy [tokens, dim]; dTable [rows, dim] is overwritten (as the CUDA kernel's).
void embeddingBackward(const float *dy, const int32_t *ids, int64_t tokens, int64_t rowOffset, int64_t rows,
                       int64_t dim, float *dTable);

} // namespace meg::kernels::cpu

#endif // MEG_KERNELS_CPU_EMBEDDING_H
