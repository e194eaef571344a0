//===- Type.cpp - element types, sharding, tensor types ---------------------===//
#include "ir/Type.h"

#include "llvm/Support/raw_ostream.h"

using namespace meg::ir;

llvm::StringRef meg::ir::dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::BF16: return "bf16";
  case DType::F16: return "f16";
  case DType::I32: return "i32";
  }
  llvm_unreachable("bad dtype");
}

std::optional<DType> meg::ir::parseDType(llvm::StringRef s) {
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::I32})
    if (dtypeName(t) == s)
      return t;
  return std::nullopt;
}

unsigned meg::ir::dtypeBytes(DType t) {
  switch (t) {
  case DType::F32: case DType::I32: return 4;
  case DType::BF16: case DType::F16: return 2;
  }
  llvm_unreachable("bad dtype");
}

llvm::StringRef meg::ir::meshAxisName(MeshAxis a) { return a == MeshAxis::DP ? "dp" : "tp"; }

std::optional<MeshAxis> meg::ir::parseMeshAxis(llvm::StringRef s) {
  if (s == "dp") return MeshAxis::DP;
  if (s == "tp") return MeshAxis::TP;
  return std::nullopt;
}

llvm::StringRef meg::ir::reduceKindName(ReduceKind k) { return k == ReduceKind::Sum ? "sum" : "max"; }

std::optional<ReduceKind> meg::ir::parseReduceKind(llvm::StringRef s) {
  if (s == "sum") return ReduceKind::Sum;
  if (s == "max") return ReduceKind::Max;
  return std::nullopt;
}

bool Sharding::isReplicated() const {
  if (hasPartial())
    return false;
  for (auto &d : dims)
    if (d)
      return false;
  return true;
}

bool Sharding::hasPartial() const {
  for (auto &p : partial)
    if (p)
      return true;
  return false;
}

void Sharding::setDimAxis(unsigned dim, unsigned rank, std::optional<MeshAxis> axis) {
  assert(dim < rank && "sharding dim out of range");
  if (dims.size() < rank)
    dims.resize(rank);
  dims[dim] = axis;
  canonicalize();
}

void Sharding::canonicalize() {
  while (!dims.empty() && !dims.back())
    dims.pop_back();
}

bool Sharding::operator==(const Sharding &o) const {
  return partial == o.partial && dims == o.dims;
}

std::optional<int64_t> meg::ir::checkedNumElements(llvm::ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d && n > kMaxElements / d))
      return std::nullopt;
    n *= d;
  }
  return n;
}

int64_t TensorType::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

llvm::SmallVector<int64_t, 4> TensorType::localShape(const Mesh &mesh) const {
  llvm::SmallVector<int64_t, 4> local(shape.begin(), shape.end());
  for (unsigned i = 0; i < local.size(); ++i)
    if (auto axis = sharding.dimAxis(i))
      local[i] /= mesh.size[unsigned(*axis)];
  return local;
}

int64_t TensorType::localNumElements(const Mesh &mesh) const {
  int64_t n = 1;
  for (int64_t d : localShape(mesh))
    n *= d;
  return n;
}

void TensorType::print(llvm::raw_ostream &os) const {
  os << dtypeName(dtype) << '[';
  for (unsigned i = 0; i < shape.size(); ++i) {
    if (i)
      os << ',';
    os << shape[i];
    if (auto axis = sharding.dimAxis(i))
      os << '@' << meshAxisName(*axis);
  }
  os << ']';
  for (unsigned a = 0; a < kNumMeshAxes; ++a)
    if (auto k = sharding.partial[a])
      os << " partial(" << meshAxisName(MeshAxis(a)) << ',' << reduceKindName(*k) << ')';
}

std::string TensorType::str() const {
  std::string s;
  llvm::raw_string_ostream os(s);
  print(os);
  return s;
}

llvm::raw_ostream &meg::ir::operator<<(llvm::raw_ostream &os, const TensorType &t) {
  t.print(os);
  return os;
}
