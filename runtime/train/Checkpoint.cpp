//===- Checkpoint.cpp - training checkpoints and the resumable step log --------===//
#include "runtime/train/Checkpoint.h"

#include "ir/Json.h"
#include "runtime/io/AtomicFile.h"
#include "runtime/plan/ShardCopy.h"
#include "runtime/train/Session.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstring>
#include <functional>
#include <set>

using namespace meg;
using namespace meg::runtime;

static constexpr size_t kHeaderBytes = 24; // magic, payload size, checksum
static constexpr llvm::StringLiteral kFormatName("meg checkpoint");

static llvm::Error error(llvm::StringRef path, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": " + what);
}

static std::string tensorName(llvm::StringRef kind, llvm::StringRef name) { return (kind + "/" + name).str(); }

/// The list of `kind` ("param" or "state") of a plan.
static const std::vector<PlanParam> &tensorList(const LoadedPlan &plan, llvm::StringRef kind) {
  return kind == "state" ? plan.states : plan.params;
}

/// Per state of `plan`: an accumulator (operand 0 of an `accumulate`: grad.acc:<param>, loss.acc, and a pipeline
/// stage's own accumulator of a sum split over stages, <name>@stage<s>). Accumulators restart at every step's first
/// micro-batch, so they are no part of the training state: not saved, not needed to resume, not restored.
static std::vector<bool> accumulatorStates(const LoadedPlan &plan) {
  std::vector<bool> acc(plan.states.size(), false);
  for (const PlanStep &step : plan.steps)
    if (step.kind == ir::OpKind::Accumulate && !step.operands.empty() &&
        step.operands[0].storage == Storage::OptState && step.operands[0].index >= 0 &&
        size_t(step.operands[0].index) < acc.size())
      acc[size_t(step.operands[0].index)] = true;
  return acc;
}

std::string PlanSetIdentity::mesh() const {
  return llvm::formatv("dp={0} tp={1}", dp, tp).str() + (pp > 1 ? " pp=" + std::to_string(pp) : std::string());
}

std::string PlanSetIdentity::hashHex() const { return llvm::formatv("{0:x-16}", hash).str(); }

static std::string shapeText(llvm::ArrayRef<int64_t> shape) {
  return "[" + llvm::join(llvm::map_range(shape, [](int64_t d) { return std::to_string(d); }), ", ") + "]";
}

/// The model description without meg.micro_batch (the global batch is compared on its own), keys sorted.
static std::string modelText(llvm::StringRef model) {
  auto value = meg::parseJson(model);
  if (!value) {
    llvm::consumeError(value.takeError());
    return model.str();
  }
  if (llvm::json::Object *obj = value->getAsObject())
    if (llvm::json::Object *meg = obj->getObject("meg"))
      meg->erase("micro_batch");
  return llvm::formatv("{0}", *value).str();
}

/// `op{key=value, ...}` of a step, values printed exactly.
static std::string stepText(const PlanStep &step) {
  std::string text = step.op + "{";
  for (const StepAttr &a : step.attrs) {
    if (&a != &step.attrs.front())
      text += ", ";
    text += a.key + "=";
    switch (a.kind) {
    case StepAttr::Bool:
      text += a.b ? "true" : "false";
      break;
    case StepAttr::Int:
      text += std::to_string(a.i);
      break;
    case StepAttr::Float:
      text += llvm::formatv("{0}", llvm::format("%.17g", a.f)).str();
      break;
    case StepAttr::String:
    case StepAttr::Symbol:
      text += a.s;
      break;
    case StepAttr::Ints:
      text += shapeText(a.ints);
      break;
    }
  }
  return text + "}";
}

