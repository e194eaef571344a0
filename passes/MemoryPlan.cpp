//===- MemoryPlan.cpp - arena offsets from lifetimes ------------------------===//
//
// memory-plan{align=256,report=false}
//
// 1. Liveness (computeLiveness): walk the nodes in the order a rank runs them (passes/ExecutionOrder.h: program
//    order, or on a pipeline stage its forward phase then the rest) and group values into buffers. A reshape joins its
//    operand's buffer; an elementwise op joins the buffer of an operand that dies at this node and has the same
//    size (first such operand), result i of all_reduce_bucket the buffer of operand i under the same condition
//    (the bucket reads every operand before it writes a result); any other arena value opens a buffer. A buffer
//    lives from its first definition to the last use of any member (to the end when a member is a graph output).
// 2. Allocation: greedy best-fit. Buffers are placed one by one at the smallest gap (between buffers already placed
//    and live at an overlapping time) that fits, or above them all. Two orders are tried, largest-first and
//    definition order; the smaller arena wins (ties: largest-first). On GPT-2 124M (micro-batch 8, seq 1024) the
//    arena is within a few per cent of the liveness lower bound. The placement sweeps over time (placeBuffers, see
//    Placer below): O(n log n) on transformer graphs, so compile time grows linearly with layers.
// 3. Each node gets `arena = [offset per result]` (0 for a zero-size result); param/input/output nodes get none.
//    In the update (after the micro-batches), an in-place op whose operand is held in an accumulator (accumulate's
//    result) and dies there writes into the accumulator: offset -1 - k, k the operand's index (the dp all-reduce of
//    an accumulated gradient reduces it where it was accumulated, as Megatron-LM's main_grad buffer).
// Pipeline stages: every stage has its own arena, planned on its own execution order, so a stage's arena holds
// only its layers. A value several stages compute (the learning rate) has one offset: those values sit at the
// bottom of every stage's arena for the whole step. Above them come the buffers live at the stage's hand-over
// from forward to backward, one above the other: the arena up to their top (the stage's stash bytes) is all a
// stage saves per micro-batch in flight; the rest is placed as above. With gradient accumulation the Prologue's
// values (the parameters' 16-bit copies and all-gathers, computed once per step) live through all micro-batches
// and are no part of the stash: they are the same for every micro-batch.
//
//===----------------------------------------------------------------------===//
#include "passes/MemoryPlan.h"
#include "passes/PipelineSplit.h"
#include "passes/Pass.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>
#include <queue>
#include <set>
#include <tuple>

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;
using ir::Value;

int64_t meg::passes::localBytes(const Value &v, const ir::Mesh &mesh) {
  return v.getType().localNumElements(mesh) * int64_t(ir::dtypeBytes(v.getType().dtype));
}

const Value &meg::passes::storageRoot(const Value &v) {
  const Node *d = v.getDef();
  OpKind k = d->getKind();
  if (d->getNumOperands() == 0 || !(ir::yieldsWrittenOperand(k) || ir::aliasesOperand(k)))
    return v;
  const Value &op = *d->getOperand(0);
  if (ir::yieldsWrittenOperand(k))
    return isExternal(op.getDef()->getKind()) ? op : v;
  // An alias of a value that shares outside storage shares it too (an alias of a parameter keeps its own buffer).
  const Value &root = storageRoot(op);
  return &root != &op ? root : v;
}

bool meg::passes::isArenaValue(const Value &v, const ir::Mesh &mesh) {
  OpKind k = v.getDef()->getKind();
  return !isExternal(k) && &storageRoot(v) == &v && localBytes(v, mesh) > 0;
}

