//===- SafetensorsTest.cpp - safetensors reader and writer ----------------===//

#include "runtime/io/Safetensors.h"

#include "TestUtil.h"

#include "llvm/Support/Endian.h"

#include <cmath>
#include <cstring>

using namespace llvm;
using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

/// A raw safetensors file: u64 header length, header, data.
std::string rawFile(StringRef Header, StringRef Data) {
  char Len[8];
  support::endian::write64le(Len, Header.size());
  return std::string(Len, 8) + Header.str() + Data.str();
}

TEST(Safetensors, DTypeNames) {
  for (StringRef Name :
       {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
        "I32", "U32", "F32", "F64", "I64", "U64"}) {
    std::optional<SafetensorsDType> T = parseDType(Name);
    ASSERT_TRUE(T) << Name.str();
    EXPECT_EQ(dtypeName(*T), Name);
  }
  EXPECT_FALSE(parseDType("f32"));
  EXPECT_EQ(dtypeSize(SafetensorsDType::BF16), 2u);
  EXPECT_EQ(dtypeSize(SafetensorsDType::I64), 8u);
}

TEST(Safetensors, RoundTrip) {
  TempDir D;
  std::string P = D.path("w.safetensors");
  SafetensorsWriter W;
  std::vector<float> A = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.0f};
  ASSERT_OK(W.addF32("transformer.h.0.attn.c_attn.weight", {2, 3}, A));
  ASSERT_OK(W.addI32("input_ids", {3}, std::vector<int32_t>{5, -1, 70000}));
  ASSERT_OK(W.addI64("labels", {2, 2}, std::vector<int64_t>{1, 2, 3, 4}));
  std::vector<uint16_t> Half = {0x3C00, 0xC000}; // 1, -2
  ASSERT_OK(
      W.add("half", SafetensorsDType::F16, {2},
            ArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(Half.data()), 4)));
  std::vector<uint16_t> Bf = {0x3F00, 0xC040}; // 0.5, -3
  ASSERT_OK(
      W.add("bf", SafetensorsDType::BF16, {1, 2},
            ArrayRef<uint8_t>(reinterpret_cast<uint8_t *>(Bf.data()), 4)));
  ASSERT_OK(W.addF32("scalar", {}, std::vector<float>{42.0f}));
  ASSERT_OK(W.addF32("empty", {0, 5}, {}));
  W.setMetadata("format", "pt");
  ASSERT_OK(W.write(P));

  ASSERT_OK_AND_ASSIGN(F, SafetensorsFile::open(P));
  EXPECT_EQ(F.path(), P);
  std::vector<std::string> Expected = {"bf",
                                       "empty",
                                       "half",
                                       "input_ids",
                                       "labels",
                                       "scalar",
                                       "transformer.h.0.attn.c_attn.weight"};
  EXPECT_EQ(F.names(), Expected);
  EXPECT_EQ(F.metadata().at("format"), "pt");

  const SafetensorsTensor *T = F.lookup("transformer.h.0.attn.c_attn.weight");
  ASSERT_TRUE(T);
  EXPECT_EQ(T->DType, SafetensorsDType::F32);
  EXPECT_EQ(T->Shape, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(T->Bytes.size(), 24u);
  EXPECT_EQ(std::memcmp(T->Bytes.data(), A.data(), 24), 0);
  ASSERT_OK_AND_ASSIGN(Floats,
                       F.toFloats("transformer.h.0.attn.c_attn.weight"));
  EXPECT_EQ(Floats, A);

  ASSERT_OK_AND_ASSIGN(Ids, F.toInt32("input_ids"));
  EXPECT_EQ(Ids, (std::vector<int32_t>{5, -1, 70000}));
  ASSERT_OK_AND_ASSIGN(Labels, F.toInt32("labels"));
  EXPECT_EQ(Labels, (std::vector<int32_t>{1, 2, 3, 4}));
  ASSERT_OK_AND_ASSIGN(HalfF, F.toFloats("half"));
  EXPECT_EQ(HalfF, (std::vector<float>{1.0f, -2.0f}));
  ASSERT_OK_AND_ASSIGN(BfF, F.toFloats("bf"));
  EXPECT_EQ(BfF, (std::vector<float>{0.5f, -3.0f}));
  ASSERT_OK_AND_ASSIGN(S, F.toFloats("scalar"));
  EXPECT_EQ(S, std::vector<float>{42.0f});
  EXPECT_EQ(F.lookup("scalar")->numElements(), 1);
  EXPECT_EQ(F.lookup("empty")->Bytes.size(), 0u);
  EXPECT_EQ(F.lookup("empty")->Shape, (std::vector<int64_t>{0, 5}));

  EXPECT_FALSE(F.contains("missing"));
  EXPECT_EQ(message(F.get("missing")), P + ": no tensor named 'missing'");
  EXPECT_EQ(message(F.toInt32("half")),
            P + ": tensor 'half' has dtype F16, expected I32 or I64");
  EXPECT_EQ(message(F.toFloats("input_ids")),
            P + ": tensor 'input_ids' has dtype I32, expected F32, F64, BF16 "
                "or F16");

  // Writing the same tensors again gives the same bytes.
  EXPECT_EQ(readRaw(P), W.serialize());
}

