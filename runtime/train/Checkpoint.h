//===- Checkpoint.h - training checkpoints and the resumable step log -*- C++ -*-===//
//
// A checkpoint holds everything a training run needs to continue: every parameter and optimizer state (Adam's m and
// v, the fp16 loss scaler's state and count of updates) as its full global tensor (assembled from the shards), the
// number of completed steps, the seed, the data position, and the identity of the model, optimizer and global batch
// it belongs to. Batches are a pure function of (seed, step) (BatchSource::batch, the GLOBAL batch of all dp ranks),
// dropout masks are keyed by (seed, step, global index) and the lr schedule and Adam's bias corrections read the step,
// so restoring the step restores all of them. Because tensors are stored whole, a checkpoint resumes under any mesh
// (dp, tp, pp: a pipeline stage holds only its own tensors, the tied word embedding is held by the first and the last
// stage, stored once, and both copies are restored from it) whose plans have the same model, optimizer settings, optimizer states and global batch: each rank takes
// its shard by the plan's global shape and offset (resharding). On the same mesh the resume is bit-identical.
//
// File format (little-endian):
//
//   "MEGCKPT1"  u64 payload size  u64 xxHash64(payload)  payload
//
// The payload is a safetensors file (runtime/io/Safetensors.h): tensors `param/<name>` and `state/<name>` (f32, the
// global shape; not the gradient accumulators, which restart at every step's first micro-batch) and `__metadata__` with the scalars: format ("meg checkpoint"), version, step, seed, data_step (the
// step the next batch is drawn for), data_windows (windows per epoch of the training split: a check of the data),
// mesh ("dp=D tp=T", then " pp=P" with pipeline stages: the mesh it was written on), plan_hash (16 hex digits: xxHash64 of the little-endian xxHash64
// digests of the plan files rank-0..rank-N-1; informational), model (the model description JSON without
// meg.micro_batch), optimizer (the optimizer steps' attributes, one distinct step a line) and global_batch (each
// input's rows per step over all dp ranks and micro-batches). So `f.read()[24:]` is a safetensors file.
// The checksum covers the whole payload; a file whose magic, size or checksum is wrong is refused before anything
// in it is used. Writes are atomic (runtime/io/AtomicFile.h): a failed save leaves the previous checkpoint as it was.
// A run killed while saving leaves its temporary `<CKPT>.tmp.<pid>` behind (never read; safe to delete).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_CHECKPOINT_H
#define MEG_RUNTIME_TRAIN_CHECKPOINT_H

#include "runtime/plan/Plan.h"
#include "runtime/io/Safetensors.h"
#include "runtime/train/Session.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace llvm {
class raw_fd_ostream;
} // namespace llvm

namespace meg::runtime {

constexpr llvm::StringLiteral CheckpointMagic("MEGCKPT1");
constexpr uint32_t kCheckpointVersion = 2;

/// Which plan set a checkpoint belongs to: the mesh, a hash of the plan files' bytes (plans are byte-stable, so
/// the same model and flags compile to the same hash), and what any mesh resuming it must share: the model, the
/// optimizer settings, the global batch and the tensors (parameters and optimizer states by global shape).
struct PlanSetIdentity {
  int dp = 1, tp = 1, pp = 1;
  uint64_t hash = 0;
  std::string model;     ///< the model description JSON (keys sorted) without meg.micro_batch
  std::string optimizer; ///< the distinct optimizer steps (adamw, lr_schedule, ...) with their attributes, sorted
  std::string batch;     ///< every input's global shape per step (rows x micro-batches)
  std::map<std::string, Shape> tensors; ///< "param/<name>" and "state/<name>" -> global shape
  /// The plans' gradient accumulators ("state/<name>" -> global shape): they restart at every step's first
  /// micro-batch, so a checkpoint neither stores nor needs them (one that holds them resumes all the same).
  std::map<std::string, Shape> accumulators;
  /// Tensors whose dim 0 is the tp-padded vocabulary (a parameter with vocab_rows, and its optimizer states laid out
  /// like it, "adam.m:<name>"): the rows that exist. Padding rows are zero (never read: their logits are masked), so
  /// a mesh with other padding takes the real rows and zeros.
  std::map<std::string, int64_t> vocabRows;
  std::string mesh() const;     ///< "dp=D tp=T", then " pp=P" with pipeline stages
  std::string hashHex() const;  ///< 16 hex digits
};
/// Reads the plan files (plans[r].path) and hashes them in rank order.
llvm::Expected<PlanSetIdentity> planSetIdentity(llvm::ArrayRef<LoadedPlan> plans);

/// The scalars of a checkpoint.
struct CheckpointState {
  uint64_t step = 0;        ///< completed training steps
  uint64_t seed = 0;        ///< the run's seed (init, data order, dropout)
  uint64_t dataStep = 0;    ///< the next batch is BatchSource::batch(dataStep) (= step)
  uint64_t dataWindows = 0; ///< windows per epoch of the training split (0: no data source)
};

/// Collective: writes every rank's parameter and optimizer state shards of `session` with `state` and `id` to
/// `path`, atomically, from the root process (the others send their shards: Session::withShards). Errors name the
/// file.
llvm::Error saveCheckpoint(llvm::StringRef path, Session &session, const PlanSetIdentity &id,
                           const CheckpointState &state);

/// A checkpoint read into memory, its checksum and metadata verified.
class Checkpoint {
public:
  /// Reads and verifies `path`. Errors (`<path>: <what>`): unreadable, not a checkpoint, truncated, checksum
  /// mismatch, malformed payload or metadata, another version.
  static llvm::Expected<Checkpoint> load(llvm::StringRef path);

  const CheckpointState &state() const { return scalars; }
  const PlanSetIdentity &identity() const { return id; }
  /// Error unless the plan set `current` can resume the checkpoint: the same model, optimizer settings, global batch
  /// and tensors (names and global shapes); the mesh may differ. One line naming what differs.
  llvm::Error checkPlanSet(const PlanSetIdentity &current) const;
  /// Writes the hosted ranks' shards of every parameter and optimizer state (cut from the global tensors by the
  /// plans' offsets) into `session`. Error: a tensor missing or of another global shape (checked for all ranks
  /// before anything is written).
  llvm::Error restore(Session &session) const;

private:
  Checkpoint() = default;
  std::string path;
  std::unique_ptr<llvm::MemoryBuffer> fileBuffer; ///< the file; payload's tensors point into it
  std::unique_ptr<SafetensorsFile> payload;
  CheckpointState scalars;
  PlanSetIdentity id;
};

/// The per-step JSONL log of a training run, written as it goes (one line per step, flushed), so a killed run
/// keeps the steps it finished. A fresh run truncates the file; a resumed run (`resumeStep` set) keeps the lines
/// of steps 1..resumeStep (dropping later ones, which the killed run logged after its last checkpoint, and a torn
/// last line) and appends after them, so the log of a resumed run equals an uninterrupted run's.
class StepLog {
public:
  static llvm::Expected<std::unique_ptr<StepLog>> open(llvm::StringRef path, std::optional<uint64_t> resumeStep);
  ~StepLog();
  llvm::Error append(llvm::StringRef line);

private:
  StepLog() = default;
  std::string path;
  std::unique_ptr<llvm::raw_fd_ostream> os;
  int fd = -1;
  bool resumed = false; ///< appending to a resumed run's log (never removed)
  uint64_t good = 0;    ///< bytes of complete lines in the file
};

} // namespace meg::runtime

#endif
