//===- DumpDiff.h - the first value where two activation dumps differ -*- C++ -*-===//
//
// Compares two activation dumps (runtime/io/ActivationDump.h) value by value: values are matched by key (the same
// quantity in both runs, ir/ValueKey.h), taken in the first dump's schedule order; values whose key only one dump has
// (collectives' outputs, casts, a sum the other mesh orders differently) are skipped and counted. An element differs
// when |b - a| > atol + rtol * |a| (a from the first dump), when exactly one of them is NaN, or when they are
// different infinities; the first value with a differing element is the divergence. Matched values must have the same
// shape, except along a vocabulary-padded dim: a dim of one dump's padded vocabulary size (vocab_padded) against the
// other's is compared over the vocabulary's rows (vocab_rows) only.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_IO_DUMPDIFF_H
#define MEG_RUNTIME_IO_DUMPDIFF_H

#include "runtime/io/ActivationDump.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace meg::runtime {

struct DiffTolerance {
  double rtol = 1e-5;
  double atol = 1e-5;
};

/// How one matched value differs.
struct ValueDiff {
  size_t posA = 0, posB = 0; ///< positions in the dumps' schedule orders
  int64_t differing = 0;     ///< elements beyond the tolerance
  int64_t compared = 0;      ///< elements compared
  double maxAbs = 0, maxRel = 0;                ///< largest |b - a| and |b - a| / |a| (inf when a = 0 != b)
  std::vector<int64_t> whereAbs, whereRel;      ///< their multi-indices
  float absA = 0, absB = 0, relA = 0, relB = 0; ///< the elements there
};

struct DumpDiff {
  size_t matched = 0, onlyA = 0, onlyB = 0;
  std::vector<ValueDiff> values;     ///< every matched value, in the first dump's order
  std::optional<size_t> first;       ///< index into `values` of the first differing value
  std::optional<size_t> largestAbs;  ///< index into `values` of the largest abs difference
};

/// Error (one line naming both dumps and the value): a matched value of other shapes.
llvm::Expected<DumpDiff> diffDumps(const ActivationDump &a, const ActivationDump &b, const DiffTolerance &tol);

} // namespace meg::runtime

#endif
