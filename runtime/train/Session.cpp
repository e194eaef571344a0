//===- Session.cpp - the ranks of a plan set this process hosts ---------------===//
#include "runtime/train/Session.h"

#include "runtime/io/Weights.h"
#include "runtime/plan/PipelineSchedule.h"
#include "runtime/plan/ShardCopy.h"
#include "runtime/train/BackendRegistry.h"
#include "runtime/train/Init.h"

#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <cmath>

using namespace meg;
using namespace meg::runtime;

static llvm::Error error(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

Session::~Session() = default;

llvm::Error Session::prepare(llvm::StringRef backend, llvm::ArrayRef<int> ranks, int device) {
  hosted.assign(ranks.begin(), ranks.end());
  backends.resize(plans.size());
  comms.resize(plans.size());
  for (int r : hosted) {
    BackendPlace place;
    place.rank = r;
    place.localRanks = int(hosted.size());
    place.device = device;
    auto created = createBackend(backend, place);
    if (!created)
      return created.takeError();
    backends[size_t(r)] = std::move(*created);
    if (auto err = backends[size_t(r)]->prepare(plans[size_t(r)]))
      return err;
  }
  threads = std::make_unique<RankThreads>(int(hosted.size()));
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<Session>> Session::create(std::vector<LoadedPlan> plans, llvm::StringRef backend) {
  assert(!plans.empty() && "no plans");
  std::unique_ptr<Session> s(new Session());
  s->plans = std::move(plans);
  int world = s->world();
  std::vector<int> ranks;
  std::vector<Backend *> peers;
  for (int r = 0; r < world; ++r)
    ranks.push_back(r);
  if (auto err = s->prepare(backend, ranks, /*device=*/0))
    return err;
  for (int r = 0; r < world; ++r)
    peers.push_back(s->backends[size_t(r)].get());
  auto comms = peers[0]->createThreadCommunicators(peers, s->plans[0].meshDp, s->plans[0].meshTp,
                                                  s->plans[0].meshPp);
  if (!comms)
    return comms.takeError();
  s->comms = std::move(*comms);
  return s;
}

llvm::Expected<std::unique_ptr<Session>> Session::createRank(std::vector<LoadedPlan> plans, llvm::StringRef backend,
                                                             std::unique_ptr<Communicator> comm, int device) {
  assert(!plans.empty() && "no plans");
  assert(comm->worldSize() == int(plans.size()) && "the communicator's world is not the plan set's");
  std::unique_ptr<Session> s(new Session());
  s->plans = std::move(plans);
  int rank = comm->rank();
  if (auto err = s->prepare(backend, {rank}, device))
    return err;
  s->comms[size_t(rank)] = std::move(comm);
  return s;
}

llvm::Error Session::onHosted(llvm::function_ref<llvm::Error(int rank)> fn) {
  return threads->run([&](int local) -> llvm::Error {
    int rank = hosted[size_t(local)];
    llvm::Error err = fn(rank);
    if (!err)
      return err;
    // The ranks of this process waiting for this one stop (no hang); they end with PeerFailed, which says nothing
    // new: the first failing rank's own error is the run's.
    comms[size_t(rank)]->abandon();
    return llvm::handleErrors(std::move(err), [](const PeerFailed &) {});
  });
}

void Session::setCollectiveTimeout(double seconds) {
  for (const std::unique_ptr<Communicator> &comm : comms)
    if (comm)
      comm->watch().setTimeout(seconds);
}

llvm::Error Session::initWeights(uint64_t seed) {
  return onHosted([&](int r) {
    for (size_t i = 0; i < plans[r].params.size(); ++i)
      backends[r]->writeParam(i, initParamShard(plans[r].params[i], seed));
    initStates(r);
    return llvm::Error::success();
  });
}

void Session::initStates(int r) {
  for (size_t i = 0; i < plans[r].states.size(); ++i)
    backends[r]->writeState(i, initParamShard(plans[r].states[i], 0));
}

llvm::Error Session::loadWeights(llvm::StringRef path, std::optional<uint64_t> headSeed,
                                 std::vector<std::string> *initializedHead) {
  std::vector<std::string> absent;
  if (auto err = runtime::loadWeights(
          path, plans,
          [&](int r, size_t i, llvm::ArrayRef<float> v) {
            if (hosts(r))
              backends[r]->writeParam(i, v);
          },
          headSeed ? &absent : nullptr))
    return err;
  if (initializedHead)
    *initializedHead = absent;
  return onHosted([&](int r) {
    for (const std::string &name : absent)
      if (auto i = plans[r].findParam(name))
        backends[r]->writeParam(*i, initParamShard(plans[r].params[*i], *headSeed));
    initStates(r);
    return llvm::Error::success();
  });
}

//===----------------------------------------------------------------------===//
// Shards to the root
//===----------------------------------------------------------------------===//

/// The list a shard kind indexes.
static const std::vector<PlanParam> &shardList(const LoadedPlan &plan, ShardKind kind) {
  return kind == ShardKind::State ? plan.states : plan.params;
}

void Session::readShard(ShardKind kind, int rank, size_t index, llvm::MutableArrayRef<float> out) {
  Backend &b = backend(rank);
  switch (kind) {
  case ShardKind::Param:
    b.readParam(index, out);
    return;
  case ShardKind::State:
    b.readState(index, out);
    return;
  case ShardKind::Grad: {
    const PlanOutput *grad = plans[size_t(rank)].findOutput("grad:" + plans[size_t(rank)].params[index].name);
    assert(grad && "no gradient output (checked by saveGradients)");
    b.readTensor(grad->tensor,
                 llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(out.data()), out.size() * sizeof(float)));
    return;
  }
  }
}

llvm::Error Session::withShards(llvm::ArrayRef<ShardKind> kinds, bool replicas,
                                llvm::function_ref<llvm::Error(ShardGetter get)> use) {
  if (hostsAll())
    return use([&](ShardKind kind, int r, size_t i, llvm::MutableArrayRef<float> out) { readShard(kind, r, i, out); });
  assert(hosted.size() == 1 && "a process hosts every rank or one");
  int me = hosted[0], tp = plans[0].meshTp;
  // Tensors split over dp (the distributed optimizer's masters and states, and their gradients) differ between dp
  // groups: then every rank sends, as with replicas.
  for (int r = tp; r < world() && !replicas; ++r)
    for (ShardKind kind : kinds) {
      const std::vector<PlanParam> &list = shardList(plans[size_t(r)], kind);
      const std::vector<PlanParam> &first = shardList(plans[size_t(r % tp)], kind);
      for (size_t i = 0; i < list.size() && i < first.size() && !replicas; ++i)
        replicas = list[i].offset != first[i].offset || list[i].shape != first[i].shape;
    }
  // Rank 0's shards are the root's own; without replicas only dp group 0 sends.
  auto sends = [&](int r) { return r != 0 && (replicas || plans[size_t(r)].dpRank() == 0); };
  auto shardCount = [&](int r) {
    int64_t n = 0;
    for (ShardKind kind : kinds)
      for (const PlanParam &p : shardList(plans[size_t(r)], kind))
        n += p.numel();
    return n;
  };

  std::vector<float> mine;
  if (sends(me)) {
    mine.resize(size_t(shardCount(me)));
    size_t at = 0;
    for (ShardKind kind : kinds) {
      const std::vector<PlanParam> &list = shardList(plans[size_t(me)], kind);
      for (size_t i = 0; i < list.size(); ++i) {
        readShard(kind, me, i, llvm::MutableArrayRef<float>(mine.data() + at, size_t(list[i].numel())));
        at += size_t(list[i].numel());
      }
    }
  }
  std::vector<float> all;
  std::vector<int64_t> counts;
  if (auto err = comms[size_t(me)]->gatherToRoot(mine, all, counts))
    return err;
  if (!isRoot())
    return llvm::Error::success();

  // Where rank r's shard i of each kind starts in `all` (the senders' order above).
  std::vector<std::vector<std::vector<int64_t>>> start(kinds.size(), std::vector<std::vector<int64_t>>(plans.size()));
  int64_t at = 0;
  for (int r = 0; r < world(); ++r) {
    int64_t expected = sends(r) ? shardCount(r) : 0;
    if (counts[size_t(r)] != expected)
      return error(llvm::formatv("rank {0} sent {1} floats of shards, its plan has {2}", r, counts[size_t(r)],
                                 expected));
    if (!sends(r))
      continue;
    for (size_t k = 0; k < kinds.size(); ++k)
      for (const PlanParam &p : shardList(plans[size_t(r)], kinds[k])) {
        start[k][size_t(r)].push_back(at);
        at += p.numel();
      }
  }
  return use([&](ShardKind kind, int r, size_t i, llvm::MutableArrayRef<float> out) {
    int stageRanks = plans[0].meshDp * tp;
    int source = sends(r) || r == 0 ? r : r / stageRanks * stageRanks + r % tp;
    assert(shardList(plans[size_t(source)], kind)[i].name == shardList(plans[size_t(r)], kind)[i].name &&
           "dp replicas list their shards in another order");
    if (source == 0) {
      readShard(kind, 0, i, out);
      return;
    }
    size_t k = size_t(llvm::find(kinds, kind) - kinds.begin());
    assert(k < kinds.size() && "a kind that was not gathered");
    assert(out.size() == size_t(shardList(plans[size_t(source)], kind)[i].numel()) && "shard size");
    const float *from = all.data() + start[k][size_t(source)][i];
    std::copy(from, from + out.size(), out.begin());
  });
}

llvm::Expected<std::vector<std::vector<float>>>
Session::gatherToRoot(llvm::function_ref<std::vector<float>(int rank)> local) {
  std::vector<std::vector<float>> byRank(plans.size());
  if (hostsAll()) {
    for (int r = 0; r < world(); ++r)
      byRank[size_t(r)] = local(r);
    return byRank;
  }
  int me = hosted[0];
  std::vector<float> all;
  std::vector<int64_t> counts;
  if (auto err = comms[size_t(me)]->gatherToRoot(local(me), all, counts))
    return std::move(err);
  if (!isRoot())
    return std::vector<std::vector<float>>();
  int64_t at = 0;
  for (int r = 0; r < world() && r < int(counts.size()); ++r) {
    byRank[size_t(r)].assign(all.begin() + at, all.begin() + at + counts[size_t(r)]);
    at += counts[size_t(r)];
  }
  return byRank;
}

llvm::Error Session::saveWeights(llvm::StringRef path, SafetensorsDType dtype, int shards) {
  return withShards({ShardKind::Param}, /*replicas=*/false, [&](ShardGetter get) {
    return runtime::saveWeights(
        path, plans, [&](int r, size_t i, llvm::MutableArrayRef<float> v) { get(ShardKind::Param, r, i, v); },
        /*withConfig=*/true, dtype, shards);
  });
}

llvm::Error Session::saveGradients(llvm::StringRef path) {
  for (const LoadedPlan &plan : plans)
    for (const PlanParam &p : plan.params) {
      const PlanOutput *out = plan.findOutput("grad:" + p.name);
      if (!out)
        return error(plan.path + ": no gradient output for '" + p.name + "' (an infer plan?)");
      if (out->tensor.shape != p.shape || out->tensor.dtype != DType::F32)
        return error(plan.path + ": the gradient of '" + p.name + "' is not laid out like it");
    }
  // fp16 loss scaling: the gradient outputs are those of the scaled loss; the file holds the loss's own.
  float unscale = scalarOutput("inv_loss_scale").value_or(1.0f);
  return withShards({ShardKind::Grad}, /*replicas=*/false, [&](ShardGetter get) {
    return runtime::saveWeights(
        path, plans,
        [&](int r, size_t i, llvm::MutableArrayRef<float> v) {
          get(ShardKind::Grad, r, i, v);
          if (unscale != 1.0f)
            for (float &x : v)
              x *= unscale;
        },
        /*withConfig=*/false);
  });
}

llvm::Expected<std::vector<float>> Session::assembleOutput(llvm::StringRef name) {
  for (const LoadedPlan &plan : plans) {
    const PlanOutput *out = plan.findOutput(name);
    if (!out || out->tensor.dtype != DType::F32)
      return error(plan.path + ": no f32 output named '" + name + "'");
  }
  const TensorSlot &whole = plans[0].findOutput(name)->tensor;
  std::vector<float> full(size_t(numElements(whole.globalShape))), shard;
  auto readOwn = [&](int r) {
    const TensorSlot &t = plans[size_t(r)].findOutput(name)->tensor;
    shard.resize(size_t(t.numel()));
    backends[size_t(r)]->readTensor(t, llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(shard.data()),
                                                                      shard.size() * sizeof(float)));
  };
  if (hostsAll()) {
    for (int r = 0; r < world(); ++r) {
      readOwn(r);
      const TensorSlot &t = plans[size_t(r)].findOutput(name)->tensor;
      insertShard(shard.data(), t.globalShape, t.offset, t.shape, full.data());
    }
    return full;
  }
  int me = hosted[0];
  readOwn(me);
  std::vector<float> all;
  std::vector<int64_t> counts;
  Communicator &comm = *comms[size_t(me)];
  if (auto err = comm.gatherToRoot(shard, all, counts))
    return err;
  if (isRoot()) {
    int64_t at = 0;
    for (int r = 0; r < world(); ++r) {
      const TensorSlot &t = plans[size_t(r)].findOutput(name)->tensor;
      if (counts[size_t(r)] != t.numel())
        return error(llvm::formatv("rank {0} sent {1} floats of output '{2}', its plan has {3}", r,
                                   counts[size_t(r)], name, t.numel()));
      insertShard(all.data() + at, t.globalShape, t.offset, t.shape, full.data());
      at += t.numel();
    }
  }
  if (auto err = comm.broadcastFromRoot(full.data(), int64_t(full.size())))
    return err;
  return full;
}

