//===- Verifier.cpp - structural and type checks of a graph -----------------===//
#include "ir/Verifier.h"
#include "ir/OpRules.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <cmath>

using namespace meg::ir;

std::string meg::ir::arityProblem(OpKind k, unsigned numOperands, unsigned numResults) {
  const OpInfo &info = opInfo(k);
  int n = numOperands;
  auto plural = [](int count, llvm::StringRef noun) {
    return (llvm::Twine(count) + " " + noun + (count == 1 ? "" : "s")).str();
  };
  if (n < info.minOperands || (info.maxOperands >= 0 && n > info.maxOperands)) {
    std::string want;
    if (info.minOperands == info.maxOperands)
      want = plural(info.minOperands, "operand");
    else if (info.maxOperands < 0)
      want = "at least " + plural(info.minOperands, "operand");
    else
      want = (llvm::Twine(info.minOperands) + " to " + llvm::Twine(info.maxOperands) + " operands").str();
    return "expects " + want + ", got " + std::to_string(n);
  }
  if (unsigned want = numResultsOf(k, numOperands); numResults != want) {
    std::string wanted = want == 0 ? std::string("no results") : plural(int(want), "result");
    if (hasResultPerOperand(k))
      wanted += " (one per operand)";
    return "expects " + wanted + ", got " + std::to_string(numResults);
  }
  return "";
}

