//===- CollectiveOps.cpp - CPU launches: collectives over a mesh axis ---------===//
//
// The communicator moves contiguous float blocks in host memory; all_gather and reduce_scatter along a dim that is
// not the outermost non-trivial one interleave the members' blocks through scratch ([member, outer, chunk] <->
// [outer, member, chunk]). all_gather moves 4-byte words (f32 or i32) bit for bit. all_reduce_bucket (a dp gradient
// bucket) packs its operands into scratch, reduces once and unpacks into its results. reduce_scatter_bucket (the
// distributed optimizer's gradient bucket) packs rank-major: for each group rank g, the g-th shard of every member
// (gathered as reduce_scatter gathers it), so one reduce-scatter leaves this rank's shards of all members contiguous.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;

namespace {

/// The shards of a reduce_scatter's operand ([outer, member, chunk]) as contiguous blocks: group rank g's shard
/// (a.count floats) at dst + g * stride.
void gatherShards(const ReduceScatterArgs &a, const float *src, float *dst, int64_t stride) {
  for (int64_t o = 0; o < a.outer; ++o)
    for (int64_t g = 0; g < a.members; ++g)
      std::memcpy(dst + g * stride + o * a.chunk, src + (o * a.members + g) * a.chunk, size_t(a.chunk) * sizeof(float));
}

} // namespace

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AllReduceArgs &a, CpuStep &s) {
  return [a, &s](const CpuRunArgs &run) -> llvm::Error {
    if (s.f(0) != s.fout())
      std::memcpy(s.fout(), s.f(0), size_t(a.n) * sizeof(float));
    return s.error(run.comm.allReduce(a.axis, a.reduce, s.fout(), a.n));
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AllReduceBucketArgs &a, CpuStep &s) {
  if (a.counts.size() == 1)
    return launch(AllReduceArgs{a.axis, a.reduce, a.counts[0], a.members}, s);
  s.scratchFloats = a.total;
  return [a, &s](const CpuRunArgs &run) -> llvm::Error {
    for (size_t i = 0; i < a.counts.size(); ++i)
      std::memcpy(run.scratch + a.offsets[i], s.f(i), size_t(a.counts[i]) * sizeof(float));
    if (auto err = run.comm.allReduce(a.axis, a.reduce, run.scratch, a.total))
      return s.error(std::move(err));
    for (size_t i = 0; i < a.counts.size(); ++i)
      std::memcpy(s.fout(i), run.scratch + a.offsets[i], size_t(a.counts[i]) * sizeof(float));
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AllGatherArgs &a, CpuStep &s) {
  if (a.outer > 1)
    s.scratchFloats = a.members * a.count;
  return [a, &s](const CpuRunArgs &run) -> llvm::Error {
    float *gathered = a.outer > 1 ? run.scratch : s.fout();
    if (auto err = run.comm.allGather(a.axis, s.f(0), a.count, gathered))
      return s.error(std::move(err));
    if (a.outer > 1)
      for (int64_t o = 0; o < a.outer; ++o)
        for (int64_t g = 0; g < a.members; ++g)
          std::memcpy(s.fout() + (o * a.members + g) * a.chunk, gathered + g * a.count + o * a.chunk,
                      size_t(a.chunk) * sizeof(float));
    return llvm::Error::success();
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const ReduceScatterArgs &a, CpuStep &s) {
  if (a.outer > 1)
    s.scratchFloats = a.members * a.count;
  return [a, &s](const CpuRunArgs &run) -> llvm::Error {
    const float *blocks = s.f(0);
    if (a.outer > 1) {
      gatherShards(a, s.f(0), run.scratch, a.count);
      blocks = run.scratch;
    }
    return s.error(run.comm.reduceScatter(a.axis, a.reduce, blocks, a.count, s.fout()));
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const ReduceScatterBucketArgs &a, CpuStep &s) {
  if (a.parts.size() == 1)
    return launch(a.parts[0], s);
  // The packed blocks of every group rank, then this rank's reduced block.
  s.scratchFloats = (a.members + 1) * a.total;
  return [a, &s](const CpuRunArgs &run) -> llvm::Error {
    for (size_t i = 0; i < a.parts.size(); ++i)
      gatherShards(a.parts[i], s.f(i), run.scratch + a.offsets[i], a.total);
    float *mine = run.scratch + a.members * a.total;
    if (auto err = run.comm.reduceScatter(a.axis, a.reduce, run.scratch, a.total, mine))
      return s.error(std::move(err));
    for (size_t i = 0; i < a.parts.size(); ++i)
      std::memcpy(s.fout(i), mine + a.offsets[i], size_t(a.parts[i].count) * sizeof(float));
    return llvm::Error::success();
  };
}

// Pipeline point-to-point: the send is buffered by the communicator; the result of a send is its operand (the
// same bytes, or a copy where the memory plan gave it a buffer of its own).
llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const SendArgs &a, CpuStep &s) {
  return [a, &s](const CpuRunArgs &run) -> llvm::Error {
    if (s.out[0] != s.in[0])
      std::memcpy(s.out[0], s.in[0], size_t(a.bytes));
    return s.error(run.comm.send(a.peer, s.in[0], a.bytes));
  };
}

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const RecvArgs &a, CpuStep &s) {
  return [a, &s](const CpuRunArgs &run) -> llvm::Error {
    return s.error(run.comm.recv(a.peer, s.out[0], a.bytes));
  };
}
