//===- OpExamples.cpp - the op examples of docs/ir.md, compiled and run -------===//
#include "OpExamples.h"

#include "ir/OpRules.h"
#include "ir/Parser.h"
#include "passes/LowerToPlan.h"
#include "passes/Pass.h"
#include "runtime/exec/Executor.h"
#include "runtime/exec/OpArgs.h"
#include "runtime/plan/Plan.h"
#include "runtime/train/BackendRegistry.h"

#include "kernels/Half.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <set>

using namespace meg;
using namespace meg::optest;
using ir::DType;
using ir::Node;
using ir::OpKind;
using ir::Value;

namespace {

llvm::Error fail(const llvm::Twine &msg) { return llvm::createStringError(llvm::inconvertibleErrorCode(), msg); }

bool isSource(OpKind k) { return ir::isExternal(k); }

llvm::StringRef nameOf(const Node &n) { return n.getAttrs().getString("name").value_or(""); }

/// The block of a tensor that `rank` holds: local shape and global offset per dim.
struct Block {
  std::vector<int64_t> shape, offset;
};

std::array<int64_t, ir::kNumMeshAxes> coordsOf(const ir::Mesh &mesh, int rank) {
  return {rank / mesh.tp(), rank % mesh.tp()};
}

Block blockOf(const ir::TensorType &t, const ir::Mesh &mesh, int rank) {
  auto coords = coordsOf(mesh, rank);
  Block b{std::vector<int64_t>(t.shape.begin(), t.shape.end()), std::vector<int64_t>(t.rank(), 0)};
  for (unsigned d = 0; d < t.rank(); ++d)
    if (auto axis = t.sharding.dimAxis(d)) {
      b.shape[d] = t.shape[d] / mesh.size[unsigned(*axis)];
      b.offset[d] = coords[unsigned(*axis)] * b.shape[d];
    }
  return b;
}

/// Calls fn(local index, global index) for every element of the block, in row-major local order.
template <typename Fn> void forEachInBlock(llvm::ArrayRef<int64_t> global, const Block &b, Fn fn) {
  int64_t n = 1;
  for (int64_t s : b.shape)
    n *= s;
  std::vector<int64_t> idx(b.shape.size(), 0);
  for (int64_t local = 0; local < n; ++local) {
    int64_t g = 0;
    for (size_t d = 0; d < idx.size(); ++d)
      g = g * global[d] + b.offset[d] + idx[d];
    fn(local, g);
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < b.shape[d])
        break;
      idx[d] = 0;
    }
  }
}

