//===- CpuBackend.cpp - the CPU backend ---------------------------------------===//
//
// Host memory: one 64-byte-aligned arena, one buffer per parameter, gradient (when the plan names gradients) and
// input. Steps are prepared through the adapter table built from ir/Ops.def (runtime/cpu/*.cpp).
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuBackend.h"
#include "runtime/comm/Communicator.h"
#include "runtime/plan/PlanBuffers.h"
#include "runtime/cpu/CpuOps.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;

Backend::~Backend() = default;

namespace {

using CpuAdapter = llvm::Expected<CpuKernel> (*)(CpuStep &);

const CpuAdapter kCpuAdapters[] = {
#define OP(Enum, Name, MinOperands, MaxOperands, NumResults, Traits, WritesMask, Summary) &cpu##Enum,
#include "ir/Ops.def"
};
static_assert(sizeof(kCpuAdapters) / sizeof(kCpuAdapters[0]) == ir::kNumOpKinds, "one CPU adapter per op");

/// A zero-initialized, 64-byte-aligned host buffer. calloc gives fresh pages lazily zeroed by the OS, so a large
/// arena costs nothing until it is touched, and an impossible size is an error rather than a crash.
class HostBuffer {
public:
  static llvm::Expected<HostBuffer> allocate(int64_t bytes, const llvm::Twine &what) {
    HostBuffer b;
    b.size = bytes;
    b.raw.reset(static_cast<uint8_t *>(std::calloc(size_t(std::max<int64_t>(bytes, 1)) + 64, 1)));
    if (!b.raw)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     llvm::formatv("cannot allocate {0} bytes of host memory for {1}", bytes,
                                                   what.str()));
    uintptr_t p = reinterpret_cast<uintptr_t>(b.raw.get());
    b.aligned = reinterpret_cast<uint8_t *>((p + 63) / 64 * 64);
    return std::move(b);
  }
  uint8_t *get() const { return aligned; }
  int64_t bytes() const { return size; }

private:
  struct Free {
    void operator()(uint8_t *p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> raw;
  uint8_t *aligned = nullptr;
  int64_t size = 0;
};

/// Steps whose result may share its operand's bytes (Ops.def traits InPlace / Alias).
bool mayRunInPlace(ir::OpKind k) { return ir::mayOverwriteOperand(k) || ir::aliasesOperand(k); }

class CpuBackend final : public Backend {
public:
  llvm::StringRef name() const override { return "cpu"; }
  llvm::Error prepare(const LoadedPlan &plan) override;
  void writeParam(size_t index, llvm::ArrayRef<float> values) override {
    assert(values.size() * sizeof(float) == size_t(params[index].bytes()) && "parameter size mismatch");
    std::memcpy(params[index].get(), values.data(), values.size() * sizeof(float));
  }
  void readParam(size_t index, llvm::MutableArrayRef<float> values) override {
    assert(values.size() * sizeof(float) == size_t(params[index].bytes()) && "parameter size mismatch");
    std::memcpy(values.data(), params[index].get(), values.size() * sizeof(float));
  }
  void writeState(size_t index, llvm::ArrayRef<float> values) override {
    assert(values.size() * sizeof(float) == size_t(states[index].bytes()) && "optimizer state size mismatch");
    std::memcpy(states[index].get(), values.data(), values.size() * sizeof(float));
  }
  void readState(size_t index, llvm::MutableArrayRef<float> values) override {
    assert(values.size() * sizeof(float) == size_t(states[index].bytes()) && "optimizer state size mismatch");
    std::memcpy(values.data(), states[index].get(), values.size() * sizeof(float));
  }
  void writeInput(size_t index, llvm::ArrayRef<uint8_t> bytes) override {
    assert(bytes.size() == size_t(inputs[index].bytes()) && "input size mismatch");
    std::memcpy(inputs[index].get(), bytes.data(), bytes.size());
  }
  llvm::Error runStep(size_t index, const StepContext &ctx, Communicator &comm) override {
    assert(index < kernels.size() && "step index out of range (prepare first)");
    return kernels[index](CpuRunArgs{ctx, comm, scratch.empty() ? nullptr : scratch.data()});
  }
  llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
  createThreadCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp) override;
  void readTensor(const TensorSlot &slot, llvm::MutableArrayRef<uint8_t> bytes) override {
    assert(bytes.size() == size_t(slot.bytes()) && "tensor size mismatch");
    std::memcpy(bytes.data(), resolve(slot), bytes.size());
  }

private:
  uint8_t *resolve(const TensorSlot &slot) const {
    return slotAddress(slot, arena, params, grads, inputs, states);
  }

