//===- CollectiveOps.cpp - CPU launches: collectives over a mesh axis ---------===//
//
// The communicator moves contiguous float blocks in host memory; all_gather and reduce_scatter along a dim that is
// not the outermost non-trivial one interleave the members' blocks through scratch ([member, outer, chunk] <->
// [outer, member, chunk]). A dp bucket's first member packs every member's operand into scratch, reduces once and
// unpacks; the other members' launches do nothing (BucketArgs).
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuOps.h"

#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;

namespace {

CpuKernel bucketKernel(const AllReduceArgs &a, CpuStep &s) {
  const BucketArgs &bucket = *a.bucket;
  if (!bucket.first)
    return [](const CpuRunArgs &) -> llvm::Error { return llvm::Error::success(); };
  s.scratchFloats = bucket.totalFloats;
  return [a, members = bucketBuffers(s, bucket), &s](const CpuRunArgs &run) -> llvm::Error {
    auto copy = [](float *dst, const float *src, int64_t count) {
      std::memcpy(dst, src, size_t(count) * sizeof(float));
      return llvm::Error::success();
    };
    llvm::cantFail(copyBucket(members, run.scratch, /*pack=*/true, copy));
    if (auto err = run.comm.allReduce(a.axis, a.reduce, run.scratch, a.bucket->totalFloats))
      return s.error(std::move(err));
    return copyBucket(members, run.scratch, /*pack=*/false, copy);
  };
}

} // namespace

llvm::Expected<CpuKernel> meg::runtime::cpu::launch(const AllReduceArgs &a, CpuStep &s) {
  if (a.bucket)
    return bucketKernel(a, s);
  return [a, &s](const CpuRunArgs &run) -> llvm::Error {
    if (s.f(0) != s.fout())
      std::memcpy(s.fout(), s.f(0), size_t(a.n) * sizeof(float));
    return s.error(run.comm.allReduce(a.axis, a.reduce, s.fout(), a.n));
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
      for (int64_t o = 0; o < a.outer; ++o)
        for (int64_t g = 0; g < a.members; ++g)
          std::memcpy(run.scratch + g * a.count + o * a.chunk, s.f(0) + (o * a.members + g) * a.chunk,
                      size_t(a.chunk) * sizeof(float));
      blocks = run.scratch;
    }
    return s.error(run.comm.reduceScatter(a.axis, a.reduce, blocks, a.count, s.fout()));
  };
}
