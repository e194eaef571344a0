//===- Session.cpp - every rank of a plan set, in one process ------------------===//
#include "runtime/Session.h"

#include "runtime/Init.h"
#include "runtime/ShardCopy.h"

#include <chrono>
#include "runtime/Weights.h"

#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace meg;
using namespace meg::runtime;

// OpenBLAS's own thread pool; with several rank threads each BLAS call runs on its caller's thread.
extern "C" void openblas_set_num_threads(int);

Session::~Session() = default;

llvm::Expected<std::unique_ptr<Session>> Session::create(std::vector<LoadedPlan> plans, llvm::StringRef backend) {
  assert(!plans.empty() && "no plans");
  std::unique_ptr<Session> s(new Session());
  s->plans = std::move(plans);
  int world = s->world();
  if (world > 1)
    openblas_set_num_threads(1);
  std::shared_ptr<InProcessWorld> shared;
  if (world > 1)
    shared = InProcessCommunicator::createWorld(s->plans[0].meshDp, s->plans[0].meshTp);
  for (int r = 0; r < world; ++r) {
    BackendPlace place;
    place.rank = r;
    place.localRanks = world;
    auto created = createBackend(backend, place);
    if (!created)
      return created.takeError();
    s->backends.push_back(std::move(*created));
    if (auto err = s->backends.back()->prepare(s->plans[r]))
      return err;
    if (world > 1)
      s->comms.push_back(std::make_unique<InProcessCommunicator>(shared, r));
    else
      s->comms.push_back(std::make_unique<SingleRankCommunicator>());
  }
  s->threads = std::make_unique<RankThreads>(world);
  return s;
}

llvm::Error Session::initWeights(uint64_t seed) {
  return threads->run([&](int r) {
    for (size_t i = 0; i < plans[r].params.size(); ++i)
      backends[r]->writeParam(i, initParamShard(plans[r].params[i], seed));
    return llvm::Error::success();
  });
}

llvm::Error Session::loadWeights(llvm::StringRef path) {
  return runtime::loadWeights(path, plans,
                              [&](int r, size_t i, llvm::ArrayRef<float> v) { backends[r]->writeParam(i, v); });
}

llvm::Error Session::saveWeights(llvm::StringRef path) {
  return runtime::saveWeights(path, plans,
                              [&](int r, size_t i, llvm::MutableArrayRef<float> v) { backends[r]->readParam(i, v); });
}

llvm::Error Session::saveGradients(llvm::StringRef path) {
  for (const LoadedPlan &plan : plans)
    for (const PlanParam &p : plan.params) {
      const PlanOutput *out = plan.findOutput("grad:" + p.name);
      if (!out)
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       plan.path + ": no gradient output for '" + p.name + "' (an infer plan?)");
      if (out->tensor.shape != p.shape || out->tensor.dtype != DType::F32)
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       plan.path + ": the gradient of '" + p.name + "' is not laid out like it");
    }
  return runtime::saveWeights(
      path, plans,
      [&](int r, size_t i, llvm::MutableArrayRef<float> v) {
        const PlanOutput *out = plans[r].findOutput("grad:" + plans[r].params[i].name);
        backends[r]->readTensor(out->tensor,
                                llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(v.data()), v.size() * 4));
      },
      /*withConfig=*/false);
}

llvm::Expected<std::vector<float>> Session::assembleOutput(llvm::StringRef name) {
  std::vector<float> full, shard;
  for (int r = 0; r < world(); ++r) {
    const PlanOutput *out = plans[r].findOutput(name);
    if (!out || out->tensor.dtype != DType::F32)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     plans[r].path + ": no f32 output named '" + name + "'");
    const TensorSlot &t = out->tensor;
    full.resize(size_t(numElements(t.globalShape)));
    shard.resize(size_t(t.numel()));
    backends[r]->readTensor(t, llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(shard.data()),
                                                               shard.size() * sizeof(float)));
    insertShard(shard.data(), t.globalShape, t.offset, t.shape, full.data());
  }
  return full;
}

std::optional<float> Session::scalarOutput(llvm::StringRef name) {
  const PlanOutput *out = plans[0].findOutput(name);
  if (!out || out->tensor.dtype != DType::F32 || out->tensor.numel() != 1)
    return std::nullopt;
  float value;
  backends[0]->readTensor(out->tensor, llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(&value), 4));
  return value;
}

llvm::Error Session::feed(const GlobalBatch &batch) {
  std::vector<int32_t> shard;
  for (int r = 0; r < world(); ++r) {
    for (size_t i = 0; i < plans[r].inputs.size(); ++i) {
      const PlanInput &in = plans[r].inputs[i];
      auto it = batch.tensors.find(in.name);
      if (it == batch.tensors.end())
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       "the batch has no tensor for plan input '" + in.name + "'");
      if (llvm::ArrayRef<int64_t>(it->second.shape) != llvm::ArrayRef<int64_t>(in.globalShape) ||
          in.dtype != DType::I32)
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       "batch tensor '" + in.name + "' does not match the plan input's shape");
      shard.resize(size_t(in.numel()));
      extractShard(it->second.data.data(), in.globalShape, in.offset, in.shape, shard.data());
      backends[r]->writeInput(i, llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(shard.data()),
                                                         shard.size() * sizeof(int32_t)));
    }
  }
  return llvm::Error::success();
}

llvm::Expected<std::optional<double>> Session::forward(const StepContext &ctx) {
  std::vector<float> losses(size_t(world()), 0.0f);
  bool hasLoss = plans[0].findOutput("loss") != nullptr;
  if (auto err = threads->run([&](int r) -> llvm::Error {
        Executor exec(plans[r], *backends[r], *comms[r]);
        if (auto err = exec.run(ctx))
          return err;
        if (!hasLoss)
          return llvm::Error::success();
        auto loss = exec.scalarOutput("loss");
        if (!loss)
          return loss.takeError();
        losses[r] = *loss;
        return llvm::Error::success();
      }))
    return err;
  if (!hasLoss)
    return std::nullopt;
  // Every tp rank of a dp group holds the same loss; average the dp groups (as Megatron reports it).
  int tp = plans[0].meshTp, dp = plans[0].meshDp;
  double sum = 0;
  for (int d = 0; d < dp; ++d)
    sum += double(losses[size_t(d * tp)]);
  return std::optional<double>(sum / dp);
}

llvm::Expected<EvalResult> meg::runtime::evaluate(Session &session, const BatchSource &source, int64_t batches,
                                                  uint64_t seed) {
  EvalResult result;
  double weighted = 0;
  StepContext ctx;
  ctx.seed = seed;
  ctx.dropout = false;
  ctx.evaluation = true;
  for (int64_t b = 0; b < batches; ++b) {
    auto batch = source.batch(uint64_t(b));
    if (!batch)
      return batch.takeError();
    auto start = std::chrono::steady_clock::now();
    if (auto err = session.feed(*batch))
      return err;
    ctx.step = uint32_t(b);
    auto loss = session.forward(ctx);
    result.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!loss)
      return loss.takeError();
    if (!*loss)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     session.plan().path + ": the plan has no 'loss' output to evaluate");
    int64_t tokens = batch->targetTokens();
    weighted += **loss * double(tokens);
    result.tokens += tokens;
    ++result.batches;
  }
  result.loss = result.tokens ? weighted / double(result.tokens) : 0;
  result.perplexity = std::exp(result.loss);
  return result;
}