/// Seeded values of a source, by name and global index only (the same for every layout).
HostTensor sourceValues(const Node &n, const llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>> &users,
                        unsigned seed, unsigned replicaOfPartial) {
  const ir::TensorType &t = n.getResult()->getType();
  HostTensor h(t.dtype, std::vector<int64_t>(t.shape.begin(), t.shape.end()));
  std::mt19937 rng(unsigned(llvm::hash_value(nameOf(n))) ^ (seed * 7919u) ^ (replicaOfPartial * 104729u));
  if (t.dtype == DType::I32) {
    // Ids in range of every consumer; labels sometimes ignored (-100, out of range: pick gives 0); masks 0/1;
    // cast operands small signed integers.
    std::optional<int64_t> upper;
    bool mask = false, ignore = false, small = false;
    auto bound = [&](int64_t b) { upper = std::min(upper.value_or(b), b); };
    // The consumers, looking through the collectives partition inserted (a split mask reaches attention through
    // all_gather), each with the value it reads.
    llvm::SmallVector<std::pair<Node *, const Value *>, 4> consumers;
    std::function<void(const Value *)> collect = [&](const Value *v) {
      for (Node *u : users.lookup(v)) {
        if (!ir::isCollective(u->getKind())) {
          consumers.push_back({u, v});
          continue;
        }
        for (unsigned r = 0; r < u->getNumResults(); ++r)
          if (!ir::hasResultPerOperand(u->getKind()) || u->getOperand(r) == v)
            collect(u->getResult(r));
      }
    };
    collect(n.getResult());
    for (auto [u, seen] : consumers) {
      OpKind k = u->getKind();
      const Value *last = u->getOperand(u->getNumOperands() - 1);
      if (k == OpKind::Embedding || k == OpKind::EmbeddingGrad)
        bound(u->getOperand(0)->getType().shape[0]);
      if (k == OpKind::DecodeAttention) // positions inside the cache
        bound(u->getOperand(3)->getType().shape[1]);
      // pick: the last quarter of the vocabulary may be padding (mask_padding -inf), so labels avoid it.
      if (k == OpKind::Pick || k == OpKind::PickGrad)
        bound(u->getOperand(0)->getType().shape.back() * 3 / 4);
      ignore |= k == OpKind::Pick || k == OpKind::PickGrad || k == OpKind::ValidMask;
      mask |= (k == OpKind::Attention && u->getNumOperands() == 4 && last == seen) ||
              (k == OpKind::AttentionGrad && u->getNumOperands() == 5 && last == seen);
      small |= k == OpKind::Cast;
    }
    std::uniform_int_distribution<int64_t> id(0, upper.value_or(8) - 1), signedSmall(-50, 50), eighth(0, 7);
    for (double &x : h.data) {
      if (mask)
        x = eighth(rng) < 6 ? 1 : 0;
      else if (small && !upper)
        x = double(signedSmall(rng));
      else
        x = ignore && eighth(rng) == 0 ? -100 : double(id(rng));
    }
    return h;
  }
  // Adam moments: small, the second one non-negative.
  double lo = -1, hi = 1;
  for (Node *u : users.lookup(n.getResult()))
    if (u->getKind() == OpKind::AdamW) {
      if (u->getOperand(2) == n.getResult())
        lo = -1e-3, hi = 1e-3;
      if (u->getOperand(3) == n.getResult())
        lo = 0, hi = 1e-4;
    }
  std::uniform_real_distribution<double> dist(lo, hi);
  for (double &x : h.data)
    x = double(float(dist(rng)));
  return h;
}

/// The partial-reduction coordinate of a rank (0 when the value has no pending reduction): which of the summed
/// copies it holds.
unsigned partialIndex(const ir::TensorType &t, const ir::Mesh &mesh, int rank) {
  auto coords = coordsOf(mesh, rank);
  unsigned index = 0;
  for (unsigned a = 0; a < ir::kNumMeshAxes; ++a)
    if (t.sharding.partial[a])
      index = index * unsigned(mesh.size[a]) + unsigned(coords[a]);
  return index;
}

/// Assembles the global value from every rank's local block (by IR sharding). Ranks that hold a replica of another
/// rank's block (an axis that neither splits nor reduces the value) must hold the same bytes.
HostTensor assemble(const ir::TensorType &t, const ir::Mesh &mesh, const std::vector<std::vector<double>> &locals,
                    const std::string &what, std::vector<std::string> &mismatches) {
  HostTensor h(t.dtype, std::vector<int64_t>(t.shape.begin(), t.shape.end()));
  bool max = llvm::is_contained(t.sharding.partial, std::optional<ir::ReduceKind>(ir::ReduceKind::Max));
  if (max)
    std::fill(h.data.begin(), h.data.end(), -std::numeric_limits<double>::infinity());
  for (int r = 0; r < int(locals.size()); ++r) {
    auto coords = coordsOf(mesh, r);
    int representative = r;
    for (unsigned a = 0; a < ir::kNumMeshAxes; ++a) {
      bool splits = false;
      for (unsigned d = 0; d < t.rank(); ++d)
        splits |= t.sharding.dimAxis(d) == ir::MeshAxis(a);
      if (!splits && !t.sharding.partial[a] && coords[a] != 0)
        representative -= int(a == 0 ? coords[a] * mesh.tp() : coords[a]);
    }
    if (representative != r) {
      const auto &mine = locals[r], &theirs = locals[representative];
      for (size_t i = 0; i < mine.size(); ++i)
        if (!(mine[i] == theirs[i] || (std::isnan(mine[i]) && std::isnan(theirs[i])))) {
          mismatches.push_back(llvm::formatv("{0}: rank {1} differs from its replica on rank {2} at element {3} "
                                             "({4} vs {5})",
                                             what, r, representative, i, mine[i], theirs[i]));
          break;
        }
      continue;
    }
    Block b = blockOf(t, mesh, r);
    bool partial = t.sharding.hasPartial();
    forEachInBlock(t.shape, b, [&](int64_t local, int64_t g) {
      double x = locals[r][size_t(local)];
      double &y = h.data[size_t(g)];
      y = !partial ? x : max ? std::max(y, x) : y + x;
    });
  }
  return h;
}

