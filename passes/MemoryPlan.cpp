//===- MemoryPlan.cpp - arena offsets from lifetimes ------------------------===//
//
// memory-plan{align=256,report=false}
//
// 1. Liveness (computeLiveness): walk the nodes in order and group values into buffers. A reshape joins its
//    operand's buffer; an elementwise op joins the buffer of an operand that dies at this node and has the same
//    size (first such operand), result i of all_reduce_bucket the buffer of operand i under the same condition
//    (the bucket reads every operand before it writes a result); any other arena value opens a buffer. A buffer
//    lives from its first definition to the last use of any member (to the end when a member is a graph output).
// 2. Allocation: greedy best-fit. Buffers are placed one by one at the smallest gap (between buffers already placed
//    and live at an overlapping time) that fits, or above them all. Two orders are tried, largest-first and
//    definition order; the smaller arena wins (ties: largest-first). On GPT-2 124M (micro-batch 8, seq 1024) the
//    arena is within a few per cent of the liveness lower bound.
// 3. Each node gets `arena = [offset per result]` (0 for a zero-size result); param/input/output nodes get none.
//
//===----------------------------------------------------------------------===//
#include "passes/MemoryPlan.h"
#include "passes/Pass.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <numeric>
#include <tuple>

using namespace meg;
using namespace meg::passes;
using ir::Node;
using ir::OpKind;
using ir::Value;

int64_t meg::passes::localBytes(const Value &v, const ir::Mesh &mesh) {
  return v.getType().localNumElements(mesh) * int64_t(ir::dtypeBytes(v.getType().dtype));
}

bool meg::passes::isArenaValue(const Value &v, const ir::Mesh &mesh) {
  OpKind k = v.getDef()->getKind();
  return !isExternal(k) && localBytes(v, mesh) > 0;
}

Liveness meg::passes::computeLiveness(const ir::Graph &g) {
  const ir::Mesh &mesh = g.getMesh();
  const unsigned numNodes = g.size();
  auto order = g.computeOrder();

  // Last use of every value (numNodes when an output node uses it; the definition when nothing does).
  llvm::DenseMap<const Value *, unsigned> lastUse;
  for (const auto &n : g) {
    unsigned pos = order[n.get()];
    for (unsigned r = 0; r < n->getNumResults(); ++r)
      lastUse[n->getResult(r)] = pos;
    for (Value *v : n->getOperands())
      lastUse[v] = n->getKind() == OpKind::Output ? numNodes : std::max(lastUse[v], pos);
  }

  Liveness L;
  for (const auto &n : g) {
    unsigned pos = order[n.get()];
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
      } else if (ir::mayOverwriteOperand(n->getKind()) && (r == 0 || ir::hasResultPerOperand(n->getKind()))) {
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
          if (b.end == pos && b.size == bytes && localBytes(*o, mesh) == bytes) {
            join = it->second;
            break;
          }
        }
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

/// Greedy best-fit placement of the buffers in the order `order`; returns the offsets and the arena size.
std::pair<std::vector<int64_t>, int64_t> place(const std::vector<ArenaBuffer> &buffers,
                                               llvm::ArrayRef<unsigned> order, int64_t align) {
  std::vector<int64_t> offset(buffers.size(), -1);
  // [begin, end) of the placed buffers, sorted; a query walks them in that order, skipping those not live at an
  // overlapping time. (Collecting the overlapping ones and sorting them per buffer was 70% of the default
  // pipeline's time on the 8.3B model, where about a thousand buffers are live at once.)
  struct Placed {
    int64_t begin, end; ///< bytes
    unsigned start, last; ///< node positions
    bool operator<(const Placed &o) const { return std::tie(begin, end) < std::tie(o.begin, o.end); }
  };
  std::vector<Placed> placed;
  placed.reserve(buffers.size());
  int64_t arena = 0;
  for (unsigned id : order) {
    const ArenaBuffer &b = buffers[id];
    int64_t best = -1, bestGap = 0, top = 0;
    for (const Placed &p : placed) {
      if (p.start > b.end || b.start > p.last) // not live at an overlapping time
        continue;
      int64_t candidate = llvm::alignTo(top, align);
      int64_t gap = p.begin - candidate;
      if (gap >= b.size && (best < 0 || gap < bestGap)) {
        best = candidate;
        bestGap = gap;
      }
      top = std::max(top, p.end);
    }
    if (best < 0)
      best = llvm::alignTo(top, align);
    offset[id] = best;
    arena = std::max(arena, best + b.size);
    Placed entry{best, best + b.size, b.start, b.end};
    placed.insert(std::upper_bound(placed.begin(), placed.end(), entry), entry);
  }
  return {std::move(offset), arena};
}

class MemoryPlanPass : public Pass {
public:
  MemoryPlanPass(int64_t align, bool report) : align(align), report(report) {}
  llvm::StringRef getName() const override { return "memory-plan"; }

  llvm::Error run(ir::Graph &g) override {
    Liveness L = computeLiveness(g);
    const auto &bufs = L.buffers;

    std::vector<unsigned> bySize(bufs.size());
    std::iota(bySize.begin(), bySize.end(), 0u);
    std::vector<unsigned> byDef = bySize;
    llvm::stable_sort(bySize, [&](unsigned a, unsigned b) {
      if (bufs[a].size != bufs[b].size)
        return bufs[a].size > bufs[b].size;
      return bufs[a].start < bufs[b].start;
    });
    auto [sizeOffsets, sizeArena] = place(bufs, bySize, align);
    auto [defOffsets, defArena] = place(bufs, byDef, align);
    const std::vector<int64_t> &offsets = defArena < sizeArena ? defOffsets : sizeOffsets;

    const ir::Mesh &mesh = g.getMesh();
    for (const auto &n : g) {
      n->getAttrs().erase("arena");
      OpKind k = n->getKind();
      if (isExternal(k) || n->getNumResults() == 0)
        continue;
      std::vector<int64_t> attr;
      for (unsigned r = 0; r < n->getNumResults(); ++r) {
        const Value *v = n->getResult(r);
        attr.push_back(isArenaValue(*v, mesh) ? offsets[L.bufferOf.lookup(v)] : 0);
      }
      n->getAttrs().set("arena", std::move(attr));
    }

    if (report) {
      auto stats = computeMemoryPlanStats(g);
      if (!stats)
        return stats.takeError();
      llvm::errs() << llvm::formatv("memory-plan: arena {0} bytes, buffers {1} bytes, live lower bound {2} bytes "
                                    "(ratio {3:F3})\n",
                                    stats->arenaBytes, stats->bufferBytes, stats->lowerBound, stats->ratio());
    }
    return llvm::Error::success();
  }

private:
  int64_t align;
  bool report;
};

} // namespace