Liveness meg::passes::computeLiveness(const ir::Graph &g, const ExecutionOrder &order) {
  const ir::Mesh &mesh = g.getMesh();
  const unsigned numNodes = order.nodes.size();

  // Last use of every value (numNodes when an output node uses it; the definition when nothing does). An output of
  // a value computed on another pipeline stage reads its recv here.
  llvm::DenseMap<const Value *, unsigned> lastUse;
  for (unsigned pos = 0; pos < numNodes; ++pos) {
    const Node *n = order.nodes[pos];
    for (unsigned r = 0; r < n->getNumResults(); ++r)
      lastUse[n->getResult(r)] = pos;
    for (const Value *v : n->getOperands()) {
      if (n->getKind() != OpKind::Output) {
        lastUse[v] = std::max(lastUse[v], pos);
        continue;
      }
      if (!order.computes(v))
        v = order.received.lookup(v);
      if (v)
        lastUse[v] = numNodes;
    }
  }
  // The body repeats once per micro-batch: what it reads of the Prologue lives to its end.
  for (unsigned pos = order.loopBegin; pos < order.loopEnd; ++pos)
    for (const Value *v : order.nodes[pos]->getOperands())
      if (auto it = order.position.find(v->getDef()); it != order.position.end() && it->second < order.loopBegin)
        lastUse[v] = std::max(lastUse[v], order.loopEnd - 1);

  Liveness L;
  for (unsigned pos = 0; pos < numNodes; ++pos) {
    const Node *n = order.nodes[pos];
    // A value several pipeline stages compute has one offset on all of them: its buffer is pinned (memory-plan
    // keeps it for the whole step) and takes no other value in place.
    bool several = onSeveralStages(*n);
    for (unsigned r = 0; r < n->getNumResults(); ++r) {
      const Value *v = n->getResult(r);
      if (!isArenaValue(*v, mesh))
        continue;
      int64_t bytes = localBytes(*v, mesh);
      std::optional<unsigned> join;
      if (ir::aliasesOperand(n->getKind())) {
        auto it = L.bufferOf.find(n->getOperand(0));
        if (it != L.bufferOf.end())
          join = it->second;
      } else if (!several && ir::mayOverwriteOperand(n->getKind()) &&
                 (r == 0 || ir::hasResultPerOperand(n->getKind()))) {
        // Result i of an op with one result per operand (all_reduce_bucket) may take operand i's buffer only.
        llvm::ArrayRef<Value *> candidates = n->getOperands();
        if (ir::hasResultPerOperand(n->getKind()))
          candidates = candidates.slice(r, 1);
        for (const Value *o : candidates) {
          auto it = L.bufferOf.find(o);
          if (it == L.bufferOf.end())
            continue;
          const ArenaBuffer &b = L.buffers[it->second];
          // The whole buffer must die here: no later use of any value sharing it.
          // Nor is a Prologue value overwritten by the body (the next micro-batch reads it again).
          bool prologue = b.start < order.loopBegin && pos >= order.loopBegin;
          if (!b.pinned && !prologue && b.end == pos && b.size == bytes && localBytes(*o, mesh) == bytes) {
            join = it->second;
            break;
          }
        }
        // In the update, an operand held in an accumulator (accumulate's result, or a value already written there)
        // that dies here takes the result in place: the dp all-reduce of an accumulated gradient reduces it in
        // its accumulator, as Megatron-LM reduces its main_grad buffer, instead of into an arena copy.
        if (!join && pos >= order.loopEnd)
          for (const Value *o : candidates) {
            bool held = &storageRoot(*o) != o || L.outside.count(o);
            if (held && lastUse[o] == pos && localBytes(*o, mesh) == bytes &&
                o->getType().dtype == v->getType().dtype) {
              L.outside[v] = unsigned(llvm::find(n->getOperands(), o) - n->getOperands().begin());
              break;
            }
          }
        if (L.outside.count(v))
          continue;
      }
      if (!join) {
        join = L.buffers.size();
        ArenaBuffer b;
        b.size = bytes;
        b.start = b.end = pos;
        L.buffers.push_back(std::move(b));
      }
      ArenaBuffer &b = L.buffers[*join];
      b.size = std::max(b.size, bytes);
      b.end = std::max(b.end, lastUse[v]);
      b.pinned |= several;
      b.members.push_back(v);
      L.bufferOf[v] = *join;
    }
  }

  // Sweep the buffer intervals for the peak of live bytes.
  std::vector<int64_t> delta(numNodes + 2, 0);
  for (const ArenaBuffer &b : L.buffers) {
    delta[b.start] += b.size;
    delta[b.end + 1] -= b.size;
    L.totalBytes += b.size;
  }
  int64_t live = 0;
  for (int64_t d : delta) {
    live += d;
    L.lowerBound = std::max(L.lowerBound, live);
  }
  return L;
}