TEST(Safetensors, ExactLayoutOfTheReferenceImplementation) {
  // What safetensors.torch.save_file({"b": torch.zeros(1), "a": torch.ones(2),
  // "c": torch.ones(1, dtype=torch.int64)}, f, {"k": "v"}) writes: larger
  // dtypes first, ties by name, compact JSON, spaces up to a multiple of 8.
  SafetensorsWriter W;
  ASSERT_OK(W.addF32("b", {1}, std::vector<float>{0.0f}));
  ASSERT_OK(W.addF32("a", {2}, std::vector<float>{1.0f, 1.0f}));
  ASSERT_OK(W.addI64("c", {1}, std::vector<int64_t>{1}));
  W.setMetadata("k", "v");
  std::string Header =
      R"({"__metadata__":{"k":"v"},"c":{"dtype":"I64","shape":[1],)"
      R"("data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],)"
      R"("data_offsets":[8,16]},"b":{"dtype":"F32","shape":[1],)"
      R"("data_offsets":[16,20]}})";
  ASSERT_EQ(Header.size() % 8, 4u);
  Header += "    ";
  std::string Data("\x01\x00\x00\x00\x00\x00\x00\x00"
                   "\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x00\x00",
                   20);
  EXPECT_EQ(W.serialize(), rawFile(Header, Data));
}

TEST(Safetensors, WriterRejectsBadTensors) {
  SafetensorsWriter W;
  ASSERT_OK(W.addF32("x", {2}, std::vector<float>{1, 2}));
  EXPECT_EQ(message(W.addF32("x", {1}, std::vector<float>{1})),
            "safetensors tensor 'x': duplicate name");
  EXPECT_EQ(message(W.addF32("y", {3}, std::vector<float>{1, 2})),
            "safetensors tensor 'y': shape [3] of F32 needs 12 bytes, got 8");
  EXPECT_EQ(message(W.addF32("__metadata__", {1}, std::vector<float>{1})),
            "safetensors tensor '__metadata__': the name is reserved");
  EXPECT_EQ(message(W.addF32("z", {-1}, {})),
            "safetensors tensor 'z': invalid shape [-1]");
  EXPECT_EQ(W.size(), 1u);
}

TEST(Safetensors, WriteFailureKeepsOldFile) {
  TempDir D;
  std::string P = D.path("w.safetensors");
  writeRaw(P, "old");
  SafetensorsWriter W;
  ASSERT_OK(W.addF32("x", {1}, std::vector<float>{1}));
  ASSERT_OK(W.write(P));
  EXPECT_NE(readRaw(P), "old");
  // Writing into a missing directory fails without creating anything.
  std::string Q = D.path("missing/w.safetensors");
  EXPECT_NE(message(W.write(Q)), "<success>");
  EXPECT_FALSE(sys::fs::exists(Q));
}

struct MalformedCase {
  const char *Name;
  std::string Contents;
  std::string Message; // after "<path>: "
};

class SafetensorsMalformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(SafetensorsMalformed, GivesExactError) {
  TempDir D;
  std::string P = D.path("bad.safetensors");
  writeRaw(P, GetParam().Contents);
  std::string M = message(SafetensorsFile::open(P));
  EXPECT_EQ(M, P + ": " + GetParam().Message);
}

std::string entry(StringRef Name, StringRef DType, StringRef Shape,
                  StringRef Offsets) {
  return ("\"" + Name + "\":{\"dtype\":\"" + DType + "\",\"shape\":" + Shape +
          ",\"data_offsets\":" + Offsets + "}")
      .str();
}

const std::string Data16(16, '\x01');

INSTANTIATE_TEST_SUITE_P(
    Cases, SafetensorsMalformed,
    ::testing::Values(
        MalformedCase{"TooShort", std::string("\x02\x00\x00\x00", 4),
                      "file is too short for a safetensors header (4 bytes, "
                      "need at least 8)"},
        MalformedCase{"HeaderPastEnd",
                      std::string("\x64\x00\x00\x00\x00\x00\x00\x00{}", 10),
                      "header length 100 runs past the end of the file (10 "
                      "bytes)"},
        MalformedCase{"HeaderTooLarge",
                      std::string("\x00\x00\x00\x00\x01\x00\x00\x00{}", 10),
                      "header length 4294967296 exceeds the limit of "
                      "100000000 bytes"},
        MalformedCase{"NotJson", rawFile("{\"a\": nope}", ""),
                      "header is not valid JSON: [1:8, byte=8]: Invalid "
                      "JSON value (null?)"},
        MalformedCase{"NotAnObject", rawFile("[1, 2]", ""),
                      "header is not a JSON object"},
        MalformedCase{"EntryNotObject", rawFile("{\"a\": 3}", ""),
                      "tensor 'a': entry is not an object"},
        MalformedCase{
            "MissingDType",
            rawFile(R"({"a":{"shape":[4],"data_offsets":[0,16]}})", Data16),
            "tensor 'a': missing 'dtype'"},
        MalformedCase{
            "MissingShape",
            rawFile(R"({"a":{"dtype":"F32","data_offsets":[0,16]}})", Data16),
            "tensor 'a': missing 'shape'"},
        MalformedCase{"MissingOffsets",
                      rawFile(R"({"a":{"dtype":"F32","shape":[4]}})", Data16),
                      "tensor 'a': missing 'data_offsets'"},
        MalformedCase{
            "UnknownDType",
            rawFile("{" + entry("a", "F31", "[4]", "[0,16]") + "}", Data16),
            "tensor 'a': unknown dtype 'F31'"},
        MalformedCase{
            "NegativeShape",
            rawFile("{" + entry("a", "F32", "[-4]", "[0,16]") + "}", Data16),
            "tensor 'a': 'shape' is not an array of non-negative "
            "integers"},
        MalformedCase{
            "OffsetsNotPair",
            rawFile("{" + entry("a", "F32", "[4]", "[0]") + "}", Data16),
            "tensor 'a': 'data_offsets' is not a pair of "
            "non-negative integers"},
        MalformedCase{
            "OffsetsReversed",
            rawFile("{" + entry("a", "F32", "[0]", "[16,0]") + "}", Data16),
            "tensor 'a': data_offsets [16, 0] end before they "
            "begin"},
        MalformedCase{
            "OffsetsPastEnd",
            rawFile("{" + entry("a", "F32", "[8]", "[0,32]") + "}", Data16),
            "tensor 'a': data_offsets [0, 32] run past the end of "
            "the data (16 bytes)"},
        MalformedCase{
            "SizeMismatch",
            rawFile("{" + entry("a", "BF16", "[4]", "[0,16]") + "}", Data16),
            "tensor 'a': data_offsets [0, 16] hold 16 bytes but "
            "shape [4] of BF16 needs 8 bytes"},
        MalformedCase{"Overlap",
                      rawFile("{" + entry("a", "F32", "[3]", "[0,12]") + "," +
                                  entry("b", "F32", "[2]", "[8,16]") + "}",
                              Data16),
                      "tensors 'a' and 'b' overlap"},
        MalformedCase{"Gap",
                      rawFile("{" + entry("a", "F32", "[1]", "[0,4]") + "," +
                                  entry("b", "F32", "[2]", "[8,16]") + "}",
                              Data16),
                      "tensor 'b' leaves a gap of 4 bytes before its data"},
        MalformedCase{
            "TrailingData",
            rawFile("{" + entry("a", "F32", "[2]", "[0,8]") + "}", Data16),
            "8 bytes of data follow the last tensor"},
        MalformedCase{"DuplicateName",
                      rawFile("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                                  entry("a", "F32", "[2]", "[8,16]") + "}",
                              Data16),
                      "duplicate tensor name 'a'"},
        MalformedCase{"BadMetadata", rawFile(R"({"__metadata__":{"k":1}})", ""),
                      "'__metadata__' entry 'k' is not a string"}),
    [](const ::testing::TestParamInfo<MalformedCase> &I) {
      return std::string(I.param.Name);
    });

