//===- CudaBackend.cpp - the CUDA backend -------------------------------------===//
//
// Device memory: one arena, one buffer per parameter, gradient, optimizer state and input, one scratch buffer (the
// largest request of any step) and one cuBLASLt workspace, all on the device of BackendPlace. Steps are bound once
// (runtime/exec/StepBinder.h), prepared by the launches of runtime/cuda/*Ops.cpp and run on the backend's own stream:
// runStep only enqueues work (no host synchronization); readTensor and readParam/readState synchronize the stream
// before copying back. Host copies into the device (writeParam, writeState, writeInput) are stream-ordered, so a
// step sees the values written before it. A failed copy is remembered and reported by the next runStep.
// Steps with bf16/f16 slots run on fp32 copies in one shared device buffer (runtime/exec/Widen.h), converted in
// and rounded back by the cast kernel on the same stream, until the kernels have 16-bit variants of their own.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaBackend.h"
#include "runtime/plan/PlanBuffers.h"
#include "runtime/comm/CudaCommunicator.h"
#include "runtime/cuda/CudaOps.h"
#include "runtime/exec/Widen.h"

#include "kernels/cuda/Kernels.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cassert>

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;

namespace {

llvm::Error cudaFailure(const llvm::Twine &what, cudaError_t err) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what + ": " + cudaGetErrorString(err));
}

/// A device allocation, freed with the backend.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer &&o) noexcept : ptr(o.ptr), size(o.size) { o.ptr = nullptr; }
  DeviceBuffer &operator=(DeviceBuffer &&o) noexcept {
    std::swap(ptr, o.ptr);
    std::swap(size, o.size);
    return *this;
  }
  ~DeviceBuffer() {
    if (ptr)
      cudaFree(ptr);
  }
  /// Zero-filled, at least 256-byte aligned (cudaMalloc).
  llvm::Error allocate(int64_t bytes, const llvm::Twine &what) {
    size = bytes;
    if (cudaError_t err = cudaMalloc(&ptr, size_t(std::max<int64_t>(bytes, 1))))
      return cudaFailure(llvm::formatv("cannot allocate {0} bytes of device memory for {1}", bytes, what.str()), err);
    if (cudaError_t err = cudaMemset(ptr, 0, size_t(std::max<int64_t>(bytes, 1))))
      return cudaFailure("cannot clear " + what, err);
    return llvm::Error::success();
  }
  uint8_t *get() const { return static_cast<uint8_t *>(ptr); }
  int64_t bytes() const { return size; }

private:
  void *ptr = nullptr;
  int64_t size = 0;
};

/// `kernel` run on the fp32 copies of step `s`'s 16-bit slots (s.in / s.out already point at them in `wide`);
/// `slots` are the original 16-bit buffers in the order of plan.slots.
CudaKernel widened(CudaKernel kernel, WidenPlan plan, std::vector<void *> slots, float *wide, const CudaStep &s) {
  namespace k = meg::kernels::cuda;
  return [kernel = std::move(kernel), plan = std::move(plan), slots = std::move(slots), wide,
          &s](const CudaRunArgs &run) -> llvm::Error {
    for (size_t i = 0; i < plan.slots.size(); ++i)
      if (!plan.slots[i].operands.empty())
        if (auto err = s.check(k::cast(slots[i], elemOf(plan.slots[i].dtype), wide + plan.slots[i].offset,
                                       kernels::Elem::F32, plan.slots[i].numel, run.stream),
                               "widen"))
          return err;
    if (auto err = kernel(run))
      return err;
    for (size_t i = 0; i < plan.slots.size(); ++i)
      if (!plan.slots[i].results.empty())
        if (auto err = s.check(k::cast(wide + plan.slots[i].offset, kernels::Elem::F32, slots[i],
                                       elemOf(plan.slots[i].dtype), plan.slots[i].numel, run.stream),
                               "round"))
          return err;
    return llvm::Error::success();
  };
}

