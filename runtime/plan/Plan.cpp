//===- Plan.cpp - loading and checking execution plans ----------------------===//
#include "runtime/plan/Plan.h"
#include "runtime/plan/PipelineSchedule.h"
#include "runtime/plan/CollectiveOrder.h"

#include "ir/File.h"
#include "ir/Json.h"
#include "ir/Type.h"
#include "runtime/plan/plan_generated.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <set>

using namespace meg;
using namespace meg::runtime;
namespace fb = meg::plan;

llvm::StringRef meg::runtime::dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  case DType::I32:
    return "i32";
  }
  return "?";
}

unsigned meg::runtime::dtypeBytes(DType t) { return t == DType::BF16 || t == DType::F16 ? 2 : 4; }

llvm::StringRef meg::runtime::storageName(Storage s) {
  static const char *names[] = {"arena", "param", "grad", "opt-state", "input"};
  return unsigned(s) < 5 ? names[unsigned(s)] : "?";
}

bool meg::runtime::slotsOverlap(const TensorSlot &a, const TensorSlot &b) {
  if (a.storage != b.storage || (a.storage != Storage::Arena && a.index != b.index))
    return false;
  int64_t beginA = a.storage == Storage::Arena ? a.index : 0, beginB = b.storage == Storage::Arena ? b.index : 0;
  return beginA < beginB + b.bytes() && beginB < beginA + a.bytes();
}

int64_t meg::runtime::numElements(llvm::ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

Shape PlanParam::fileShape() const {
  Shape s = hfShape;
  if (vocabRows > 0 && !s.empty())
    s[0] = vocabRows;
  return s;
}

const StepAttr *PlanStep::attr(llvm::StringRef key) const {
  for (const StepAttr &a : attrs)
    if (a.key == key)
      return &a;
  return nullptr;
}

std::optional<size_t> LoadedPlan::findInput(llvm::StringRef name) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == name)
      return i;
  return std::nullopt;
}

std::optional<size_t> LoadedPlan::findParam(llvm::StringRef name) const {
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].name == name)
      return i;
  return std::nullopt;
}

const PlanOutput *LoadedPlan::findOutput(llvm::StringRef name) const {
  for (const PlanOutput &o : outputs)
    if (o.name == name)
      return &o;
  return nullptr;
}

std::string LoadedPlan::stepLabel(size_t step) const {
  return llvm::formatv("{0}: step {1} ('{2}')", path, step, step < steps.size() ? steps[step].op : "?").str();
}

static_assert(FLATBUFFERS_LITTLEENDIAN, "the decoder copies little-endian plan vectors bytewise");

namespace {

/// ` x pp P` in mesh descriptions, or nothing without pipeline stages.
std::string ppText(int pp) { return pp == 1 ? "" : " x pp " + std::to_string(pp); }

/// The pipeline fields: a schedule exactly when the mesh has more than one stage, and a valid 1F1B-shaped one.
llvm::Error decodeSchedule(const fb::Plan &p, LoadedPlan &out) {
  if (p.schedule())
    for (const fb::PipePhase *phase : *p.schedule())
      out.schedule.push_back({phase->backward(), phase->micro_batch()});
  int64_t stash = p.stash_bytes();
  if (out.meshPp == 1) {
    if (!out.schedule.empty())
      return llvm::createStringError(llvm::inconvertibleErrorCode(), "a pipeline schedule without pipeline stages");
    if (stash > 0)
      return llvm::createStringError(llvm::inconvertibleErrorCode(), "stash bytes without pipeline stages");
    return llvm::Error::success();
  }
  if (stash < 0 || stash > out.arenaBytes)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   stash < 0 ? std::string("a pipeline plan without stash bytes (written by an older "
                                                           "megc: compile it again)")
                                             : llvm::formatv("stash bytes {0} outside the arena of {1} bytes", stash,
                                                             out.arenaBytes)
                                                   .str());
  out.stashBytes = stash;
  return checkSchedule(out.schedule, out.microBatches, activationSlots(out.meshPp, out.stage(), out.microBatches));
}


using ir::kMaxElements;