std::optional<float> Session::scalarOutput(llvm::StringRef name) {
  int r = hosted[0];
  const PlanOutput *out = plans[size_t(r)].findOutput(name);
  if (!out || out->tensor.dtype != DType::F32 || out->tensor.numel() != 1)
    return std::nullopt;
  float value;
  backends[size_t(r)]->readTensor(out->tensor,
                                  llvm::MutableArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(&value), 4));
  return value;
}

//===----------------------------------------------------------------------===//
// Steps
//===----------------------------------------------------------------------===//

llvm::Error Session::feed(const GlobalBatch &batch) {
  for (int r : hosted)
    if (auto err = feedRank(r, batch))
      return err;
  return llvm::Error::success();
}

llvm::Error Session::feedRank(int r, const GlobalBatch &batch) {
  std::vector<int32_t> shard;
  for (size_t i = 0; i < plans[r].inputs.size(); ++i) {
    const PlanInput &in = plans[r].inputs[i];
    auto it = batch.tensors.find(in.name);
    if (it == batch.tensors.end())
      return error("the batch has no tensor for plan input '" + in.name + "'");
    if (llvm::ArrayRef<int64_t>(it->second.shape) != llvm::ArrayRef<int64_t>(in.globalShape) ||
        in.dtype != DType::I32)
      return error("batch tensor '" + in.name + "' does not match the plan input's shape");
    shard.resize(size_t(in.numel()));
    extractShard(it->second.data.data(), in.globalShape, in.offset, in.shape, shard.data());
    backends[r]->writeInput(i, llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(shard.data()),
                                                       shard.size() * sizeof(int32_t)));
  }
  return llvm::Error::success();
}

