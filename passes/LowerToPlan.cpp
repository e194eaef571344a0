//===- LowerToPlan.cpp - per-rank FlatBuffers plans ---------------------------===//
//
// lower-to-plan{dir=PATH,mode=train|infer|decode}: writes the plans of the graph (writePlans) and leaves it unchanged.
// The mapping is documented in passes/LowerToPlan.h.
//
//===----------------------------------------------------------------------===//
#include "passes/LowerToPlan.h"

#include "llvm/ADT/DenseSet.h"
#include "passes/GradAccum.h"
#include "passes/MemoryPlan.h"
#include "passes/Pass.h"
#include "passes/PipelineSplit.h"
#include "ir/Printer.h"
#include "ir/ValueKey.h"

#include "runtime/plan/CollectiveOrder.h"
#include "runtime/plan/PipelineSchedule.h"
#include "runtime/plan/plan_generated.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <variant>

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;
using ir::Value;
namespace fb = flatbuffers;

namespace {

plan::DType toPlan(ir::DType t) {
  switch (t) {
  case ir::DType::F32: return plan::DType::F32;
  case ir::DType::BF16: return plan::DType::BF16;
  case ir::DType::F16: return plan::DType::F16;
  case ir::DType::I32: return plan::DType::I32;
  }
  llvm_unreachable("bad dtype");
}

/// Builds one rank's plan. Shapes as std::vector<int64_t> because the generated Create*Direct helpers take them.
class PlanBuilder {
public:
  // Pipeline stages (rank = (stage * dp + dpRank) * tp + tpRank): the rank holds only its stage's nodes.
  PlanBuilder(const ir::Graph &g, const PlanMetadata &meta, int64_t rank)
      : g(g), meta(meta), rank(rank), stages(pipelineStagesOf(g)) {
    const ir::Mesh &mesh = g.getMesh();
    stage = rank / mesh.world();
    coord[unsigned(ir::MeshAxis::DP)] = rank % mesh.world() / mesh.tp();
    coord[unsigned(ir::MeshAxis::TP)] = rank % mesh.tp();
  }

  llvm::Expected<std::string> build() {
    // Every step needs its offsets before anything is written.
    auto order = g.computeOrder();
    for (const auto &n : g) {
      if (isInterface(n->getKind()) || n->getNumResults() == 0)
        continue;
      const std::vector<int64_t> *arena = n->getAttrs().getInts("arena");
      if (!arena || arena->size() != n->getNumResults())
        return fail(llvm::formatv("'{0}' (line {1}) has no valid 'arena' attribute (run memory-plan first)",
                                  n->getName(), irLineOfNode(order[n.get()]))
                        .str());
    }
    auto stats = computeMemoryPlanStats(g, stage);
    if (!stats)
      return stats.takeError();

    unsigned numParams = 0, numInputs = 0, numStates = 0;
    for (const Node *p : g.nodesOfKind(OpKind::Param))
      if (here(*p))
        storageIndex[p->getResult(0)] = numParams++;
    for (const Node *in : g.nodesOfKind(OpKind::Input))
      if (here(*in))
        storageIndex[in->getResult(0)] = numInputs++;
    for (const Node *st : g.nodesOfKind(OpKind::State))
      if (here(*st))
        storageIndex[st->getResult(0)] = numStates++;
    // What the loss needs (everything without a loss): evaluation runs only these.
    for (const Node *r : g.nodesOfKind(OpKind::Recv))
      if (onStage(*r, stage))
        received[r->getOperand(0)->getDef()->getOperand(0)] = r->getResult();
    auto microBatches = microBatchesOf(g);
    if (!microBatches)
      return microBatches.takeError();

    fbb.ForceDefaults(true);
    std::vector<fb::Offset<plan::Parameter>> params;
    std::vector<fb::Offset<plan::Input>> inputs;
    std::vector<fb::Offset<plan::Step>> steps;
    std::vector<fb::Offset<plan::Output>> outputs;
    std::vector<fb::Offset<plan::Parameter>> states;
    for (const auto &n : g) {
      if (!here(*n))
        continue;
      switch (n->getKind()) {
      case OpKind::Param: params.push_back(lowerParam(*n)); break;
      case OpKind::State: states.push_back(lowerState(*n)); break;
      case OpKind::Input: inputs.push_back(lowerInput(*n)); break;
      case OpKind::Output: outputs.push_back(lowerOutput(*n)); break;
      default: steps.push_back(lowerStep(*n, order[n.get()])); break;
      }
    }
    const ir::Mesh &mesh = g.getMesh();
    std::vector<fb::Offset<plan::PipePhase>> schedule;
    if (stages > 1)
      for (const runtime::PipePhase &phase : runtime::oneFOneB(int(stages), int(stage), int(*microBatches)))
        schedule.push_back(plan::CreatePipePhase(fbb, phase.backward, phase.microBatch));
    auto root = plan::CreatePlanDirect(fbb, kPlanSchemaVersion, int32_t(mesh.dp()), int32_t(mesh.tp()),
                                       int32_t(rank), meta.modelJson.c_str(), meta.mode.c_str(), stats->arenaBytes,
                                       &params, &inputs, &steps, &outputs, &states,
                                       int32_t(*microBatches), int32_t(stages), stages > 1 ? &schedule : nullptr,
                                       stats->stashBytes);
    plan::FinishPlanBuffer(fbb, root);
    return std::string(reinterpret_cast<const char *>(fbb.GetBufferPointer()), fbb.GetSize());
  }

private:
  static bool isInterface(OpKind k) { return isExternal(k) || k == OpKind::Output; }