/// PlanSetIdentity::vocabRows of a plan.
static std::map<std::string, int64_t> vocabRowsOf(const LoadedPlan &plan) {
  std::map<std::string, int64_t> rows;
  for (const PlanParam &p : plan.params)
    if (p.vocabRows > 0)
      rows[tensorName("param", p.name)] = p.vocabRows;
  for (const PlanParam &s : plan.states) {
    auto param = plan.findParam(llvm::StringRef(s.name).rsplit(':').second);
    if (param && plan.params[*param].vocabRows > 0 && plan.params[*param].globalShape == s.globalShape)
      rows[tensorName("state", s.name)] = plan.params[*param].vocabRows;
  }
  return rows;
}

llvm::Expected<PlanSetIdentity> meg::runtime::planSetIdentity(llvm::ArrayRef<LoadedPlan> plans) {
  assert(!plans.empty() && "no plans");
  PlanSetIdentity id;
  id.dp = plans[0].meshDp;
  id.tp = plans[0].meshTp;
  id.pp = plans[0].meshPp;
  // xxHash64 of the per-rank file hashes: one pass over each file, no concatenation.
  std::string digests;
  for (const LoadedPlan &plan : plans) {
    auto buffer = llvm::MemoryBuffer::getFile(plan.path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!buffer)
      return error(plan.path, "cannot read plan: " + buffer.getError().message());
    uint64_t h = checksum((*buffer)->getBuffer());
    char le[8];
    llvm::support::endian::write64le(le, h);
    digests.append(le, 8);
  }
  id.hash = checksum(llvm::StringRef(digests));
  // What any mesh must share. Without pp rank 0's view suffices (the plan set agrees on the model; every rank runs
  // the same optimizer steps on its shards, and holds a shard of every parameter and state); with pp each stage holds
  // its own tensors and inputs, so the union over the ranks (the tied embedding, held by two stages, once).
  const LoadedPlan view = planSetDataView(plans);
  id.model = modelText(view.model);
  std::set<std::string> optimizer;
  for (const LoadedPlan &plan : plans)
    for (const PlanStep &step : plan.steps)
      if (step.kind == ir::OpKind::AdamW || step.kind == ir::OpKind::LrSchedule ||
          step.kind == ir::OpKind::ClipScale || step.kind == ir::OpKind::LossScaleUpdate)
        optimizer.insert(stepText(step));
  id.optimizer = llvm::join(optimizer, "\n");
  std::vector<std::string> inputs;
  for (const PlanInput &in : view.inputs) {
    Shape rows = in.globalShape;
    if (!rows.empty())
      rows[0] *= view.microBatches;
    inputs.push_back(in.name + " " + shapeText(rows));
  }
  id.batch = llvm::join(inputs, ", ");
  for (const LoadedPlan &plan : plans) {
    for (const PlanParam &p : plan.params)
      id.tensors[tensorName("param", p.name)] = p.globalShape;
    std::vector<bool> accumulator = accumulatorStates(plan);
    for (size_t i = 0; i < plan.states.size(); ++i)
      (accumulator[i] ? id.accumulators : id.tensors).emplace(tensorName("state", plan.states[i].name),
                                                              plan.states[i].globalShape);
    std::map<std::string, int64_t> rows = vocabRowsOf(plan);
    id.vocabRows.insert(rows.begin(), rows.end());
  }
  return id;
}

//===----------------------------------------------------------------------===//
// Save
//===----------------------------------------------------------------------===//