llvm::Expected<std::optional<double>> Session::forward(const StepContext &ctx) {
  if (auto err = onHosted([&](int r) -> llvm::Error { return Executor(plans[r], *backends[r], *comms[r]).run(ctx); }))
    return err;
  return averageLoss();
}

llvm::Expected<std::optional<double>> Session::step(const StepContext &ctx, llvm::ArrayRef<GlobalBatch> batches) {
  int m = microBatches();
  if (int(batches.size()) != m)
    return error(llvm::formatv("{0}: a step takes {1} micro-batches, got {2}", plans[0].path, m, batches.size()));
  if (plans[0].meshPp > 1)
    return pipelineStep(ctx, batches);
  if (m == 1) {
    if (auto err = feed(batches[0]))
      return err;
    return forward(ctx);
  }
  // The prologue once (the parameters' 16-bit copies and all-gathers), the body once per micro-batch (its
  // accumulate steps sum the gradients and the loss), then the update.
  StepContext prologue = ctx;
  prologue.part = StepContext::Part::Prologue;
  if (auto err = onHosted([&](int r) { return Executor(plans[r], *backends[r], *comms[r]).run(prologue); }))
    return err;
  for (int i = 0; i < m; ++i) {
    if (auto err = feed(batches[size_t(i)]))
      return err;
    StepContext body = ctx;
    body.part = StepContext::Part::Body;
    body.microBatch = uint32_t(i);
    body.microBatches = uint32_t(m);
    if (auto err = onHosted([&](int r) { return Executor(plans[r], *backends[r], *comms[r]).run(body); }))
      return err;
  }
  if (!ctx.evaluation) {
    StepContext update = ctx;
    update.part = StepContext::Part::Update;
    if (auto err = onHosted([&](int r) { return Executor(plans[r], *backends[r], *comms[r]).run(update); }))
      return err;
  }
  return averageLoss();
}