  /// Whether this rank's plan holds `n`: its stage's nodes, and the outputs of values computed or received there.
  bool here(const Node &n) const {
    if (n.getKind() == OpKind::Output)
      return local(n.getOperand(0)) != nullptr;
    return onStage(n, stage);
  }

  /// `v` as this stage holds it: itself, the result of its recv here, or null.
  const Value *local(const Value *v) const {
    if (onStage(*v->getDef(), stage))
      return v;
    return received.lookup(v);
  }

  plan::Phase phaseOf(const Node &n) const {
    switch (phases.of(n)) {
    case StepPhase::Forward: return plan::Phase::Forward;
    case StepPhase::Backward: return plan::Phase::Backward;
    case StepPhase::Update: return plan::Phase::Update;
    case StepPhase::Prologue: return plan::Phase::Prologue;
    }
    llvm_unreachable("bad phase");
  }

  struct Shard {
    std::vector<int64_t> global, local, offset;
  };
  Shard shard(const ir::TensorType &t) const {
    Shard s;
    s.global.assign(t.shape.begin(), t.shape.end());
    auto local = t.localShape(g.getMesh());
    s.local.assign(local.begin(), local.end());
    for (unsigned d = 0; d < t.rank(); ++d) {
      auto axis = t.sharding.dimAxis(d);
      s.offset.push_back(axis ? coord[unsigned(*axis)] * s.local[d] : 0);
    }
    return s;
  }

  static llvm::StringRef nameOf(const Node &n) { return n.getAttrs().getString("name").value_or(""); }

  fb::Offset<plan::Parameter> lowerParam(const Node &n) {
    const ir::TensorType &t = n.getResult(0)->getType();
    Shard s = shard(t);
    std::vector<int64_t> hf;
    if (const std::vector<int64_t> *h = n.getAttrs().getInts("hf_shape"))
      hf = *h;
    llvm::StringRef init = n.getAttrs().getSymbol("init").value_or("normal");
    plan::Init kind = init == "zeros" ? plan::Init::Zeros : init == "ones" ? plan::Init::Ones : plan::Init::Normal;
    return plan::CreateParameterDirect(fbb, nameOf(n).str().c_str(), toPlan(t.dtype), &s.global, &hf, &s.local,
                                       &s.offset, kind, n.getAttrs().getFloat("std").value_or(0.0),
                                       /*no_decay=*/t.rank() == 1,
                                       /*vocab_rows=*/n.getAttrs().getInt("vocab_rows").value_or(0));
  }

