//===- TestUtil.h - helpers for the runtime unit tests --------------------===//

#ifndef MEG_TEST_UNIT_RUNTIME_TESTUTIL_H
#define MEG_TEST_UNIT_RUNTIME_TESTUTIL_H

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <string>

namespace meg::runtime::test {

/// A fresh directory, removed with its contents at the end of the test.
class TempDir {
public:
  TempDir() {
    std::error_code EC =
        llvm::sys::fs::createUniqueDirectory("meg-runtime-test", Dir);
    EXPECT_FALSE(EC) << EC.message();
  }
  ~TempDir() { llvm::sys::fs::remove_directories(Dir); }
  std::string path(llvm::StringRef Name) const {
    llvm::SmallString<128> P(Dir);
    llvm::sys::path::append(P, Name);
    return std::string(P.str());
  }
  llvm::StringRef dir() const { return Dir; }

private:
  llvm::SmallString<128> Dir;
};

inline void writeRaw(llvm::StringRef Path, llvm::StringRef Bytes) {
  std::error_code EC;
  llvm::raw_fd_ostream OS(Path, EC);
  ASSERT_FALSE(EC) << EC.message();
  OS << Bytes;
}

inline std::string readRaw(llvm::StringRef Path) {
  auto B = llvm::MemoryBuffer::getFile(Path, /*IsText=*/false,
                                       /*RequiresNullTerminator=*/false);
  if (!B)
    return "<cannot read " + Path.str() + ">";
  return (*B)->getBuffer().str();
}

/// The message of an error that must be present ("<success>" otherwise).
inline std::string message(llvm::Error E) {
  if (!E)
    return "<success>";
  return llvm::toString(std::move(E));
}
template <typename T> std::string message(llvm::Expected<T> &&E) {
  if (E)
    return "<success>";
  return llvm::toString(E.takeError());
}

} // namespace meg::runtime::test

#define ASSERT_OK(E)                                                           \
  do {                                                                         \
    if (llvm::Error Err_ = (E))                                                \
      FAIL() << llvm::toString(std::move(Err_));                               \
  } while (0)

/// Unwraps an Expected into `Var`, failing the test on error.
#define ASSERT_OK_AND_ASSIGN(Var, Expr)                                        \
  auto Var##OrErr_ = (Expr);                                                   \
  if (!Var##OrErr_)                                                            \
    FAIL() << llvm::toString(Var##OrErr_.takeError());                         \
  auto &Var = *Var##OrErr_

#endif // MEG_TEST_UNIT_RUNTIME_TESTUTIL_H
