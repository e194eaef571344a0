//===- ActivationCapture.cpp - megrun --dump-activations ----------------------===//
#include "runtime/train/ActivationCapture.h"

#include "runtime/exec/OpArgs.h"
#include "runtime/io/ActivationDump.h"
#include "runtime/plan/ShardCopy.h"

#include "kernels/Half.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <limits>
#include <set>

using namespace meg;
using namespace meg::runtime;

static llvm::Error error(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "--dump-activations: " + what);
}

/// Whether step `s` is captured: the forward and backward of the step, not the optimizer's update.
static bool isCaptured(const PlanStep &s) { return s.phase != StepPhase::Update; }

ActivationCapture::ActivationCapture(Session &session) : session(session), captured(size_t(session.world())) {}

llvm::Expected<std::unique_ptr<ActivationCapture>> ActivationCapture::create(Session &session) {
  if (session.microBatches() > 1)
    return error(llvm::formatv("plans with {0} micro-batches per step (gradient accumulation) are not supported",
                               session.microBatches()));
  return std::unique_ptr<ActivationCapture>(new ActivationCapture(session));
}

llvm::Error ActivationCapture::afterStep(int rank, size_t index, Backend &backend) {
  const PlanStep &step = session.plan(rank).steps[index];
  if (!isCaptured(step))
    return llvm::Error::success();
  std::vector<float> &out = captured[size_t(rank)];
  std::vector<uint8_t> bytes;
  for (const TensorSlot &slot : step.results) {
    bytes.resize(size_t(slot.bytes()));
    backend.readTensor(slot, bytes);
    kernels::Elem elem = elemOf(slot.dtype);
    for (int64_t i = 0; i < slot.numel(); ++i)
      out.push_back(kernels::loadAsFloat(bytes.data(), elem, i));
  }
  return llvm::Error::success();
}

namespace {
/// The global value of result `result` of step `index` from every rank's shard (see the header).
class Assembler {
public:
  Assembler(llvm::ArrayRef<LoadedPlan> plans, llvm::ArrayRef<std::vector<float>> byRank)
      : plans(plans), byRank(byRank), at(plans.size(), 0) {}

  llvm::Expected<std::vector<float>> value(size_t index, size_t result) {
    const TensorSlot &first = plans[0].steps[index].results[result];
    bool sum = llvm::is_contained(first.partial, PartialKind::Sum);
    bool max = llvm::is_contained(first.partial, PartialKind::Max);
    std::vector<float> full(size_t(numElements(first.globalShape)),
                            max ? -std::numeric_limits<float>::infinity() : 0.0f);
    std::vector<uint8_t> covered(full.size(), 0);
    std::set<std::vector<int64_t>> boxes; // (offset, coordinates along the partial axes): one rank each
    std::string label = plans[0].stepLabel(index) + " result " + std::to_string(result);
    for (size_t r = 0; r < plans.size(); ++r) {
      const TensorSlot &slot = plans[r].steps[index].results[result];
      if (slot.globalShape != first.globalShape || slot.partial != first.partial)
        return error(llvm::formatv("{0}: rank {1}'s plan lays it out unlike rank 0's", label, r));
      const float *data = byRank[r].data() + at[r];
      at[r] += size_t(slot.numel());
      if (at[r] > byRank[r].size())
        return error(llvm::formatv("rank {0} captured fewer values than its plan computes", r));
      std::vector<int64_t> box(slot.offset.begin(), slot.offset.end());
      int coords[2] = {plans[r].dpRank(), plans[r].tpRank()};
      for (size_t a = 0; a < slot.partial.size(); ++a)
        if (slot.partial[a] != PartialKind::None)
          box.push_back(coords[a]);
      if (!boxes.insert(box).second)
        continue; // a replica of a box already taken
      detail::forEachShardRow(slot.globalShape, slot.offset, slot.shape, [&](int64_t f, int64_t s, int64_t len) {
        for (int64_t j = 0; j < len; ++j) {
          float v = data[s + j], &into = full[size_t(f + j)];
          into = max ? std::max(into, v) : sum ? into + v : v;
          covered[size_t(f + j)] = 1;
        }
      });
    }
    if (sum && max)
      return error(label + ": a value partial over one axis by sum and another by max is not supported");
    if (llvm::is_contained(covered, 0))
      return error(label + ": no rank holds some of its elements (the plans' shards leave a gap)");
    return full;
  }

