//===- Session.h - the ranks of a plan set this process hosts ---*- C++ -*-===//
//
// A Session knows every rank's plan (the layouts: which shard of which tensor each rank holds) and hosts some of the
// ranks: per hosted rank a backend (prepared with that rank's plan), a communicator, and a thread (RankThreads) to
// run it. Two placements:
//   - every rank, as threads of this process with in-process communicators (create);
//   - one rank, the one of its communicator (createRank: an MPI process per rank, runtime/train/Job.h).
// It is what a run (runtime/train/Train.h) drives: init or load weights, feed global batches (each hosted rank gets
// its shard), run the step list, read the loss, save weights. The root process (the one hosting rank 0) writes every
// output file: withShards gathers the other processes' shards to it over the communicator, so that weights, gradients
// and checkpoints are written by the same code in both placements. Methods marked "collective" must be called by every
// process of the run, in the same order.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_SESSION_H
#define MEG_RUNTIME_TRAIN_SESSION_H

#include "runtime/exec/Backend.h"
#include "runtime/data/BatchSource.h"
#include "runtime/comm/Communicator.h"
#include "runtime/exec/Executor.h"
#include "runtime/io/Safetensors.h"
#include "runtime/plan/Plan.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <optional>
#include <vector>

namespace meg::runtime {

/// What a shard read by withShards is: a parameter's shard (index into plan.params), an optimizer state's
/// (plan.states) or a parameter's gradient after the last step (the plan output "grad:<name>", by plan.params index).
enum class ShardKind : uint8_t { Param, State, Grad };
/// Copies rank `rank`'s shard `index` of `kind` into `out`.
using ShardGetter = llvm::function_ref<void(ShardKind kind, int rank, size_t index, llvm::MutableArrayRef<float> out)>;

class Session {
public:
  /// Hosts every rank of `plans` (a complete set, see loadPlanSet) as threads, each with a `backend` ("cpu", ...).
  static llvm::Expected<std::unique_ptr<Session>> create(std::vector<LoadedPlan> plans, llvm::StringRef backend);
  /// Hosts only rank comm->rank() of `plans` (a complete set of comm's mesh), on `device` (CUDA).
  static llvm::Expected<std::unique_ptr<Session>> createRank(std::vector<LoadedPlan> plans, llvm::StringRef backend,
                                                             std::unique_ptr<Communicator> comm, int device);
  ~Session();

  /// Ranks of the mesh (hosted here or not).
  int world() const { return int(plans.size()); }
  const LoadedPlan &plan(int rank = 0) const { return plans[size_t(rank)]; }
  llvm::ArrayRef<LoadedPlan> allPlans() const { return plans; }
  bool hosts(int rank) const { return backends[size_t(rank)] != nullptr; }
  /// This process hosts rank 0: it prints and writes the run's output files.
  bool isRoot() const { return hosts(0); }
  /// A hosted rank's backend (between steps: its parameters and optimizer state).
  Backend &backend(int rank) {
    assert(hosts(rank) && "rank not hosted by this process");
    return *backends[size_t(rank)];
  }

  /// Seconds a hosted rank may wait in one collective before the run fails naming it (runtime/comm/Watchdog.h);
  /// 0 = forever.
  void setCollectiveTimeout(double seconds);

  /// Seeded Megatron init of every hosted parameter shard (runtime/train/Init.h); optimizer state starts at its
  /// plan's init (zeros, or the loss scaler's constants), here and with loadWeights.
  llvm::Error initWeights(uint64_t seed);
  /// Reads a full weights file (runtime/io/Weights.h) and takes the hosted ranks' shards. With `headSeed` (fine-tuning
  /// a plan with a task head) a checkpoint without the head loads too: the head's parameters get the seeded init and
  /// `initializedHead` (if given) their names.
  llvm::Error loadWeights(llvm::StringRef path, std::optional<uint64_t> headSeed = std::nullopt,
                          std::vector<std::string> *initializedHead = nullptr);
  /// Collective. The root writes the full weights and config.json (runtime/io/Weights.h).
  llvm::Error saveWeights(llvm::StringRef path, SafetensorsDType dtype = SafetensorsDType::F32, int shards = 1);
  /// Collective. After a training step the root writes every parameter's gradient (the plan outputs "grad:<name>",
  /// before the optimizer update), assembled from the shards, under Hugging Face names and shapes.
  llvm::Error saveGradients(llvm::StringRef path);
  /// Collective. Gathers every rank's shards of `kinds` to the root and calls `use` there (only there) with a getter
  /// of any rank's shard. `replicas` false: only dp rank 0's shards travel, the getter hands a dp replica the
  /// shard of the same tp rank of dp group 0 (replicated parameters and all-reduced gradients are identical),
  /// unless some shard differs between dp groups (split over dp: the distributed optimizer), then every rank sends.
  llvm::Error withShards(llvm::ArrayRef<ShardKind> kinds, bool replicas,
                         llvm::function_ref<llvm::Error(ShardGetter get)> use);
  /// Collective. Every rank's `local(rank)` (called here for the hosted ranks), by rank, at the root (empty
  /// elsewhere): host data of any size travels to the root as the shards of withShards do.
  llvm::Expected<std::vector<std::vector<float>>> gatherToRoot(llvm::function_ref<std::vector<float>(int rank)> local);
  /// Collective. The full (unsharded) f32 output `name` of the last run, assembled from every rank's shard, on every
  /// process.
  llvm::Expected<std::vector<float>> assembleOutput(llvm::StringRef name);
  /// A scalar f32 output of the last step (from the first hosted rank), or nullopt when the plan has none.
  std::optional<float> scalarOutput(llvm::StringRef name);

