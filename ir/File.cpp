//===- File.cpp - reading input files safely ------------------------------===//
#include "ir/File.h"

#include "llvm/Support/FileSystem.h"

using namespace meg;

llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> meg::readInputFile(llvm::StringRef path, bool isText,
                                                                       bool allowStdin) {
  auto fail = [&](const llvm::Twine &what) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
  };
  if (allowStdin && path == "-") {
    auto buffer = llvm::MemoryBuffer::getSTDIN();
    if (!buffer)
      return fail(buffer.getError().message());
    return std::move(*buffer);
  }
  llvm::sys::fs::file_status status;
  if (std::error_code ec = llvm::sys::fs::status(path, status))
    return fail(ec.message());
  if (status.type() == llvm::sys::fs::file_type::directory_file)
    return fail("is a directory");
  if (status.type() != llvm::sys::fs::file_type::regular_file)
    return fail("not a regular file");
  auto buffer = llvm::MemoryBuffer::getFile(path, isText, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fail(buffer.getError().message());
  return std::move(*buffer);
}
