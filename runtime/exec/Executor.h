//===- Executor.h - running a plan's steps on a backend ---------*- C++ -*-===//
//
// Executor runs one rank's step list in order on its backend and reads outputs back. RankThreads runs a function
// once per rank, each rank on its own persistent thread (world 1 runs inline on the caller's thread), so that the
// in-process communicator's collectives can rendezvous.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_EXEC_EXECUTOR_H
#define MEG_RUNTIME_EXEC_EXECUTOR_H

#include "runtime/exec/Backend.h"
#include "runtime/comm/Communicator.h"
#include "runtime/plan/Plan.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <barrier>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace meg::runtime {

class Executor {
public:
  Executor(const LoadedPlan &plan, Backend &backend, Communicator &comm)
      : plan(plan), backend(backend), comm(comm) {}

  /// Runs the steps of ctx.part once (all of them; or with micro-batches, the body or the update).
  llvm::Error run(const StepContext &ctx);
  /// The value of a scalar f32 output (after run()). Error when the plan has no such output.
  llvm::Expected<float> scalarOutput(llvm::StringRef name) const;

private:
  const LoadedPlan &plan;
  Backend &backend;
  Communicator &comm;
};

class RankThreads {
public:
  explicit RankThreads(int world);
  ~RankThreads();
  RankThreads(const RankThreads &) = delete;
  RankThreads &operator=(const RankThreads &) = delete;

  int world() const { return worldSize; }
  /// Calls fn(rank) for every rank concurrently and waits for all; returns the error of the lowest failing rank.
  llvm::Error run(llvm::function_ref<llvm::Error(int rank)> fn);

private:
  void worker(int rank);

  int worldSize;
  std::vector<std::thread> threads;
  std::unique_ptr<std::barrier<>> start, done;
  llvm::function_ref<llvm::Error(int)> job;
  std::vector<std::string> errors;
  bool stopping = false;
};

} // namespace meg::runtime

#endif