std::string shapeString(llvm::ArrayRef<int64_t> s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

/// Decodes and checks a plan; the first problem found is kept in `error`.
class Decoder {
public:
  explicit Decoder(llvm::StringRef name) : name(name.str()) {}

  llvm::Expected<LoadedPlan> run(const fb::Plan &p);

private:
  std::string name;
  std::string error;
  LoadedPlan out;

  bool fail(const llvm::Twine &what) {
    if (error.empty())
      error = what.str();
    return false;
  }

  /// The Verifier checks a vector's length word for 4-byte alignment only, so an int64 vector of a corrupt plan may
  /// sit at 4 mod 8: copy the (little-endian) elements out bytewise instead of loading them in place.
  Shape ints(const flatbuffers::Vector<int64_t> *v) {
    Shape s;
    if (v) {
      s.resize(v->size());
      if (v->size())
        std::memcpy(s.data(), v->Data(), v->size() * sizeof(int64_t));
    }
    return s;
  }

  bool checkDType(int8_t raw, const llvm::Twine &what) {
    if (raw < 0 || raw > int8_t(fb::DType::I32))
      return fail(what + ": invalid dtype " + llvm::Twine(int(raw)));
    return true;
  }

  /// Non-negative dims, a sane element count.
  bool checkShape(llvm::ArrayRef<int64_t> s, const llvm::Twine &what) {
    if (llvm::any_of(s, [](int64_t d) { return d < 0; }))
      return fail(what + " has a negative dimension " + shapeString(s));
    if (!ir::checkedNumElements(s))
      return fail(what + " is too large " + shapeString(s));
    return true;
  }

  /// shape/global_shape/offset of a shard: same rank, offset + shape inside the global shape.
  bool checkShard(llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<int64_t> global, llvm::ArrayRef<int64_t> offset,
                  const llvm::Twine &what) {
    if (!checkShape(shape, what + " shape") || !checkShape(global, what + " global shape"))
      return false;
    if (global.size() != shape.size() || offset.size() != shape.size())
      return fail(what + ": shape " + shapeString(shape) + ", global shape " + shapeString(global) + " and offset " +
                  shapeString(offset) + " differ in rank");
    for (size_t d = 0; d < shape.size(); ++d)
      if (offset[d] < 0 || offset[d] > global[d] - shape[d])
        return fail(what + ": shard " + shapeString(shape) + " at offset " + shapeString(offset) +
                    " does not fit the global shape " + shapeString(global));
    return true;
  }

  bool decodeRef(const fb::TensorRef *r, TensorSlot &slot, const llvm::Twine &what);
  bool decodeParam(const fb::Parameter &p, size_t i, bool isState = false);
  bool decodeInput(const fb::Input &in, size_t i);
  bool decodeStep(const fb::Step &s, size_t i);
  bool checkStepMemory(const PlanStep &step, const std::string &label);

  llvm::StringSet<> paramNames, stateNames, inputNames; ///< seen so far (a scan per name was quadratic)
};

/// Arena slices are aligned to their dtype; a result shares memory with an operand only as an exact alias of the
/// same size, and only for ops that may run in place (the InPlace / Alias traits of ir/Ops.def).
bool Decoder::checkStepMemory(const PlanStep &step, const std::string &label) {
  for (auto [slots, what] : {std::pair{&step.operands, "operand"}, std::pair{&step.results, "result"}})
    for (size_t k = 0; k < slots->size(); ++k) {
      const TensorSlot &slot = (*slots)[k];
      if (slot.storage == Storage::Arena && slot.index % dtypeBytes(slot.dtype) != 0)
        return fail(llvm::formatv("{0}: {1} {2}: arena offset {3} is not aligned to {4} bytes", label, what, k,
                                  slot.index, dtypeBytes(slot.dtype)));
    }
  bool inPlace = ir::mayOverwriteOperand(step.kind) || ir::aliasesOperand(step.kind) ||
                 ir::yieldsWrittenOperand(step.kind);
  for (size_t r = 0; r < step.results.size(); ++r)
    for (size_t k = 0; k < step.operands.size(); ++k) {
      const TensorSlot &res = step.results[r], &op = step.operands[k];
      if (!slotsOverlap(res, op))
        continue;
      bool exactAlias = res.storage == op.storage && res.index == op.index && res.bytes() == op.bytes();
      if (!exactAlias || !inPlace)
        return fail(llvm::formatv("{0}: result {1} overlaps operand {2} in memory", label, r, k));
    }
  return true;
}

bool Decoder::decodeRef(const fb::TensorRef *r, TensorSlot &slot, const llvm::Twine &what) {
  if (!r)
    return fail(what + " is missing");
  int8_t storage = int8_t(r->storage());
  if (storage < 0 || storage > int8_t(fb::Storage::Input))
    return fail(what + ": invalid storage " + llvm::Twine(int(storage)));
  if (!checkDType(int8_t(r->dtype()), what))
    return false;
  slot.storage = Storage(storage);
  slot.index = r->index();
  slot.dtype = DType(r->dtype());
  slot.shape = ints(r->shape());
  slot.globalShape = r->global_shape() ? ints(r->global_shape()) : slot.shape;
  slot.offset = r->offset() ? ints(r->offset()) : Shape(slot.shape.size(), 0);
  if (!checkShard(slot.shape, slot.globalShape, slot.offset, what))
    return false;
  slot.partial = {};
  if (auto *partial = r->partial()) {
    if (partial->size() > slot.partial.size())
      return fail(what + ": partial names " + llvm::Twine(partial->size()) + " mesh axes");
    for (unsigned a = 0; a < partial->size(); ++a) {
      if (partial->Get(a) > uint8_t(PartialKind::Max))
        return fail(what + ": invalid partial reduction " + llvm::Twine(int(partial->Get(a))));
      slot.partial[a] = PartialKind(partial->Get(a));
    }
  }

  auto checkTarget = [&](llvm::ArrayRef<int64_t> shape, DType dtype, const llvm::Twine &kind, size_t index) {
    if (llvm::ArrayRef<int64_t>(slot.shape) != shape || slot.dtype != dtype)
      return fail(what + " is " + dtypeName(slot.dtype) + shapeString(slot.shape) + " but " + kind + " " +
                  llvm::Twine(index) + " is " + dtypeName(dtype) + shapeString(shape));
    return true;
  };
  switch (slot.storage) {
  case Storage::Arena: {
    int64_t begin = slot.index, bytes = slot.bytes();
    int64_t end = begin > INT64_MAX - bytes ? INT64_MAX : begin + bytes;
    if (begin < 0 || end > out.arenaBytes)
      return fail(llvm::formatv("{0} slice [{1}, {2}) is outside the arena ({3} bytes)", what.str(), begin, end,
                                out.arenaBytes));
    return true;
  }
  case Storage::Param:
  case Storage::Grad:
    if (slot.index < 0 || size_t(slot.index) >= out.params.size())
      return fail(llvm::formatv("{0} refers to {1} {2} but the plan has {3} params", what.str(),
                                storageName(slot.storage), slot.index, out.params.size()));
    return checkTarget(out.params[slot.index].shape, out.params[slot.index].dtype, "param", slot.index);
  case Storage::Input:
    if (slot.index < 0 || size_t(slot.index) >= out.inputs.size())
      return fail(llvm::formatv("{0} refers to input {1} but the plan has {2} inputs", what.str(), slot.index,
                                out.inputs.size()));
    return checkTarget(out.inputs[slot.index].shape, out.inputs[slot.index].dtype, "input", slot.index);
  case Storage::OptState:
    if (slot.index < 0 || size_t(slot.index) >= out.states.size())
      return fail(llvm::formatv("{0} refers to optimizer state {1} but the plan has {2}", what.str(), slot.index,
                                out.states.size()));
    return checkTarget(out.states[slot.index].shape, out.states[slot.index].dtype, "state", slot.index);
  }
  return true;
}

bool Decoder::decodeParam(const fb::Parameter &p, size_t i, bool isState) {
  std::vector<PlanParam> &into = isState ? out.states : out.params;
  llvm::StringRef kind = isState ? "state" : "param";
  PlanParam param;
  param.name = p.name()->str();
  std::string what = llvm::formatv("{0} {1} ('{2}')", kind, i, printableText(param.name)).str();
  if (param.name.empty())
    return fail(llvm::formatv("{0} {1} has an empty name", kind, i));
  if (!checkDType(int8_t(p.dtype()), what))
    return false;
  param.dtype = DType(p.dtype());
  param.globalShape = ints(p.global_shape());
  param.hfShape = p.hf_shape() && p.hf_shape()->size() ? ints(p.hf_shape()) : param.globalShape;
  param.shape = p.shape() ? ints(p.shape()) : param.globalShape;
  param.offset = p.offset() ? ints(p.offset()) : Shape(param.shape.size(), 0);
  if (!checkShard(param.shape, param.globalShape, param.offset, what) || !checkShape(param.hfShape, what + " hf_shape"))
    return false;
  if (numElements(param.hfShape) != numElements(param.globalShape))
    return fail(what + ": hf_shape " + shapeString(param.hfShape) + " and global shape " +
                shapeString(param.globalShape) + " differ in element count");
  int8_t init = int8_t(p.init());
  if (init < 0 || init > int8_t(fb::Init::Constant))
    return fail(what + ": invalid init " + llvm::Twine(int(init)));
  param.init = ParamInit(init);
  param.std = p.std();
  if (!std::isfinite(param.std) || param.std < 0)
    return fail(what + llvm::formatv(": invalid init std {0}", param.std).str());
  param.value = p.value();
  if (!std::isfinite(param.value))
    return fail(what + llvm::formatv(": invalid init value {0}", param.value).str());
  param.noDecay = p.no_decay();
  param.vocabRows = p.vocab_rows();
  if (param.vocabRows != 0) {
    if (param.globalShape.empty() || param.hfShape[0] != param.globalShape[0] || param.vocabRows < 0 ||
        param.vocabRows > param.globalShape[0])
      return fail(what + ": vocab_rows " + llvm::Twine(param.vocabRows) + " does not fit the shape " +
                  shapeString(param.globalShape));
  }
  if (!(isState ? stateNames : paramNames).insert(param.name).second)
    return fail("duplicate " + kind + " name '" + printableText(param.name) + "'");
  into.push_back(std::move(param));
  return true;
}

bool Decoder::decodeInput(const fb::Input &in, size_t i) {
  PlanInput input;
  input.name = in.name()->str();
  std::string what = llvm::formatv("input {0} ('{1}')", i, printableText(input.name)).str();
  if (input.name.empty())
    return fail(llvm::formatv("input {0} has an empty name", i));
  if (!checkDType(int8_t(in.dtype()), what))
    return false;
  input.dtype = DType(in.dtype());
  input.globalShape = ints(in.global_shape());
  input.shape = in.shape() ? ints(in.shape()) : input.globalShape;
  input.offset = in.offset() ? ints(in.offset()) : Shape(input.shape.size(), 0);
  if (!checkShard(input.shape, input.globalShape, input.offset, what))
    return false;
  if (!inputNames.insert(input.name).second)
    return fail("duplicate input name '" + printableText(input.name) + "'");
  out.inputs.push_back(std::move(input));
  return true;
}

bool Decoder::decodeStep(const fb::Step &s, size_t i) {
  PlanStep step;
  step.op = s.op()->str();
  std::string label = llvm::formatv("step {0} ('{1}')", i, printableText(step.op)).str();
  std::optional<ir::OpKind> kind = ir::parseOpKind(step.op);
  if (!kind)
    return fail(llvm::formatv("step {0}: unknown op '{1}'", i, printableText(step.op)));
  step.kind = *kind;
  if (ir::isExternal(step.kind) || step.kind == ir::OpKind::Output)
    return fail(label + ": op '" + step.op + "' is not an executable step");
  int8_t phase = int8_t(s.phase());
  if (phase < 0 || phase > int8_t(fb::Phase::Prologue))
    return fail(label + ": invalid phase " + llvm::Twine(int(phase)));
  step.phase = StepPhase(phase);
  const ir::OpInfo &info = ir::opInfo(step.kind);
  int numOperands = s.operands() ? int(s.operands()->size()) : 0;
  int numResults = s.results() ? int(s.results()->size()) : 0;
  if (numOperands < info.minOperands || (info.maxOperands >= 0 && numOperands > info.maxOperands)) {
    std::string expected = info.minOperands == info.maxOperands
                               ? std::to_string(info.minOperands)
                               : llvm::formatv("{0} to {1}", info.minOperands, info.maxOperands).str();
    return fail(llvm::formatv("{0}: {1} operands, expected {2}", label, numOperands, expected));
  }
  if (unsigned want = ir::numResultsOf(step.kind, numOperands); unsigned(numResults) != want)
    return fail(llvm::formatv("{0}: {1} results, expected {2}", label, numResults, want));
  if (s.attrs()) {
    for (const fb::Attr *a : *s.attrs()) {
      StepAttr attr;
      attr.key = a->key()->str();
      int8_t k = int8_t(a->kind());
      if (k < 0 || k > int8_t(fb::AttrKind::Symbol))
        return fail(llvm::formatv("{0}: attribute '{1}' has an invalid kind {2}", label, attr.key, int(k)));
      attr.kind = StepAttr::Kind(k);
      attr.b = a->b();
      attr.i = a->i();
      attr.f = a->f();
      if (a->s())
        attr.s = a->s()->str();
      if (a->ints()) {
        Shape values = ints(a->ints());
        attr.ints.assign(values.begin(), values.end());
      }
      if (!step.attrs.empty() && step.attrs.back().key >= attr.key)
        return fail(label + ": attributes are not sorted by key ('" + attr.key + "')");
      step.attrs.push_back(std::move(attr));
    }
  }
  step.operands.resize(numOperands);
  for (int k = 0; k < numOperands; ++k)
    if (!decodeRef(s.operands()->Get(k), step.operands[k], label + ": operand " + llvm::Twine(k)))
      return false;
  step.results.resize(numResults);
  for (int k = 0; k < numResults; ++k) {
    if (!decodeRef(s.results()->Get(k), step.results[k], label + ": result " + llvm::Twine(k)))
      return false;
    if (step.results[k].storage == Storage::Input)
      return fail(label + ": result " + llvm::Twine(k) + " writes an input");
  }
  if (!checkStepMemory(step, label))
    return false;
  step.line = s.line();
  if (s.value())
    step.value = s.value()->str();
  if (auto *keys = s.keys()) {
    if (keys->size() != step.results.size())
      return fail(label + ": " + llvm::Twine(keys->size()) + " result keys for " + llvm::Twine(step.results.size()) +
                  " results");
    for (const flatbuffers::String *key : *keys)
      step.keys.push_back(key ? key->str() : std::string());
  }
  out.steps.push_back(std::move(step));
  return true;
}

llvm::Expected<LoadedPlan> Decoder::run(const fb::Plan &p) {
  auto finish = [&]() -> llvm::Error {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), name + ": " + error);
  };
  out.path = name;
  out.version = p.version();
  if (out.version != kPlanSchemaVersion)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::formatv("{0}: plan schema version {1}, this megrun reads version {2}", name, out.version,
                      kPlanSchemaVersion));
  out.meshDp = p.mesh_dp();
  out.meshTp = p.mesh_tp();
  out.meshPp = p.mesh_pp();
  out.rank = p.rank();
  if (out.meshDp < 1 || out.meshTp < 1 || out.meshPp < 1 ||
      int64_t(out.meshDp) * out.meshTp * out.meshPp > ir::kMaxWorld)
    fail(llvm::formatv("invalid mesh dp {0}{1} x tp {2}", out.meshDp, ppText(out.meshPp), out.meshTp));
  else if (out.rank < 0 || out.rank >= out.world())
    fail(llvm::formatv("rank {0} is outside the mesh dp {1}{2} x tp {3}", out.rank, out.meshDp, ppText(out.meshPp),
                       out.meshTp));
  if (!error.empty())
    return finish();
  out.model = p.model() ? p.model()->str() : "";
  if (!out.model.empty()) {
    auto model = parseJson(out.model);
    if (!model)
      return (fail("the embedded model description is not JSON: " + llvm::toString(model.takeError())), finish());
    if (!model->getAsObject())
      return (fail("the embedded model description is not a JSON object"), finish());
  }
  out.mode = p.mode() ? p.mode()->str() : "";
  if (out.mode != "train" && out.mode != "infer" && out.mode != "decode")
    return (fail("unknown mode '" + out.mode + "' (expected train, infer or decode)"), finish());
  out.arenaBytes = p.arena_bytes();
  if (out.arenaBytes < 0 || out.arenaBytes > kMaxElements * 8)
    return (fail("invalid arena size " + llvm::Twine(out.arenaBytes)), finish());

  if (p.params())
    for (size_t i = 0; i < p.params()->size(); ++i)
      if (!decodeParam(*p.params()->Get(i), i))
        return finish();
  if (p.states())
    for (size_t i = 0; i < p.states()->size(); ++i)
      if (!decodeParam(*p.states()->Get(i), i, /*isState=*/true))
        return finish();
  if (p.inputs())
    for (size_t i = 0; i < p.inputs()->size(); ++i)
      if (!decodeInput(*p.inputs()->Get(i), i))
        return finish();
  if (p.steps())
    for (size_t i = 0; i < p.steps()->size(); ++i)
      if (!decodeStep(*p.steps()->Get(i), i))
        return finish();
  out.microBatches = p.micro_batches();
  out.updateBegin = out.steps.size();
  if (out.microBatches < 1)
    return (fail("micro_batches must be positive, got " + llvm::Twine(out.microBatches)), finish());
  if (out.microBatches == 1) {
    // The Prologue runs once before the micro-batches: a plan without them has none.
    for (size_t i = 0; i < out.steps.size(); ++i)
      if (out.steps[i].phase == StepPhase::Prologue)
        return (fail(llvm::formatv("step {0} is a Prologue step in a plan of one micro-batch per step", i)),
                finish());
  } else {
    // The body (Prologue, Forward, Backward) first, then the Update steps: each part runs as one block.
    while (out.updateBegin > 0 && out.steps[out.updateBegin - 1].phase == StepPhase::Update)
      --out.updateBegin;
    for (size_t i = 0; i < out.updateBegin; ++i)
      if (out.steps[i].phase == StepPhase::Update)
        return (fail(llvm::formatv("step {0} is an Update step before the last micro-batch step {1} (with {2} "
                                   "micro-batches the Update steps must come last)",
                                   i, out.updateBegin - 1, out.microBatches)),
                finish());
  }
  if (auto err = decodeSchedule(p, out))
    return (fail(llvm::toString(std::move(err))), finish());
  if (p.outputs()) {
    for (size_t i = 0; i < p.outputs()->size(); ++i) {
      const fb::Output *o = p.outputs()->Get(i);
      PlanOutput output;
      output.name = o->name()->str();
      if (!decodeRef(o->tensor(), output.tensor, llvm::formatv("output {0} ('{1}')", i, output.name).str()))
        return finish();
      out.outputs.push_back(std::move(output));
    }
  }
  return std::move(out);
}