static std::string nodeWhere(const Node &n, unsigned index) {
  return llvm::formatv("'{0}' (line {1})", n.getName(), irLineOfNode(index)).str();
}

llvm::Expected<MemoryPlanStats> meg::passes::computeMemoryPlanStats(const ir::Graph &g) {
  const ir::Mesh &mesh = g.getMesh();
  Liveness L = computeLiveness(g);
  auto order = g.computeOrder();
  MemoryPlanStats stats;
  stats.bufferBytes = L.totalBytes;
  stats.lowerBound = L.lowerBound;
  stats.numBuffers = L.buffers.size();
  for (const Node *p : g.nodesOfKind(OpKind::Param))
    stats.paramBytes += localBytes(*p->getResult(0), mesh);

  std::vector<int64_t> offset(L.buffers.size(), -1);
  for (const auto &n : g) {
    for (unsigned r = 0; r < n->getNumResults(); ++r) {
      const Value *v = n->getResult(r);
      auto it = L.bufferOf.find(v);
      if (it == L.bufferOf.end())
        continue;
      const std::vector<int64_t> *attr = n->getAttrs().getInts("arena");
      unsigned index = order[n.get()];
      if (!attr)
        return fail(nodeWhere(*n, index) + " has no 'arena' attribute (run memory-plan first)");
      if (attr->size() != n->getNumResults())
        return fail(nodeWhere(*n, index) + " has " + llvm::Twine(attr->size()) + " arena offsets for " +
                    llvm::Twine(n->getNumResults()) + " results");
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

  // No two buffers live at the same time may overlap in the arena: sweep buffers by start, keeping the live ones.
  std::vector<unsigned> byStart(L.buffers.size());
  std::iota(byStart.begin(), byStart.end(), 0u);
  std::vector<unsigned> live;
  for (unsigned id : byStart) {
    const ArenaBuffer &b = L.buffers[id];
    llvm::erase_if(live, [&](unsigned o) { return L.buffers[o].end < b.start; });
    for (unsigned o : live) {
      const ArenaBuffer &c = L.buffers[o];
      if (offset[id] < offset[o] + c.size && offset[o] < offset[id] + b.size) {
        const Node *n = b.members.front()->getDef();
        return fail(nodeWhere(*n, order[n]) + " has an arena range [" + llvm::Twine(offset[id]) + ", " +
                    llvm::Twine(offset[id] + b.size) + ") that overlaps a live value's [" + llvm::Twine(offset[o]) +
                    ", " + llvm::Twine(offset[o] + c.size) + ")");
      }
    }
    live.push_back(id);
    stats.arenaBytes = std::max(stats.arenaBytes, offset[id] + b.size);
  }
  return stats;
}

llvm::Expected<std::unique_ptr<Pass>> meg::passes::createMemoryPlanPass(const MemoryPlanOptions &options) {
  if (options.align <= 0 || !llvm::isPowerOf2_64(uint64_t(options.align)))
    return fail("memory-plan: alignment must be a power of two, got " + llvm::Twine(options.align));
  return std::make_unique<MemoryPlanPass>(options.align, options.report);
}
