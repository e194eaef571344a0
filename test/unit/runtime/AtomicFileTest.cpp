//===- AtomicFileTest.cpp - atomic writes and checksums -------------------===//

#include "runtime/io/AtomicFile.h"

#include "TestUtil.h"

using namespace llvm;
using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

TEST(AtomicFile, WritesNewFileAndLeavesNoTemporary) {
  TempDir D;
  std::string P = D.path("out.bin");
  ASSERT_OK(writeFileAtomically(P, StringRef("hello")));
  EXPECT_EQ(readRaw(P), "hello");
  EXPECT_FALSE(sys::fs::exists(temporaryPathFor(P)));
}

TEST(AtomicFile, ReplacesExistingFile) {
  TempDir D;
  std::string P = D.path("out.bin");
  writeRaw(P, "old contents");
  const uint8_t Bytes[] = {1, 2, 3};
  ASSERT_OK(writeFileAtomically(P, ArrayRef<uint8_t>(Bytes)));
  EXPECT_EQ(readRaw(P), std::string("\x01\x02\x03"));
}

TEST(AtomicFile, TemporaryPathNamesThePid) {
  std::string T = temporaryPathFor("/a/b.bin");
  EXPECT_TRUE(StringRef(T).startswith("/a/b.bin.tmp.")) << T;
  EXPECT_GT(T.size(), StringRef("/a/b.bin.tmp.").size());
}

TEST(AtomicFile, FailingWriterLeavesOldFileUntouched) {
  TempDir D;
  std::string P = D.path("out.bin");
  writeRaw(P, "old contents");
  bool TempExistedDuringWrite = false;
  Error E = writeFileAtomically(P, [&](raw_ostream &OS) -> Error {
    OS << "half of the new cont";
    OS.flush();
    TempExistedDuringWrite = sys::fs::exists(temporaryPathFor(P));
    return createStringError(inconvertibleErrorCode(), "disk on fire");
  });
  EXPECT_EQ(message(std::move(E)), "disk on fire");
  EXPECT_TRUE(TempExistedDuringWrite);
  EXPECT_EQ(readRaw(P), "old contents");
  EXPECT_FALSE(sys::fs::exists(temporaryPathFor(P)));
}

TEST(AtomicFile, FailingRenameRemovesTemporary) {
  TempDir D;
  // The target is a non-empty directory: the rename must fail.
  std::string P = D.path("target");
  ASSERT_FALSE(sys::fs::create_directory(P));
  writeRaw(P + "/keep", "x");
  Error E = writeFileAtomically(P, StringRef("data"));
  std::string M = message(std::move(E));
  EXPECT_NE(M.find("cannot rename"), std::string::npos) << M;
  EXPECT_TRUE(sys::fs::is_directory(P));
  EXPECT_EQ(readRaw(P + "/keep"), "x");
  EXPECT_FALSE(sys::fs::exists(temporaryPathFor(P)));
}

TEST(AtomicFile, MissingDirectoryIsAnError) {
  TempDir D;
  std::string P = D.path("no/such/dir/out.bin");
  std::string M = message(writeFileAtomically(P, StringRef("data")));
  EXPECT_EQ(M.rfind(P + ": cannot create temporary file", 0), 0u) << M;
  EXPECT_FALSE(sys::fs::exists(P));
}

TEST(AtomicFile, ChecksumIsXXH64) {
  // Reference values of XXH64 with seed 0.
  EXPECT_EQ(checksum(StringRef("")), 0xEF46DB3751D8E999ull);
  EXPECT_EQ(checksum(StringRef("abc")), 0x44BC2CF5AD770999ull);
  const uint8_t Abc[] = {'a', 'b', 'c'};
  EXPECT_EQ(checksum(ArrayRef<uint8_t>(Abc)), checksum(StringRef("abc")));
  EXPECT_NE(checksum(StringRef("abd")), checksum(StringRef("abc")));
}

} // namespace