// Pipeline stages: each hosted rank runs its stage's 1F1B schedule (PipelineSchedule.h) on its own thread, the
// stages handing activations and gradients to each other by the plan's send/recv steps. A forward leaves its
// micro-batch's activations in the arena; when another forward runs before that micro-batch's backward, they (the
// first stash bytes of the arena, where memory-plan put everything the forward hands to the backward) are saved to
// slot mb % slots after the forward and restored before the backward. Every phase is fed its micro-batch
// (inputs are read by forwards and backwards alike). Evaluation runs the forward phases only.
llvm::Expected<std::optional<double>> Session::pipelineStep(const StepContext &ctx,
                                                            llvm::ArrayRef<GlobalBatch> batches) {
  int m = microBatches();
  if (auto err = onHosted([&](int r) -> llvm::Error {
        const LoadedPlan &plan = plans[size_t(r)];
        Backend &b = *backends[size_t(r)];
        Executor exec(plan, b, *comms[size_t(r)]);
        int slots = activationSlots(plan.meshPp, plan.stage(), m);
        std::optional<int> inArena; // the micro-batch whose forward activations the arena holds
        StepContext prologue = ctx;
        prologue.part = StepContext::Part::Prologue;
        if (m > 1)
          if (auto err = exec.run(prologue))
            return err;
        for (size_t k = 0; k < plan.schedule.size(); ++k) {
          const PipePhase &phase = plan.schedule[k];
          if (phase.backward && ctx.evaluation)
            continue;
          if (auto err = feedRank(r, batches[size_t(phase.microBatch)]))
            return err;
          int slot = phase.microBatch % slots;
          if (phase.backward && inArena != phase.microBatch)
            if (auto err = b.restoreActivations(slot, plan.stashBytes))
              return err;
          StepContext c = ctx;
          c.microBatch = uint32_t(phase.microBatch);
          c.microBatches = uint32_t(m);
          c.part = phase.backward ? StepContext::Part::Backward : StepContext::Part::Forward;
          if (auto err = exec.run(c))
            return err;
          inArena = phase.backward ? std::nullopt : std::optional<int>(phase.microBatch);
          bool backwardNext = k + 1 < plan.schedule.size() && plan.schedule[k + 1].backward &&
                              plan.schedule[k + 1].microBatch == phase.microBatch;
          if (!phase.backward && !ctx.evaluation && !backwardNext)
            if (auto err = b.saveActivations(slot, plan.stashBytes))
              return err;
        }
        if (ctx.evaluation || plan.updateBegin == plan.steps.size())
          return llvm::Error::success();
        StepContext update = ctx;
        update.part = StepContext::Part::Update;
        return exec.run(update);
      }))
    return err;
  return averageLoss();
}

