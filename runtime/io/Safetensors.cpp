//===- Safetensors.cpp - safetensors reader and writer --------------------===//

#include "runtime/io/Safetensors.h"

#include "ir/File.h"
#include "ir/Json.h"
#include "runtime/io/AtomicFile.h"

#include "kernels/Half.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>

using namespace llvm;

namespace meg::runtime {

namespace {

struct DTypeInfo {
  SafetensorsDType DType;
  const char *Name;
  size_t Size;
};

constexpr DTypeInfo DTypes[] = {
    {SafetensorsDType::Bool, "BOOL", 1},
    {SafetensorsDType::U8, "U8", 1},
    {SafetensorsDType::I8, "I8", 1},
    {SafetensorsDType::F8E5M2, "F8_E5M2", 1},
    {SafetensorsDType::F8E4M3, "F8_E4M3", 1},
    {SafetensorsDType::I16, "I16", 2},
    {SafetensorsDType::U16, "U16", 2},
    {SafetensorsDType::F16, "F16", 2},
    {SafetensorsDType::BF16, "BF16", 2},
    {SafetensorsDType::I32, "I32", 4},
    {SafetensorsDType::U32, "U32", 4},
    {SafetensorsDType::F32, "F32", 4},
    {SafetensorsDType::F64, "F64", 8},
    {SafetensorsDType::I64, "I64", 8},
    {SafetensorsDType::U64, "U64", 8},
};

/// The reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t MaxHeaderSize = 100'000'000;

constexpr StringLiteral MetadataKey = "__metadata__";

const DTypeInfo &info(SafetensorsDType T) {
  for (const DTypeInfo &I : DTypes)
    if (I.DType == T)
      return I;
  llvm_unreachable("unknown safetensors dtype");
}

Error fail(StringRef Path, const Twine &What) {
  return createStringError(inconvertibleErrorCode(), Path + ": " + What);
}

/// product(Shape) * ElementSize, or std::nullopt on overflow.
std::optional<uint64_t> byteSize(ArrayRef<int64_t> Shape, size_t ElementSize) {
  uint64_t N = ElementSize;
  for (int64_t D : Shape) {
    if (D < 0 || __builtin_mul_overflow(N, static_cast<uint64_t>(D), &N))
      return std::nullopt;
  }
  return N;
}

std::string shapeString(ArrayRef<int64_t> Shape) {
  std::string S;
  raw_string_ostream OS(S);
  OS << '[';
  interleaveComma(Shape, OS);
  OS << ']';
  return S;
}

/// llvm::json keeps the last of duplicate keys silently; the header is valid
/// JSON here, so a small scan over its top-level keys finds duplicates.
std::optional<std::string> findDuplicateTopLevelKey(StringRef Text) {
  StringSet<> Seen;
  int Depth = 0;
  for (size_t I = 0, E = Text.size(); I < E; ++I) {
    char C = Text[I];
    if (C == '{' || C == '[') {
      ++Depth;
      continue;
    }
    if (C == '}' || C == ']') {
      --Depth;
      continue;
    }
    if (C != '"')
      continue;
    size_t Start = I;
    for (++I; I < E && Text[I] != '"'; ++I)
      if (Text[I] == '\\')
        ++I;
    if (Depth != 1)
      continue;
    size_t J = I + 1;
    while (J < E && isSpace(Text[J]))
      ++J;
    if (J >= E || Text[J] != ':')
      continue; // a string value, not a key
    Expected<json::Value> Key = meg::parseJson(Text.slice(Start, I + 1));
    if (!Key) {
      consumeError(Key.takeError());
      continue;
    }
    std::string K = Key->getAsString()->str();
    if (!Seen.insert(K).second)
      return K;
  }
  return std::nullopt;
}

/// Reads a JSON array of non-negative integers.
std::optional<std::vector<int64_t>> integerArray(const json::Value *V) {
  const json::Array *A = V ? V->getAsArray() : nullptr;
  if (!A)
    return std::nullopt;
  std::vector<int64_t> Out;
  for (const json::Value &E : *A) {
    std::optional<int64_t> I;
    if (Optional<int64_t> X = E.getAsInteger())
      I = *X;
    if (!I || *I < 0)
      return std::nullopt;
    Out.push_back(*I);
  }
  return Out;
}

} // namespace

StringRef dtypeName(SafetensorsDType T) { return info(T).Name; }

std::optional<SafetensorsDType> parseDType(StringRef Name) {
  for (const DTypeInfo &I : DTypes)
    if (Name == I.Name)
      return I.DType;
  return std::nullopt;
}

size_t dtypeSize(SafetensorsDType T) { return info(T).Size; }

int64_t SafetensorsTensor::numElements() const {
  int64_t N = 1;
  for (int64_t D : Shape)
    N *= D;
  return N;
}

//===----------------------------------------------------------------------===//
// SafetensorsFile
//===----------------------------------------------------------------------===//

Expected<SafetensorsFile> SafetensorsFile::open(StringRef Path) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> Buffer =
      MemoryBuffer::getFile(Path, /*IsText=*/false,
                            /*RequiresNullTerminator=*/false);
  if (!Buffer)
    return fail(Path, "cannot open file: " + Buffer.getError().message());
  return fromBuffer(std::move(*Buffer), Path);
}

