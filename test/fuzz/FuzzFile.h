//===- FuzzFile.h - a per-process temporary file for file-reading fuzz targets -*- C++ -*-===//
//
// The loaders that take a path (checkpoints, token files) get each input written to one temporary file per process
// (removed at exit), so parallel fuzzers (-jobs, -fork) never share it.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_TEST_FUZZ_FUZZFILE_H
#define MEG_TEST_FUZZ_FUZZFILE_H

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace meg::fuzz {

/// Writes `bytes` to this process's temporary file (made on first use with `suffix`) and returns its path. Aborts
/// when the file cannot be written: a fuzzer that silently tests nothing is worse than one that stops.
inline const std::string &writeInputFile(llvm::StringRef bytes, llvm::StringRef suffix) {
  // Never destroyed: the exit handler that removes the file runs after the destructors of statics initialized
  // before it was registered, this one included (ASan: heap-use-after-free in the handler's lstat).
  static const std::string &path = *[&] {
    llvm::SmallString<128> p;
    if (llvm::sys::fs::createTemporaryFile("meg-fuzz", suffix, p)) {
      std::fprintf(stderr, "fuzz: cannot create a temporary file\n");
      std::abort();
    }
    std::atexit([] { llvm::sys::fs::remove(path); });
    return new std::string(p);
  }();
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (!ec)
    os << bytes;
  if (ec || (os.close(), os.has_error())) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

} // namespace meg::fuzz

#endif
