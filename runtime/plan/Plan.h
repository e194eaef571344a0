//===- Plan.h - loading and checking execution plans ------------*- C++ -*-===//
//
// A plan file (runtime/plan/plan.fbs) is one rank's execution plan. loadPlan() reads it, checks the file identifier,
// runs the FlatBuffers Verifier, then the semantic checks the executor relies on (version, mesh and rank, slices
// inside the arena and aligned to their dtype, indices in range, operand/result counts against ir/Ops.def, dtypes,
// shapes, results that overlap an operand only as exact aliases of in-place ops (the InPlace / Alias traits of ir/Ops.def)),
// once per plan for every backend, and decodes it
// into plain C++ structures. Every problem is one llvm::Error `<file>: <what>`; a bad plan never crashes.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_PLAN_PLAN_H
#define MEG_RUNTIME_PLAN_PLAN_H

#include "ir/Op.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace meg::runtime {

/// The plan schema version this runtime reads (runtime/plan/plan.fbs). Bump on any incompatible schema change.
constexpr uint32_t kPlanSchemaVersion = 1;

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3 };
enum class Storage : uint8_t { Arena = 0, Param = 1, Grad = 2, OptState = 3, Input = 4 };
enum class ParamInit : uint8_t { Normal = 0, Zeros = 1, Ones = 2, Constant = 3 };

llvm::StringRef dtypeName(DType t);
unsigned dtypeBytes(DType t);
llvm::StringRef storageName(Storage s);

using Shape = llvm::SmallVector<int64_t, 4>;

int64_t numElements(llvm::ArrayRef<int64_t> shape);

/// One tensor as this rank holds it (plan.fbs TensorRef), decoded.
/// A pending reduction of a tensor over a mesh axis (plan.fbs TensorRef.partial).
enum class PartialKind : uint8_t { None = 0, Sum = 1, Max = 2 };

struct TensorSlot {
  Storage storage = Storage::Arena;
  int64_t index = 0; ///< Arena: byte offset; Param/Grad/Input: index into params/inputs; OptState: slot
  DType dtype = DType::F32;
  Shape shape;       ///< local
  Shape globalShape; ///< same rank as shape
  Shape offset;      ///< global index of the first local element per dim
  /// A pending reduction over each mesh axis (dp, tp): the global tensor is the sum (max) of the ranks' tensors
  /// along that axis (IR `partial(axis, sum|max)`).
  std::array<PartialKind, 2> partial{};
  int64_t numel() const { return numElements(shape); }
  int64_t bytes() const { return numel() * dtypeBytes(dtype); }
  /// True when this rank holds the whole tensor.
  bool isWhole() const { return shape == globalShape; }
};

/// True when two slots share bytes: arena slots by their byte ranges; every other slot is a whole buffer of its own
/// (storage, index).
bool slotsOverlap(const TensorSlot &a, const TensorSlot &b);

/// An attribute value of a step (plan.fbs Attr).
struct StepAttr {
  enum Kind : uint8_t { Bool = 0, Int = 1, Float = 2, String = 3, Ints = 4, Symbol = 5 };
  std::string key;
  Kind kind = Int;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
};

/// Which part of a training step a step belongs to (plan.fbs Phase): evaluation runs Forward steps only.
enum class StepPhase : uint8_t { Forward = 0, Backward = 1, Update = 2, Prologue = 3 };

struct PlanStep {
  ir::OpKind kind;
  StepPhase phase = StepPhase::Forward;
  std::string op;
  std::vector<StepAttr> attrs; ///< sorted by key
  std::vector<TensorSlot> operands;
  std::vector<TensorSlot> results;
  unsigned line = 0;
  std::string value; ///< IR name of the first result (`%N` in megc --emit ir), empty when the plan has none
  /// Each result's mesh-independent key (ir/ValueKey.h); empty when the plan has none.
  std::vector<std::string> keys;

  const StepAttr *attr(llvm::StringRef key) const;
};

struct PlanParam {
  std::string name; ///< Hugging Face name
  DType dtype = DType::F32;
  Shape globalShape; ///< IR shape
  Shape hfShape;     ///< shape in HF files (global_shape when the plan leaves it empty)
  Shape shape;       ///< this rank's shard
  Shape offset;
  ParamInit init = ParamInit::Normal;
  double std = 0;
  double value = 0; ///< init = Constant
  bool noDecay = false;
  int64_t vocabRows = 0; ///< rows of dim 0 that exist in the HF tensor (0 = no padding)