std::vector<double> toDoubles(const std::vector<uint8_t> &bytes, runtime::DType t) {
  std::vector<double> v(bytes.size() / runtime::dtypeBytes(t));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = kernels::loadAsFloat(bytes.data(), runtime::elemOf(t), int64_t(i));
  return v;
}

std::vector<float> toFloats(const std::vector<double> &v) { return std::vector<float>(v.begin(), v.end()); }

std::vector<uint8_t> toBytes(const std::vector<double> &v, DType irType) {
  runtime::DType t = runtime::DType(irType); // the plan's enumeration mirrors the IR's
  std::vector<uint8_t> bytes(v.size() * runtime::dtypeBytes(t));
  for (size_t i = 0; i < v.size(); ++i)
    kernels::storeFromFloat(bytes.data(), runtime::elemOf(t), int64_t(i), float(v[i]));
  return bytes;
}

llvm::Error runPasses(ir::Graph &g, llvm::StringRef pipeline) {
  auto pm = passes::PassManager::parse(pipeline);
  if (!pm)
    return pm.takeError();
  passes::PipelineConfig config;
  config.verifyEach = true;
  return pm->run(g, config);
}

} // namespace

HostTensor::HostTensor(DType dtype, std::vector<int64_t> shape) : dtype(dtype), shape(std::move(shape)) {
  data.assign(size_t(numel()), 0.0);
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape)
    n *= s;
  return n;
}

std::vector<OpExample> meg::optest::mirBlocks(llvm::StringRef doc) {
  std::vector<OpExample> blocks;
  llvm::SmallVector<llvm::StringRef, 0> lines;
  doc.split(lines, '\n');
  OpExample *cur = nullptr;
  for (size_t i = 0; i < lines.size(); ++i) {
    llvm::StringRef line = lines[i];
    if (!cur && line.trim() == "```mir") {
      cur = &blocks.emplace_back();
      cur->line = unsigned(i + 2);
    } else if (cur && line.trim() == "```") {
      cur = nullptr;
    } else if (cur) {
      cur->text += line.str() + "\n";
      llvm::StringRef rest = line.trim();
      if (cur->name.empty() && rest.consume_front("graph @"))
        cur->name = rest.take_while([](char c) { return llvm::isAlnum(c) || c == '_' || c == '.' || c == '-'; });
    }
  }
  return blocks;
}

llvm::Expected<std::vector<OpExample>> meg::optest::irDocExamples() {
  // The source tree's, unless the environment names another copy (the relocated GPU bundle: scripts/gpu-bundle.sh).
  const char *path = std::getenv("MEG_IR_DOC") ? std::getenv("MEG_IR_DOC") : MEG_IR_DOC;
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf)
    return fail(llvm::Twine("cannot read ") + path + ": " + buf.getError().message());
  return mirBlocks((*buf)->getBuffer());
}

std::string meg::optest::printedForm(llvm::StringRef block) {
  std::string expected;
  llvm::SmallVector<llvm::StringRef, 0> lines;
  block.split(lines, '\n', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef line : lines)
    if (!line.trim().startswith("//"))
      expected += line.str() + "\n";
  return expected;
}

std::string Layout::label() const {
  std::string s = llvm::formatv("dp={0},tp={1}", mesh.dp(), mesh.tp());
  for (const auto &[name, dim] : tpSplits)
    s += llvm::formatv(" {0}@tp:{1}", name, dim).str();
  return s;
}

