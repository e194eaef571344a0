//===- Session.h - every rank of a plan set, in one process -----*- C++ -*-===//
//
// A Session holds, per rank, a backend (prepared with that rank's plan), an in-process communicator, and a thread
// (RankThreads) to run it. It is what megrun drives: init or load weights, feed global batches (each rank gets its
// shard), run the step list, read the loss, save weights.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_SESSION_H
#define MEG_RUNTIME_SESSION_H

#include "runtime/Backend.h"
#include "runtime/BatchData.h"
#include "runtime/Communicator.h"
#include "runtime/Executor.h"
#include "runtime/Plan.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <vector>

namespace meg::runtime {

class Session {
public:
  /// Prepares a `backend` ("cpu") for every rank of `plans` (a complete set, see loadPlanSet).
  static llvm::Expected<std::unique_ptr<Session>> create(std::vector<LoadedPlan> plans, llvm::StringRef backend);
  ~Session();

  int world() const { return int(plans.size()); }
  const LoadedPlan &plan(int rank = 0) const { return plans[rank]; }
  llvm::ArrayRef<LoadedPlan> allPlans() const { return plans; }
  /// Rank `rank`'s backend (between steps: checkpoints read and write its parameters and optimizer state).
  Backend &backend(int rank) { return *backends[size_t(rank)]; }

  /// Seeded Megatron init of every parameter shard (runtime/Init.h).
  llvm::Error initWeights(uint64_t seed);
  llvm::Error loadWeights(llvm::StringRef path);
  /// Writes the full weights and config.json (runtime/Weights.h).
  llvm::Error saveWeights(llvm::StringRef path);
  /// After a training step: every parameter's gradient (the plan outputs "grad:<name>", before the optimizer
  /// update), assembled from the shards, under Hugging Face names and shapes.
  llvm::Error saveGradients(llvm::StringRef path);
  /// The full (unsharded) f32 output `name` of the last run, assembled from every rank's shard.
  llvm::Expected<std::vector<float>> assembleOutput(llvm::StringRef name);
  /// A scalar f32 output of the last step (from rank 0), or nullopt when the plan has none.
  std::optional<float> scalarOutput(llvm::StringRef name);

  /// Feeds every rank its shard of each plan input. Error: an input missing from the batch or of another shape.
  llvm::Error feed(const GlobalBatch &batch);
  /// Runs the step list on every rank. Returns the scalar output "loss" averaged over the dp ranks, or nullopt when
  /// the plan has no such output (an infer plan).
  llvm::Expected<std::optional<double>> forward(const StepContext &ctx);

private:
  Session() = default;
  std::vector<LoadedPlan> plans;
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::unique_ptr<Communicator>> comms;
  std::unique_ptr<RankThreads> threads;
};

/// Forward-only evaluation over `batches` batches of a (valid-split) source, dropout off.
struct EvalResult {
  double loss = 0;       ///< mean per-token loss, batches weighted by their target tokens
  double perplexity = 0; ///< exp(loss)
  int64_t tokens = 0;    ///< target tokens seen
  int64_t batches = 0;
  double seconds = 0;    ///< time spent in the forward steps (feeding included, data preparation excluded)
};
llvm::Expected<EvalResult> evaluate(Session &session, const BatchSource &source, int64_t batches, uint64_t seed);

} // namespace meg::runtime

#endif
