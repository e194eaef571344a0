//===- CpuBackend.cpp - the CPU backend ---------------------------------------===//
//
// Host memory: one 64-byte-aligned arena, one buffer per parameter, gradient (when the plan names gradients) and
// input. Steps are bound once (runtime/exec/StepBinder.h) and prepared by the launches of runtime/cpu/*Ops.cpp.
// Steps with bf16/f16 slots run on fp32 copies in one shared widening buffer (runtime/exec/Widen.h): operands are
// converted in before the kernel, results rounded to nearest even back into their 16-bit slots after it.
//
//===----------------------------------------------------------------------===//
#include "runtime/cpu/CpuBackend.h"
#include "runtime/comm/Communicator.h"
#include "runtime/plan/PlanBuffers.h"
#include "runtime/cpu/CpuOps.h"
#include "runtime/exec/Widen.h"

#include "kernels/cpu/Elementwise.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cpu;

namespace {

/// A zero-initialized, 64-byte-aligned host buffer. calloc gives fresh pages lazily zeroed by the OS, so a large
/// arena costs nothing until it is touched, and an impossible size is an error rather than a crash.
class HostBuffer {
public:
  static llvm::Expected<HostBuffer> allocate(int64_t bytes, const llvm::Twine &what) {
    // calloc succeeds lazily far beyond the machine's memory (overcommit) and the OOM killer ends the run at the
    // first touch: a buffer that cannot fit in physical memory is refused here instead.
    int64_t physical = int64_t(::sysconf(_SC_PHYS_PAGES)) * int64_t(::sysconf(_SC_PAGE_SIZE));
    if (physical > 0 && bytes > physical)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     llvm::formatv("{0} needs {1} bytes of host memory, more than this machine's {2}",
                                                   what.str(), bytes, physical));
    HostBuffer b;
    b.size = bytes;
    b.raw.reset(static_cast<uint8_t *>(std::calloc(size_t(std::max<int64_t>(bytes, 1)) + 64, 1)));
    if (!b.raw)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     llvm::formatv("cannot allocate {0} bytes of host memory for {1}", bytes,
                                                   what.str()));
    uintptr_t p = reinterpret_cast<uintptr_t>(b.raw.get());
    b.aligned = reinterpret_cast<uint8_t *>((p + 63) / 64 * 64);
    return b;
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
  createPeerCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp, int meshPp) override;
  llvm::Error saveActivations(int slot, int64_t bytes) override {
    assert(bytes >= 0 && bytes <= arena.bytes() && "stash outside the arena");
    if (size_t(slot) >= stash.size())
      stash.resize(size_t(slot) + 1);
    stash[size_t(slot)].assign(arena.get(), arena.get() + bytes);
    return llvm::Error::success();
  }
  llvm::Error restoreActivations(int slot, int64_t bytes) override {
    assert(size_t(slot) < stash.size() && int64_t(stash[size_t(slot)].size()) == bytes &&
           "restore of an unsaved slot");
    if (bytes)
      std::memcpy(arena.get(), stash[size_t(slot)].data(), size_t(bytes));
    return llvm::Error::success();
  }
  void readTensor(const TensorSlot &slot, llvm::MutableArrayRef<uint8_t> bytes) override {
    assert(bytes.size() == size_t(slot.bytes()) && "tensor size mismatch");
    std::memcpy(bytes.data(), resolve(slot), bytes.size());
  }
  void writeTensor(const TensorSlot &slot, llvm::ArrayRef<uint8_t> bytes) override {
    assert(bytes.size() == size_t(slot.bytes()) && "tensor size mismatch");
    std::memcpy(resolve(slot), bytes.data(), bytes.size());
  }

private:
  uint8_t *resolve(const TensorSlot &slot) const {
    return slotAddress(slot, arena, params, grads, inputs, states);
  }

  const LoadedPlan *plan = nullptr;
  HostBuffer arena;
  std::vector<std::vector<uint8_t>> stash; ///< pipeline: activation slots (saveActivations)
  std::vector<HostBuffer> params, grads, inputs, states;
  std::vector<std::unique_ptr<CpuStep>> steps;
  std::vector<CpuKernel> kernels;
  std::vector<float> scratch;
  std::vector<float> wide; ///< fp32 copies of the 16-bit slots of the running step
};

/// `kernel` run on the fp32 copies of step `s`'s 16-bit slots: s.in / s.out already point at the copies in `wide`;
/// `slots` are the original 16-bit buffers in the order of plan.slots.
CpuKernel widened(CpuKernel kernel, WidenPlan plan, std::vector<void *> slots, float *wide) {
  return [kernel = std::move(kernel), plan = std::move(plan), slots = std::move(slots),
          wide](const CpuRunArgs &run) -> llvm::Error {
    for (size_t i = 0; i < plan.slots.size(); ++i)
      if (!plan.slots[i].operands.empty())
        kernels::cpu::cast(slots[i], elemOf(plan.slots[i].dtype), wide + plan.slots[i].offset, kernels::Elem::F32,
                           plan.slots[i].numel);
    if (auto err = kernel(run))
      return err;
    for (size_t i = 0; i < plan.slots.size(); ++i)
      if (!plan.slots[i].results.empty())
        kernels::cpu::cast(wide + plan.slots[i].offset, kernels::Elem::F32, slots[i], elemOf(plan.slots[i].dtype),
                           plan.slots[i].numel);
    return llvm::Error::success();
  };
}

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

  // 16-bit steps: one widening buffer of the largest step's need; the steps' buffers point into it before their
  // launches are prepared.
  PlanWidening widening = planWidening(p);
  std::vector<WidenPlan> &widen = widening.steps;
  wide.assign(size_t(widening.floats), 0.0f);
  std::vector<std::vector<void *>> narrow(p.steps.size());

  // Kernels keep a reference to their CpuStep (buffers): it lives as long as the backend.
  auto makeStep = [&](size_t i) {
    auto step = std::make_unique<CpuStep>(p, i, [this](const TensorSlot &t) { return resolve(t); });
    narrow[i] = redirectToWide(*step, widen[i], wide.data());
    return step;
  };
  auto scratchFloats = prepareSteps<CpuKernel>(p, makeStep, &CpuStep::scratchFloats, steps, kernels);
  if (!scratchFloats)
    return scratchFloats.takeError();
  for (size_t i = 0; i < p.steps.size(); ++i)
    if (!widen[i].empty())
      kernels[i] = widened(std::move(kernels[i]), std::move(widen[i]), std::move(narrow[i]), wide.data());
  scratch.assign(size_t(*scratchFloats), 0.0f);
  return llvm::Error::success();
}

} // namespace

// OpenBLAS's own thread pool; with several rank threads each BLAS call runs on its caller's thread.
extern "C" void openblas_set_num_threads(int);

llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
CpuBackend::createPeerCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp, int meshPp) {
  std::vector<std::unique_ptr<Communicator>> comms;
  openblas_set_num_threads(1);
  std::shared_ptr<InProcessWorld> world = InProcessCommunicator::createWorld(meshDp, meshTp, meshPp);
  for (int r = 0; r < int(peers.size()); ++r)
    comms.push_back(std::make_unique<InProcessCommunicator>(world, r));
  return comms;
}

std::unique_ptr<Backend> meg::runtime::createCpuBackend() { return std::make_unique<CpuBackend>(); }
