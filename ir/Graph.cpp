//===- Graph.cpp - SSA dataflow graph ---------------------------------------===//
#include "ir/Graph.h"
#include "ir/OpRules.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>

using namespace meg::ir;

Node::Node(OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict attrs, llvm::ArrayRef<TensorType> resultTypes)
    : kind(kind), operands(operands.begin(), operands.end()), attrs(std::move(attrs)) {
  for (unsigned i = 0; i < resultTypes.size(); ++i)
    results.push_back(std::make_unique<Value>(this, i, resultTypes[i]));
}

llvm::SmallVector<Value *, 2> Node::getResults() const {
  llvm::SmallVector<Value *, 2> out;
  for (auto &r : results)
    out.push_back(r.get());
  return out;
}

Node *Graph::append(OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict attrs,
                    llvm::ArrayRef<TensorType> resultTypes) {
  return insertBefore(nullptr, kind, operands, std::move(attrs), resultTypes);
}

Node *Graph::insertBefore(Node *pos, OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict attrs,
                          llvm::ArrayRef<TensorType> resultTypes) {
  auto node = std::make_unique<Node>(kind, operands, std::move(attrs), resultTypes);
  Node *raw = node.get();
  if (!pos) {
    nodes.push_back(std::move(node));
    return raw;
  }
  auto it = std::find_if(nodes.begin(), nodes.end(), [&](auto &n) { return n.get() == pos; });
  assert(it != nodes.end() && "insertion point not in graph");
  nodes.insert(it, std::move(node));
  return raw;
}

llvm::Expected<Node *> Graph::build(OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict attrs) {
  llvm::SmallVector<TensorType, 4> types;
  for (Value *v : operands)
    types.push_back(v->getType());
  auto results = inferTypes(kind, types, attrs);
  if (!results)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "%s: %s", opName(kind).str().c_str(),
                                   llvm::toString(results.takeError()).c_str());
  return append(kind, operands, std::move(attrs), *results);
}

void Graph::erase(Node *n) {
  auto it = std::find_if(nodes.begin(), nodes.end(), [&](auto &p) { return p.get() == n; });
  assert(it != nodes.end() && "erasing a node not in the graph");
#ifndef NDEBUG
  for (auto &other : nodes)
    for (Value *v : other->getOperands())
      assert((other.get() == n || v->getDef() != n) && "erasing a node whose results are still used");
#endif
  nodes.erase(it);
}

void Graph::replaceAllUsesWith(Value *from, Value *to, Node *except) {
  for (auto &n : nodes) {
    if (n.get() == except)
      continue;
    for (unsigned i = 0; i < n->getNumOperands(); ++i)
      if (n->getOperand(i) == from)
        n->setOperand(i, to);
  }
}

void Graph::reorder(llvm::ArrayRef<Node *> order) {
  assert(order.size() == nodes.size() && "reorder: not a permutation of the graph's nodes");
  llvm::DenseMap<const Node *, unsigned> position;
  for (unsigned i = 0; i < order.size(); ++i) {
    bool inserted = position.try_emplace(order[i], i).second;
    assert(inserted && "reorder: a node is listed twice");
    (void)inserted;
  }
  std::vector<std::unique_ptr<Node>> reordered(nodes.size());
  for (auto &n : nodes) {
    auto it = position.find(n.get());
    assert(it != position.end() && "reorder: a node of the graph is missing from the order");
    reordered[it->second] = std::move(n);
  }
  nodes = std::move(reordered);
}

llvm::SmallVector<Node *, 0> Graph::getNodes() const {
  llvm::SmallVector<Node *, 0> out;
  out.reserve(nodes.size());
  for (auto &n : nodes)
    out.push_back(n.get());
  return out;
}

llvm::DenseMap<const Node *, unsigned> Graph::computeOrder() const {
  llvm::DenseMap<const Node *, unsigned> order;
  unsigned i = 0;
  for (auto &n : nodes)
    order[n.get()] = i++;
  return order;
}

llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>> Graph::computeUsers() const {
  llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>> users;
  for (auto &n : nodes)
    for (Value *v : n->getOperands())
      users[v].push_back(n.get());
  return users;
}

llvm::SmallVector<Node *, 0> Graph::nodesOfKind(OpKind k) const {
  llvm::SmallVector<Node *, 0> out;
  for (auto &n : nodes)
    if (n->getKind() == k)
      out.push_back(n.get());
  return out;
}

Node *Graph::findNamed(OpKind k, llvm::StringRef name) const {
  for (auto &n : nodes)
    if (n->getKind() == k && n->getAttrs().getString("name") == name)
      return n.get();
  return nullptr;
}