/// The checkpoint file of the global tensors assembled from the shards `get` hands out (ShardKind::Param and State
/// of every rank, dp replicas too: a tensor sharded over dp is covered as well as a replicated one).
static llvm::Error writeCheckpoint(llvm::StringRef path, llvm::ArrayRef<LoadedPlan> plans, ShardGetter get,
                                   const PlanSetIdentity &id, const CheckpointState &state) {
  struct Global {
    Shape shape;
    std::vector<float> values;
    std::vector<uint8_t> written; ///< per element: some rank's shard covered it
  };
  std::map<std::string, Global> globals;
  std::vector<float> values;
  for (int r = 0; r < int(plans.size()); ++r) {
    const LoadedPlan &plan = plans[size_t(r)];
    for (const auto &[kind, name] : {std::pair<ShardKind, llvm::StringRef>{ShardKind::Param, "param"},
                                     {ShardKind::State, "state"}}) {
      const std::vector<PlanParam> &list = tensorList(plan, name);
      std::vector<bool> accumulator = accumulatorStates(plan);
      for (size_t i = 0; i < list.size(); ++i) {
        if (kind == ShardKind::State && accumulator[i])
          continue;
        const PlanParam &p = list[i];
        Global &g = globals[tensorName(name, p.name)];
        if (g.written.empty()) {
          g.shape = p.globalShape;
          g.values.resize(size_t(p.globalNumel()));
          g.written.resize(g.values.size());
        } else if (g.shape != p.globalShape) {
          return error(path, "rank " + llvm::Twine(r) + " has " + name + " '" + p.name + "' of global shape " +
                                 shapeText(p.globalShape) + ", rank 0 " + shapeText(g.shape));
        }
        values.resize(size_t(p.numel()));
        get(kind, r, i, values);
        // Replicas (dp, and tp for unsplit tensors) must hold the same bits: a diverged run is not saved.
        bool diverged = false;
        detail::forEachShardRow(p.globalShape, p.offset, p.shape, [&](int64_t f, int64_t at, int64_t len) {
          for (int64_t j = 0; j < len; ++j) {
            float v = values[size_t(at + j)];
            float &slot = g.values[size_t(f + j)];
            if (g.written[size_t(f + j)] && std::memcmp(&slot, &v, sizeof(float)) != 0)
              diverged = true;
            slot = v;
            g.written[size_t(f + j)] = 1;
          }
        });
        if (diverged)
          return error(path, "rank " + llvm::Twine(r) + "'s shard of " + name + " '" + p.name +
                                 "' differs from another rank's copy of the same elements (the replicas diverged)");
      }
    }
  }
  SafetensorsWriter writer;
  for (const auto &[name, g] : globals) {
    if (llvm::is_contained(g.written, 0))
      return error(path, "no rank holds every element of '" + name + "' (the plans' shards leave a gap)");
    if (auto err = writer.addF32(name, g.shape, g.values))
      return error(path, llvm::toString(std::move(err)));
  }
  writer.setMetadata("format", kFormatName);
  writer.setMetadata("version", std::to_string(kCheckpointVersion));
  writer.setMetadata("step", std::to_string(state.step));
  writer.setMetadata("seed", std::to_string(state.seed));
  writer.setMetadata("data_step", std::to_string(state.dataStep));
  writer.setMetadata("data_windows", std::to_string(state.dataWindows));
  writer.setMetadata("mesh", id.mesh());
  writer.setMetadata("plan_hash", id.hashHex());
  writer.setMetadata("model", id.model);
  writer.setMetadata("optimizer", id.optimizer);
  writer.setMetadata("global_batch", id.batch);
  std::string rows;
  for (const auto &[name, n] : id.vocabRows)
    rows += name + "=" + std::to_string(n) + "\n";
  writer.setMetadata("vocab_rows", rows);
  std::string payload = writer.serialize();

  char header[kHeaderBytes];
  std::memcpy(header, CheckpointMagic.data(), 8);
  llvm::support::endian::write64le(header + 8, payload.size());
  llvm::support::endian::write64le(header + 16, checksum(llvm::StringRef(payload)));
  return writeFileAtomically(path, [&](llvm::raw_ostream &os) {
    os.write(header, kHeaderBytes);
    os << payload;
    return llvm::Error::success();
  });
}

