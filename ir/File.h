//===- File.h - reading input files safely ----------------------*- C++ -*-===//
//
// Every file the tools read whole (model configs, IR text, plans, weights, checkpoints, token and text data) is read
// through readInputFile: it must be a regular file (a device such as /dev/zero or a FIFO would be read without end
// into memory). The error is the reason alone (the system's message, "is a directory" or "not a regular file"), for
// the caller to prefix with the path and what it wanted the file for. "-" is standard input where the caller allows it.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_FILE_H
#define MEG_IR_FILE_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>

namespace meg {

/// The whole of `path` (a regular file, or standard input for "-" when allowStdin).
llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> readInputFile(llvm::StringRef path, bool isText = false,
                                                                  bool allowStdin = false);

} // namespace meg

#endif