  const LoadedPlan *plan = nullptr;
  HostBuffer arena;
  std::vector<HostBuffer> params, grads, inputs, states;
  std::vector<std::unique_ptr<CpuStep>> steps;
  std::vector<CpuKernel> kernels;
  std::vector<float> scratch;
};

llvm::Error CpuBackend::prepare(const LoadedPlan &p) {
  plan = &p;
  auto allocate = [&](int64_t bytes, const llvm::Twine &what, HostBuffer &into) -> llvm::Error {
    auto buffer = HostBuffer::allocate(bytes, what);
    if (!buffer)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     p.path + ": " + llvm::toString(buffer.takeError()));
    into = std::move(*buffer);
    return llvm::Error::success();
  };
  if (auto err = allocate(p.arenaBytes, "the arena", arena))
    return err;
  if (auto err = allocatePlanBuffers(p, allocate, params, grads, states, inputs))
    return err;

  kernels.clear();
  steps.clear();
  int64_t scratchFloats = 0;
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const PlanStep &step = p.steps[i];
    llvm::SmallVector<void *, 4> in;
    llvm::SmallVector<void *, 1> out;
    auto check = [&](const TensorSlot &slot, llvm::StringRef what, size_t k) -> llvm::Error {
      if (slot.storage == Storage::Arena && slot.index % dtypeBytes(slot.dtype) != 0)
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       llvm::formatv("{0}: {1} {2}: arena offset {3} is not aligned to {4} bytes",
                                                     p.stepLabel(i), what, k, slot.index, dtypeBytes(slot.dtype)));
      return llvm::Error::success();
    };
    for (size_t k = 0; k < step.operands.size(); ++k) {
      if (auto err = check(step.operands[k], "operand", k))
        return err;
      in.push_back(resolve(step.operands[k]));
    }
    for (size_t k = 0; k < step.results.size(); ++k) {
      if (auto err = check(step.results[k], "result", k))
        return err;
      out.push_back(resolve(step.results[k]));
    }
    // A result may share memory with an operand only as an exact alias, and only for elementwise-style ops.
    for (size_t r = 0; r < step.results.size(); ++r) {
      const TensorSlot &res = step.results[r];
      for (size_t k = 0; k < step.operands.size(); ++k) {
        const TensorSlot &op = step.operands[k];
        uint8_t *a = static_cast<uint8_t *>(out[r]), *b = static_cast<uint8_t *>(in[k]);
        bool overlap = a < b + op.bytes() && b < a + res.bytes();
        if (!overlap || (a == b && op.bytes() == res.bytes() && mayRunInPlace(step.kind)))
          continue;
        return llvm::createStringError(
            llvm::inconvertibleErrorCode(),
            llvm::formatv("{0}: result {1} overlaps operand {2} in memory", p.stepLabel(i), r, k));
      }
    }
    // Kernels keep a reference to their CpuStep (buffers, shapes): it lives as long as the backend.
    steps.push_back(std::make_unique<CpuStep>(p, i, std::move(in), std::move(out)));
    auto kernel = kCpuAdapters[unsigned(step.kind)](*steps.back());
    if (!kernel)
      return kernel.takeError();
    scratchFloats = std::max(scratchFloats, steps.back()->scratchFloats);
    kernels.push_back(std::move(*kernel));
  }
  scratch.assign(size_t(scratchFloats), 0.0f);
  return llvm::Error::success();
}

} // namespace

// OpenBLAS's own thread pool; with several rank threads each BLAS call runs on its caller's thread.
extern "C" void openblas_set_num_threads(int);

llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
CpuBackend::createThreadCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp) {
  assert(int(peers.size()) == meshDp * meshTp && "one peer per rank");
  std::vector<std::unique_ptr<Communicator>> comms;
  if (peers.size() == 1) {
    comms.push_back(std::make_unique<SingleRankCommunicator>());
    return comms;
  }
  openblas_set_num_threads(1);
  std::shared_ptr<InProcessWorld> world = InProcessCommunicator::createWorld(meshDp, meshTp);
  for (int r = 0; r < int(peers.size()); ++r)
    comms.push_back(std::make_unique<InProcessCommunicator>(world, r));
  return comms;
}