llvm::Error meg::runtime::saveCheckpoint(llvm::StringRef path, Session &session, const PlanSetIdentity &id,
                                         const CheckpointState &state) {
  for (const LoadedPlan &plan : session.allPlans())
    for (const auto &[what, list] : {std::pair<llvm::StringRef, const std::vector<PlanParam> *>{"parameter",
                                                                                                 &plan.params},
                                     {"optimizer state", &plan.states}})
      for (const PlanParam &p : *list)
        if (p.dtype != DType::F32)
          return error(path, what + " '" + p.name + "' is not f32 (only f32 checkpoints are supported)");
  // Every rank's shards (dp replicas too), gathered to the root, which assembles the global tensors.
  return session.withShards({ShardKind::Param, ShardKind::State}, /*replicas=*/true, [&](ShardGetter get) {
    return writeCheckpoint(path, session.allPlans(), get, id, state);
  });
}

//===----------------------------------------------------------------------===//
// Load
//===----------------------------------------------------------------------===//

llvm::Expected<Checkpoint> Checkpoint::load(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return error(path, "cannot read checkpoint: " + buffer.getError().message());
  llvm::StringRef bytes = (*buffer)->getBuffer();
  if (!bytes.startswith(CheckpointMagic))
    return error(path, bytes.size() < CheckpointMagic.size() && CheckpointMagic.startswith(bytes)
                           ? "truncated checkpoint (" + llvm::Twine(bytes.size()) + " bytes)"
                           : llvm::Twine("not a meg checkpoint (no MEGCKPT1 magic)"));
  if (bytes.size() < kHeaderBytes)
    return error(path, llvm::formatv("truncated checkpoint ({0} bytes)", bytes.size()));
  uint64_t size = llvm::support::endian::read64le(bytes.data() + 8);
  uint64_t expected = llvm::support::endian::read64le(bytes.data() + 16);
  uint64_t have = bytes.size() - kHeaderBytes;
  if (have < size)
    return error(path, llvm::formatv("truncated checkpoint ({0} of {1} payload bytes)", have, size));
  if (have > size)
    return error(path, llvm::formatv("{0} bytes after the checkpoint's payload (corrupted checkpoint)", have - size));
  llvm::StringRef payloadBytes = bytes.substr(kHeaderBytes);
  if (checksum(payloadBytes) != expected)
    return error(path, "checksum mismatch (corrupted checkpoint)");

  auto file = SafetensorsFile::fromBuffer(
      llvm::MemoryBuffer::getMemBuffer(payloadBytes, path, /*RequiresNullTerminator=*/false), path);
  if (!file)
    return file.takeError();
  Checkpoint ckpt;
  ckpt.path = path.str();
  const std::map<std::string, std::string> &meta = file->metadata();
  auto field = [&](llvm::StringRef key) -> llvm::Expected<llvm::StringRef> {
    auto it = meta.find(key.str());
    if (it == meta.end())
      return error(path, "checkpoint metadata has no '" + key + "'");
    return llvm::StringRef(it->second);
  };
  auto number = [&](llvm::StringRef key, uint64_t &into, unsigned radix = 10) -> llvm::Error {
    auto text = field(key);
    if (!text)
      return text.takeError();
    if (text->getAsInteger(radix, into))
      return error(path, "checkpoint metadata '" + key + "' is not a number: '" + *text + "'");
    return llvm::Error::success();
  };
  auto format = field("format");
  if (!format)
    return format.takeError();
  if (*format != kFormatName)
    return error(path, "not a meg checkpoint (format '" + *format + "')");
  uint64_t version = 0;
  if (auto err = number("version", version))
    return std::move(err);
  if (version != kCheckpointVersion)
    return error(path, llvm::formatv("checkpoint version {0} (this megrun reads version {1})", version,
                                     kCheckpointVersion));
  CheckpointState &s = ckpt.scalars;
  for (auto [key, into] : {std::pair<const char *, uint64_t *>{"step", &s.step},
                           {"seed", &s.seed},
                           {"data_step", &s.dataStep},
                           {"data_windows", &s.dataWindows}})
    if (auto err = number(key, *into))
      return std::move(err);
  if (auto err = number("plan_hash", ckpt.id.hash, 16))
    return std::move(err);
  auto mesh = field("mesh");
  if (!mesh)
    return mesh.takeError();
  unsigned dp = 0, tp = 0, pp = 1;
  int fields = std::sscanf(mesh->str().c_str(), "dp=%u tp=%u pp=%u", &dp, &tp, &pp);
  if ((fields != 2 && fields != 3) || dp == 0 || tp == 0 || pp == 0)
    return error(path, "checkpoint metadata 'mesh' is malformed: '" + *mesh + "'");
  ckpt.id.dp = int(dp);
  ckpt.id.tp = int(tp);
  ckpt.id.pp = int(pp);
  for (auto [key, into] : {std::pair<const char *, std::string *>{"model", &ckpt.id.model},
                           {"optimizer", &ckpt.id.optimizer},
                           {"global_batch", &ckpt.id.batch}}) {
    auto text = field(key);
    if (!text)
      return text.takeError();
    *into = text->str();
  }
  auto rows = field("vocab_rows");
  if (!rows)
    return rows.takeError();
  llvm::SmallVector<llvm::StringRef, 4> lines;
  rows->split(lines, '\n', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef line : lines) {
    auto [name, n] = line.rsplit('=');
    if (n.getAsInteger(10, ckpt.id.vocabRows[name.str()]))
      return error(path, "checkpoint metadata 'vocab_rows' is malformed: '" + line + "'");
  }
  for (const std::string &name : file->names()) {
    const SafetensorsTensor *t = file->lookup(name);
    if (t->DType != SafetensorsDType::F32 || !(llvm::StringRef(name).startswith("param/") ||
                                               llvm::StringRef(name).startswith("state/")))
      return error(path, "checkpoint tensor '" + name + "' is not an f32 param/ or state/ tensor");
    ckpt.id.tensors[name] = Shape(t->Shape.begin(), t->Shape.end());
  }
  ckpt.fileBuffer = std::move(*buffer);
  ckpt.payload = std::make_unique<SafetensorsFile>(std::move(*file));
  return std::move(ckpt);
}