  /// Feeds every hosted rank its shard of each plan input. Error: an input missing from the batch or of another
  /// shape.
  llvm::Error feed(const GlobalBatch &batch);
  /// Collective. Runs the step list on every hosted rank. Returns the scalar output "loss" averaged over the dp
  /// ranks (in dp order, in double, as Megatron reports it), or nullopt when the plan has no such output (an infer
  /// plan).
  llvm::Expected<std::optional<double>> forward(const StepContext &ctx);
  /// Collective. One step of a plan with microBatches() micro-batches (gradient accumulation): `batches` holds one
  /// global batch per micro-batch; each is fed and the body steps run for it, then the update steps (not in
  /// evaluation). The loss as forward()'s (the plan's "loss" output is the mean over the micro-batches). With one
  /// micro-batch: feed + forward.
  llvm::Expected<std::optional<double>> step(const StepContext &ctx, llvm::ArrayRef<GlobalBatch> batches);
  /// Micro-batches per step of the plans (1 without gradient accumulation).
  int microBatches() const { return plans[0].microBatches; }

private:
  void initStates(int rank);
  Session() = default;
  /// Collective. The scalar output "loss" of the last run, averaged over the dp ranks (nullopt: no such output).
  llvm::Expected<std::optional<double>> averageLoss();
  /// Pipeline stages: step() as the ranks' 1F1B schedules, and the loss of the last stage.
  llvm::Expected<std::optional<double>> pipelineStep(const StepContext &ctx, llvm::ArrayRef<GlobalBatch> batches);
  llvm::Expected<std::optional<double>> pipelineLoss();
  /// Feeds hosted rank `r` its shard of each plan input.
  llvm::Error feedRank(int r, const GlobalBatch &batch);
  llvm::Error prepare(llvm::StringRef backend, llvm::ArrayRef<int> ranks, int device);
  /// Runs fn(rank) for every hosted rank, each on its thread.
  llvm::Error onHosted(llvm::function_ref<llvm::Error(int rank)> fn);
  void readShard(ShardKind kind, int rank, size_t index, llvm::MutableArrayRef<float> out);
  bool hostsAll() const { return int(hosted.size()) == world(); }

  std::vector<LoadedPlan> plans;
  std::vector<int> hosted;                          ///< hosted ranks, ascending
  std::vector<std::unique_ptr<Backend>> backends;   ///< by rank; null when not hosted
  std::vector<std::unique_ptr<Communicator>> comms; ///< by rank; null when not hosted
  std::unique_ptr<RankThreads> threads;             ///< one thread per hosted rank
};

/// Collective. Forward-only evaluation over `batches` batches of a (valid-split) source, dropout off.
struct EvalResult {
  double loss = 0;       ///< mean per-token loss, batches weighted by their target tokens
  double perplexity = 0; ///< exp(loss)
  int64_t tokens = 0;    ///< target tokens seen
  int64_t batches = 0;
  int64_t positions = 0; ///< input positions run: batches x micro-batch x sequence length
  double seconds = 0;    ///< time spent in the forward steps (feeding included, data preparation excluded)
};
llvm::Expected<EvalResult> evaluate(Session &session, const BatchSource &source, int64_t batches, uint64_t seed);

/// The global batches of step `step` of a plan with `microBatches` micro-batches per step: the source's batches
/// step * m .. step * m + m - 1, so the rows of a step are those of one batch of m times the rows, in order.
llvm::Expected<std::vector<GlobalBatch>> microBatchesOf(const BatchSource &source, uint64_t step, int microBatches);

} // namespace meg::runtime

#endif