std::vector<Layout> meg::optest::tpLayouts(const ir::Graph &g) {
  if (g.getMesh().world() != 1)
    return {};
  auto users = g.computeUsers();
  // Partition never converts an operand an op writes in place (passes/Partition.cpp): splitting one on a dim its
  // writer needs whole (decode_attention's cache positions) is a layout the compiler refuses, not one to run.
  auto wholeForWriter = [&](const Value *v, unsigned d) {
    for (Node *u : users.lookup(v)) {
      unsigned written = ir::writtenOperands(u->getKind());
      if (!written)
        continue;
      ir::ShardingSpec spec = ir::shardingSpec(*u);
      for (unsigned i = 0; i < u->getNumOperands(); ++i)
        if ((written >> i & 1) && u->getOperand(i) == v && d < spec.operandDims[i].size() &&
            spec.operandDims[i][d] >= 0 && spec.loops[unsigned(spec.operandDims[i][d])] == ir::ShardingSpec::Loop::Whole)
          return true;
    }
    return false;
  };
  std::vector<Layout> layouts;
  std::set<std::string> seen;
  for (Node *n : g.getNodes()) {
    if (!isSource(n->getKind()))
      continue;
    const ir::TensorType &t = n->getResult()->getType();
    for (unsigned d = 0; d < t.rank(); ++d) {
      if (t.shape[d] % 2 || wholeForWriter(n->getResult(), d))
        continue;
      std::set<std::string> group = {nameOf(*n).str()};
      for (Node *u : users.lookup(n->getResult()))
        if (ir::writtenOperands(u->getKind()))
          for (Value *v : u->getOperands())
            if (isSource(v->getDef()->getKind()) && v->getType().shape == t.shape)
              group.insert(nameOf(*v->getDef()).str());
      Layout l;
      l.mesh.size = {1, 2};
      for (const std::string &name : group)
        l.tpSplits.push_back({name, d});
      if (seen.insert(l.label()).second)
        layouts.push_back(std::move(l));
    }
  }
  return layouts;
}

llvm::Expected<CompiledExample> meg::optest::compileExample(llvm::StringRef text, const Layout *layout,
                                                           bool observeAll) {
  auto parsed = ir::parseGraph(text, "docs/ir.md");
  if (!parsed)
    return parsed.takeError();
  CompiledExample ex;
  ex.graph = std::move(*parsed);
  ir::Graph &g = *ex.graph;
  bool partitioned = llvm::any_of(g, [](const auto &n) { return ir::isCollective(n->getKind()); });
  if (layout) {
    if (partitioned)
      return fail("a partitioned example keeps its own mesh");
    g.setMesh(layout->mesh);
    for (const auto &[name, dim] : layout->tpSplits) {
      auto it = llvm::find_if(g, [&](const auto &n) { return isSource(n->getKind()) && nameOf(*n) == name; });
      if (it == g.end())
        return fail("no source named '" + name + "'");
      Value *v = (*it)->getResult();
      ir::TensorType t = v->getType();
      t.sharding.setDimAxis(dim, t.rank(), ir::MeshAxis::TP);
      v->setType(t);
    }
  }
  if (!partitioned)
    if (auto err = runPasses(g, "partition"))
      return err;
  unsigned count = 0;
  for (Node *n : g.getNodes()) {
    if (n->getKind() == OpKind::Output) {
      ex.observed[nameOf(*n).str()] = n->getOperand(0);
      continue;
    }
    if (!observeAll || isSource(n->getKind()))
      continue;
    for (Value *v : n->getResults()) {
      std::string name = "observe:" + std::to_string(count++);
      ir::AttrDict attrs;
      attrs.set("name", name);
      g.append(OpKind::Output, {v}, std::move(attrs), {});
      ex.observed[name] = v;
    }
  }
  if (auto err = runPasses(g, "schedule{policy=memory},memory-plan"))
    return err;
  return ex;
}

runtime::StepContext meg::optest::exampleContext() {
  runtime::StepContext ctx;
  ctx.seed = 1234;
  ctx.step = 149;
  ctx.dropout = true;
  ctx.evaluation = false;
  return ctx;
}