namespace {

/// placeBuffers (MemoryPlan.h). Scanning every placed buffer per query made it quadratic (1000 layers: 5.7 s); this
/// sweep gives the same offsets (test/unit/passes checks it against that scan) in about O(n log n) on transformer
/// graphs (0.3 s).
///
/// The order is cut into runs in which buffers start in nondecreasing order (definition order is one run; largest-
/// first is one run per size). Within a run, at the start s of the buffer [s, e] being placed:
///  - every buffer placed in this run, and every earlier buffer live at s, is in `live`: they are all live at s, so
///    they are disjoint in the arena, and the gaps between them are kept in `holes`, ordered by size and address;
///  - the other buffers that matter are the earlier ones that start in (s, e]: a segment tree over the earlier
///    buffers in order of start holds, per node, the union of their address ranges (merged, and ranges separated by
///    less than a usable gap joined). The query takes O(log n) nodes.
/// A gap that fits lies in a hole of `live` that fits or above `live`; only those are scanned, against the union
/// of the query's nodes there. Without earlier buffers starting in (s, e] (all of definition order) the answer is
/// the first hole that fits.
class Placer {
public:
  Placer(const std::vector<ArenaBuffer> &buffers, int64_t align) : buffers(buffers), align(align) {}

  /// Offsets of the buffers placed in `order`, and the arena size.
  std::pair<std::vector<int64_t>, int64_t> run(llvm::ArrayRef<unsigned> order) {
    offset.assign(buffers.size(), -1);
    placedIds.clear();
    int64_t arena = 0;
    for (size_t i = 0; i < order.size();) {
      size_t j = i + 1;
      while (j < order.size() && buffers[order[j]].start >= buffers[order[j - 1]].start)
        ++j;
      beginRun();
      for (size_t k = i; k < j; ++k) {
        unsigned id = order[k];
        const ArenaBuffer &b = buffers[id];
        advanceTo(b.start);
        int64_t off = bestFit(b);
        offset[id] = off;
        arena = std::max(arena, off + b.size);
        addLive({off, off + b.size, b.start, b.end});
        placedIds.push_back(id);
      }
      i = j;
    }
    return {std::move(offset), arena};
  }

private:
  struct Rect {
    int64_t begin, end;   ///< bytes
    unsigned start, last; ///< node positions
  };
  using Range = std::pair<int64_t, int64_t>; ///< [begin, end) in bytes

  int64_t alignUp(int64_t x) const { return int64_t(llvm::alignTo(uint64_t(x), uint64_t(align))); }
  int64_t gapOf(int64_t lo, int64_t hi) const { return hi - alignUp(lo); }

  /// The buffers placed so far become the run's fixed set.
  void beginRun() {
    fixed.clear();
    for (unsigned id : placedIds)
      fixed.push_back({offset[id], offset[id] + buffers[id].size, buffers[id].start, buffers[id].end});
    llvm::stable_sort(fixed, [](const Rect &a, const Rect &b) { return a.start < b.start; });
    nextFixed = 0;
    size_t n = fixed.size();
    tree.assign(2 * n, {});
    for (size_t i = 0; i < n; ++i)
      tree[n + i] = {{fixed[i].begin, fixed[i].end}};
    std::vector<Range> merged;
    for (size_t i = n; i-- > 1;) {
      merged.clear();
      std::merge(tree[2 * i].begin(), tree[2 * i].end(), tree[2 * i + 1].begin(), tree[2 * i + 1].end(),
                 std::back_inserter(merged));
      for (const Range &r : merged) {
        // Joining ranges no gap of positive size separates changes no answer (begins are aligned).
        if (!tree[i].empty() && r.first <= alignUp(tree[i].back().second))
          tree[i].back().second = std::max(tree[i].back().second, r.second);
        else
          tree[i].push_back(r);
      }
    }
    live.clear();
    holes.clear();
    byLast = {};
  }

  /// Moves the sweep to node position `s`: buffers that died before it leave `live`, fixed ones live at it join.
  void advanceTo(unsigned s) {
    while (!byLast.empty() && std::get<0>(byLast.top()) < s) {
      auto [last, begin, end] = byLast.top();
      byLast.pop();
      removeLive(begin, end);
    }
    for (; nextFixed < fixed.size() && fixed[nextFixed].start <= s; ++nextFixed)
      if (fixed[nextFixed].last >= s)
        addLive(fixed[nextFixed]);
  }