llvm::Error planError(llvm::StringRef name, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), name + ": " + what);
}

} // namespace

llvm::Expected<LoadedPlan> meg::runtime::parsePlan(llvm::ArrayRef<uint8_t> bytes, llvm::StringRef name) {
  // FlatBuffers reads scalars in place: give the Verifier an 8-byte-aligned copy.
  std::vector<uint64_t> aligned((bytes.size() + 7) / 8);
  if (!bytes.empty())
    std::memcpy(aligned.data(), bytes.data(), bytes.size());
  const uint8_t *data = reinterpret_cast<const uint8_t *>(aligned.data());

  if (bytes.size() < 8 || !fb::PlanBufferHasIdentifier(data))
    return planError(name, "not a meg plan (bad file identifier)");
  if (bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return planError(name, "corrupt plan (file too large)");
  flatbuffers::Verifier verifier(data, bytes.size(), /*max_depth=*/64, /*max_tables=*/100000000);
  if (!fb::VerifyPlanBuffer(verifier))
    return planError(name, "corrupt plan (flatbuffers verification failed)");
  return Decoder(name).run(*fb::GetPlan(data));
}

llvm::Expected<LoadedPlan> meg::runtime::loadPlan(llvm::StringRef path) {
  auto buffer = readInputFile(path);
  if (!buffer)
    return planError(path, llvm::toString(buffer.takeError()));
  llvm::StringRef data = (*buffer)->getBuffer();
  return parsePlan(llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(data.data()), data.size()), path);
}