Expected<SafetensorsFile>
SafetensorsFile::fromBuffer(std::unique_ptr<MemoryBuffer> Buffer,
                            StringRef Name) {
  StringRef Bytes = Buffer->getBuffer();
  uint64_t FileSize = Bytes.size();
  if (FileSize < 8)
    return fail(Name, "file is too short for a safetensors header (" +
                          Twine(FileSize) + " bytes, need at least 8)");
  uint64_t HeaderSize = support::endian::read64le(Bytes.data());
  if (HeaderSize > MaxHeaderSize)
    return fail(Name, "header length " + Twine(HeaderSize) +
                          " exceeds the limit of " + Twine(MaxHeaderSize) +
                          " bytes");
  if (HeaderSize > FileSize - 8)
    return fail(Name, "header length " + Twine(HeaderSize) +
                          " runs past the end of the file (" + Twine(FileSize) +
                          " bytes)");
  StringRef HeaderText = Bytes.substr(8, HeaderSize);
  if (!HeaderText.startswith("{"))
    return fail(Name, "header is not a JSON object");
  Expected<json::Value> Header = meg::parseJson(HeaderText);
  if (!Header)
    return fail(Name,
                "header is not valid JSON: " + toString(Header.takeError()));
  const json::Object *Root = Header->getAsObject();
  if (!Root)
    return fail(Name, "header is not a JSON object");
  if (std::optional<std::string> Dup = findDuplicateTopLevelKey(HeaderText))
    return fail(Name, "duplicate tensor name '" + printableText(*Dup) + "'");

  SafetensorsFile File;
  File.Path = Name.str();
  uint64_t DataStart = 8 + HeaderSize;
  uint64_t DataSize = FileSize - DataStart;
  const uint8_t *Data =
      reinterpret_cast<const uint8_t *>(Bytes.data()) + DataStart;

  for (const auto &KV : *Root) {
    StringRef Key = KV.first;
    if (Key == MetadataKey) {
      const json::Object *Meta = KV.second.getAsObject();
      if (!Meta)
        return fail(Name, "'__metadata__' is not an object");
      for (const auto &M : *Meta) {
        Optional<StringRef> V = M.second.getAsString();
        if (!V)
          return fail(Name, "'__metadata__' entry '" + printableText(M.first) +
                                "' is not a string");
        File.Metadata[M.first.str()] = V->str();
      }
      continue;
    }
    auto Bad = [&](const Twine &What) {
      return fail(Name, "tensor '" + printableText(Key) + "': " + What);
    };
    const json::Object *Entry = KV.second.getAsObject();
    if (!Entry)
      return Bad("entry is not an object");
    const json::Value *DTypeV = Entry->get("dtype");
    if (!DTypeV)
      return Bad("missing 'dtype'");
    Optional<StringRef> DTypeName = DTypeV->getAsString();
    if (!DTypeName)
      return Bad("'dtype' is not a string");
    std::optional<SafetensorsDType> DType = parseDType(*DTypeName);
    if (!DType)
      return Bad("unknown dtype '" + printableText(*DTypeName) + "'");
    const json::Value *ShapeV = Entry->get("shape");
    if (!ShapeV)
      return Bad("missing 'shape'");
    std::optional<std::vector<int64_t>> Shape = integerArray(ShapeV);
    if (!Shape)
      return Bad("'shape' is not an array of non-negative integers");
    const json::Value *OffsetsV = Entry->get("data_offsets");
    if (!OffsetsV)
      return Bad("missing 'data_offsets'");
    std::optional<std::vector<int64_t>> Offsets = integerArray(OffsetsV);
    if (!Offsets || Offsets->size() != 2)
      return Bad("'data_offsets' is not a pair of non-negative integers");
    uint64_t Begin = (*Offsets)[0], End = (*Offsets)[1];
    std::string Range =
        ("data_offsets [" + Twine(Begin) + ", " + Twine(End) + "]").str();
    if (Begin > End)
      return Bad(Range + " end before they begin");
    if (End > DataSize)
      return Bad(Range + " run past the end of the data (" + Twine(DataSize) +
                 " bytes)");
    std::optional<uint64_t> Need = byteSize(*Shape, dtypeSize(*DType));
    if (!Need || *Need != End - Begin)
      return Bad(Range + " hold " + Twine(End - Begin) + " bytes but shape " +
                 shapeString(*Shape) + " of " + dtypeName(*DType) + " needs " +
                 (Need ? Twine(*Need) + " bytes" : Twine("too many bytes")));

    SafetensorsTensor T;
    T.Name = Key.str();
    T.DType = *DType;
    T.Shape = std::move(*Shape);
    T.Begin = Begin;
    T.End = End;
    T.Bytes = ArrayRef<uint8_t>(Data + Begin, End - Begin);
    File.Tensors.emplace(T.Name, std::move(T));
  }

  // The tensors must tile the data exactly, as in the reference reader.
  std::vector<const SafetensorsTensor *> ByOffset;
  for (const auto &KV : File.Tensors)
    ByOffset.push_back(&KV.second);
  llvm::stable_sort(ByOffset, [](const SafetensorsTensor *A,
                                 const SafetensorsTensor *B) {
    return std::make_pair(A->Begin, A->End) < std::make_pair(B->Begin, B->End);
  });
  uint64_t Cursor = 0;
  const SafetensorsTensor *Prev = nullptr;
  for (const SafetensorsTensor *T : ByOffset) {
    if (T->Begin < Cursor)
      return fail(Name,
                  "tensors '" + printableText(Prev->Name) + "' and '" + printableText(T->Name) + "' overlap");
    if (T->Begin > Cursor)
      return fail(Name, "tensor '" + printableText(T->Name) + "' leaves a gap of " +
                            Twine(T->Begin - Cursor) +
                            " bytes before its data");
    Cursor = T->End;
    Prev = T;
  }
  if (Cursor != DataSize)
    return fail(Name, Twine(DataSize - Cursor) +
                          " bytes of data follow the last tensor");

  File.Buffer = std::move(Buffer);
  return File;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> Names;
  for (const auto &KV : Tensors)
    Names.push_back(KV.first);
  return Names;
}