/// The pipeline's loss: the last stage's ranks hold it; the dp groups' losses are averaged in dp order.
llvm::Expected<std::optional<double>> Session::pipelineLoss() {
  const LoadedPlan &last = plans.back();
  int stageRanks = last.meshDp * last.meshTp, base = world() - stageRanks;
  std::vector<float> perGroup;
  auto lossOf = [&](int r) -> llvm::Expected<float> {
    return Executor(plans[size_t(r)], *backends[size_t(r)], *comms[size_t(r)]).scalarOutput("loss");
  };
  if (hostsAll()) {
    for (int d = 0; d < last.meshDp; ++d) {
      auto loss = lossOf(base + d * last.meshTp);
      if (!loss)
        return loss.takeError();
      perGroup.push_back(*loss);
    }
  } else {
    // tp rank 0 of each dp group of the last stage sends its loss to the root, which shares them.
    int me = hosted[0];
    std::vector<float> mine, all;
    std::vector<int64_t> counts;
    if (me >= base && plans[size_t(me)].tpRank() == 0) {
      auto loss = lossOf(me);
      if (!loss)
        return loss.takeError();
      mine.push_back(*loss);
    }
    if (auto err = comms[size_t(me)]->gatherToRoot(mine, all, counts))
      return err;
    all.resize(size_t(last.meshDp));
    if (auto err = comms[size_t(me)]->broadcastFromRoot(all.data(), int64_t(all.size())))
      return err;
    perGroup = all;
  }
  double sum = 0;
  for (float loss : perGroup)
    sum += double(loss);
  return std::optional<double>(sum / last.meshDp);
}