/// The first line of `a` that `b` lacks (or the reverse), as "'x' in the checkpoint, 'y' in the plans".
static std::string firstDifference(llvm::StringRef a, llvm::StringRef b) {
  llvm::SmallVector<llvm::StringRef, 16> as, bs;
  a.split(as, '\n');
  b.split(bs, '\n');
  for (size_t i = 0; i < std::max(as.size(), bs.size()); ++i) {
    llvm::StringRef x = i < as.size() ? as[i] : "(nothing)", y = i < bs.size() ? bs[i] : "(nothing)";
    if (x != y)
      return ("'" + x + "' in the checkpoint, '" + y + "' in the plans").str();
  }
  return "";
}

/// The first top-level key (or meg.<key>) whose value differs between two model descriptions.
static std::string modelDifference(llvm::StringRef a, llvm::StringRef b) {
  auto x = meg::parseJson(a), y = meg::parseJson(b);
  if (!x || !y || !x->getAsObject() || !y->getAsObject()) {
    llvm::consumeError(x.takeError());
    llvm::consumeError(y.takeError());
    return "the model descriptions differ";
  }
  std::function<std::string(const llvm::json::Object &, const llvm::json::Object &, std::string)> walk =
      [&](const llvm::json::Object &p, const llvm::json::Object &q, std::string prefix) -> std::string {
    std::set<std::string> keys;
    for (const auto &kv : p)
      keys.insert(kv.first.str());
    for (const auto &kv : q)
      keys.insert(kv.first.str());
    for (const std::string &key : keys) {
      const llvm::json::Value *u = p.get(key), *v = q.get(key);
      if (u && v && u->getAsObject() && v->getAsObject()) {
        std::string inner = walk(*u->getAsObject(), *v->getAsObject(), prefix + key + ".");
        if (!inner.empty())
          return inner;
        continue;
      }
      auto show = [](const llvm::json::Value *w) { return w ? llvm::formatv("{0}", *w).str() : "absent"; };
      if (show(u) != show(v))
        return "'" + prefix + key + "' is " + show(u) + " in the checkpoint, " + show(v) + " in the plans";
    }
    return "";
  };
  std::string d = walk(*x->getAsObject(), *y->getAsObject(), "");
  return d.empty() ? "the model descriptions differ" : d;
}

