//===- Executor.cpp - running a plan's steps on a backend ---------------------===//
#include "runtime/exec/Executor.h"
#include "runtime/exec/FaultInjection.h"

#include <cassert>
#include <cstring>

using namespace meg;
using namespace meg::runtime;

Backend::~Backend() = default;
StepObserver::~StepObserver() = default;

llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
Backend::createThreadCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp, int meshPp) {
  assert(int(peers.size()) == meshDp * meshTp * meshPp && "one peer per rank");
  if (peers.size() > 1)
    return createPeerCommunicators(peers, meshDp, meshTp, meshPp);
  std::vector<std::unique_ptr<Communicator>> comms;
  comms.push_back(std::make_unique<SingleRankCommunicator>());
  return comms;
}

llvm::Error Backend::runSteps(const LoadedPlan &plan, const StepContext &ctx, Communicator &comm) {
  using Part = StepContext::Part;
  size_t begin = 0, end = plan.steps.size();
  if (ctx.part == Part::Body || ctx.part == Part::Forward || ctx.part == Part::Backward || ctx.part == Part::Prologue)
    end = plan.updateBegin;
  else if (ctx.part == Part::Update)
    begin = plan.updateBegin;
  for (size_t i = begin; i < end; ++i) {
    const PlanStep &step = plan.steps[i];
    bool forward = step.phase == StepPhase::Forward;
    // The Prologue (once per step, before the micro-batches) runs as its own part, in training and evaluation.
    if ((ctx.part == Part::Prologue) != (step.phase == StepPhase::Prologue))
      continue;
    if (ctx.part != Part::Prologue && (ctx.evaluation || ctx.part == Part::Forward) && !forward)
      continue;
    if (ctx.part == Part::Backward && forward)
      continue;
    if (auto err = injectFault(plan.rank, i))
      return err;
    // The watchdog names the step of a collective that does not complete (runtime/comm/Watchdog.h).
    bool collective = ir::isCollective(step.kind);
    if (collective)
      comm.watch().setLabel({int64_t(i), step.op, step.value});
    llvm::Error err = runStep(i, ctx, comm);
    if (collective)
      comm.watch().clearLabel();
    if (err)
      return err;
    if (auto err = perturbResult(plan, i, *this))
      return err;
    if (ctx.observer)
      if (auto err = ctx.observer->afterStep(plan.rank, i, *this))
        return err;
  }
  return llvm::Error::success();
}

llvm::Error Executor::run(const StepContext &ctx) { return backend.runSteps(plan, ctx, comm); }

llvm::Expected<float> Executor::scalarOutput(llvm::StringRef name) const {
  const PlanOutput *out = plan.findOutput(name);
  if (!out)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   plan.path + ": the plan has no output '" + name + "'");
  if (out->tensor.dtype != DType::F32 || out->tensor.numel() != 1)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   plan.path + ": output '" + name + "' is not an f32 scalar");
  float value;
  backend.readTensor(out->tensor, llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(&value), 4));
  return value;
}

RankThreads::RankThreads(int world) : worldSize(world), errors(size_t(world)) {
  if (world <= 1)
    return;
  start = std::make_unique<std::barrier<>>(world + 1);
  done = std::make_unique<std::barrier<>>(world + 1);
  for (int r = 0; r < world; ++r)
    threads.emplace_back([this, r] { worker(r); });
}

RankThreads::~RankThreads() {
  if (threads.empty())
    return;
  stopping = true;
  start->arrive_and_wait();
  for (std::thread &t : threads)
    t.join();
}

void RankThreads::worker(int rank) {
  for (;;) {
    start->arrive_and_wait();
    if (stopping)
      return;
    if (llvm::Error err = job(rank))
      errors[rank] = llvm::toString(std::move(err));
    done->arrive_and_wait();
  }
}

llvm::Error RankThreads::run(llvm::function_ref<llvm::Error(int rank)> fn) {
  if (threads.empty())
    return fn(0);
  job = fn;
  for (std::string &e : errors)
    e.clear();
  start->arrive_and_wait();
  done->arrive_and_wait();
  for (const std::string &e : errors)
    if (!e.empty())
      return llvm::createStringError(llvm::inconvertibleErrorCode(), e);
  return llvm::Error::success();
}
