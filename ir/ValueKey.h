//===- ValueKey.h - names of values that do not depend on the mesh -*- C++ -*-===//
//
// A value key names a value by what it computes, not by where it sits in one compile: the same quantity gets the
// same key in the tp 1, tp 4 and dp 2 x tp 2 compiles of a model (and in its fp32 and bf16 compiles), so dumps of
// two runs can be compared value by value (megrun --dump-activations, megdiff). The `%N` of `megc --emit ir` is not
// such a name: the collectives partition inserts shift every later number.
//
// The key of a node's result is `<op>:<12 hex digits>`, the digits a hash (xxHash64) of the op, its attributes
// except `arena` (the memory plan's), `recompute` (a clone's layer) and `shape` (a global shape, which vocabulary
// padding changes with tp), the result index, and its operands' keys as their consumers see them. Parameters,
// inputs and optimizer states are
// keyed by their names (`param:<name>`, `input:<name>`, `state:<name>`). Mesh- and precision-dependent nodes are
// transparent to their consumers: the key a consumer sees for a result of a collective (all_reduce, all_gather,
// reduce_scatter, all_reduce_bucket, shard), a cast or a mask_padding (vocabulary padding) is the key of the
// corresponding operand; these nodes' own results still get a key of their own (so they are dumped, and match only
// the same node in another compile). Nodes that compute the same thing from the same operands (a recomputed
// layer's clones) share a hash; the second and later in program order get `#2`, `#3`, ... appended, and their
// consumers see the first one's key (so the backward of a recomputed layer is keyed as without recompute).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_VALUEKEY_H
#define MEG_IR_VALUEKEY_H

#include "ir/Graph.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringRef.h"

#include <string>

namespace meg::ir {

class ValueKeys {
public:
  /// Keys every result of `g`'s nodes, in program order.
  explicit ValueKeys(const Graph &g);
  /// The key of `v` (a result of a node of the graph); empty for any other value.
  llvm::StringRef lookup(const Value *v) const;

private:
  llvm::DenseMap<const Value *, std::string> own;  ///< each result's own key
  llvm::DenseMap<const Value *, std::string> seen; ///< the key its consumers hash
};

/// Whether consumers see through `k`'s results to its operands (collectives, cast, mask_padding).
bool isKeyTransparent(OpKind k);

} // namespace meg::ir

#endif
