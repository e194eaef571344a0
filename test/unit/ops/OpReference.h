//===- OpReference.h - plain references of every op, in double --*- C++ -*-===//
//
// One small function per op of ir/Ops.def, naive loops in double over GLOBAL (unsharded) tensors, written from the
// op's documented semantics (docs/ir.md, Ops.def summaries, the math comments of the kernel headers) and not from
// kernels/cpu. Randomness (dropout, attention dropout) uses the mask of kernels/Philox.h: keep element i iff
// uniform(seed, stream, step, global index i) >= p, the documented contract every backend implements.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_TEST_UNIT_OPS_OPREFERENCE_H
#define MEG_TEST_UNIT_OPS_OPREFERENCE_H

#include "test/support/OpExamples.h"

#include <map>
#include <string>
#include <vector>

namespace meg::optest {

/// The node's results (or, for an op that updates operands in place, their new values in operand order) from its
/// operands' global values.
using ReferenceFn = std::vector<HostTensor> (*)(const ir::Node &n, const std::vector<const HostTensor *> &in,
                                                const runtime::StepContext &ctx);

/// Every op name -> its reference; nullptr for param, input, state (sources: their value is what the test fed)
/// and output (no result).
const std::map<std::string, ReferenceFn> &referenceTable();

} // namespace meg::optest

#endif