  void addLive(const Rect &r) {
    auto it = live.insert({r.begin, r.end}).first;
    assert(std::next(it) == live.end() || std::next(it)->first >= r.end);
    int64_t lo = it == live.begin() ? 0 : std::prev(it)->second;
    auto next = std::next(it);
    if (next != live.end()) {
      holes.erase({gapOf(lo, next->first), lo, next->first});
      holes.insert({gapOf(r.end, next->first), r.end, next->first});
    }
    holes.insert({gapOf(lo, r.begin), lo, r.begin});
    byLast.push({r.last, r.begin, r.end});
  }

  void removeLive(int64_t begin, int64_t end) {
    auto it = live.find({begin, end});
    assert(it != live.end() && "a buffer leaves the sweep once");
    int64_t lo = it == live.begin() ? 0 : std::prev(it)->second;
    auto next = std::next(it);
    holes.erase({gapOf(lo, begin), lo, begin});
    if (next != live.end()) {
      holes.erase({gapOf(end, next->first), end, next->first});
      holes.insert({gapOf(lo, next->first), lo, next->first});
    }
    live.erase(it);
  }

  int64_t bestFit(const ArenaBuffer &b) {
    auto byStart = [](unsigned s, const Rect &r) { return s < r.start; };
    size_t qa = std::upper_bound(fixed.begin(), fixed.end(), b.start, byStart) - fixed.begin();
    size_t qb = std::upper_bound(fixed.begin() + qa, fixed.end(), b.end, byStart) - fixed.begin();
    queryNodes.clear();
    for (size_t l = qa + fixed.size(), r = qb + fixed.size(); l < r; l /= 2, r /= 2) {
      if (l & 1)
        queryNodes.push_back(l++);
      if (r & 1)
        queryNodes.push_back(--r);
    }
    int64_t liveTop = live.empty() ? 0 : live.rbegin()->second;
    auto firstHole = holes.lower_bound({b.size, std::numeric_limits<int64_t>::min(), 0});
    if (queryNodes.empty())
      return firstHole != holes.end() ? alignUp(std::get<1>(*firstHole)) : alignUp(liveTop);

    int64_t best = -1, bestGap = 0;
    auto consider = [&](int64_t top, int64_t begin) {
      int64_t candidate = alignUp(top);
      int64_t gap = begin - candidate;
      if (gap >= b.size && (best < 0 || gap < bestGap || (gap == bestGap && candidate < best))) {
        best = candidate;
        bestGap = gap;
      }
    };
    // Scans [lo, hi) (hi: the live buffer above, none above `live`) against the query's ranges; returns the top.
    auto scan = [&](int64_t lo, std::optional<int64_t> hi) {
      int64_t top = lo;
      inRange.clear();
      for (unsigned node : queryNodes) {
        const std::vector<Range> &ranges = tree[node];
        size_t k = llvm::partition_point(ranges, [&](const Range &r) { return r.first < lo; }) - ranges.begin();
        if (k)
          top = std::max(top, ranges[k - 1].second);
        for (; k < ranges.size() && (!hi || ranges[k].first < *hi); ++k)
          inRange.push_back(ranges[k]);
      }
      llvm::sort(inRange);
      for (const Range &r : inRange) {
        consider(top, r.first);
        top = std::max(top, r.second);
      }
      if (hi)
        consider(top, *hi);
      return top;
    };
    for (auto h = firstHole; h != holes.end(); ++h)
      scan(std::get<1>(*h), std::get<2>(*h));
    int64_t top = scan(liveTop, std::nullopt);
    return best >= 0 ? best : alignUp(top);
  }