class CudaBackend final : public Backend {
public:
  explicit CudaBackend(const BackendPlace &place) : place(place) {}
  ~CudaBackend() override {
    if (stream) {
      cudaSetDevice(place.device);
      cudaStreamSynchronize(stream);
    }
    steps.clear();
    kernels.clear();
    if (lt)
      cublasLtDestroy(lt);
    if (stream)
      cudaStreamDestroy(stream);
  }

  llvm::StringRef name() const override { return "cuda"; }
  cudaStream_t getStream() const { return stream; }
  llvm::Error prepare(const LoadedPlan &plan) override;

  void writeParam(size_t index, llvm::ArrayRef<float> values) override {
    assert(values.size() * sizeof(float) == size_t(params[index].bytes()) && "parameter size mismatch");
    upload(params[index].get(), values.data(), values.size() * sizeof(float), "parameter");
  }
  void readParam(size_t index, llvm::MutableArrayRef<float> values) override {
    assert(values.size() * sizeof(float) == size_t(params[index].bytes()) && "parameter size mismatch");
    download(values.data(), params[index].get(), values.size() * sizeof(float), "parameter");
  }
  void writeState(size_t index, llvm::ArrayRef<float> values) override {
    assert(values.size() * sizeof(float) == size_t(states[index].bytes()) && "optimizer state size mismatch");
    upload(states[index].get(), values.data(), values.size() * sizeof(float), "optimizer state");
  }
  void readState(size_t index, llvm::MutableArrayRef<float> values) override {
    assert(values.size() * sizeof(float) == size_t(states[index].bytes()) && "optimizer state size mismatch");
    download(values.data(), states[index].get(), values.size() * sizeof(float), "optimizer state");
  }
  void writeInput(size_t index, llvm::ArrayRef<uint8_t> bytes) override {
    assert(bytes.size() == size_t(inputs[index].bytes()) && "input size mismatch");
    upload(inputs[index].get(), bytes.data(), bytes.size(), "input");
  }
  llvm::Error runStep(size_t index, const StepContext &ctx, Communicator &comm) override {
    assert(index < kernels.size() && "step index out of range (prepare first)");
    if (pending)
      return std::move(pending);
    if (cudaError_t err = cudaSetDevice(place.device))
      return cudaFailure(plan->stepLabel(index) + ": cudaSetDevice", err);
    return kernels[index](CudaRunArgs{ctx, comm.cudaCollectives(), stream, lt, scratch.get(), workspace.get()});
  }
  llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
  createPeerCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp) override;
  void readTensor(const TensorSlot &slot, llvm::MutableArrayRef<uint8_t> bytes) override {
    assert(bytes.size() == size_t(slot.bytes()) && "tensor size mismatch");
    download(bytes.data(), resolve(slot), bytes.size(), "tensor");
  }

private:
  uint8_t *resolve(const TensorSlot &slot) const {
    return slotAddress(slot, arena, params, grads, inputs, states);
  }

  /// Remembers the first failure of a void interface call for the next runStep.
  void remember(cudaError_t err, const char *what) {
    if (err != cudaSuccess && !pending)
      pending = cudaFailure(llvm::Twine("cuda backend: copying ") + what, err);
  }
  void upload(void *dst, const void *src, size_t bytes, const char *what) {
    remember(cudaSetDevice(place.device), what);
    // From pageable memory: returns once the source is staged, so the caller may reuse it; stream-ordered.
    remember(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), what);
  }
  void download(void *dst, const void *src, size_t bytes, const char *what) {
    remember(cudaSetDevice(place.device), what);
    remember(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), what);
    remember(cudaStreamSynchronize(stream), what);
  }

  BackendPlace place;
  const LoadedPlan *plan = nullptr;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  DeviceBuffer arena, scratch, workspace;
  DeviceBuffer wide; ///< fp32 copies of the 16-bit slots of the running step
  std::vector<DeviceBuffer> params, grads, inputs, states;
  std::vector<std::unique_ptr<CudaStep>> steps;
  std::vector<CudaKernel> kernels;
  llvm::Error pending = llvm::Error::success();
};

