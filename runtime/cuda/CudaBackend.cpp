//===- CudaBackend.cpp - the CUDA backend -------------------------------------===//
//
// Device memory: one arena, one buffer per parameter, gradient, optimizer state and input, one scratch buffer (the
// largest request of any step) and one cuBLASLt workspace, all on the device of BackendPlace. Steps are bound once
// (runtime/exec/StepBinder.h), prepared by the launches of runtime/cuda/*Ops.cpp and run on the backend's own stream:
// runStep only enqueues work (no host synchronization); readTensor and readParam/readState synchronize the stream
// before copying back. Host copies into the device (writeParam, writeState, writeInput) are stream-ordered, so a
// step sees the values written before it. A failed copy is remembered and reported by the next runStep.
// Steps with bf16/f16 slots run their ops' 16-bit kernels where the CUDA kernels have them (runtime/cuda/
// Precision.h decides per step); the others run on fp32 copies in one shared device buffer (runtime/exec/Widen.h),
// converted in and rounded back by the cast kernel on the same stream.
// Per-step host values (the training step, the learning rate, AdamW's bias corrections: CudaOps.h) live in one small
// device block that runSteps/runStep fill on the host and upload, stream-ordered, whenever the step context changes.
// Training steps after the first (the warm-up) are captured once in a CUDA graph and replayed (CudaGraph.h;
// BackendPlace::cudaGraphs, megrun --cuda-graphs=false, turns that off).
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaBackend.h"
#include "runtime/plan/PlanBuffers.h"
#include "runtime/comm/CudaCommunicator.h"
#include "runtime/cuda/CudaGraph.h"
#include "runtime/cuda/CudaOps.h"
#include "runtime/exec/FaultInjection.h"
#include "runtime/exec/Widen.h"

#include "kernels/cuda/Kernels.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <optional>

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
  bool graphCaptured() const { return graph.captured(); }
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
    if (auto err = uploadStepParams(ctx))
      return err;
    return kernels[index](CudaRunArgs{ctx, comm.cudaCollectives(), stream, lt, scratch.get(), workspace.get(),
                                      reinterpret_cast<const uint32_t *>(stepParams.get()), stepParams.get()});
  }
  llvm::Error runSteps(const LoadedPlan &p, const StepContext &ctx, Communicator &comm) override;
  llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
  createPeerCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp, int meshPp) override;
  llvm::Error saveActivations(int slot, int64_t bytes) override;
  llvm::Error restoreActivations(int slot, int64_t bytes) override;
  void readTensor(const TensorSlot &slot, llvm::MutableArrayRef<uint8_t> bytes) override {
    assert(bytes.size() == size_t(slot.bytes()) && "tensor size mismatch");
    download(bytes.data(), resolve(slot), bytes.size(), "tensor");
  }
  void writeTensor(const TensorSlot &slot, llvm::ArrayRef<uint8_t> bytes) override {
    assert(bytes.size() == size_t(slot.bytes()) && "tensor size mismatch");
    upload(resolve(slot), bytes.data(), bytes.size(), "tensor");
  }