  int64_t numel() const { return numElements(shape); }
  int64_t globalNumel() const { return numElements(globalShape); }
  /// The shape the tensor has in a Hugging Face file: hfShape with dim 0 cut to vocabRows when padded.
  Shape fileShape() const;
};

struct PlanInput {
  std::string name;
  DType dtype = DType::I32;
  Shape globalShape;
  Shape shape;
  Shape offset;
  int64_t numel() const { return numElements(shape); }
};

struct PlanOutput {
  std::string name;
  TensorSlot tensor;
};

/// One phase of a pipeline stage's schedule (plan.fbs PipePhase).
struct PipePhase {
  bool backward = false;
  int microBatch = 0;
};

/// A verified, decoded plan.
struct LoadedPlan {
  std::string path;
  uint32_t version = 0;
  int meshDp = 1, meshTp = 1, rank = 0;
  std::string model; ///< the model description JSON
  std::string mode;  ///< "train" | "infer" | "decode"
  int64_t arenaBytes = 0;
  std::vector<PlanParam> params;
  std::vector<PlanInput> inputs;
  std::vector<PlanStep> steps;
  std::vector<PlanOutput> outputs;
  /// Optimizer state (Storage::OptState by index), zeros at start; init/hf fields unused.
  std::vector<PlanParam> states;
  /// Micro-batches per step (gradient accumulation): steps [0, updateBegin) run once per micro-batch, the Update
  /// steps [updateBegin, steps.size()) once per step. 1: every step once, in order.
  int microBatches = 1;
  size_t updateBegin = 0;
  /// Pipeline parallelism (meshPp > 1): this rank's stage and its 1F1B schedule over the micro-batches.
  int meshPp = 1;
  std::vector<PipePhase> schedule;
  /// Pipeline parallelism: the bytes at the bottom of the arena a stage saves per micro-batch in flight.
  int64_t stashBytes = 0;

  int world() const { return meshDp * meshTp * meshPp; }
  int dpRank() const { return (rank / meshTp) % meshDp; }
  int tpRank() const { return rank % meshTp; }
  int stage() const { return rank / (meshDp * meshTp); }
  /// Index of the named input / param / output, or nullopt.
  std::optional<size_t> findInput(llvm::StringRef name) const;
  std::optional<size_t> findParam(llvm::StringRef name) const;
  const PlanOutput *findOutput(llvm::StringRef name) const;
  /// `<path>: step N ('op')` for diagnostics.
  std::string stepLabel(size_t step) const;
};

/// The parameters of a plan set, each name once: rank 0's, then those only later pipeline stages hold, in stage
/// order (without pipeline stages: rank 0's).
std::vector<PlanParam> planSetParams(llvm::ArrayRef<LoadedPlan> plans);
/// What the data of a plan set is read for: rank 0's plan, with pipeline stages also holding the inputs and
/// parameters only later stages have (the labels of the last stage's loss).
LoadedPlan planSetDataView(llvm::ArrayRef<LoadedPlan> plans);

/// Verifies and decodes a plan held in memory; `name` prefixes every error.
llvm::Expected<LoadedPlan> parsePlan(llvm::ArrayRef<uint8_t> bytes, llvm::StringRef name);
/// Reads, verifies and decodes a plan file.
llvm::Expected<LoadedPlan> loadPlan(llvm::StringRef path);
/// `<dir>/rank-<rank>.megplan`.
std::string planPath(llvm::StringRef dir, int rank);
llvm::Expected<LoadedPlan> loadPlanDir(llvm::StringRef dir, int rank);
/// Loads every rank of a plan directory: rank-0 names the mesh; rank-0..world-1 must all exist, agree on
/// version, mesh and model, and each must carry its own rank. No other rank-*.megplan may be present. The set's
/// collective order is then proven (runtime/plan/CollectiveOrder.h) before anything runs.
llvm::Expected<std::vector<LoadedPlan>> loadPlanSet(llvm::StringRef dir);

} // namespace meg::runtime

#endif
