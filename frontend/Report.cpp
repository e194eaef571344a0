//===- Report.cpp - `megc --emit report` ------------------------------------===//
#include "frontend/Report.h"

#include "ir/OpRules.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <map>

using namespace meg;
using namespace meg::frontend;

namespace {

std::string shapeStr(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

/// One parameter, with its layer when its name has a numeric component ("transformer.h.3.ln_1.weight": stem
/// "transformer.h.", layer 3, suffix "ln_1.weight").
struct ParamRow {
  std::string name;
  std::string shape;
  std::string hfShape; // empty when the IR shape is the HF shape
  int64_t elements = 0;
  std::string stem;
  int64_t layer = -1;
  std::string suffix;
};

ParamRow describeParam(const ir::Node &n) {
  ParamRow r;
  r.name = n.getAttrs().getString("name").value_or("<unnamed>").str();
  const ir::TensorType &t = n.getResult()->getType();
  r.shape = shapeStr(t.shape);
  if (auto *hf = n.getAttrs().getInts("hf_shape"))
    r.hfShape = shapeStr(*hf);
  r.elements = t.numElements();
  llvm::SmallVector<llvm::StringRef, 8> parts;
  llvm::StringRef(r.name).split(parts, '.');
  size_t offset = 0;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    uint64_t idx;
    if (!parts[i].empty() && llvm::all_of(parts[i], llvm::isDigit) && !parts[i].getAsInteger(10, idx)) {
      r.stem = r.name.substr(0, offset);
      r.layer = int64_t(idx);
      r.suffix = r.name.substr(offset + parts[i].size() + 1);
      break;
    }
    offset += parts[i].size() + 1;
  }
  return r;
}

/// A line of the table: a parameter outside any layer, or all parameters of one layer.
struct Item {
  std::vector<ParamRow> rows;
  bool isLayer() const { return rows.front().layer >= 0; }
  int64_t elements() const {
    int64_t n = 0;
    for (auto &r : rows)
      n += r.elements;
    return n;
  }
  /// Two layers match when their suffixes and shapes do, in order.
  bool sameShapes(const Item &o) const {
    if (rows.size() != o.rows.size())
      return false;
    for (size_t i = 0; i < rows.size(); ++i)
      if (rows[i].suffix != o.rows[i].suffix || rows[i].shape != o.rows[i].shape)
        return false;
    return true;
  }
};

std::vector<Item> groupParams(const ir::Graph &g) {
  std::vector<Item> items;
  std::map<std::pair<std::string, int64_t>, size_t> layerItem;
  for (ir::Node *n : g.nodesOfKind(ir::OpKind::Param)) {
    ParamRow r = describeParam(*n);
    if (r.layer < 0) {
      items.push_back(Item{{r}});
      continue;
    }
    auto [it, inserted] = layerItem.try_emplace({r.stem, r.layer}, items.size());
    if (inserted)
      items.push_back(Item{});
    items[it->second].rows.push_back(std::move(r));
  }
  return items;
}

void printParamTable(const ir::Graph &g, llvm::raw_ostream &os) {
  std::vector<Item> items = groupParams(g);
  size_t nameWidth = 4, shapeWidth = 5, elemWidth = 8;
  for (const Item &item : items)
    for (const ParamRow &r : item.rows) {
      nameWidth = std::max(nameWidth, item.isLayer() ? r.suffix.size() + 2 : r.name.size());
      shapeWidth = std::max(shapeWidth, r.shape.size());
      elemWidth = std::max(elemWidth, std::to_string(r.elements).size());
    }
  auto row = [&](llvm::StringRef indent, llvm::StringRef name, llvm::StringRef shape, llvm::StringRef elems,
                 llvm::StringRef hf) {
    os << "  " << indent << llvm::left_justify(name, nameWidth - indent.size()) << "  "
       << llvm::left_justify(shape, shapeWidth) << "  " << llvm::right_justify(elems, elemWidth);
    if (!hf.empty())
      os << "  " << hf;
    os << '\n';
  };
  auto paramRow = [&](const ParamRow &r, bool inLayer) {
    row(inLayer ? "  " : "", inLayer ? r.suffix : r.name, r.shape, std::to_string(r.elements), r.hfShape);
  };

  os << "parameter table:\n";
  row("", "name", "shape", "elements", "hf shape");
  for (size_t i = 0; i < items.size();) {
    const Item &item = items[i];
    if (!item.isLayer()) {
      paramRow(item.rows.front(), false);
      ++i;
      continue;
    }
    const ParamRow &head = item.rows.front();
    os << "  layer " << head.layer << " (" << head.stem << head.layer << ".*): " << item.elements()
       << " parameters\n";
    for (const ParamRow &r : item.rows)
      paramRow(r, true);
    // Collapse the following layers of the same stem that repeat this one's names and shapes.
    size_t j = i + 1;
    while (j < items.size() && items[j].isLayer() && items[j].rows.front().stem == head.stem &&
           items[j].sameShapes(item))
      ++j;
    if (j > i + 1) {
      int64_t lo = items[i + 1].rows.front().layer, hi = items[j - 1].rows.front().layer;
      if (lo == hi)
        os << "  layer " << lo;
      else
        os << "  layers " << lo << ".." << hi;
      os << ": same shapes as layer " << head.layer << " (" << item.elements() << " parameters each)\n";
    }
    i = j;
  }
}

void printValues(const ir::Graph &g, ir::OpKind kind, llvm::StringRef title, llvm::raw_ostream &os) {
  os << title << ':';
  bool first = true;
  for (ir::Node *n : g.nodesOfKind(kind)) {
    const ir::Value *v = kind == ir::OpKind::Output ? n->getOperand(0) : n->getResult();
    os << (first ? " " : ", ") << n->getAttrs().getString("name").value_or("<unnamed>") << ' '
       << v->getType().replicated();
    first = false;
  }
  os << '\n';
}

void printModel(const ir::Graph &g, const ReportContext &ctx, llvm::raw_ostream &os) {
  const ModelConfig *c = ctx.config;
  if (!c) {
    os << "graph: @" << g.getName() << '\n';
    return;
  }
  os << "model: " << c->name << " (" << c->modelType << ", " << c->hfClass << ")\n";
  os << "layers: " << c->numLayers << ", hidden: " << c->hidden << ", heads: " << c->numHeads
     << ", head dim: " << c->headDim() << ", ffn: " << c->ffnHidden << ", vocab: " << c->vocabSize
     << ", positions: " << c->maxPositions;
  if (c->family == ModelFamily::Bert)
    os << ", token types: " << c->typeVocabSize << ", layernorm: " << layerNormPlacementName(c->layerNorm);
  os << '\n';
  os << "micro batch: " << c->microBatch << ", seq: " << c->seq;
  if (ctx.mode)
    os << ", mode: " << buildModeName(*ctx.mode);
  os << '\n';
  int64_t padded = c->paddedVocab(ctx.tp);
  os << "vocab " << c->vocabSize;
  if (padded == c->vocabSize)
    os << " needs no padding";
  else
    os << " padded to " << padded;
  os << " (multiple of " << c->vocabDivisibleBy << " x tp " << ctx.tp << ")\n";
}

} // namespace

