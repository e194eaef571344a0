//===- Backend.h - where a plan's tensors live and its steps run -*- C++ -*-===//
//
// A Backend owns one rank's memory (activation arena, parameters, gradients, inputs) and runs the plan's steps on
// it. It is chosen at run time by name (runtime/train/BackendRegistry.h): CPU (OpenBLAS + kernels/cpu,
// runtime/cpu) or CUDA (cuBLASLt + kernels/cuda, runtime/cuda). The host talks to it only through
// this interface: parameters and inputs go in as host arrays, tensors come back as bytes.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_EXEC_BACKEND_H
#define MEG_RUNTIME_EXEC_BACKEND_H

#include "runtime/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace meg::runtime {

class Communicator;

class Backend;

/// Sees every step Backend::runSteps runs (megrun --dump-activations: runtime/train/ActivationCapture.h).
class StepObserver {
public:
  virtual ~StepObserver();
  /// Called on rank `rank`'s thread after its step `index` ran on `backend`, whose readTensor then reads the step's
  /// results. An error stops the run.
  virtual llvm::Error afterStep(int rank, size_t index, Backend &backend) = 0;
};

/// What one execution of the step list needs besides the tensors.
struct StepContext {
  uint64_t seed = 0;   ///< the run's seed (Philox key of dropout masks)
  uint32_t step = 0;   ///< the training step (Philox counter word), so every step draws fresh masks
  bool dropout = true; ///< false in evaluation: dropout is the identity
  bool evaluation = false; ///< run only the steps the loss needs (no backward, no optimizer update)
  /// Gradient accumulation (plans with micro_batches m > 1): the micro-batch the body steps run for, 0 .. m - 1.
  uint32_t microBatch = 0;
  uint32_t microBatches = 1;
  /// The Philox counter word of dropout masks: the step, or with micro-batches the step's micro-batch
  /// (step x m + micro-batch), so every micro-batch draws fresh masks (one micro-batch: the step, as before).
  uint32_t rngStep() const { return step * microBatches + microBatch; }
  /// Which steps Executor::run runs: all in order, the per-micro-batch body, or the once-per-step update; with
  /// pipeline stages, a phase of the 1F1B schedule: the body's Forward steps, or its other (Backward) steps. With
  /// micro-batches the Prologue steps run once per step before them (Prologue), never in another part.
  enum class Part : uint8_t { All, Body, Update, Forward, Backward, Prologue };
  Part part = Part::All;
  /// Called after each step that runs (not owned; null: none). The CUDA backend then runs the steps one by one.
  StepObserver *observer = nullptr;
};

class Backend {
public:
  virtual ~Backend();
  virtual llvm::StringRef name() const = 0;

  /// Allocates the arena, parameters, gradients and inputs of `plan` and prepares every step (attribute and
  /// shape checks, kernel set-up). The plan must outlive the backend. Errors read `<plan>: step N ('op'): <what>`.
  virtual llvm::Error prepare(const LoadedPlan &plan) = 0;

  /// Parameter `index`'s local shard, plan.params[index].numel() floats.
  virtual void writeParam(size_t index, llvm::ArrayRef<float> values) = 0;
  virtual void readParam(size_t index, llvm::MutableArrayRef<float> values) = 0;
  /// Optimizer state `index`'s local shard (plan.states, Storage::OptState), plan.states[index].numel() floats:
  /// zeros after prepare; read and written for checkpoints.
  virtual void writeState(size_t index, llvm::ArrayRef<float> values) = 0;
  virtual void readState(size_t index, llvm::MutableArrayRef<float> values) = 0;
  /// Input `index`'s local shard, plan.inputs[index].numel() elements of its dtype, as raw bytes.
  virtual void writeInput(size_t index, llvm::ArrayRef<uint8_t> bytes) = 0;

  /// Runs step `index` of the plan. Collective steps talk to the other ranks through `comm`.
  virtual llvm::Error runStep(size_t index, const StepContext &ctx, Communicator &comm) = 0;
  /// Runs every step of `plan` (the prepared plan) once in order, as runStep (ctx.evaluation: the forward steps
  /// only). The CUDA backend overrides it to replay a captured CUDA graph of the training step.
  virtual llvm::Error runSteps(const LoadedPlan &plan, const StepContext &ctx, Communicator &comm);
  /// Copies a tensor (after the steps that write it have run) into `bytes` (slot.bytes() of them).
  virtual void readTensor(const TensorSlot &slot, llvm::MutableArrayRef<uint8_t> bytes) = 0;
  /// Overwrites a tensor with `bytes` (slot.bytes() of them), for the test perturbation of FaultInjection.h.
  virtual void writeTensor(const TensorSlot &slot, llvm::ArrayRef<uint8_t> bytes) = 0;

  /// The communicators of a mesh of meshDp x meshTp ranks all hosted by this process as threads: peers[r] runs
  /// rank r, every peer is of this backend's kind and this backend is one of them. The CPU's pass buffers through
  /// shared memory; CUDA's run device collectives between the peers' streams on one GPU. One rank: collectives
  /// are no-ops. (Ranks in separate processes get MPI or NCCL communicators from the job instead.)
  /// With meshPp > 1 the peers are meshPp pipeline stages of meshDp x meshTp ranks each.
  llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
  createThreadCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp, int meshPp = 1);

  /// Pipeline parallelism: copies the first `bytes` of the activation arena (the plan's stash bytes: what the
  /// forward hands to the backward) into slot `slot` (save) or back from it (restore), so the backward of a
  /// micro-batch finds the activations of its forward while later forwards ran in between.
  virtual llvm::Error saveActivations(int slot, int64_t bytes) = 0;
  virtual llvm::Error restoreActivations(int slot, int64_t bytes) = 0;

protected:
  /// createThreadCommunicators for two or more peers.
  virtual llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
  createPeerCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp, int meshPp) = 0;
};

/// Where a backend instance runs: its mesh rank, the ranks this process hosts, and the device it should use
/// (CUDA: every rank of a process on one device in one-GPU mode, or LOCAL_RANK's device with one rank per process).
struct BackendPlace {
  int rank = 0;        ///< mesh rank of the plan the backend runs
  int localRanks = 1;  ///< ranks hosted by this process
  int device = 0;      ///< device ordinal (CUDA)
  bool cudaGraphs = true; ///< CUDA: capture the training step in a CUDA graph after warm-up and replay it
};

} // namespace meg::runtime

#endif