bool SafetensorsFile::contains(StringRef Name) const {
  return Tensors.find(Name) != Tensors.end();
}

const SafetensorsTensor *SafetensorsFile::lookup(StringRef Name) const {
  auto It = Tensors.find(Name);
  return It == Tensors.end() ? nullptr : &It->second;
}

Expected<const SafetensorsTensor &> SafetensorsFile::get(StringRef Name) const {
  if (const SafetensorsTensor *T = lookup(Name))
    return *T;
  return fail(Path, "no tensor named '" + Name + "'");
}

Expected<std::vector<float>> SafetensorsFile::toFloats(StringRef Name) const {
  Expected<const SafetensorsTensor &> T = get(Name);
  if (!T)
    return T.takeError();
  size_t N = T->numElements();
  const uint8_t *P = T->Bytes.data();
  std::vector<float> Out(N);
  using namespace support::endian;
  switch (T->DType) {
  case SafetensorsDType::F32:
    for (size_t I = 0; I < N; ++I) {
      uint32_t Bits = read32le(P + 4 * I);
      std::memcpy(&Out[I], &Bits, 4);
    }
    return Out;
  case SafetensorsDType::F64:
    for (size_t I = 0; I < N; ++I) {
      uint64_t Bits = read64le(P + 8 * I);
      double D;
      std::memcpy(&D, &Bits, 8);
      Out[I] = static_cast<float>(D);
    }
    return Out;
  case SafetensorsDType::BF16:
    for (size_t I = 0; I < N; ++I)
      Out[I] = kernels::bf16ToFloat(read16le(P + 2 * I));
    return Out;
  case SafetensorsDType::F16:
    for (size_t I = 0; I < N; ++I)
      Out[I] = kernels::f16ToFloat(read16le(P + 2 * I));
    return Out;
  default:
    return fail(Path, "tensor '" + Name + "' has dtype " + dtypeName(T->DType) +
                          ", expected F32, F64, BF16 or F16");
  }
}

