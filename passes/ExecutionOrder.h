//===- ExecutionOrder.h - the order a rank runs its steps in -----*- C++ -*-===//
//
// The phase of every node (lower-to-plan writes it into each step; megrun's executor runs by it) and the order in
// which a rank runs the nodes of its plan, which is what the memory plan's lifetimes follow:
//   - without pipeline stages: program order. With gradient accumulation the Prologue nodes come first (once per
//     step), then the body (every other node but the once-per-step ones, which the schedule puts last) runs once per
//     micro-batch, then the update once;
//   - on pipeline stage s: the stage's Prologue nodes, its Forward nodes in program order, then its other nodes in
//     program order (the Backward phase, then the Update).
// The body repeats: a value of the Prologue that the body reads must live to the end of the body (loopEnd). The 1F1B schedule runs other micro-batches' forwards between a micro-batch's
//     forward and its backward, so what is live at the hand-over (the first position after the forward phase) is
//     what a stage saves per micro-batch in flight (runtime/train/Session.cpp, the plan's stash_bytes).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_EXECUTIONORDER_H
#define MEG_PASSES_EXECUTIONORDER_H

#include "ir/Graph.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <vector>

namespace meg::passes {

enum class StepPhase { Forward, Backward, Update, Prologue };

/// Which phase a node runs in. With gradient accumulation: Prologue = passes/GradAccum.h's prologue nodes (once per
/// step, before the micro-batches), Update = its once-per-step nodes (after them), then Forward = what the loss
/// needs, Backward = the rest. Without: the optimizer's in-place updates not needed by the
/// loss are Update, what the loss needs (every node without a loss) Forward, the rest Backward.
class PhaseRule {
public:
  explicit PhaseRule(const ir::Graph &g);
  StepPhase of(const ir::Node &n) const;

private:
  llvm::DenseSet<const ir::Node *> forward, oncePerStep, prologue;
};

/// The nodes one rank of pipeline stage `stage` runs (every node without stages), in the order it runs them.
struct ExecutionOrder {
  std::vector<const ir::Node *> nodes;
  llvm::DenseMap<const ir::Node *, unsigned> position;
  /// Pipeline stages: the position of the first node after the forward phase; 0 without stages.
  unsigned handOver = 0;
  /// The body, repeated per micro-batch: [loopBegin, loopEnd) (the Prologue before it, the Update after it).
  unsigned loopBegin = 0, loopEnd = 0;
  bool pipelined = false;
  /// Pipeline stages: a value computed on another stage -> the result of its recv on this one.
  llvm::DenseMap<const ir::Value *, const ir::Value *> received;

  /// Whether `v` is computed by this rank.
  bool computes(const ir::Value *v) const { return position.count(v->getDef()); }
};
ExecutionOrder executionOrder(const ir::Graph &g, int64_t stage, const PhaseRule &phases);

/// Whether a node runs on more than one pipeline stage (a `stage` list of two or more).
bool onSeveralStages(const ir::Node &n);

} // namespace meg::passes

#endif