  const std::vector<ArenaBuffer> &buffers;
  int64_t align;
  std::vector<int64_t> offset;
  std::vector<unsigned> placedIds;     ///< in order of placement
  std::vector<Rect> fixed;             ///< placed before this run, by start
  size_t nextFixed = 0;                ///< the first of `fixed` not yet swept
  std::vector<std::vector<Range>> tree; ///< segment tree over `fixed`: the merged ranges of each node
  std::set<Range> live;                ///< disjoint
  std::set<std::tuple<int64_t, int64_t, int64_t>> holes; ///< (gap, lo, hi) between consecutive `live` ranges
  std::priority_queue<std::tuple<unsigned, int64_t, int64_t>, std::vector<std::tuple<unsigned, int64_t, int64_t>>,
                      std::greater<>>
      byLast; ///< `live` by the position of its last use
  std::vector<unsigned> queryNodes;
  std::vector<Range> inRange;
};

class MemoryPlanPass : public Pass {
public:
  MemoryPlanPass(int64_t align, bool report) : align(align), report(report) {}
  llvm::StringRef getName() const override { return "memory-plan"; }

  llvm::Error run(ir::Graph &g) override {
    llvm::DenseMap<const Value *, int64_t> offsets;
    int64_t stages = pipelineStagesOf(g);
    if (stages == 1)
      planRank(g, executionOrder(g, 0, PhaseRule(g)), llvm::DenseMap<const Value *, int64_t>(), offsets);
    else
      planStages(g, stages, offsets);

    const ir::Mesh &mesh = g.getMesh();
    for (const auto &n : g) {
      n->getAttrs().erase("arena");
      OpKind k = n->getKind();
      if (isExternal(k) || n->getNumResults() == 0)
        continue;
      std::vector<int64_t> attr;
      for (unsigned r = 0; r < n->getNumResults(); ++r) {
        const Value *v = n->getResult(r);
        attr.push_back(isArenaValue(*v, mesh) ? offsets.lookup(v) : 0);
      }
      n->getAttrs().set("arena", std::move(attr));
    }

    if (report) {
      for (int64_t stage = 0; stage < stages; ++stage) {
        auto stats = computeMemoryPlanStats(g, stage);
        if (!stats)
          return stats.takeError();
        llvm::errs() << llvm::formatv("memory-plan: {0}arena {1} bytes, buffers {2} bytes, live lower bound {3} bytes "
                                      "(ratio {4:F3}){5}\n",
                                      stages > 1 ? llvm::formatv("stage {0}: ", stage).str() : std::string(),
                                      stats->arenaBytes, stats->bufferBytes, stats->lowerBound, stats->ratio(),
                                      stages > 1 ? llvm::formatv(", stash {0} bytes", stats->stashBytes).str()
                                                 : std::string());
      }
    }
    return llvm::Error::success();
  }

private:
  /// Places the buffers of one rank's `order` (a stage's, or every rank's without stages) and records the offset of
  /// each of their values in `offsets`. `pinned`: the offsets of the values several stages compute, kept for the
  /// whole step at the bottom of the arena. On a pipeline stage the buffers live at the hand-over are placed next,
  /// one above the other, so that the bottom of the arena up to them is what the stage saves per micro-batch.
  void planRank(const ir::Graph &g, const ExecutionOrder &order, const llvm::DenseMap<const Value *, int64_t> &pinned,
                llvm::DenseMap<const Value *, int64_t> &offsets) {
    Liveness L = computeLiveness(g, order);
    for (const auto &[v, k] : L.outside)
      offsets[v] = -1 - int64_t(k);
    int64_t pinnedTop = 0;
    for (const auto &[v, off] : pinned)
      pinnedTop = std::max(pinnedTop, off + localBytes(*v, g.getMesh()));
    // The buffers to place: the pinned block (if any), then every buffer that is not pinned.
    std::vector<ArenaBuffer> bufs;
    std::vector<unsigned> source; // index into L.buffers, or ~0u for the pinned block
    if (pinnedTop) {
      ArenaBuffer block;
      block.size = pinnedTop;
      block.start = 0;
      block.end = unsigned(order.nodes.size());
      bufs.push_back(block);
      source.push_back(~0u);
    }
    for (unsigned i = 0; i < L.buffers.size(); ++i)
      if (!L.buffers[i].pinned) {
        bufs.push_back(L.buffers[i]);
        source.push_back(i);
      }
    std::vector<unsigned> first, rest;
    for (unsigned i = 0; i < bufs.size(); ++i) {
      bool handedOver = order.pipelined && bufs[i].start >= order.loopBegin && bufs[i].start < order.handOver &&
                        bufs[i].end >= order.handOver;
      (source[i] == ~0u || handedOver ? first : rest).push_back(i);
    }
    std::vector<unsigned> bySize = rest, byDef = rest;
    llvm::stable_sort(bySize, [&](unsigned a, unsigned b) {
      if (bufs[a].size != bufs[b].size)
        return bufs[a].size > bufs[b].size;
      return bufs[a].start < bufs[b].start;
    });
    bySize.insert(bySize.begin(), first.begin(), first.end());
    byDef.insert(byDef.begin(), first.begin(), first.end());
    auto [sizeOffsets, sizeArena] = placeBuffers(bufs, bySize, align);
    auto [defOffsets, defArena] = placeBuffers(bufs, byDef, align);
    const std::vector<int64_t> &placed = defArena < sizeArena ? defOffsets : sizeOffsets;
    for (unsigned i = 0; i < bufs.size(); ++i)
      if (source[i] != ~0u)
        for (const Value *v : L.buffers[source[i]].members)
          offsets[v] = placed[i];
    // A pinned buffer's members share the offset of the value several stages compute.
    for (const ArenaBuffer &b : L.buffers) {
      if (!b.pinned)
        continue;
      int64_t off = 0;
      for (const Value *v : b.members)
        if (auto it = pinned.find(v); it != pinned.end())
          off = it->second;
      for (const Value *v : b.members)
        offsets[v] = off;
    }
  }