/// True when two global shapes differ only in vocab padding rows of dim 0 (both keep the `rows` that exist).
static bool samePaddedVocab(llvm::ArrayRef<int64_t> a, llvm::ArrayRef<int64_t> b,
                            const std::map<std::string, int64_t> &vocabRows, const std::string &name) {
  auto it = vocabRows.find(name);
  return it != vocabRows.end() && a.size() == b.size() && !a.empty() && a.drop_front() == b.drop_front() &&
         a[0] >= it->second && b[0] >= it->second;
}

llvm::Error Checkpoint::checkPlanSet(const PlanSetIdentity &current) const {
  if (current.model != id.model)
    return error(path, "the checkpoint is of another model: " + modelDifference(id.model, current.model));
  if (current.batch != id.batch)
    return error(path, "the checkpoint's global batch per step is " + id.batch + ", the plans' is " + current.batch +
                           " (a resume must draw the same rows per step)");
  if (current.optimizer != id.optimizer)
    return error(path, "the checkpoint was trained with other optimizer settings: " +
                           firstDifference(id.optimizer, current.optimizer));
  for (const auto &[name, shape] : id.tensors) {
    auto it = current.tensors.find(name);
    if (it == current.tensors.end() && current.accumulators.count(name))
      continue; // an accumulator some writer stored: restarts every step, not restored
    if (it == current.tensors.end())
      return error(path, "the checkpoint has '" + name + "', the plans have no such tensor (other parameters or "
                                                          "optimizer states)");
    if (it->second != shape && !samePaddedVocab(shape, it->second, current.vocabRows, name) &&
        !samePaddedVocab(shape, it->second, id.vocabRows, name))
      return error(path, "the checkpoint's '" + name + "' has the global shape " + shapeText(shape) +
                             ", the plans' " + shapeText(it->second));
  }
  for (const auto &entry : current.tensors)
    if (!id.tensors.count(entry.first))
      return error(path, "the plans need '" + entry.first + "', the checkpoint has no such tensor (other "
                                                             "parameters or optimizer states)");
  return llvm::Error::success();
}