TEST(Safetensors, MissingFile) {
  TempDir D;
  std::string P = D.path("absent.safetensors");
  std::string M = message(SafetensorsFile::open(P));
  EXPECT_EQ(M.rfind(P + ": cannot open file: ", 0), 0u) << M;
}

TEST(Safetensors, EmptyFileIsValid) {
  TempDir D;
  std::string P = D.path("empty.safetensors");
  SafetensorsWriter W;
  ASSERT_OK(W.write(P));
  EXPECT_EQ(readRaw(P), rawFile("{}      ", ""));
  ASSERT_OK_AND_ASSIGN(F, SafetensorsFile::open(P));
  EXPECT_EQ(F.size(), 0u);
}

TEST(Safetensors, I64ThatDoesNotFitInt32) {
  TempDir D;
  std::string P = D.path("big.safetensors");
  SafetensorsWriter W;
  ASSERT_OK(W.addI64("x", {2}, std::vector<int64_t>{1, int64_t(1) << 40}));
  ASSERT_OK(W.write(P));
  ASSERT_OK_AND_ASSIGN(F, SafetensorsFile::open(P));
  EXPECT_EQ(message(F.toInt32("x")),
            P + ": tensor 'x': element 1 (1099511627776) does not fit in "
                "int32");
}

TEST(Safetensors, SixteenBitFloatsRoundTrip) {
  TempDir D;
  std::string P = D.path("half.safetensors");
  SafetensorsWriter W;
  // 1 + 2^-8 ties to 1 in bf16; 1 + 3 * 2^-11 rounds up to 1 + 2^-9 in f16; 1e5 overflows f16 to inf.
  std::vector<float> V = {1.0f + std::ldexp(1.0f, -8), -3.0f,
                          1.0f + 3 * std::ldexp(1.0f, -11), 1e5f};
  ASSERT_OK(W.addFloats("b", SafetensorsDType::BF16, {2, 2}, V));
  ASSERT_OK(W.addFloats("h", SafetensorsDType::F16, {4}, V));
  EXPECT_EQ(message(W.addFloats("i", SafetensorsDType::I32, {4}, V)),
            "safetensors tensor 'i': cannot store floats as I32");
  ASSERT_OK(W.write(P));
  ASSERT_OK_AND_ASSIGN(F, SafetensorsFile::open(P));
  EXPECT_EQ(F.lookup("b")->DType, SafetensorsDType::BF16);
  EXPECT_EQ(F.lookup("h")->DType, SafetensorsDType::F16);
  ASSERT_OK_AND_ASSIGN(B, F.toFloats("b"));
  EXPECT_EQ(B, (std::vector<float>{1.0f, -3.0f, 1.0f, 99840.0f}));
  ASSERT_OK_AND_ASSIGN(H, F.toFloats("h"));
  EXPECT_EQ(H[0], 1.0f + std::ldexp(1.0f, -8)); // exact in f16
  EXPECT_EQ(H[1], -3.0f);
  EXPECT_EQ(H[2], 1.0f + std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isinf(H[3]));
}

} // namespace