llvm::Expected<ExampleRun> meg::optest::runExample(const CompiledExample &ex, llvm::StringRef backendName,
                                                  unsigned seed) {
  const ir::Graph &g = *ex.graph;
  const ir::Mesh &mesh = g.getMesh();
  int ranks = int(mesh.world());
  std::vector<runtime::LoadedPlan> plans;
  for (int r = 0; r < ranks; ++r) {
    auto bytes = passes::buildPlan(g, passes::PlanMetadata{}, r);
    if (!bytes)
      return bytes.takeError();
    auto plan = runtime::parsePlan(
        llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(bytes->data()), bytes->size()),
        "rank-" + std::to_string(r) + ".megplan");
    if (!plan)
      return plan.takeError();
    plans.push_back(std::move(*plan));
  }

  // Sources: a global value per source (several for a pending sum: one per summed copy) and each rank's block.
  ExampleRun run;
  auto users = g.computeUsers();
  struct Source {
    const Node *node;
    std::vector<std::vector<double>> locals; // per rank
  };
  std::vector<Source> sources;
  std::set<const Value *> written;
  for (const auto &n : g) {
    unsigned mask = ir::writtenOperands(n->getKind());
    for (unsigned i = 0; i < n->getNumOperands(); ++i)
      if (mask & (1u << i))
        written.insert(n->getOperand(i));
    if (!isSource(n->getKind()))
      continue;
    const ir::TensorType &t = n->getResult()->getType();
    Source s{n.get(), {}};
    for (int r = 0; r < ranks; ++r) {
      HostTensor global = sourceValues(*n, users, seed, partialIndex(t, mesh, r));
      Block b = blockOf(t, mesh, r);
      std::vector<double> local;
      forEachInBlock(t.shape, b, [&](int64_t, int64_t gi) { local.push_back(global.data[size_t(gi)]); });
      s.locals.push_back(std::move(local));
    }
    run.values[n->getResult()] = assemble(t, mesh, s.locals, "source " + nameOf(*n).str(), run.replicaMismatches);
    sources.push_back(std::move(s));
  }

  // One step on every rank; outputs and updated sources read back per rank.
  size_t numRanks = size_t(ranks);
  std::vector<std::unique_ptr<runtime::Backend>> backends(numRanks);
  std::vector<std::unique_ptr<runtime::Communicator>> comms(numRanks);
  std::vector<std::map<std::string, std::vector<double>>> outLocals(numRanks);
  std::vector<std::map<const Value *, std::vector<double>>> updatedLocals(numRanks);
  std::vector<runtime::Backend *> peers;
  for (int r = 0; r < ranks; ++r) {
    auto backend = runtime::createBackend(backendName, runtime::BackendPlace{r, ranks, 0});
    if (!backend)
      return backend.takeError();
    backends[size_t(r)] = std::move(*backend);
    peers.push_back(backends[size_t(r)].get());
  }
  runtime::RankThreads threads(ranks);
  if (auto err = threads.run([&](int r) { return backends[size_t(r)]->prepare(plans[size_t(r)]); }))
    return err;
  auto created = peers[0]->createThreadCommunicators(peers, int(mesh.dp()), int(mesh.tp()));
  if (!created)
    return created.takeError();
  comms = std::move(*created);
  runtime::StepContext ctx = exampleContext();
  llvm::Error err = threads.run([&](int r) -> llvm::Error {
    const runtime::LoadedPlan &plan = plans[size_t(r)];
    runtime::Backend &b = *backends[size_t(r)];
    auto stateIndex = [&](llvm::StringRef name) -> std::optional<size_t> {
      for (size_t i = 0; i < plan.states.size(); ++i)
        if (plan.states[i].name == name)
          return i;
      return std::nullopt;
    };
    for (const Source &s : sources) {
      llvm::StringRef name = nameOf(*s.node);
      const std::vector<double> &local = s.locals[size_t(r)];
      std::optional<size_t> i;
      int64_t numel = 0;
      switch (s.node->getKind()) {
      case OpKind::Param:
        if ((i = plan.findParam(name)))
          numel = plan.params[*i].numel(), b.writeParam(*i, toFloats(local));
        break;
      case OpKind::Input:
        if ((i = plan.findInput(name)))
          numel = plan.inputs[*i].numel(), b.writeInput(*i, toBytes(local, s.node->getResult()->getType().dtype));
        break;
      default:
        if ((i = stateIndex(name)))
          numel = plan.states[*i].numel(), b.writeState(*i, toFloats(local));
        break;
      }
      if (!i)
        return fail("rank " + llvm::Twine(r) + "'s plan has no source '" + name + "'");
      if (numel != int64_t(local.size()))
        return fail(llvm::formatv("source '{0}': the plan of rank {1} holds {2} elements, its IR sharding {3}",
                                  name, r, numel, local.size()));
    }
    runtime::Executor exec(plan, b, *comms[size_t(r)]);
    if (auto err = exec.run(ctx))
      return err;
    for (const runtime::PlanOutput &out : plan.outputs) {
      std::vector<uint8_t> bytes(size_t(out.tensor.bytes()));
      b.readTensor(out.tensor, bytes);
      outLocals[size_t(r)][out.name] = toDoubles(bytes, out.tensor.dtype);
    }
    for (const Source &s : sources) {
      if (!written.count(s.node->getResult()))
        continue;
      std::vector<float> local(s.locals[size_t(r)].size());
      llvm::StringRef name = nameOf(*s.node);
      if (s.node->getKind() == OpKind::Param)
        b.readParam(*plan.findParam(name), local);
      else if (auto i = stateIndex(name))
        b.readState(*i, local);
      updatedLocals[size_t(r)][s.node->getResult()] = std::vector<double>(local.begin(), local.end());
    }
    return llvm::Error::success();
  });
  if (err)
    return err;

  auto gather = [&](auto &perRank, const auto &key) {
    std::vector<std::vector<double>> locals;
    for (int r = 0; r < ranks; ++r)
      locals.push_back(perRank[size_t(r)][key]);
    return locals;
  };
  for (const auto &[name, v] : ex.observed) {
    if (!outLocals[0].count(name))
      return fail("the plans have no output '" + name + "'");
    HostTensor h = assemble(v->getType(), mesh, gather(outLocals, name), "output " + name, run.replicaMismatches);
    run.outputs[name] = h;
    run.values.emplace(v, std::move(h));
  }
  for (const Value *v : written)
    run.updated[v] = assemble(v->getType(), mesh, gather(updatedLocals, v), "updated " + describeValue(g, v),
                              run.replicaMismatches);
  return run;
}

