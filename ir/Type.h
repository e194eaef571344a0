//===- Type.h - element types, shapes, sharding, tensor types ---*- C++ -*-===//
//
// A TensorType is (dtype, static global shape, sharding). The sharding says, per dim, whether the dim is replicated
// or split over a mesh axis, and whether the value carries a pending reduction `partial(axis, sum|max)` over an axis.
// Textual form (docs/ir.md):  f32[8,1024@tp,768] partial(tp,sum)
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_TYPE_H
#define MEG_IR_TYPE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace llvm {
class raw_ostream;
}

namespace meg::ir {

enum class DType : uint8_t { F32, BF16, F16, I32 };

llvm::StringRef dtypeName(DType t);
std::optional<DType> parseDType(llvm::StringRef s);
unsigned dtypeBytes(DType t);
inline bool isFloat(DType t) { return t != DType::I32; }

// The device mesh is dp x tp. Axes are fixed and named; a strategy may leave either at size 1.
enum class MeshAxis : int8_t { DP = 0, TP = 1 };
constexpr unsigned kNumMeshAxes = 2;
llvm::StringRef meshAxisName(MeshAxis a);
std::optional<MeshAxis> parseMeshAxis(llvm::StringRef s);

enum class ReduceKind : uint8_t { Sum, Max };
llvm::StringRef reduceKindName(ReduceKind k);
std::optional<ReduceKind> parseReduceKind(llvm::StringRef s);

struct Mesh {
  std::array<int64_t, kNumMeshAxes> size{1, 1};
  int64_t dp() const { return size[0]; }
  int64_t tp() const { return size[1]; }
  int64_t world() const { return size[0] * size[1]; }
  bool operator==(const Mesh &o) const { return size == o.size; }
};

/// The most elements one tensor may have (2^44, 64 TiB of f32) and the most ranks a mesh may have (2^20). They keep
/// all size arithmetic (element counts, bytes, arena offsets) far from int64 overflow; larger inputs are errors.
constexpr int64_t kMaxElements = int64_t(1) << 44;
constexpr int64_t kMaxWorld = int64_t(1) << 20;
/// The product of `shape`, or nullopt when a dim is negative or the product exceeds kMaxElements.
std::optional<int64_t> checkedNumElements(llvm::ArrayRef<int64_t> shape);

/// How a value is laid out over the mesh. Default-constructed = fully replicated.
class Sharding {
public:
  /// dims[i] is the mesh axis dim i is split over, or nullopt when replicated. Empty vector == all replicated.
  llvm::SmallVector<std::optional<MeshAxis>, 4> dims;
  /// Pending reduction per mesh axis (nullopt = none).
  std::array<std::optional<ReduceKind>, kNumMeshAxes> partial{};

  bool isReplicated() const;
  std::optional<MeshAxis> dimAxis(unsigned dim) const {
    return dim < dims.size() ? dims[dim] : std::nullopt;
  }
  void setDimAxis(unsigned dim, unsigned rank, std::optional<MeshAxis> axis);
  std::optional<ReduceKind> partialOver(MeshAxis a) const { return partial[unsigned(a)]; }
  bool hasPartial() const;
  /// Drops trailing replicated dims so that equal shardings compare equal.
  void canonicalize();
  bool operator==(const Sharding &o) const;
  bool operator!=(const Sharding &o) const { return !(*this == o); }
};

class TensorType {
public:
  TensorType() = default;
  TensorType(DType dtype, llvm::ArrayRef<int64_t> shape, Sharding sharding = {})
      : dtype(dtype), shape(shape.begin(), shape.end()), sharding(std::move(sharding)) {
    this->sharding.canonicalize();
  }

  DType dtype = DType::F32;
  llvm::SmallVector<int64_t, 4> shape;
  Sharding sharding;

  unsigned rank() const { return shape.size(); }
  int64_t numElements() const;
  int64_t numBytes() const { return numElements() * dtypeBytes(dtype); }
  /// The shape one rank holds, given the mesh (split dims divided by the axis size).
  llvm::SmallVector<int64_t, 4> localShape(const Mesh &mesh) const;
  int64_t localNumElements(const Mesh &mesh) const;
  TensorType withShape(llvm::ArrayRef<int64_t> newShape) const { return TensorType(dtype, newShape); }
  TensorType withDType(DType t) const { return TensorType(t, shape, sharding); }
  TensorType replicated() const { return TensorType(dtype, shape); }

  bool operator==(const TensorType &o) const {
    return dtype == o.dtype && shape == o.shape && sharding == o.sharding;
  }
  bool operator!=(const TensorType &o) const { return !(*this == o); }

  void print(llvm::raw_ostream &os) const;
  std::string str() const;
};

llvm::raw_ostream &operator<<(llvm::raw_ostream &os, const TensorType &t);

} // namespace meg::ir

#endif