llvm::Error Checkpoint::restore(Session &session) const {
  // Check every tensor first, so a bad checkpoint writes nothing.
  std::map<std::string, int64_t> vocabRows = id.vocabRows;
  for (int r = 0; r < session.world(); ++r) {
    std::map<std::string, int64_t> rows = vocabRowsOf(session.plan(r));
    vocabRows.insert(rows.begin(), rows.end());
  }
  auto find = [&](llvm::StringRef kind, const PlanParam &p) -> llvm::Expected<const SafetensorsTensor *> {
    std::string name = tensorName(kind, p.name);
    const SafetensorsTensor *t = payload->lookup(name);
    if (!t)
      return error(path, "checkpoint has no tensor '" + name + "'");
    llvm::ArrayRef<int64_t> shape(t->Shape);
    if (t->DType != SafetensorsDType::F32 ||
        (shape != llvm::ArrayRef<int64_t>(p.globalShape) && !samePaddedVocab(shape, p.globalShape, vocabRows, name)))
      return error(path, "checkpoint tensor '" + name + "' is not f32 of the plan's global shape");
    return t;
  };
  std::vector<std::vector<bool>> accumulators;
  for (int r = 0; r < session.world(); ++r)
    accumulators.push_back(accumulatorStates(session.plan(r)));
  auto skip = [&](int r, llvm::StringRef kind, size_t i) { return kind == "state" && accumulators[size_t(r)][i]; };
  for (int r = 0; r < session.world(); ++r)
    for (llvm::StringRef kind : {"param", "state"}) {
      const std::vector<PlanParam> &list = tensorList(session.plan(r), kind);
      for (size_t i = 0; i < list.size(); ++i)
        if (!skip(r, kind, i))
          if (auto t = find(kind, list[i]); !t)
            return t.takeError();
    }
  std::vector<float> full, values;
  for (int r = 0; r < session.world(); ++r) {
    if (!session.hosts(r))
      continue;
    Backend &backend = session.backend(r);
    for (llvm::StringRef kind : {"param", "state"}) {
      const std::vector<PlanParam> &list = tensorList(session.plan(r), kind);
      for (size_t i = 0; i < list.size(); ++i) {
        if (skip(r, kind, i))
          continue;
        const PlanParam &p = list[i];
        const SafetensorsTensor *t = *find(kind, p);
        // The plan's global tensor: the checkpoint's, its vocab padding rows cut or zero-filled.
        full.assign(size_t(p.globalNumel()), 0.0f);
        std::memcpy(full.data(), t->Bytes.data(), std::min(t->Bytes.size(), full.size() * sizeof(float)));
        values.resize(size_t(p.numel()));
        extractShard(full.data(), p.globalShape, p.offset, p.shape, values.data());
        if (kind == "param")
          backend.writeParam(i, values);
        else
          backend.writeState(i, values);
      }
    }
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// StepLog
//===----------------------------------------------------------------------===//

StepLog::~StepLog() = default;

llvm::Expected<std::unique_ptr<StepLog>> StepLog::open(llvm::StringRef path, std::optional<uint64_t> resumeStep) {
  std::unique_ptr<StepLog> log(new StepLog());
  log->path = path.str();
  if (resumeStep) {
    // Keep the complete lines of steps 1..resumeStep, in order; stop at the first other line.
    std::string kept;
    if (llvm::sys::fs::exists(path)) {
      auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
      if (!buffer)
        return error(path, "cannot read the log to resume: " + buffer.getError().message());
      llvm::StringRef rest = (*buffer)->getBuffer();
      uint64_t next = 1;
      while (next <= *resumeStep) {
        size_t eol = rest.find('\n');
        if (eol == llvm::StringRef::npos)
          break;
        llvm::StringRef line = rest.take_front(eol);
        auto value = meg::parseJson(line);
        if (!value) {
          llvm::consumeError(value.takeError());
          break;
        }
        const llvm::json::Object *obj = value->getAsObject();
        llvm::Optional<int64_t> step = obj ? obj->getInteger("step") : llvm::None;
        if (!step || uint64_t(*step) != next)
          break;
        kept += line.str() + "\n";
        rest = rest.drop_front(eol + 1);
        ++next;
      }
    }
    if (auto err = writeFileAtomically(path, llvm::StringRef(kept)))
      return std::move(err);
  }
  int fd = -1;
  if (std::error_code ec = llvm::sys::fs::openFileForWrite(
          path, fd, resumeStep ? llvm::sys::fs::CD_OpenAlways : llvm::sys::fs::CD_CreateAlways,
          resumeStep ? llvm::sys::fs::OF_Append : llvm::sys::fs::OF_None))
    return error(path, "cannot open the log: " + ec.message());
  log->fd = fd;
  log->os = std::make_unique<llvm::raw_fd_ostream>(fd, /*shouldClose=*/true);
  log->resumed = resumeStep.has_value();
  uint64_t size = 0;
  if (resumeStep && !llvm::sys::fs::file_size(path, size))
    log->good = size;
  return std::move(log);
}

llvm::Error StepLog::append(llvm::StringRef line) {
  *os << line;
  os->flush();
  if (std::error_code ec = os->error()) {
    // No torn line: the file goes back to its last complete line, and a log that never got one is removed.
    os->clear_error();
    (void)llvm::sys::fs::resize_file(fd, good);
    if (good == 0 && !resumed) {
      os->close();
      os->clear_error();
      llvm::sys::fs::remove(path);
    }
    return error(path, "cannot write the log: " + ec.message());
  }
  good += line.size();
  return llvm::Error::success();
}