  /// Optimizer state: zeros at start (or the constant `init`: the loss scaler's), laid out like its parameter.
  fb::Offset<plan::Parameter> lowerState(const Node &n) {
    const ir::TensorType &t = n.getResult(0)->getType();
    Shard s = shard(t);
    std::vector<int64_t> none;
    double value = n.getAttrs().getFloat("init").value_or(0.0);
    return plan::CreateParameterDirect(fbb, nameOf(n).str().c_str(), toPlan(t.dtype), &s.global, &none, &s.local,
                                       &s.offset, value == 0.0 ? plan::Init::Zeros : plan::Init::Constant, 0.0,
                                       /*no_decay=*/true, /*vocab_rows=*/0, value);
  }

  fb::Offset<plan::Input> lowerInput(const Node &n) {
    const ir::TensorType &t = n.getResult(0)->getType();
    Shard s = shard(t);
    return plan::CreateInputDirect(fbb, nameOf(n).str().c_str(), toPlan(t.dtype), &s.global, &s.local, &s.offset);
  }

  fb::Offset<plan::Output> lowerOutput(const Node &n) {
    auto tensor = tensorRef(*local(n.getOperand(0)));
    return plan::CreateOutputDirect(fbb, nameOf(n).str().c_str(), tensor);
  }

  fb::Offset<plan::TensorRef> tensorRef(const Value &v) {
    // A value written in place into an operand's accumulator (arena offset -1 - k) is that operand's storage, and an
    // accumulate's result (and an alias of it) is its accumulator's (passes/MemoryPlan.h storageRoot).
    const Value *held = &v;
    while (const std::vector<int64_t> *a = held->getDef()->getAttrs().getInts("arena")) {
      int64_t off = held->getIndex() < a->size() ? (*a)[held->getIndex()] : 0;
      if (off >= 0)
        break;
      held = held->getDef()->getOperand(unsigned(-1 - off));
    }
    const Value &root = storageRoot(*held);
    const Node &def = *root.getDef();
    plan::Storage storage = plan::Storage::Arena;
    int64_t index = 0;
    if (def.getKind() == OpKind::Param) {
      storage = plan::Storage::Param;
      index = storageIndex.lookup(&root);
    } else if (def.getKind() == OpKind::Input) {
      storage = plan::Storage::Input;
      index = storageIndex.lookup(&root);
    } else if (def.getKind() == OpKind::State) {
      storage = plan::Storage::OptState;
      index = storageIndex.lookup(&root);
    } else {
      index = (*def.getAttrs().getInts("arena"))[root.getIndex()];
    }
    Shard s = shard(v.getType());
    std::vector<uint8_t> partial;
    if (v.getType().sharding.hasPartial())
      for (unsigned a = 0; a < ir::kNumMeshAxes; ++a) {
        auto kind = v.getType().sharding.partialOver(ir::MeshAxis(a));
        partial.push_back(!kind ? 0 : *kind == ir::ReduceKind::Sum ? 1 : 2);
      }
    return plan::CreateTensorRefDirect(fbb, storage, index, toPlan(v.getType().dtype), &s.local, &s.global,
                                       &s.offset, partial.empty() ? nullptr : &partial);
  }

  fb::Offset<plan::Attr> lowerAttr(const std::string &key, const ir::AttrValue &value) {
    plan::AttrKind kind = plan::AttrKind::Bool;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    const char *s = nullptr;
    const std::vector<int64_t> *ints = nullptr;
    if (auto *v = std::get_if<bool>(&value)) {
      kind = plan::AttrKind::Bool, b = *v;
    } else if (auto *v = std::get_if<int64_t>(&value)) {
      kind = plan::AttrKind::Int, i = *v;
    } else if (auto *v = std::get_if<double>(&value)) {
      kind = plan::AttrKind::Float, f = *v;
    } else if (auto *v = std::get_if<std::string>(&value)) {
      kind = plan::AttrKind::String, s = v->c_str();
    } else if (auto *v = std::get_if<std::vector<int64_t>>(&value)) {
      kind = plan::AttrKind::Ints, ints = v;
    } else if (auto *v = std::get_if<ir::Symbol>(&value)) {
      kind = plan::AttrKind::Symbol, s = v->name.c_str();
    }
    return plan::CreateAttrDirect(fbb, key.c_str(), kind, b, i, f, s, ints);
  }