llvm::Expected<std::optional<double>> Session::averageLoss() {
  if (plans[0].meshPp > 1) {
    if (!plans.back().findOutput("loss"))
      return std::nullopt;
    return pipelineLoss();
  }
  if (!plans[0].findOutput("loss"))
    return std::nullopt;
  std::vector<float> losses(size_t(world()), 0.0f);
  if (auto err = onHosted([&](int r) -> llvm::Error {
        auto loss = Executor(plans[r], *backends[r], *comms[r]).scalarOutput("loss");
        if (!loss)
          return loss.takeError();
        losses[size_t(r)] = *loss;
        return llvm::Error::success();
      }))
    return err;
  // Every tp rank of a dp group holds the same loss; average the dp groups (as Megatron reports it), in dp order.
  int tp = plans[0].meshTp, dp = plans[0].meshDp;
  std::vector<float> perGroup(static_cast<size_t>(dp));
  if (hostsAll()) {
    for (int d = 0; d < dp; ++d)
      perGroup[size_t(d)] = losses[size_t(d * tp)];
  } else {
    int me = hosted[0];
    if (auto err = comms[size_t(me)]->allGather(CommAxis::DP, &losses[size_t(me)], 1, perGroup.data()))
      return err;
  }
  double sum = 0;
  for (float loss : perGroup)
    sum += double(loss);
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
    auto micro = microBatchesOf(source, uint64_t(b), session.microBatches());
    if (!micro)
      return micro.takeError();
    auto start = std::chrono::steady_clock::now();
    ctx.step = uint32_t(b);
    auto loss = session.step(ctx, *micro);
    result.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!loss)
      return loss.takeError();
    if (!*loss)
      return error(session.plan().path + ": the plan has no 'loss' output to evaluate");
    int64_t tokens = 0;
    for (const GlobalBatch &batch : *micro)
      tokens += batch.targetTokens();
    weighted += **loss * double(tokens);
    result.tokens += tokens;
    ++result.batches;
    result.positions += source.microBatch() * source.seqLen() * int64_t(micro->size());
  }
  result.loss = result.tokens ? weighted / double(result.tokens) : 0;
  result.perplexity = std::exp(result.loss);
  return result;
}

llvm::Expected<std::vector<GlobalBatch>> meg::runtime::microBatchesOf(const BatchSource &source, uint64_t step,
                                                                      int microBatches) {
  std::vector<GlobalBatch> out;
  for (int i = 0; i < microBatches; ++i) {
    auto batch = source.batch(step * uint64_t(microBatches) + uint64_t(i));
    if (!batch)
      return batch.takeError();
    out.push_back(std::move(*batch));
  }
  return out;
}