Expected<std::vector<int32_t>> SafetensorsFile::toInt32(StringRef Name) const {
  Expected<const SafetensorsTensor &> T = get(Name);
  if (!T)
    return T.takeError();
  size_t N = T->numElements();
  const uint8_t *P = T->Bytes.data();
  std::vector<int32_t> Out(N);
  using namespace support::endian;
  if (T->DType == SafetensorsDType::I32) {
    for (size_t I = 0; I < N; ++I)
      Out[I] = static_cast<int32_t>(read32le(P + 4 * I));
    return Out;
  }
  if (T->DType == SafetensorsDType::I64) {
    for (size_t I = 0; I < N; ++I) {
      int64_t V = static_cast<int64_t>(read64le(P + 8 * I));
      if (V < INT32_MIN || V > INT32_MAX)
        return fail(Path, "tensor '" + Name + "': element " + Twine(I) + " (" +
                              Twine(V) + ") does not fit in int32");
      Out[I] = static_cast<int32_t>(V);
    }
    return Out;
  }
  return fail(Path, "tensor '" + Name + "' has dtype " + dtypeName(T->DType) +
                        ", expected I32 or I64");
}

//===----------------------------------------------------------------------===//
// SafetensorsWriter
//===----------------------------------------------------------------------===//

Error SafetensorsWriter::add(StringRef Name, SafetensorsDType DType,
                             ArrayRef<int64_t> Shape, ArrayRef<uint8_t> Bytes) {
  auto Bad = [&](const Twine &What) {
    return createStringError(inconvertibleErrorCode(),
                             "safetensors tensor '" + Name + "': " + What);
  };
  if (Name.empty())
    return Bad("empty name");
  if (Name == MetadataKey)
    return Bad("the name is reserved");
  if (Tensors.count(Name))
    return Bad("duplicate name");
  std::optional<uint64_t> Need = byteSize(Shape, dtypeSize(DType));
  if (!Need)
    return Bad("invalid shape " + shapeString(Shape));
  if (*Need != Bytes.size())
    return Bad("shape " + shapeString(Shape) + " of " + dtypeName(DType) +
               " needs " + Twine(*Need) + " bytes, got " + Twine(Bytes.size()));
  Tensors.emplace(Name.str(),
                  Entry{Name.str(), DType, Shape.vec(),
                        std::vector<uint8_t>(Bytes.begin(), Bytes.end())});
  return Error::success();
}

template <typename T, typename U>
static std::vector<uint8_t> littleEndianBytes(ArrayRef<T> Values) {
  std::vector<uint8_t> Bytes(Values.size() * sizeof(T));
  for (size_t I = 0; I < Values.size(); ++I) {
    U Bits;
    std::memcpy(&Bits, &Values[I], sizeof(T));
    support::endian::write<U, support::little, support::unaligned>(
        Bytes.data() + I * sizeof(T), Bits);
  }
  return Bytes;
}

Error SafetensorsWriter::addF32(StringRef Name, ArrayRef<int64_t> Shape,
                                ArrayRef<float> Values) {
  return add(Name, SafetensorsDType::F32, Shape,
             littleEndianBytes<float, uint32_t>(Values));
}