  /// Pipeline stages: the values several stages compute get offsets at the bottom of every stage's arena (in
  /// program order, an alias sharing its operand's), then each stage is planned on its own execution order.
  void planStages(const ir::Graph &g, int64_t stages, llvm::DenseMap<const Value *, int64_t> &offsets) {
    const ir::Mesh &mesh = g.getMesh();
    llvm::DenseMap<const Value *, int64_t> pinned;
    int64_t top = 0;
    for (const auto &n : g) {
      if (!onSeveralStages(*n))
        continue;
      for (unsigned r = 0; r < n->getNumResults(); ++r) {
        const Value *v = n->getResult(r);
        if (!isArenaValue(*v, mesh))
          continue;
        if (ir::aliasesOperand(n->getKind()))
          if (auto it = pinned.find(n->getOperand(0)); it != pinned.end()) {
            pinned[v] = it->second;
            continue;
          }
        int64_t off = int64_t(llvm::alignTo(uint64_t(top), uint64_t(align)));
        pinned[v] = off;
        top = off + localBytes(*v, mesh);
      }
    }
    PhaseRule phases(g);
    for (int64_t stage = 0; stage < stages; ++stage)
      planRank(g, executionOrder(g, stage, phases), pinned, offsets);
  }

  int64_t align;
  bool report;
};

} // namespace

std::pair<std::vector<int64_t>, int64_t> meg::passes::placeBuffers(const std::vector<ArenaBuffer> &buffers,
                                                                   llvm::ArrayRef<unsigned> order, int64_t align) {
  return Placer(buffers, align).run(order);
}

static std::string nodeWhere(const Node &n, unsigned index) {
  return llvm::formatv("'{0}' (line {1})", n.getName(), irLineOfNode(index)).str();
}