std::string meg::optest::compareTensors(const HostTensor &actual, const HostTensor &expected, double rtol) {
  if (actual.shape != expected.shape)
    return "shape differs";
  double meanAbs = 0;
  for (double e : expected.data)
    meanAbs += std::isfinite(e) ? std::fabs(e) : 0.0;
  meanAbs /= double(std::max<size_t>(expected.data.size(), 1));
  std::string msg;
  size_t bad = 0;
  for (size_t i = 0; i < expected.data.size(); ++i) {
    double a = actual.data[i], e = expected.data[i];
    bool ok = expected.dtype == DType::I32 || !std::isfinite(e)
                  ? (a == e || (std::isnan(a) && std::isnan(e)))
                  : std::fabs(a - e) <= rtol * (std::fabs(e) + meanAbs);
    if (!ok && bad++ < 4)
      msg += llvm::formatv("[{0}]: {1} vs expected {2}; ", i, a, e).str();
  }
  if (bad)
    msg += llvm::formatv("{0} of {1} elements differ", bad, expected.data.size()).str();
  return msg;
}

std::string meg::optest::describeValue(const ir::Graph &g, const Value *v) {
  const Node *n = v->getDef();
  std::string s = "'" + n->getName().str() + "'";
  if (n->loc.valid())
    s += " of block line " + std::to_string(n->loc.line);
  else
    s += " (inserted by partition)";
  if (n->getNumResults() > 1)
    s += " result #" + std::to_string(v->getIndex());
  return s;
}