Error SafetensorsWriter::addFloats(StringRef Name, SafetensorsDType DType,
                                   ArrayRef<int64_t> Shape,
                                   ArrayRef<float> Values) {
  if (DType == SafetensorsDType::F32)
    return addF32(Name, Shape, Values);
  if (DType != SafetensorsDType::BF16 && DType != SafetensorsDType::F16)
    return createStringError(inconvertibleErrorCode(),
                             "safetensors tensor '" + Name +
                                 "': cannot store floats as " +
                                 dtypeName(DType));
  std::vector<uint16_t> Halves(Values.size());
  for (size_t I = 0; I < Values.size(); ++I)
    Halves[I] = DType == SafetensorsDType::BF16
                    ? kernels::floatToBf16(Values[I])
                    : kernels::floatToF16(Values[I]);
  return add(Name, DType, Shape, littleEndianBytes<uint16_t, uint16_t>(Halves));
}

Error SafetensorsWriter::addI32(StringRef Name, ArrayRef<int64_t> Shape,
                                ArrayRef<int32_t> Values) {
  return add(Name, SafetensorsDType::I32, Shape,
             littleEndianBytes<int32_t, uint32_t>(Values));
}

Error SafetensorsWriter::addI64(StringRef Name, ArrayRef<int64_t> Shape,
                                ArrayRef<int64_t> Values) {
  return add(Name, SafetensorsDType::I64, Shape,
             littleEndianBytes<int64_t, uint64_t>(Values));
}

void SafetensorsWriter::setMetadata(StringRef Key, StringRef Value) {
  Metadata[Key.str()] = Value.str();
}

std::vector<const SafetensorsWriter::Entry *>
SafetensorsWriter::layout() const {
  std::vector<const Entry *> Order;
  for (const auto &KV : Tensors)
    Order.push_back(&KV.second);
  // The reference order: dtype descending (its enum order, which this enum
  // follows), then name; every tensor is then aligned to its element size.
  llvm::stable_sort(Order, [](const Entry *A, const Entry *B) {
    if (A->DType != B->DType)
      return A->DType > B->DType;
    return A->Name < B->Name;
  });
  return Order;
}

std::string SafetensorsWriter::header() const {
  std::string Text;
  raw_string_ostream OS(Text);
  json::OStream J(OS);
  J.object([&] {
    if (!Metadata.empty())
      J.attributeObject(MetadataKey, [&] {
        for (const auto &KV : Metadata)
          J.attribute(KV.first, KV.second);
      });
    uint64_t Offset = 0;
    for (const Entry *EP : layout()) {
      const Entry &E = *EP;
      J.attributeObject(E.Name, [&] {
        J.attribute("dtype", dtypeName(E.DType));
        J.attributeArray("shape", [&] {
          for (int64_t D : E.Shape)
            J.value(D);
        });
        J.attributeArray("data_offsets", [&] {
          J.value(static_cast<int64_t>(Offset));
          J.value(static_cast<int64_t>(Offset + E.Bytes.size()));
        });
      });
      Offset += E.Bytes.size();
    }
  });
  OS.flush();
  // Pad with spaces so the data starts 8-byte aligned (as the reference does).
  Text.append((8 - Text.size() % 8) % 8, ' ');
  return Text;
}

std::string SafetensorsWriter::serialize() const {
  std::string Header = header();
  std::string Out;
  size_t DataSize = 0;
  for (const auto &KV : Tensors)
    DataSize += KV.second.Bytes.size();
  Out.reserve(8 + Header.size() + DataSize);
  char Len[8];
  support::endian::write64le(Len, Header.size());
  Out.append(Len, 8);
  Out += Header;
  for (const Entry *E : layout())
    Out.append(reinterpret_cast<const char *>(E->Bytes.data()),
               E->Bytes.size());
  return Out;
}

Error SafetensorsWriter::write(StringRef Path) const {
  std::string Header = header();
  return writeFileAtomically(Path, [&](raw_ostream &OS) {
    char Len[8];
    support::endian::write64le(Len, Header.size());
    OS.write(Len, 8);
    OS << Header;
    for (const Entry *E : layout())
      OS.write(reinterpret_cast<const char *>(E->Bytes.data()),
               E->Bytes.size());
    return Error::success();
  });
}

} // namespace meg::runtime
