//===- Printer.cpp - textual IR output --------------------------------------===//
#include "ir/Printer.h"

#include "llvm/Support/raw_ostream.h"

using namespace meg::ir;

ValueNumbering::ValueNumbering(const Graph &g) {
  unsigned next = 0;
  for (auto &n : g)
    for (unsigned i = 0; i < n->getNumResults(); ++i)
      numbers[n->getResult(i)] = next++;
}

int64_t ValueNumbering::lookup(const Value *v) const {
  auto it = numbers.find(v);
  return it == numbers.end() ? -1 : int64_t(it->second);
}

static void printValueRef(const Value *v, const ValueNumbering &numbering, llvm::raw_ostream &os) {
  if (!v) {
    os << "%<null>";
    return;
  }
  int64_t id = numbering.lookup(v);
  if (id < 0)
    os << "%<unknown>";
  else
    os << '%' << id;
}

void meg::ir::printNode(const Node &n, const ValueNumbering &numbering, llvm::raw_ostream &os) {
  for (unsigned i = 0; i < n.getNumResults(); ++i) {
    os << (i ? ", " : "");
    printValueRef(n.getResult(i), numbering, os);
  }
  if (n.getNumResults())
    os << " = ";
  os << n.getName() << '(';
  for (unsigned i = 0; i < n.getNumOperands(); ++i) {
    os << (i ? ", " : "");
    printValueRef(n.getOperand(i), numbering, os);
  }
  os << ')';
  if (!n.getAttrs().empty()) {
    os << ' ';
    n.getAttrs().print(os);
  }
  for (unsigned i = 0; i < n.getNumResults(); ++i) {
    os << (i ? ", " : " : ");
    n.getResult(i)->getType().print(os);
  }
}

void meg::ir::printGraph(const Graph &g, llvm::raw_ostream &os) {
  ValueNumbering numbering(g);
  const Mesh &mesh = g.getMesh();
  os << "graph @" << g.getName() << " mesh(dp=" << mesh.dp() << ", tp=" << mesh.tp() << ") {\n";
  for (auto &n : g) {
    os << "  ";
    printNode(*n, numbering, os);
    os << '\n';
  }
  os << "}\n";
}

std::string meg::ir::graphToString(const Graph &g) {
  std::string s;
  llvm::raw_string_ostream os(s);
  printGraph(g, os);
  os.flush();
  return s;
}
