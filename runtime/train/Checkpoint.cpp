//===- Checkpoint.cpp - training checkpoints and the resumable step log --------===//
#include "runtime/train/Checkpoint.h"

#include "ir/Json.h"
#include "runtime/io/AtomicFile.h"
#include "runtime/train/Session.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstring>

using namespace meg;
using namespace meg::runtime;

static constexpr size_t kHeaderBytes = 24; // magic, payload size, checksum
static constexpr llvm::StringLiteral kFormatName("meg checkpoint");

static llvm::Error error(llvm::StringRef path, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": " + what);
}

static std::string tensorName(int rank, llvm::StringRef kind, llvm::StringRef name) {
  return llvm::formatv("rank{0}/{1}/{2}", rank, kind, name).str();
}

std::string PlanSetIdentity::mesh() const { return llvm::formatv("dp={0} tp={1}", dp, tp).str(); }

std::string PlanSetIdentity::hashHex() const { return llvm::formatv("{0:x-16}", hash).str(); }

llvm::Expected<PlanSetIdentity> meg::runtime::planSetIdentity(llvm::ArrayRef<LoadedPlan> plans) {
  assert(!plans.empty() && "no plans");
  PlanSetIdentity id;
  id.dp = plans[0].meshDp;
  id.tp = plans[0].meshTp;
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
  return id;
}

//===----------------------------------------------------------------------===//
// Save
//===----------------------------------------------------------------------===//

/// The checkpoint file of the shards `get` hands out (ShardKind::Param and State of every rank).
static llvm::Error writeCheckpoint(llvm::StringRef path, llvm::ArrayRef<LoadedPlan> plans, ShardGetter get,
                                  const PlanSetIdentity &id, const CheckpointState &state) {
  SafetensorsWriter writer;
  std::vector<float> values;
  for (int r = 0; r < int(plans.size()); ++r) {
    const LoadedPlan &plan = plans[size_t(r)];
    for (const auto &[kind, name, list] :
         {std::tuple<ShardKind, llvm::StringRef, const std::vector<PlanParam> *>{ShardKind::Param, "param",
                                                                                 &plan.params},
          {ShardKind::State, "state", &plan.states}})
      for (size_t i = 0; i < list->size(); ++i) {
        const PlanParam &p = (*list)[i];
        values.resize(size_t(p.numel()));
        get(kind, r, i, values);
        if (auto err = writer.addF32(tensorName(r, name, p.name), p.shape, values))
          return error(path, llvm::toString(std::move(err)));
      }
  }
  writer.setMetadata("format", kFormatName);
  writer.setMetadata("version", std::to_string(kCheckpointVersion));
  writer.setMetadata("step", std::to_string(state.step));
  writer.setMetadata("seed", std::to_string(state.seed));
  writer.setMetadata("data_step", std::to_string(state.dataStep));
  writer.setMetadata("data_windows", std::to_string(state.dataWindows));
  writer.setMetadata("mesh", id.mesh());
  writer.setMetadata("plan_hash", id.hashHex());
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
  // Every rank's shards (dp replicas too: the checkpoint holds each rank's own), gathered to the root.
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
  unsigned dp = 0, tp = 0;
  if (std::sscanf(mesh->str().c_str(), "dp=%u tp=%u", &dp, &tp) != 2 || dp == 0 || tp == 0)
    return error(path, "checkpoint metadata 'mesh' is malformed: '" + *mesh + "'");
  ckpt.id.dp = int(dp);
  ckpt.id.tp = int(tp);
  ckpt.fileBuffer = std::move(*buffer);
  ckpt.payload = std::make_unique<SafetensorsFile>(std::move(*file));
  return std::move(ckpt);
}

llvm::Error Checkpoint::checkPlanSet(const PlanSetIdentity &current) const {
  if (current.dp != id.dp || current.tp != id.tp)
    return error(path, "the checkpoint is for the mesh " + id.mesh() + ", the plans are for " + current.mesh() +
                           " (another plan set)");
  if (current.hash != id.hash)
    return error(path, "the checkpoint was written with another plan set (plan hash " + id.hashHex() +
                           ", the plans have " + current.hashHex() + ")");
  return llvm::Error::success();
}

llvm::Error Checkpoint::restore(Session &session) const {
  if (session.world() != id.dp * id.tp)
    return error(path, llvm::formatv("the checkpoint has {0} ranks, the session {1}", id.dp * id.tp,
                                     session.world()));
  // Check every tensor first, so a bad checkpoint writes nothing.
  auto find = [&](int r, llvm::StringRef kind, const PlanParam &p) -> llvm::Expected<const SafetensorsTensor *> {
    std::string name = tensorName(r, kind, p.name);
    const SafetensorsTensor *t = payload->lookup(name);
    if (!t)
      return error(path, "checkpoint has no tensor '" + name + "'");
    if (t->DType != SafetensorsDType::F32 || llvm::ArrayRef<int64_t>(t->Shape) != llvm::ArrayRef<int64_t>(p.shape))
      return error(path, "checkpoint tensor '" + name + "' is not f32 of the plan's shard shape");
    return t;
  };
  size_t expected = 0;
  for (int r = 0; r < session.world(); ++r) {
    const LoadedPlan &plan = session.plan(r);
    for (const auto &[kind, list] : {std::pair<llvm::StringRef, const std::vector<PlanParam> *>{"param", &plan.params},
                                     {"state", &plan.states}})
      for (const PlanParam &p : *list) {
        if (auto t = find(r, kind, p); !t)
          return t.takeError();
        ++expected;
      }
  }
  if (payload->size() != expected)
    return error(path, llvm::formatv("checkpoint has {0} tensors, the plans need {1}", payload->size(), expected));
  std::vector<float> values;
  for (int r = 0; r < session.world(); ++r) {
    if (!session.hosts(r))
      continue;
    const LoadedPlan &plan = session.plan(r);
    Backend &backend = session.backend(r);
    for (size_t i = 0; i < plan.params.size(); ++i) {
      const SafetensorsTensor *t = *find(r, "param", plan.params[i]);
      values.resize(size_t(t->numElements()));
      std::memcpy(values.data(), t->Bytes.data(), t->Bytes.size());
      backend.writeParam(i, values);
    }
    for (size_t i = 0; i < plan.states.size(); ++i) {
      const SafetensorsTensor *t = *find(r, "state", plan.states[i]);
      values.resize(size_t(t->numElements()));
      std::memcpy(values.data(), t->Bytes.data(), t->Bytes.size());
      backend.writeState(i, values);
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
