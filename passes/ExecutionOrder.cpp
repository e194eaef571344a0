//===- ExecutionOrder.cpp - the order a rank runs its steps in ---------------===//
//
// See passes/ExecutionOrder.h.
//
//===----------------------------------------------------------------------===//
#include "passes/ExecutionOrder.h"
#include "passes/GradAccum.h"
#include "passes/PipelineSplit.h"

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;

PhaseRule::PhaseRule(const ir::Graph &g)
    : forward(forwardNodes(g)), oncePerStep(oncePerStepNodes(g)), prologue(prologueNodes(g)) {}

StepPhase PhaseRule::of(const Node &n) const {
  if (!oncePerStep.empty())
    return prologue.contains(&n)      ? StepPhase::Prologue
           : oncePerStep.contains(&n) ? StepPhase::Update
           : forward.contains(&n)   ? StepPhase::Forward
                                    : StepPhase::Backward;
  // The optimizer's in-place updates; an op the loss needs (or, without a loss, any op: decode_attention writing
  // its KV cache) is part of the forward.
  if (ir::writtenOperands(n.getKind()) && !forward.contains(&n))
    return StepPhase::Update;
  return forward.contains(&n) ? StepPhase::Forward : StepPhase::Backward;
}

bool meg::passes::onSeveralStages(const Node &n) {
  const std::vector<int64_t> *s = n.getAttrs().getInts("stage");
  return s && s->size() > 1;
}

ExecutionOrder meg::passes::executionOrder(const ir::Graph &g, int64_t stage, const PhaseRule &phases) {
  ExecutionOrder o;
  o.pipelined = pipelineStagesOf(g) > 1;
  // Outputs of a value computed elsewhere read its recv here (lower-to-plan's rule): they run with the others.
  if (o.pipelined)
    for (const auto &n : g)
      if (n->getKind() == OpKind::Recv && onStage(*n, stage))
        o.received[n->getOperand(0)->getDef()->getOperand(0)] = n->getResult();
  auto here = [&](const Node &n) {
    if (!o.pipelined)
      return true;
    if (n.getKind() == OpKind::Output)
      return onStage(*n.getOperand(0)->getDef(), stage) || o.received.count(n.getOperand(0));
    return onStage(n, stage);
  };
  auto phaseOf = [&](const Node &n) {
    // Outputs read values at the end of the step.
    return n.getKind() == OpKind::Output ? StepPhase::Update : phases.of(n);
  };
  auto add = [&](const Node *n) {
    o.position[n] = unsigned(o.nodes.size());
    o.nodes.push_back(n);
  };
  for (const auto &n : g)
    if (here(*n) && phaseOf(*n) == StepPhase::Prologue)
      add(n.get());
  o.loopBegin = unsigned(o.nodes.size());
  if (o.pipelined) {
    for (const auto &n : g)
      if (here(*n) && phaseOf(*n) == StepPhase::Forward)
        add(n.get());
    o.handOver = unsigned(o.nodes.size());
  }
  o.loopEnd = o.loopBegin;
  for (const auto &n : g) {
    if (!here(*n) || o.position.count(n.get()))
      continue;
    if (phaseOf(*n) != StepPhase::Update)
      o.loopEnd = unsigned(o.nodes.size()) + 1;
    add(n.get());
  }
  return o;
}