llvm::Expected<MemoryPlanStats> meg::passes::computeMemoryPlanStats(const ir::Graph &g, int64_t stage) {
  const ir::Mesh &mesh = g.getMesh();
  ExecutionOrder run = executionOrder(g, stage, PhaseRule(g));
  Liveness L = computeLiveness(g, run);
  auto order = g.computeOrder();
  MemoryPlanStats stats;
  stats.bufferBytes = L.totalBytes;
  stats.lowerBound = L.lowerBound;
  stats.numBuffers = L.buffers.size();
  for (const Node *p : g.nodesOfKind(OpKind::Param))
    if (run.position.count(p))
      stats.paramBytes += localBytes(*p->getResult(0), mesh);

  std::vector<int64_t> offset(L.buffers.size(), -1);
  for (const Node *n : run.nodes) {
    for (unsigned r = 0; r < n->getNumResults(); ++r) {
      const Value *v = n->getResult(r);
      auto it = L.bufferOf.find(v);
      auto held = L.outside.find(v);
      const std::vector<int64_t> *attr = n->getAttrs().getInts("arena");
      unsigned index = order[n];
      if (it == L.bufferOf.end() && held == L.outside.end()) {
        if (attr && r < attr->size() && (*attr)[r] < 0)
          return fail(nodeWhere(*n, index) + " has a negative arena offset");
        continue;
      }
      if (!attr)
        return fail(nodeWhere(*n, index) + " has no 'arena' attribute (run memory-plan first)");
      if (attr->size() != n->getNumResults())
        return fail(nodeWhere(*n, index) + " has " + llvm::Twine(attr->size()) + " arena offsets for " +
                    llvm::Twine(n->getNumResults()) + " results");
      if (held != L.outside.end()) {
        if ((*attr)[r] != -1 - int64_t(held->second))
          return fail(nodeWhere(*n, index) + " must be written in place into operand " +
                      llvm::Twine(held->second) + "'s accumulator (arena offset " +
                      llvm::Twine(-1 - int64_t(held->second)) + "), has " + llvm::Twine((*attr)[r]));
        continue;
      }
      int64_t off = (*attr)[r];
      if (off < 0)
        return fail(nodeWhere(*n, index) + " has a negative arena offset");
      int64_t &bufOff = offset[it->second];
      if (bufOff >= 0 && bufOff != off)
        return fail(nodeWhere(*n, index) + " has arena offset " + llvm::Twine(off) +
                    " but shares storage with a value at offset " + llvm::Twine(bufOff));
      bufOff = off;
    }
  }

  // No two buffers live at the same time may overlap in the arena. Buffers are numbered in order of their start:
  // sweep them, keeping the live ones ordered by offset (they are disjoint, so a new buffer overlaps one of them
  // exactly when it overlaps its neighbours there).
  std::set<std::pair<int64_t, unsigned>> liveByOffset;
  std::priority_queue<std::pair<unsigned, unsigned>, std::vector<std::pair<unsigned, unsigned>>, std::greater<>>
      liveByEnd;
  auto overlaps = [&](unsigned a, unsigned b) {
    return offset[a] < offset[b] + L.buffers[b].size && offset[b] < offset[a] + L.buffers[a].size;
  };
  for (unsigned id = 0; id < L.buffers.size(); ++id) {
    const ArenaBuffer &b = L.buffers[id];
    assert((id == 0 || L.buffers[id - 1].start <= b.start) && "buffers are numbered in order of their start");
    while (!liveByEnd.empty() && liveByEnd.top().first < b.start) {
      unsigned o = liveByEnd.top().second;
      liveByOffset.erase({offset[o], o});
      liveByEnd.pop();
    }
    auto next = liveByOffset.lower_bound({offset[id], 0u});
    bool clash = (next != liveByOffset.end() && overlaps(id, next->second)) ||
                 (next != liveByOffset.begin() && overlaps(id, std::prev(next)->second));
    if (clash) {
      // Name the first live buffer it overlaps in order of definition.
      for (unsigned o = 0; o < id; ++o) {
        const ArenaBuffer &c = L.buffers[o];
        if (c.end < b.start || !overlaps(id, o))
          continue;
        const Node *n = b.members.front()->getDef();
        return fail(nodeWhere(*n, order[n]) + " has an arena range [" + llvm::Twine(offset[id]) + ", " +
                    llvm::Twine(offset[id] + b.size) + ") that overlaps a live value's [" + llvm::Twine(offset[o]) +
                    ", " + llvm::Twine(offset[o] + c.size) + ")");
      }
    }
    liveByOffset.insert({offset[id], id});
    liveByEnd.push({b.end, id});
    stats.arenaBytes = std::max(stats.arenaBytes, offset[id] + b.size);
    if (run.pipelined && b.start >= run.loopBegin && b.start < run.handOver && b.end >= run.handOver)
      stats.stashBytes = std::max(stats.stashBytes, offset[id] + b.size);
  }
  return stats;
}

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createMemoryPlanPass(const MemoryPlanOptions &options) {
  if (options.align <= 0 || !llvm::isPowerOf2_64(uint64_t(options.align)))
    return fail("memory-plan: alignment must be a power of two, got " + llvm::Twine(options.align));
  return std::make_unique<MemoryPlanPass>(options.align, options.report);
}
