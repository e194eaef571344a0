//===- ShardCopy.h - copying a shard out of / into a full tensor -*- C++ -*-===//
//
// A shard is the box [offset, offset + shape) of a row-major tensor of shape `global`. extractShard copies the box
// out of the full tensor (contiguous, row-major), insertShard copies it back in. Used for weights (full HF tensors
// <-> per-rank shards) and batches (global inputs <-> per-rank inputs).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_PLAN_SHARDCOPY_H
#define MEG_RUNTIME_PLAN_SHARDCOPY_H

#include "llvm/ADT/ArrayRef.h"

#include <cassert>
#include <cstdint>
#include <cstring>
#include <vector>

namespace meg::runtime {

namespace detail {
/// Calls fn(fullOffset, shardOffset, length) for every contiguous row of the box.
template <typename Fn>
void forEachShardRow(llvm::ArrayRef<int64_t> global, llvm::ArrayRef<int64_t> offset, llvm::ArrayRef<int64_t> shape,
                     Fn &&fn) {
  assert(global.size() == offset.size() && global.size() == shape.size() && "shard ranks differ");
  size_t rank = shape.size();
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  if (n == 0)
    return;
  if (rank == 0) {
    fn(0, 0, 1);
    return;
  }
  std::vector<int64_t> stride(rank, 1);
  for (size_t d = rank - 1; d-- > 0;)
    stride[d] = stride[d + 1] * global[d + 1];
  int64_t len = shape[rank - 1];
  std::vector<int64_t> idx(rank, 0);
  for (int64_t pos = 0; pos < n; pos += len) {
    int64_t full = 0;
    for (size_t d = 0; d < rank; ++d)
      full += (idx[d] + offset[d]) * stride[d];
    fn(full, pos, len);
    for (size_t d = rank - 1; d-- > 0;) {
      if (++idx[d] < shape[d])
        break;
      idx[d] = 0;
    }
  }
}
} // namespace detail

template <typename T>
void extractShard(const T *full, llvm::ArrayRef<int64_t> global, llvm::ArrayRef<int64_t> offset,
                  llvm::ArrayRef<int64_t> shape, T *shard) {
  detail::forEachShardRow(global, offset, shape, [&](int64_t f, int64_t s, int64_t len) {
    std::memcpy(shard + s, full + f, size_t(len) * sizeof(T));
  });
}

template <typename T>
void insertShard(const T *shard, llvm::ArrayRef<int64_t> global, llvm::ArrayRef<int64_t> offset,
                 llvm::ArrayRef<int64_t> shape, T *full) {
  detail::forEachShardRow(global, offset, shape, [&](int64_t f, int64_t s, int64_t len) {
    std::memcpy(full + f, shard + s, size_t(len) * sizeof(T));
  });
}

} // namespace meg::runtime

#endif
