//===- File.h - reading input files safely ----------------------*- C++ -*-===//
//
// Every file the tools read whole (model configs, IR text, plans, weights, checkpoints, token and text data) is read
// through readInputFile: it must be a regular file (a device such as /dev/zero or a FIFO would be read without end
// into memory). The error is the reason alone (the system's message, "is a directory" or "not a regular file"), for
// the caller to prefix with the path and what it wanted the file for. "-" is standard input where the caller allows it.
//
// Text taken from such a file (a tensor name, a JSON key or value, an IR identifier, a tokenizer entry) goes into an
// error message through printableText: a corrupted file must not write control bytes (terminal escapes, carriage
// returns) or invalid UTF-8 to the user's terminal, nor a line of a megabyte.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_FILE_H
#define MEG_IR_FILE_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <string>

namespace meg {

/// The whole of `path` (a regular file, or standard input for "-" when allowStdin).
llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> readInputFile(llvm::StringRef path, bool isText = false,
                                                                  bool allowStdin = false);

/// `text` with what a terminal must not receive escaped as \xNN: control bytes (C0, DEL and the C1 range of
/// UTF-8), newlines unless `keepNewlines`, and every byte that is not part of a valid UTF-8 sequence; other text
/// (printable ASCII and valid UTF-8) is kept. Longer than `maxBytes` of input, it is cut at a character and ends in
/// "... (N bytes)".
std::string printableText(llvm::StringRef text, size_t maxBytes = 200, bool keepNewlines = false);

} // namespace meg

#endif