private:
  uint8_t *resolve(const TensorSlot &slot) const {
    return slotAddress(slot, arena, params, grads, inputs, states);
  }

  /// Fills the per-step parameter block for `ctx` and uploads it (stream-ordered; from pageable memory, so the host
  /// copy is free again on return), unless it already holds `ctx`'s values. Never called while capturing: runSteps
  /// uploads before the capture begins and the launches then find the block current.
  llvm::Error uploadStepParams(const StepContext &ctx) {
    if (paramsFor && paramsFor->step == ctx.step && paramsFor->rngStep() == ctx.rngStep() &&
        paramsFor->seed == ctx.seed && paramsFor->dropout == ctx.dropout && paramsFor->evaluation == ctx.evaluation)
      return llvm::Error::success();
    uint32_t rngStep = ctx.rngStep(); // the dropout masks' Philox counter word (per micro-batch)
    std::memcpy(hostParams.data(), &rngStep, sizeof(rngStep));
    for (const std::unique_ptr<CudaStep> &st : steps)
      if (st->paramBytes > 0)
        st->paramFill(ctx, hostParams.data() + st->paramOffset);
    if (cudaError_t err = cudaMemcpyAsync(stepParams.get(), hostParams.data(), hostParams.size(),
                                          cudaMemcpyHostToDevice, stream))
      return cudaFailure(plan->path + ": cuda backend: uploading the step parameters", err);
    paramsFor = ctx;
    return llvm::Error::success();
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
  std::vector<DeviceBuffer> stash; ///< pipeline: activation slots (saveActivations)
  DeviceBuffer wide; ///< fp32 copies of the 16-bit slots of the running step
  /// The per-step parameter block: the Philox step word (StepContext::rngStep, uint32 at 0), then each step's hostParam
  /// slot.
  DeviceBuffer stepParams;
  std::vector<uint8_t> hostParams;
  std::optional<StepContext> paramsFor; ///< the context the uploaded block holds
  std::vector<DeviceBuffer> params, grads, inputs, states;
  std::vector<std::unique_ptr<CudaStep>> steps;
  std::vector<CudaKernel> kernels;
  llvm::Error pending = llvm::Error::success();
  // CUDA graphs: the captured training step, the runs before it, and the context it replays for.
  StepGraph graph;
  int64_t trainingRuns = 0;
  uint64_t graphSeed = 0;
  bool graphDropout = true;
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

  // 16-bit steps: a native kernel where the op has one for the step's dtypes, fp32 copies otherwise.
  std::vector<StepStorage> storage;
  std::vector<WidenPlan> widen;
  int64_t wideFloats = 0;
  for (const PlanStep &step : p.steps) {
    storage.push_back(classifyStep(step));
    widen.push_back(storage.back().precision == StepPrecision::Widened ? planWidening(step) : WidenPlan{});
    wideFloats = std::max(wideFloats, widen.back().floats);
  }
  if (auto err = allocate(wideFloats * int64_t(sizeof(float)), "16-bit steps", wide))
    return err;
  std::vector<std::vector<void *>> narrow(p.steps.size());
  auto scratchBytes = prepareSteps<CudaKernel>(
      p,
      [&](size_t i) {
        auto step = std::make_unique<CudaStep>(p, i, [this](const TensorSlot &t) { return resolve(t); }, lt);
        step->storage = storage[i];
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
  // The parameter block: 8 bytes for the step counter, then the steps' slots, 8-byte aligned.
  int64_t blockBytes = 8;
  for (std::unique_ptr<CudaStep> &st : steps)
    if (st->paramBytes > 0) {
      assert(st->paramBytes <= 64 && "host parameter slots are small");
      st->paramOffset = blockBytes;
      blockBytes += (st->paramBytes + 7) / 8 * 8;
    }
  hostParams.assign(size_t(blockBytes), 0);
  paramsFor.reset();
  if (auto err = allocate(blockBytes, "the step parameters", stepParams))
    return err;
  return llvm::Error::success();
}

llvm::Error CudaBackend::runSteps(const LoadedPlan &p, const StepContext &ctx, Communicator &comm) {
  llvm::Error before = std::move(pending);
  pending = llvm::Error::success();
  if (!before)
    if (cudaError_t err = cudaSetDevice(place.device))
      before = cudaFailure(p.path + ": cuda backend: cudaSetDevice", err);
  if (!before)
    before = uploadStepParams(ctx);
  auto eager = [&] { return Backend::runSteps(p, ctx, comm); };
  // Every member of a one-GPU group takes the same branch: the same flag, contexts and run counts.
  bool replay = false;
  // Captured: a whole training step (not a micro-batch's part of one), of a plan without host round trips (loss
  // scaling reads its step count and overflow flag back: runtime/cuda/OptimizerOps.cpp).
  // Not while a step observer or a test perturbation reads or writes tensors between the steps.
  if (place.cudaGraphs && !ctx.evaluation && ctx.part == StepContext::Part::All && !p.findOutput("loss_scale") &&
      !ctx.observer && !perturbationAsked()) {
    if (!graph.captured()) {
      // The first training run is the warm-up: lazily created state (communicator events) exists before capture.
      replay = trainingRuns++ > 0;
      graphSeed = ctx.seed;
      graphDropout = ctx.dropout;
    } else {
      // Kernel arguments the graph holds (the seed, dropout's p) must be this run's; otherwise run the steps.
      replay = ctx.seed == graphSeed && ctx.dropout == graphDropout;
    }
  }
  if (!replay)
    return before ? std::move(before) : eager();
  if (before && !graph.grouped())
    return before;
  if (before) {
    // Still take part in the group's rendezvous (the other members would wait for ever), then report.
    std::string why = llvm::toString(std::move(before));
    llvm::consumeError(graph.run(stream, [&] { return llvm::createStringError(llvm::inconvertibleErrorCode(), why); }));
    return llvm::createStringError(llvm::inconvertibleErrorCode(), why);
  }
  return graph.run(stream, eager);
}

} // namespace

std::unique_ptr<Backend> meg::runtime::createCudaBackend(const BackendPlace &place) {
  return std::make_unique<CudaBackend>(place);
}

bool meg::runtime::cudaGraphCaptured(const Backend &backend) {
  assert(backend.name() == "cuda" && "not a cuda backend");
  return static_cast<const CudaBackend &>(backend).graphCaptured();
}

// CUDA ranks as threads: every rank on one device, a stream each, collectives as device kernels (one-GPU mode).
llvm::Expected<std::vector<std::unique_ptr<Communicator>>>
CudaBackend::createPeerCommunicators(llvm::ArrayRef<Backend *> peers, int meshDp, int meshTp, int meshPp) {
  std::vector<std::unique_ptr<Communicator>> comms;
  if (meshPp > 1)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cuda backend: pipeline stages as threads on one GPU are not supported (run one "
                                   "process per rank: --ranks mpi|env with NCCL)");
  auto world = cuda::createOneGpuWorld(meshDp, meshTp, place.device);
  if (!world)
    return world.takeError();
  // The peers capture their training steps together (CudaGraph.h).
  if (cudaError_t err = cudaSetDevice(place.device))
    return cudaFailure("cuda backend: cudaSetDevice", err);
  auto group = GraphGroup::create(int(peers.size()));
  if (!group)
    return group.takeError();
  // Every peer comes from the same registry entry as this backend (Backend::createThreadCommunicators).
  for (int r = 0; r < int(peers.size()); ++r) {
    auto *peer = static_cast<CudaBackend *>(peers[r]);
    comms.push_back(cuda::createOneGpuCommunicator(*world, r, peer->getStream()));
    peer->graph.setGroup(*group, r);
  }
  return comms;
}

llvm::Error CudaBackend::saveActivations(int slot, int64_t bytes) {
  while (stash.size() <= size_t(slot)) {
    stash.emplace_back();
    if (auto err = stash.back().allocate(bytes, "a pipeline activation slot"))
      return err;
  }
  if (bytes == 0)
    return llvm::Error::success();
  if (cudaError_t err = cudaMemcpyAsync(stash[size_t(slot)].get(), arena.get(), size_t(bytes),
                                        cudaMemcpyDeviceToDevice, stream))
    return cudaFailure("cuda backend: saving the activations", err);
  return llvm::Error::success();
}

llvm::Error CudaBackend::restoreActivations(int slot, int64_t bytes) {
  assert(size_t(slot) < stash.size() && "restore of an unsaved slot");
  if (bytes == 0)
    return llvm::Error::success();
  if (cudaError_t err = cudaMemcpyAsync(arena.get(), stash[size_t(slot)].get(), size_t(bytes),
                                        cudaMemcpyDeviceToDevice, stream))
    return cudaFailure("cuda backend: restoring the activations", err);
  return llvm::Error::success();
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
