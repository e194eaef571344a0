//===- Graph.h - SSA dataflow graph: values, nodes, graph -------*- C++ -*-===//
//
// A Graph owns its Nodes in program order (every operand is defined by an earlier node). A Node has an op kind,
// operands (Values of earlier nodes), results (Values it owns) and attributes. Parameters, inputs and outputs are
// ordinary nodes (`param`, `input`, `output`) carrying a `name` attribute.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_GRAPH_H
#define MEG_IR_GRAPH_H

#include "ir/Attribute.h"
#include "ir/Op.h"
#include "ir/Type.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace meg::ir {

class Node;

/// Where a node came from in a textual IR file (0 = not parsed from text).
struct Loc {
  unsigned line = 0;
  unsigned col = 0;
  bool valid() const { return line != 0; }
};

class Value {
public:
  Value(Node *def, unsigned index, TensorType type) : def(def), index(index), type(std::move(type)) {}
  Node *getDef() const { return def; }
  unsigned getIndex() const { return index; }
  const TensorType &getType() const { return type; }
  void setType(TensorType t) { type = std::move(t); }

private:
  Node *def;
  unsigned index;
  TensorType type;
};

class Node {
public:
  Node(OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict attrs, llvm::ArrayRef<TensorType> resultTypes);
  Node(const Node &) = delete;
  Node &operator=(const Node &) = delete;

  OpKind getKind() const { return kind; }
  llvm::StringRef getName() const { return opName(kind); }
  unsigned getNumOperands() const { return operands.size(); }
  Value *getOperand(unsigned i) const { return operands[i]; }
  llvm::ArrayRef<Value *> getOperands() const { return operands; }
  void setOperand(unsigned i, Value *v) { operands[i] = v; }
  unsigned getNumResults() const { return results.size(); }
  Value *getResult(unsigned i = 0) const { return results[i].get(); }
  llvm::SmallVector<Value *, 2> getResults() const;

  const AttrDict &getAttrs() const { return attrs; }
  AttrDict &getAttrs() { return attrs; }

  Loc loc;

private:
  OpKind kind;
  llvm::SmallVector<Value *, 4> operands;
  llvm::SmallVector<std::unique_ptr<Value>, 1> results;
  AttrDict attrs;
};

class Graph {
public:
  explicit Graph(std::string name = "main") : name(std::move(name)) {}
  Graph(const Graph &) = delete;
  Graph &operator=(const Graph &) = delete;

  llvm::StringRef getName() const { return name; }
  void setName(std::string n) { name = std::move(n); }
  const Mesh &getMesh() const { return mesh; }
  void setMesh(Mesh m) { mesh = m; }

  /// Appends a node whose result types are given (used by the parser and by passes that know the types).
  Node *append(OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict attrs,
               llvm::ArrayRef<TensorType> resultTypes);
  /// Inserts before `pos` (nullptr = at the end).
  Node *insertBefore(Node *pos, OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict attrs,
                     llvm::ArrayRef<TensorType> resultTypes);
  /// Appends a node, inferring result types with the op's shape rule; an error names the op and the problem.
  llvm::Expected<Node *> build(OpKind kind, llvm::ArrayRef<Value *> operands, AttrDict attrs = {});
  /// Removes a node; no remaining node may use its results.
  void erase(Node *n);
  /// Every use of `from` becomes a use of `to`, except in `except` (if given).
  void replaceAllUsesWith(Value *from, Value *to, Node *except = nullptr);
  /// Puts the nodes in `order`, which must be a permutation of the graph's nodes (the caller keeps it topological).
  void reorder(llvm::ArrayRef<Node *> order);

  size_t size() const { return nodes.size(); }
  /// Program order.
  auto begin() const { return nodes.begin(); }
  auto end() const { return nodes.end(); }
  llvm::SmallVector<Node *, 0> getNodes() const;
  /// Position of each node in program order (recomputed on each call).
  llvm::DenseMap<const Node *, unsigned> computeOrder() const;
  /// For each value, the nodes that use it (in program order, a node listed once per use).
  llvm::DenseMap<const Value *, llvm::SmallVector<Node *, 2>> computeUsers() const;

  /// Nodes of one kind, in program order (e.g. all params).
  llvm::SmallVector<Node *, 0> nodesOfKind(OpKind k) const;
  /// The param/input/output node with this `name` attribute, or nullptr.
  Node *findNamed(OpKind k, llvm::StringRef name) const;

private:
  std::string name;
  Mesh mesh;
  std::vector<std::unique_ptr<Node>> nodes;
};

} // namespace meg::ir

#endif