ParamTotals meg::frontend::countParameters(const ir::Graph &g) {
  ParamTotals t;
  for (ir::Node *n : g.nodesOfKind(ir::OpKind::Param)) {
    const ir::TensorType &type = n->getResult()->getType();
    int64_t stored = type.numElements(), rows = type.rank() ? type.shape[0] : 1;
    int64_t exported = rows ? stored / rows * n->getAttrs().getInt("vocab_rows").value_or(rows) : 0;
    t.elements += exported;
    t.bytes += exported * ir::dtypeBytes(type.dtype);
    t.storedElements += stored;
  }
  return t;
}

double meg::frontend::countGraphFlops(const ir::Graph &g) {
  double flops = 0;
  for (auto &n : g)
    flops += ir::countFlops(*n);
  return flops;
}

void meg::frontend::printReport(const ir::Graph &g, const ReportContext &ctx, llvm::raw_ostream &os) {
  printModel(g, ctx, os);
  printValues(g, ir::OpKind::Input, "inputs", os);
  printValues(g, ir::OpKind::Output, "outputs", os);
  ParamTotals totals = countParameters(g);
  os << "parameters: " << totals.elements << '\n';
  if (totals.storedElements != totals.elements)
    os << "parameters with vocab padding: " << totals.storedElements << '\n';
  os << "parameter bytes: " << totals.bytes << '\n';
  os << "forward FLOPs: " << llvm::format("%.0f", std::round(countGraphFlops(g))) << '\n';
  os << '\n';
  printParamTable(g, os);
}