bool meg::ir::isValidGraphName(llvm::StringRef name) {
  if (name.empty() || !(llvm::isAlpha(name[0]) || name[0] == '_'))
    return false;
  for (char c : name)
    if (!(llvm::isAlnum(c) || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

namespace {

std::string shapeStr(llvm::ArrayRef<int64_t> s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i)
      out += ',';
    out += std::to_string(s[i]);
  }
  out += ']';
  return out;
}

class Verifier {
public:
  Verifier(const Graph &g, llvm::StringRef filename) : g(g), filename(filename) {}
  llvm::Error run();

private:
  llvm::Error fail(const Node &n, unsigned index, const llvm::Twine &problem) const;
  std::string checkNode(const Node &n, const llvm::DenseSet<const Value *> &defined,
                        const llvm::DenseSet<const Value *> &all);
  std::string checkNamed(const Node &n);
  std::string checkParamInit(const Node &n);
  std::string checkSharding(const Node &n);

  const Graph &g;
  llvm::StringRef filename;
  std::array<llvm::StringSet<>, kNumOpKinds> namesByKind;
};

} // namespace

llvm::Error Verifier::fail(const Node &n, unsigned index, const llvm::Twine &problem) const {
  std::string msg;
  llvm::raw_string_ostream os(msg);
  if (n.loc.valid()) {
    if (!filename.empty())
      os << filename << ':';
    os << n.loc.line << ':' << n.loc.col << ": '" << n.getName() << "' " << problem;
  } else {
    os << '\'' << n.getName() << "' (node #" << index << ") " << problem;
  }
  return llvm::createStringError(llvm::inconvertibleErrorCode(), os.str());
}

std::string Verifier::checkNamed(const Node &n) {
  const AttrValue *name = n.getAttrs().get("name");
  if (!name)
    return "missing attribute 'name'";
  auto *s = std::get_if<std::string>(name);
  if (!s)
    return "attribute 'name' must be a string";
  if (s->empty())
    return "attribute 'name' must not be empty";
  if (!namesByKind[unsigned(n.getKind())].insert(*s).second) {
    std::string msg = "duplicate name \"";
    llvm::raw_string_ostream os(msg);
    os.write_escaped(*s) << '"';
    return os.str();
  }
  return "";
}

std::string Verifier::checkParamInit(const Node &n) {
  const AttrDict &a = n.getAttrs();
  if (!a.has("init"))
    return "missing attribute 'init'";
  auto init = a.getSymbol("init");
  if (!init || (*init != "normal" && *init != "zeros" && *init != "ones"))
    return "attribute 'init' must be one of normal, zeros, ones";
  if (*init == "normal") {
    if (!a.has("std"))
      return "missing attribute 'std' (init = normal needs it)";
    auto std = a.getFloat("std");
    if (!std)
      return "attribute 'std' must be a number";
    if (!(*std >= 0.0) || !std::isfinite(*std))
      return "attribute 'std' must be finite and non-negative";
  }
  if (a.has("hf_shape")) {
    const std::vector<int64_t> *hf = a.getInts("hf_shape");
    if (!hf)
      return "attribute 'hf_shape' must be an integer list";
    std::optional<int64_t> count = checkedNumElements(*hf);
    const TensorType &t = n.getResult(0)->getType();
    if (count != t.numElements())
      return "attribute 'hf_shape' " + shapeStr(*hf) + " has a different element count than " + shapeStr(t.shape);
  }
  if (a.has("vocab_rows")) {
    auto rows = a.getInt("vocab_rows");
    if (!rows)
      return "attribute 'vocab_rows' must be an integer";
    const TensorType &t = n.getResult(0)->getType();
    if (t.rank() == 0 || *rows < 1 || *rows > t.shape[0])
      return "attribute 'vocab_rows' = " + std::to_string(*rows) + " must be in [1, " +
             std::to_string(t.rank() ? t.shape[0] : 0) + "] (rows of dim 0 that exist in Hugging Face files)";
    if (const std::vector<int64_t> *hf = a.getInts("hf_shape"); hf && (hf->empty() || (*hf)[0] != t.shape[0]))
      return "attribute 'vocab_rows' needs 'hf_shape' to keep dim 0 of " + shapeStr(t.shape);
  }
  return "";
}

std::string Verifier::checkSharding(const Node &n) {
  const Mesh &mesh = g.getMesh();
  for (unsigned r = 0; r < n.getNumResults(); ++r) {
    const TensorType &t = n.getResult(r)->getType();
    std::string where = "result #" + std::to_string(r);
    if (t.sharding.dims.size() > t.rank())
      return (where + " sharding names " + llvm::Twine(t.sharding.dims.size()) + " dims but the type has rank " +
              llvm::Twine(t.rank()))
          .str();
    std::array<int, kNumMeshAxes> splitDim;
    splitDim.fill(-1);
    for (unsigned d = 0; d < t.rank(); ++d) {
      auto axis = t.sharding.dimAxis(d);
      if (!axis)
        continue;
      llvm::StringRef axisName = meshAxisName(*axis);
      int &prev = splitDim[unsigned(*axis)];
      if (prev >= 0)
        return (where + " splits dims " + llvm::Twine(prev) + " and " + llvm::Twine(d) + " over mesh axis '" +
                axisName + "'")
            .str();
      prev = d;
      int64_t axisSize = mesh.size[unsigned(*axis)];
      if (t.shape[d] % axisSize != 0)
        return (where + " dim " + llvm::Twine(d) + " of size " + llvm::Twine(t.shape[d]) + " is not divisible by " +
                axisName + "=" + llvm::Twine(axisSize))
            .str();
    }
  }
  return "";
}

std::string Verifier::checkNode(const Node &n, const llvm::DenseSet<const Value *> &defined,
                                const llvm::DenseSet<const Value *> &all) {
  const OpInfo &info = opInfo(n.getKind());
  std::string problem = arityProblem(n.getKind(), n.getNumOperands(), n.getNumResults());
  if (!problem.empty())
    return problem;

  for (unsigned i = 0; i < n.getNumOperands(); ++i) {
    const Value *v = n.getOperand(i);
    if (!v)
      return "operand #" + std::to_string(i) + " is null";
    if (!defined.contains(v))
      return "operand #" + std::to_string(i) +
             (all.contains(v) ? " is used before its definition" : " is not a value of this graph");
  }

  for (unsigned r = 0; r < n.getNumResults(); ++r)
    if (!checkedNumElements(n.getResult(r)->getType().shape))
      return "result #" + std::to_string(r) + " has more than " + std::to_string(kMaxElements) + " elements";

  if (info.maxOperands != 0) {
    llvm::SmallVector<TensorType, 4> operandTypes;
    for (const Value *v : n.getOperands())
      operandTypes.push_back(v->getType());
    auto inferred = inferTypes(n.getKind(), operandTypes, n.getAttrs());
    if (!inferred) {
      // One line per diagnostic, even when a rule joins several errors.
      std::string msg = llvm::toString(inferred.takeError());
      for (size_t pos; (pos = msg.find('\n')) != std::string::npos;)
        msg.replace(pos, 1, "; ");
      return msg;
    }
    if (inferred->size() != n.getNumResults())
      return "shape rule gives " + std::to_string(inferred->size()) + " results for " +
             std::to_string(n.getNumResults()) + " declared";
    for (unsigned r = 0; r < n.getNumResults(); ++r) {
      const TensorType &declared = n.getResult(r)->getType();
      const TensorType &want = (*inferred)[r];
      if (declared.dtype != want.dtype || declared.shape != want.shape)
        return "result #" + std::to_string(r) + " is declared " + TensorType(declared.dtype, declared.shape).str() +
               " but inferred " + TensorType(want.dtype, want.shape).str();
    }
  }

  if (n.getKind() == OpKind::Param || n.getKind() == OpKind::Input || n.getKind() == OpKind::Output) {
    problem = checkNamed(n);
    if (!problem.empty())
      return problem;
  }
  if (n.getKind() == OpKind::Param) {
    problem = checkParamInit(n);
    if (!problem.empty())
      return problem;
  }
  return checkSharding(n);
}

llvm::Error Verifier::run() {
  if (!isValidGraphName(g.getName()))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "graph name '" + g.getName() + "' is not an identifier");
  for (unsigned a = 0; a < kNumMeshAxes; ++a)
    if (g.getMesh().size[a] < 1)
      return llvm::createStringError(llvm::inconvertibleErrorCode(), "mesh axis '%s' has size %lld",
                                     meshAxisName(MeshAxis(a)).str().c_str(), (long long)g.getMesh().size[a]);

  llvm::DenseSet<const Value *> all, defined;
  for (auto &n : g)
    for (unsigned r = 0; r < n->getNumResults(); ++r)
      all.insert(n->getResult(r));

  unsigned index = 0;
  for (auto &n : g) {
    std::string problem = checkNode(*n, defined, all);
    if (!problem.empty())
      return fail(*n, index, problem);
    for (unsigned r = 0; r < n->getNumResults(); ++r)
      defined.insert(n->getResult(r));
    ++index;
  }
  return llvm::Error::success();
}

llvm::Error meg::ir::verifyGraph(const Graph &g, llvm::StringRef filename) {
  return Verifier(g, filename).run();
}
