//===- CollectiveOrder.h - proving a plan set's communication order -*- C++ -*-===//
//
// A plan set cannot hang or mismatch sizes at run time when, before any step runs:
//   1. within every collective group (the ranks sharing a tp group, a dp group, ...), every member issues the same
//      sequence of collectives on that group: kind, axis, reduction, element count and dtype, in the same order;
//   2. every point-to-point send has its matching receive (same pair, count and dtype) in the same order on the
//      peer;
//   3. blocking in that order cannot deadlock across groups: a simulation in which a collective completes when all
//      members have reached it, a send at once (communicators buffer sends) and a receive once its send has been
//      issued, completes every rank's sequence.
// The first violation is one error naming both ranks, each one's step index, op and IR name (`%N` in megc --emit
// ir). megc runs the check on the plans it writes, `megc verify PLAN_DIR` on a directory, and loadPlanSet (so
// megrun) on every set it loads.
//
// The check works on CommEvent sequences, one per rank, so it is independent of how the events were found:
// commEvents() reads them from a plan (all_reduce, all_reduce_bucket, all_gather, reduce_scatter,
// reduce_scatter_bucket: a reduce-scatter of its operands' elements; `shard` moves nothing) in the order the rank
// issues them: a pipeline stage's body phase by phase of its 1F1B schedule, its `send` / `recv` steps as
// CommEvent::Send / Recv with the peer stage's rank of the same dp and tp coordinates.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_PLAN_COLLECTIVEORDER_H
#define MEG_RUNTIME_PLAN_COLLECTIVEORDER_H

#include "runtime/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace meg::runtime {

/// One communication a rank issues, in issue order.
struct CommEvent {
  enum class Kind : uint8_t { AllReduce, AllGather, ReduceScatter, Send, Recv };
  Kind kind = Kind::AllReduce;
  std::string axis;   ///< collectives: the mesh axis ("tp", "dp"); empty for send and recv
  std::string reduce; ///< "sum" or "max" for reductions, else empty
  int64_t count = 0;  ///< elements this rank passes to the communicator
  DType dtype = DType::F32;
  int peer = -1;      ///< send: the destination's world rank; recv: the source's
  size_t step = 0;    ///< index in the rank's step list
  std::string op;     ///< the step's op name
  std::string value;  ///< the IR name of the step's first result (may be empty)

  bool isPointToPoint() const { return kind == Kind::Send || kind == Kind::Recv; }
  /// What a peer must agree on: kind, axis, reduction, count and dtype (not the step or names).
  bool matches(const CommEvent &other) const;
};

llvm::StringRef commKindName(CommEvent::Kind k);
/// `step 12 'all_reduce' %34 (tp sum, 4096 x f32)`: for messages.
std::string describe(const CommEvent &e);

/// The communication events of a plan, in step order.
std::vector<CommEvent> commEvents(const LoadedPlan &plan);

/// The world ranks of `rank`'s group along `axis` ("tp" or "dp") of a dp x tp mesh (within rank's pipeline stage
/// when the world holds several dp x tp stages), in group order.
std::vector<int> axisGroup(llvm::StringRef axis, int rank, int meshDp, int meshTp);

/// Checks rules 1-3 above on the event sequences of ranks 0 .. world-1 of a dp x tp mesh (or pp stages of one). `name` prefixes the
/// error: `<name>: collective order: <what>`.
llvm::Error verifyCommOrder(llvm::ArrayRef<std::vector<CommEvent>> ranks, int meshDp, int meshTp,
                            llvm::StringRef name);

/// verifyCommOrder over a loaded plan set (ranks 0 .. world-1 in order).
llvm::Error verifyCollectiveOrder(llvm::ArrayRef<LoadedPlan> plans, llvm::StringRef name);

/// Statistics of a verified set, for `megc verify`: collectives and point-to-point events per rank (rank 0's).
struct CommOrderSummary {
  size_t collectives = 0, pointToPoint = 0;
};
CommOrderSummary summarize(const std::vector<CommEvent> &events);

} // namespace meg::runtime

#endif
