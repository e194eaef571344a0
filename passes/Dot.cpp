//===- Dot.cpp - the graph as Graphviz ---------------------------------------===//
//
// Builds a boost::adjacency_list with one vertex per node (vertex i = node i in program order) and one edge per
// operand, and hands it to boost::write_graphviz with writers for the graph, vertex and edge attributes.
//
//===----------------------------------------------------------------------===//
#include "passes/Dot.h"

#include "ir/Printer.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/raw_ostream.h"

// GCC 12 at -O3 sees a boost::optional inside Boost.Graph's edge iterator as maybe-uninitialized (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/graphviz.hpp>
#pragma GCC diagnostic pop

#include <sstream>
#include <string>

using namespace meg;
using namespace meg::ir;

namespace {

struct EdgeInfo {
  std::string label; // the value, when its producer has several results
};
using DotGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, boost::no_property, EdgeInfo>;

/// `text` as the inside of a DOT double-quoted string.
std::string escape(llvm::StringRef text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

/// The lines of a node's label, each ended by DOT's left-justifying line break: results and op, attributes (the
/// `name` alone where there is one), result types.
std::string nodeLabel(const Node &n, const ValueNumbering &numbering) {
  std::string label;
  auto line = [&](llvm::StringRef text) { label += escape(text) + "\\l"; };
  std::string text;
  llvm::raw_string_ostream os(text);
  for (unsigned r = 0; r < n.getNumResults(); ++r)
    os << (r ? ", %" : "%") << numbering.lookup(n.getResult(r));
  os << (n.getNumResults() ? " = " : "") << n.getName();
  line(os.str());
  text.clear();
  AttrDict attrs = n.getAttrs();
  attrs.erase("arena"); // memory-plan offsets: numbers for the plan, noise in a picture
  if (auto name = attrs.getString("name"))
    os << *name; // param, input, state, output (init, axes and HF shapes stay in the text form)
  else
    attrs.print(os);
  if (!os.str().empty())
    line(os.str());
  for (unsigned r = 0; r < n.getNumResults(); ++r)
    line(n.getResult(r)->getType().str());
  return label;
}

/// Graphviz attributes of a node: its shape and fill by the op's traits.
std::string nodeStyle(const Node &n) {
  if (isCollective(n.getKind())) {
    std::optional<llvm::StringRef> axis = n.getAttrs().getSymbol("axis");
    return std::string("style=filled, fillcolor=\"") + (axis && *axis == "dp" ? "#b2abd2" : "#fdb863") + "\"";
  }
  if (isExternal(n.getKind()))
    return "shape=ellipse, style=filled, fillcolor=\"#eeeeee\"";
  if (n.getKind() == OpKind::Output)
    return "shape=invhouse";
  return "";
}

} // namespace

void meg::passes::writeDot(const Graph &g, llvm::raw_ostream &out) {
  ValueNumbering numbering(g);
  std::vector<const Node *> nodes;
  llvm::DenseMap<const Node *, unsigned> index;
  for (const auto &n : g) {
    index[n.get()] = nodes.size();
    nodes.push_back(n.get());
  }
  DotGraph dot(nodes.size());
  for (unsigned i = 0; i < nodes.size(); ++i)
    for (const Value *v : nodes[i]->getOperands()) {
      const Node *def = v->getDef();
      EdgeInfo e;
      if (def->getNumResults() > 1)
        e.label = "%" + std::to_string(numbering.lookup(v));
      boost::add_edge(index.lookup(def), i, e, dot);
    }

  auto graphWriter = [&](std::ostream &os) {
    const Mesh &mesh = g.getMesh();
    os << "label=\"" << escape(("@" + g.getName()).str()) << " mesh(dp=" << mesh.dp() << ", tp=" << mesh.tp()
       << ")\";\nlabelloc=t;\nnode [shape=box, fontname=\"monospace\", fontsize=10];\n"
       << "edge [fontname=\"monospace\", fontsize=9];\n";
  };
  auto vertexWriter = [&](std::ostream &os, DotGraph::vertex_descriptor v) {
    std::string style = nodeStyle(*nodes[v]);
    os << "[label=\"" << nodeLabel(*nodes[v], numbering) << "\"" << (style.empty() ? "" : ", ") << style << "]";
  };
  auto edgeWriter = [&](std::ostream &os, DotGraph::edge_descriptor e) {
    const std::string &label = dot[e].label;
    if (!label.empty())
      os << "[label=\"" << label << "\"]";
  };
  std::ostringstream os;
  boost::write_graphviz(os, dot, vertexWriter, edgeWriter, graphWriter);
  out << os.str();
}