std::unique_ptr<Backend> meg::runtime::createCpuBackend() { return std::make_unique<CpuBackend>(); }

//===----------------------------------------------------------------------===//
// CpuStep helpers
//===----------------------------------------------------------------------===//

std::string meg::runtime::cpu::shapeStr(llvm::ArrayRef<int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

llvm::Error CpuStep::error(const llvm::Twine &what) const {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), plan.stepLabel(index) + ": " + what);
}

llvm::Expected<int64_t> CpuStep::intAttr(llvm::StringRef key, std::optional<int64_t> fallback) const {
  const StepAttr *a = step.attr(key);
  if (!a) {
    if (fallback)
      return *fallback;
    return error("missing attribute '" + key + "'");
  }
  if (a->kind != StepAttr::Int)
    return error("attribute '" + key + "' must be an integer");
  return a->i;
}

llvm::Expected<double> CpuStep::floatAttr(llvm::StringRef key, std::optional<double> fallback) const {
  const StepAttr *a = step.attr(key);
  if (!a) {
    if (fallback)
      return *fallback;
    return error("missing attribute '" + key + "'");
  }
  if (a->kind == StepAttr::Int)
    return double(a->i);
  if (a->kind != StepAttr::Float)
    return error("attribute '" + key + "' must be a number");
  return a->f;
}

llvm::Expected<bool> CpuStep::boolAttr(llvm::StringRef key, std::optional<bool> fallback) const {
  const StepAttr *a = step.attr(key);
  if (!a) {
    if (fallback)
      return *fallback;
    return error("missing attribute '" + key + "'");
  }
  if (a->kind != StepAttr::Bool)
    return error("attribute '" + key + "' must be a boolean");
  return a->b;
}

llvm::Expected<std::string> CpuStep::symbolAttr(llvm::StringRef key) const {
  const StepAttr *a = step.attr(key);
  if (!a)
    return error("missing attribute '" + key + "'");
  if (a->kind != StepAttr::Symbol && a->kind != StepAttr::String)
    return error("attribute '" + key + "' must be a symbol");
  return a->s;
}

llvm::Expected<std::vector<int64_t>> CpuStep::intsAttr(llvm::StringRef key) const {
  const StepAttr *a = step.attr(key);
  if (!a)
    return error("missing attribute '" + key + "'");
  if (a->kind != StepAttr::Ints)
    return error("attribute '" + key + "' must be a list of integers");
  return a->ints;
}

llvm::Error CpuStep::expectDType(const TensorSlot &slot, llvm::StringRef what, DType t) const {
  if (slot.dtype != t)
    return error(llvm::formatv("{0} has dtype {1}, the cpu backend expects {2}", what, dtypeName(slot.dtype),
                               dtypeName(t)));
  return llvm::Error::success();
}

llvm::Error CpuStep::expectDTypes(DType t) const {
  for (size_t i = 0; i < numOperands(); ++i)
    if (auto err = expectDType(operand(i), ("operand " + llvm::Twine(i)).str(), t))
      return err;
  for (size_t i = 0; i < step.results.size(); ++i)
    if (auto err = expectDType(result(i), ("result " + llvm::Twine(i)).str(), t))
      return err;
  return llvm::Error::success();
}

llvm::Error CpuStep::expectResultShape(llvm::ArrayRef<int64_t> shape) const {
  if (llvm::ArrayRef<int64_t>(result().shape) != shape)
    return error("result shape " + shapeStr(result().shape) + " does not match the operands (expected " +
                 shapeStr(shape) + ")");
  return llvm::Error::success();
}

llvm::Error CpuStep::expectWholeDim(size_t i, unsigned dim, llvm::StringRef why) const {
  const TensorSlot &t = operand(i);
  if (dim >= t.shape.size() || t.shape[dim] != t.globalShape[dim])
    return error(llvm::formatv("operand {0} is split along dim {1} ({2})", i, dim, why));
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// The graph-interface ops are not steps (the plan loader rejects them); their table entries only say so.
//===----------------------------------------------------------------------===//

llvm::Expected<CpuKernel> meg::runtime::cpu::cpuParam(CpuStep &s) { return s.error("'param' is not a step"); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuState(CpuStep &s) { return s.error("'state' is not a step"); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuInput(CpuStep &s) { return s.error("'input' is not a step"); }
llvm::Expected<CpuKernel> meg::runtime::cpu::cpuOutput(CpuStep &s) { return s.error("'output' is not a step"); }