std::string meg::runtime::planPath(llvm::StringRef dir, int rank) {
  llvm::SmallString<256> p(dir);
  llvm::sys::path::append(p, "rank-" + std::to_string(rank) + ".megplan");
  return std::string(p);
}

llvm::Expected<LoadedPlan> meg::runtime::loadPlanDir(llvm::StringRef dir, int rank) {
  return loadPlan(planPath(dir, rank));
}

llvm::Expected<std::vector<LoadedPlan>> meg::runtime::loadPlanSet(llvm::StringRef dir) {
  if (!llvm::sys::fs::is_directory(dir))
    return planError(dir, llvm::sys::fs::exists(dir) ? "not a directory" : "no such plan directory");
  std::string first = planPath(dir, 0);
  if (!llvm::sys::fs::exists(first))
    return planError(dir, "no plan rank-0.megplan in the directory");
  auto rank0 = loadPlan(first);
  if (!rank0)
    return rank0.takeError();
  int world = rank0->world();

  // Every rank-<r>.megplan in the directory must belong to the mesh (a stale plan of a larger mesh is an error).
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec)) {
    llvm::StringRef file = llvm::sys::path::filename(it->path());
    if (!file.consume_front("rank-") || !file.consume_back(".megplan"))
      continue;
    unsigned r;
    if (file.getAsInteger(10, r) || r >= unsigned(world))
      return planError(it->path(), llvm::formatv("unexpected plan file (the mesh dp {0} x tp {1} has {2} ranks)",
                                                 rank0->meshDp, rank0->meshTp, world));
  }
  if (ec)
    return planError(dir, ec.message());

  std::vector<LoadedPlan> plans;
  plans.push_back(std::move(*rank0));
  for (int r = 1; r < world; ++r) {
    std::string path = planPath(dir, r);
    if (!llvm::sys::fs::exists(path))
      return planError(dir, llvm::formatv("incomplete plan set: rank-{0}.megplan is missing (mesh dp {1} x tp {2})",
                                          r, plans[0].meshDp, plans[0].meshTp));
    auto plan = loadPlan(path);
    if (!plan)
      return plan.takeError();
    if (plan->meshDp != plans[0].meshDp || plan->meshTp != plans[0].meshTp || plan->meshPp != plans[0].meshPp)
      return planError(path, llvm::formatv("mesh dp {0} x tp {1} differs from rank 0's dp {2} x tp {3}",
                                           plan->meshDp, plan->meshTp, plans[0].meshDp, plans[0].meshTp));
    if (plan->mode != plans[0].mode || plan->model != plans[0].model)
      return planError(path, "plan was compiled from a different model or mode than rank 0's");
    plans.push_back(std::move(*plan));
  }
  for (int r = 0; r < world; ++r)
    if (plans[r].rank != r)
      return planError(plans[r].path, llvm::formatv("plan is for rank {0}, expected rank {1}", plans[r].rank, r));
  // Before any step runs: the ranks' communication cannot hang or mismatch (runtime/plan/CollectiveOrder.h).
  if (auto err = verifyCollectiveOrder(plans, dir))
    return err;
  return plans;
}

std::vector<PlanParam> meg::runtime::planSetParams(llvm::ArrayRef<LoadedPlan> plans) {
  std::vector<PlanParam> params;
  if (plans.empty())
    return params;
  llvm::StringSet<> seen;
  int stageRanks = plans[0].meshDp * plans[0].meshTp;
  for (size_t r = 0; r < plans.size(); r += size_t(stageRanks))
    for (const PlanParam &p : plans[r].params)
      if (seen.insert(p.name).second)
        params.push_back(p);
  return params;
}

LoadedPlan meg::runtime::planSetDataView(llvm::ArrayRef<LoadedPlan> plans) {
  LoadedPlan view = plans[0];
  if (view.meshPp == 1)
    return view;
  view.params = planSetParams(plans);
  int stageRanks = view.meshDp * view.meshTp;
  for (size_t r = size_t(stageRanks); r < plans.size(); r += size_t(stageRanks))
    for (const PlanInput &in : plans[r].inputs)
      if (!view.findInput(in.name))
        view.inputs.push_back(in);
  return view;
}