  fb::Offset<plan::Step> lowerStep(const Node &n, unsigned index) {
    std::vector<fb::Offset<plan::Attr>> attrs;
    for (const auto &[key, value] : n.getAttrs()) // AttrDict iterates sorted by key
      if (key != "arena" && key != "stage")
        attrs.push_back(lowerAttr(key, value));
    std::vector<fb::Offset<plan::TensorRef>> operands, results;
    // A recv's operand is its send's token, on the peer stage's plan.
    if (n.getKind() != OpKind::Recv)
      for (const Value *v : n.getOperands())
        operands.push_back(tensorRef(*v));
    for (unsigned r = 0; r < n.getNumResults(); ++r)
      results.push_back(tensorRef(*n.getResult(r)));
    std::string value = n.getNumResults() ? "%" + std::to_string(numbering.lookup(n.getResult(0))) : "";
    std::vector<fb::Offset<fb::String>> resultKeys;
    for (unsigned r = 0; r < n.getNumResults(); ++r)
      resultKeys.push_back(fbb.CreateString(keys.lookup(n.getResult(r)).str()));
    return plan::CreateStepDirect(fbb, n.getName().str().c_str(), &attrs, &operands, &results, irLineOfNode(index),
                                  phaseOf(n), value.empty() ? nullptr : value.c_str(),
                                  resultKeys.empty() ? nullptr : &resultKeys);
  }

  const ir::Graph &g;
  const PlanMetadata &meta;
  int64_t rank;
  int64_t stages, stage = 0;
  int64_t coord[ir::kNumMeshAxes] = {0, 0};
  llvm::DenseMap<const Value *, int64_t> storageIndex;
  PhaseRule phases{g};
  /// Pipeline stages: the values this stage receives, and their recv results.
  llvm::DenseMap<const Value *, const Value *> received;
  fb::FlatBufferBuilder fbb;
  ir::ValueNumbering numbering{g}; ///< the `%N` names of megc --emit ir, for the steps' `value`
  ir::ValueKeys keys{g};           ///< mesh-independent names, for the steps' `keys`
};

/// Whether `dir` holds nothing but regular *.megplan files.
bool isPlanDirectory(llvm::StringRef dir) {
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec, /*follow_symlinks=*/false), end; it != end && !ec;
       it.increment(ec)) {
    if (it->type() != llvm::sys::fs::file_type::regular_file ||
        llvm::sys::path::extension(it->path()) != ".megplan")
      return false;
  }
  return !ec;
}

/// Decodes the plans of every rank (as megrun will) and checks their collective order; a failure is a compiler bug.
llvm::Error verifyPlanBytes(llvm::ArrayRef<std::string> plans, llvm::StringRef dir) {
  std::vector<runtime::LoadedPlan> loaded;
  for (size_t r = 0; r < plans.size(); ++r) {
    auto bytes = llvm::arrayRefFromStringRef(plans[r]);
    auto plan = runtime::parsePlan(bytes, runtime::planPath(dir, int(r)));
    if (!plan)
      return fail("internal error: the plan written is invalid: " + llvm::toString(plan.takeError()));
    loaded.push_back(std::move(*plan));
  }
  if (auto err = runtime::verifyCollectiveOrder(loaded, dir))
    return fail("internal error: " + llvm::toString(std::move(err)));
  return llvm::Error::success();
}

/// Removes a directory of plain files (a plan directory or our temporary one).
void removePlanDirectory(llvm::StringRef dir) { llvm::sys::fs::remove_directories(dir, /*IgnoreErrors=*/true); }

} // namespace

llvm::Expected<std::string> meg::passes::buildPlan(const ir::Graph &g, const PlanMetadata &meta, int64_t rank) {
  assert(rank >= 0 && rank < g.getMesh().world() * pipelineStagesOf(g) && "rank out of range");
  return PlanBuilder(g, meta, rank).build();
}

