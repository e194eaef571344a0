//===- AtomicFile.cpp - all-or-nothing file writes and checksums ---------===//

#include "runtime/io/AtomicFile.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include <fcntl.h>
#include <unistd.h>

using namespace llvm;

namespace meg::runtime {

std::string temporaryPathFor(StringRef Path) {
  return (Path + ".tmp." + Twine(sys::Process::getProcessId())).str();
}

static Error errorFor(StringRef Path, const Twine &What, std::error_code EC) {
  return createStringError(EC, "%s: %s: %s", Path.str().c_str(),
                           What.str().c_str(), EC.message().c_str());
}

/// Best effort: make the rename itself durable. Failures are ignored (some
/// file systems refuse fsync on directories).
static void syncParentDirectory(StringRef Path) {
  StringRef Dir = sys::path::parent_path(Path);
  std::string DirStr = Dir.empty() ? std::string(".") : Dir.str();
  int FD = ::open(DirStr.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (FD < 0)
    return;
  (void)::fsync(FD);
  ::close(FD);
}

Error writeFileAtomically(StringRef Path,
                          function_ref<Error(raw_ostream &)> Write) {
  std::string Temp = temporaryPathFor(Path);
  int FD = -1;
  if (std::error_code EC = sys::fs::openFileForWrite(
          Temp, FD, sys::fs::CD_CreateAlways, sys::fs::OF_None))
    return errorFor(Path, "cannot create temporary file '" + Temp + "'", EC);

  // From here on, every failure removes the temporary file.
  auto Fail = [&](Error E) {
    sys::fs::remove(Temp);
    return E;
  };

  raw_fd_ostream OS(FD, /*shouldClose=*/true);
  if (Error E = Write(OS)) {
    OS.close();
    OS.clear_error();
    return Fail(std::move(E));
  }
  OS.flush();
  if (!OS.has_error() && ::fsync(FD) != 0) {
    std::error_code EC(errno, std::generic_category());
    OS.close();
    OS.clear_error();
    return Fail(errorFor(Path, "cannot sync '" + Temp + "'", EC));
  }
  OS.close();
  if (std::error_code EC = OS.error()) {
    OS.clear_error();
    return Fail(errorFor(Path, "cannot write '" + Temp + "'", EC));
  }
  if (std::error_code EC = sys::fs::rename(Temp, Path))
    return Fail(errorFor(Path, "cannot rename '" + Temp + "' into place", EC));
  syncParentDirectory(Path);
  return Error::success();
}

Error writeFileAtomically(StringRef Path, StringRef Data) {
  return writeFileAtomically(Path, [&](raw_ostream &OS) {
    OS << Data;
    return Error::success();
  });
}

Error writeFileAtomically(StringRef Path, ArrayRef<uint8_t> Data) {
  return writeFileAtomically(
      Path,
      StringRef(reinterpret_cast<const char *>(Data.data()), Data.size()));
}

uint64_t checksum(ArrayRef<uint8_t> Data) { return xxHash64(Data); }

uint64_t checksum(StringRef Data) { return xxHash64(Data); }

} // namespace meg::runtime