  /// Every rank's captures were used up.
  llvm::Error finish() const {
    for (size_t r = 0; r < plans.size(); ++r)
      if (at[r] != byRank[r].size())
        return error(llvm::formatv("rank {0} captured {1} floats, its plan computes {2}", r, byRank[r].size(),
                                   at[r]));
    return llvm::Error::success();
  }

private:
  llvm::ArrayRef<LoadedPlan> plans;
  llvm::ArrayRef<std::vector<float>> byRank;
  std::vector<size_t> at; ///< by rank: floats of its captures used
};
} // namespace

/// `%N` of result `r` of a step whose first result is `value` (results are numbered in a row).
static std::string irName(llvm::StringRef value, size_t r) {
  int64_t n = 0;
  if (r == 0 || !value.consume_front("%") || value.getAsInteger(10, n))
    return r == 0 ? value.str() : std::string();
  return "%" + std::to_string(n + int64_t(r));
}

llvm::Expected<ActivationCapture::Written> ActivationCapture::write(llvm::StringRef dir, int64_t step,
                                                                    llvm::StringRef backend) {
  auto byRank = session.gatherToRoot([&](int rank) { return std::move(captured[size_t(rank)]); });
  if (!byRank)
    return byRank.takeError();
  for (std::vector<float> &c : captured)
    c.clear();
  Written written;
  if (!session.isRoot())
    return written;
  llvm::ArrayRef<LoadedPlan> plans = session.allPlans();
  const LoadedPlan &plan = plans[0];
  DumpHeader header;
  header.mesh = llvm::formatv("dp={0} tp={1}", plan.meshDp, plan.meshTp).str();
  header.step = step;
  header.backend = backend.str();
  for (const PlanParam &p : plan.params)
    if (p.vocabRows > 0 && !p.globalShape.empty()) {
      header.vocabRows = p.vocabRows;
      header.vocabPadded = p.globalShape[0];
    }
  std::vector<DumpedValue> index;
  std::vector<std::vector<float>> values;
  Assembler assemble(plans, *byRank);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const PlanStep &s = plan.steps[i];
    if (!isCaptured(s))
      continue;
    if (s.keys.size() != s.results.size())
      return error(plan.path + ": the plan has no value keys (compiled by an older megc?)");
    for (size_t r = 0; r < s.results.size(); ++r) {
      auto full = assemble.value(i, r);
      if (!full)
        return full.takeError();
      DumpedValue v;
      v.step = int64_t(i);
      v.key = s.keys[r];
      v.ir = irName(s.value, r);
      v.op = s.op;
      v.phase = s.phase == StepPhase::Forward ? "forward" : "backward";
      v.result = int64_t(r);
      v.dtype = dtypeName(s.results[r].dtype).str();
      v.shape.assign(s.results[r].globalShape.begin(), s.results[r].globalShape.end());
      index.push_back(std::move(v));
      values.push_back(std::move(*full));
    }
  }
  if (auto err = assemble.finish())
    return std::move(err);
  bool existed = llvm::sys::fs::exists(dir);
  if (auto err = writeActivationDump(dir, header, index, values)) {
    if (!existed) // no partial dump: a folder this run made goes when its files cannot be written
      llvm::sys::fs::remove_directories(dir, /*IgnoreErrors=*/true);
    return std::move(err);
  }
  written.values = index.size();
  for (llvm::StringRef file : {"index.json", "values.safetensors"}) {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, file);
    uint64_t size = 0;
    if (!llvm::sys::fs::file_size(path, size))
      written.bytes += size;
  }
  return written;
}
