//===- AtomicFile.h - all-or-nothing file writes and checksums -----------===//
//
// Every file meg writes (plans, weights, checkpoints, token files) goes
// through writeFileAtomically: the bytes are written to `<path>.tmp.<pid>`,
// fsync'ed, and renamed over `path`. On any error the temporary file is
// removed and a file already at `path` is left untouched, so a reader never
// sees a half-written file.
//
//===----------------------------------------------------------------------===//

#ifndef MEG_RUNTIME_IO_ATOMICFILE_H
#define MEG_RUNTIME_IO_ATOMICFILE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace meg::runtime {

/// The temporary path used while writing `Path`: `<Path>.tmp.<pid>`.
std::string temporaryPathFor(llvm::StringRef Path);

/// Calls `Write` with a stream onto the temporary file, then flushes, fsyncs
/// and renames it to `Path`. An error returned by `Write`, a stream error, or
/// a failing fsync/rename removes the temporary file and is returned (prefixed
/// with the path); `Path` is then unchanged.
llvm::Error
writeFileAtomically(llvm::StringRef Path,
                    llvm::function_ref<llvm::Error(llvm::raw_ostream &)> Write);

/// Writes `Data` to `Path` atomically (see above).
llvm::Error writeFileAtomically(llvm::StringRef Path,
                                llvm::ArrayRef<uint8_t> Data);
llvm::Error writeFileAtomically(llvm::StringRef Path, llvm::StringRef Data);

/// 64-bit checksum of `Data`: LLVM's xxHash64 (seed 0), i.e. the standard
/// XXH64 digest, so `python3 -c "import xxhash; xxhash.xxh64(b).intdigest()"`
/// reproduces it.
uint64_t checksum(llvm::ArrayRef<uint8_t> Data);
uint64_t checksum(llvm::StringRef Data);

} // namespace meg::runtime

#endif // MEG_RUNTIME_IO_ATOMICFILE_H