llvm::Error meg::passes::writePlans(const ir::Graph &g, const PlanMetadata &meta, llvm::StringRef dirArg) {
  namespace fs = llvm::sys::fs;
  if (dirArg.empty())
    return fail("no plan directory given");
  // Every plan is built in memory first (nothing touches the file system when lowering fails), so the plan set is
  // bounded; larger meshes can still be studied with --emit report.
  constexpr int64_t kMaxPlanFiles = 16384;
  int64_t world = g.getMesh().world() * pipelineStagesOf(g);
  if (world > kMaxPlanFiles)
    return fail(llvm::formatv("a mesh of {0} ranks: at most {1} plans are written (--emit report studies larger "
                              "meshes)",
                              world, kMaxPlanFiles)
                    .str());
  // Build every plan first: nothing touches the file system when lowering fails.
  std::vector<std::string> plans;
  for (int64_t r = 0; r < world; ++r) {
    auto bytes = buildPlan(g, meta, r);
    if (!bytes)
      return bytes.takeError();
    plans.push_back(std::move(*bytes));
  }
  // Prove the set's collective order before anything is written (runtime/plan/CollectiveOrder.h).
  if (auto err = verifyPlanBytes(plans, dirArg))
    return err;

  llvm::SmallString<256> dir(dirArg);
  if (std::error_code ec = fs::make_absolute(dir))
    return fail("'" + dirArg + "': " + ec.message());
  while (dir.size() > 1 && llvm::sys::path::is_separator(dir.back()))
    dir.pop_back();
  bool exists = fs::exists(dir);
  if (exists && (!fs::is_directory(dir) || !isPlanDirectory(dir)))
    return fail("'" + dirArg + "' exists and is not a plan directory");

  llvm::SmallString<256> tmp;
  if (std::error_code ec = fs::createUniqueDirectory(dir + ".tmp", tmp))
    return fail("cannot create a directory next to '" + dirArg + "': " + ec.message());
  // A unique directory is created owner-only; the plan directory gets the permissions of a plain mkdir.
  (void)fs::setPermissions(tmp, fs::perms(fs::all_all & ~fs::getUmask()));
  for (size_t r = 0; r < plans.size(); ++r) {
    llvm::SmallString<256> path(tmp);
    llvm::sys::path::append(path, "rank-" + llvm::Twine(r) + ".megplan");
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec, fs::OF_None);
    if (!ec) {
      os << plans[r];
      os.close();
      ec = os.error();
      os.clear_error(); // reported below; an uncleared error would abort ("IO failure on output stream")
    }
    if (ec) {
      removePlanDirectory(tmp);
      return fail("cannot write '" + path + "': " + ec.message());
    }
  }

  // Swap the new directory in: move the old one aside first so that `dir` always holds a complete set of plans.
  llvm::SmallString<256> old;
  if (exists) {
    fs::createUniquePath(dir + ".old-%%%%%%", old, /*MakeAbsolute=*/false);
    if (std::error_code ec = fs::rename(dir, old)) {
      removePlanDirectory(tmp);
      return fail("cannot replace '" + dirArg + "': " + ec.message());
    }
  }
  if (std::error_code ec = fs::rename(tmp, dir)) {
    if (exists)
      (void)fs::rename(old, dir);
    removePlanDirectory(tmp);
    return fail("cannot create '" + dirArg + "': " + ec.message());
  }
  if (exists)
    removePlanDirectory(old);
  return llvm::Error::success();
}

namespace {
class LowerToPlanPass : public Pass {
public:
  explicit LowerToPlanPass(LowerToPlanOptions options) : options(std::move(options)) {}
  llvm::StringRef getName() const override { return "lower-to-plan"; }
  llvm::Error run(ir::Graph &g) override {
    PlanMetadata meta;
    meta.mode = options.mode;
    if (!options.model.empty()) {
      auto text = llvm::MemoryBuffer::getFile(options.model);
      if (!text)
        return fail(options.model + ": " + text.getError().message());
      meta.modelJson = (*text)->getBuffer().str();
    }
    return writePlans(g, meta, options.dir);
  }

private:
  LowerToPlanOptions options;
};
} // namespace

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createLowerToPlanPass(const LowerToPlanOptions &options) {
  if (options.dir.empty())
    return fail("lower-to-plan: option 'dir' is required");
  if (options.mode != "train" && options.mode != "infer" && options.mode != "decode")
    return fail("lower-to-plan: option 'mode' must be train, infer or decode, got '" + options.mode + "'");
  return std::make_unique<LowerToPlanPass>(options);
}