llvm::Error CudaBackend::prepare(const LoadedPlan &p) {
  plan = &p;
  auto fail = [&](const llvm::Twine &what, cudaError_t err) {
    return cudaFailure(p.path + ": cuda backend: " + what, err);
  };
  int devices = 0;
  if (cudaError_t err = cudaGetDeviceCount(&devices))
    return fail("no usable CUDA device (cudaGetDeviceCount)", err);
  if (place.device < 0 || place.device >= devices)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("{0}: cuda backend: device {1} does not exist ({2} visible)", p.path,
                                                 place.device, devices));
  if (cudaError_t err = cudaSetDevice(place.device))
    return fail("cudaSetDevice", err);
  if (!stream)
    if (cudaError_t err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking))
      return fail("cudaStreamCreate", err);
  if (!lt)
    if (cublasStatus_t status = cublasLtCreate(&lt); status != CUBLAS_STATUS_SUCCESS)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     p.path + ": cuda backend: cublasLtCreate: " + cublasLtGetStatusString(status));

  auto allocate = [&](int64_t bytes, const llvm::Twine &what, DeviceBuffer &into) -> llvm::Error {
    if (auto err = into.allocate(bytes, what))
      return llvm::createStringError(llvm::inconvertibleErrorCode(), p.path + ": " + llvm::toString(std::move(err)));
    return llvm::Error::success();
  };
  if (auto err = allocate(p.arenaBytes, "the arena", arena))
    return err;
  if (auto err = allocate(int64_t(kGemmWorkspaceBytes), "the cuBLASLt workspace", workspace))
    return err;
  if (auto err = allocatePlanBuffers(p, allocate, params, grads, states, inputs))
    return err;

  PlanWidening widening = planWidening(p);
  std::vector<WidenPlan> &widen = widening.steps;
  if (auto err = allocate(widening.floats * int64_t(sizeof(float)), "16-bit steps", wide))
    return err;
  std::vector<std::vector<void *>> narrow(p.steps.size());
  auto scratchBytes = prepareSteps<CudaKernel>(
      p,
      [&](size_t i) {
        auto step = std::make_unique<CudaStep>(p, i, [this](const TensorSlot &t) { return resolve(t); }, lt);
        narrow[i] = redirectToWide(*step, widen[i], reinterpret_cast<float *>(wide.get()));
        return step;
      },
      &CudaStep::scratchBytes, steps, kernels);
  if (!scratchBytes)
    return scratchBytes.takeError();
  for (size_t i = 0; i < p.steps.size(); ++i)
    if (!widen[i].empty())
      kernels[i] = widened(std::move(kernels[i]), std::move(widen[i]), std::move(narrow[i]),
                           reinterpret_cast<float *>(wide.get()), *steps[i]);
  if (auto err = allocate(*scratchBytes, "scratch", scratch))
    return err;
  return llvm::Error::success();
}

} // namespace

std::unique_ptr<Backend> meg::runtime::createCudaBackend(const BackendPlace &place) {
  return std::make_unique<CudaBackend>(place);
}

// CUDA ranks as threads: every rank on one device, a stream each, collectives as device kernels (one-GPU mode).
llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
CudaBackend::createPeerCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp) {
  std::vector<std::unique_ptr<Communicator>> comms;
  auto world = cuda::createOneGpuWorld(meshDp, meshTp, place.device);
  if (!world)
    return world.takeError();
  // Every peer comes from the same registry entry as this backend (Backend::createThreadCommunicators).
  for (int r = 0; r < int(peers.size()); ++r)
    comms.push_back(cuda::createOneGpuCommunicator(*world, r, static_cast<CudaBackend *>(peers[r])->getStream()));
  return comms;
}

//===----------------------------------------------------------------------===//
// CudaStep helpers
//===----------------------------------------------------------------------===//

llvm::Error CudaStep::check(cudaError_t err, llvm::StringRef what) const {
  if (err == cudaSuccess)
    return llvm::Error::success();
  std::string prefix = what.empty() ? std::string() : what.str() + ": ";
  return error(prefix + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

llvm::Error CudaStep::check(const std::string &message) const {
  if (message.empty())
    return llvm::Error::success();
  return error(message);
}
