//===- ParseFlags.h - LLVM command-line parsing with one error line -*- C++ -*-===//
//
// Every tool reports a bad command line as one line, `<tool>: error: <what>`, like every other error. llvm::cl
// writes its complaints in several lines prefixed with the program's name, and prints some itself to stderr (a bad
// or missing option value), so stderr is captured while parsing and the first line kept, without the program's
// name, cl's "  Try: '<program> --help'" tail and its final punctuation, its first letter lower-case:
// `unknown command line argument '--bogus'`, `for the --steps option: requires a value`.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_TOOLS_COMMON_PARSEFLAGS_H
#define MEG_TOOLS_COMMON_PARSEFLAGS_H

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <optional>
#include <string>
#include <unistd.h>

namespace meg::tools {

/// Parses the command line; nullopt when it is good, else the one-line complaint (see above).
inline std::optional<std::string> parseFlags(int argc, const char *const *argv, llvm::StringRef overview) {
  std::string clErrors;
  llvm::raw_string_ostream clErrs(clErrors);
  llvm::errs().flush();
  FILE *capture = std::tmpfile();
  int savedStderr = capture ? ::dup(2) : -1;
  if (savedStderr >= 0)
    ::dup2(::fileno(capture), 2);
  bool ok = llvm::cl::ParseCommandLineOptions(argc, argv, overview, &clErrs);
  llvm::errs().flush();
  if (savedStderr >= 0) {
    ::dup2(savedStderr, 2);
    ::close(savedStderr);
    std::rewind(capture);
    std::string printed;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), capture)) > 0;)
      printed.append(buf, n);
    clErrors = printed + clErrs.str();
  }
  if (capture)
    std::fclose(capture);
  if (ok)
    return std::nullopt;
  llvm::StringRef msg = llvm::StringRef(clErrors).trim();
  msg = msg.take_until([](char c) { return c == '\n'; });
  std::string program = llvm::sys::path::filename(argv[0]).str();
  if (msg.consume_front(program))
    msg = msg.ltrim(": ");
  msg = msg.split("  Try:").first.rtrim(" .!");
  std::string out = msg.empty() ? "bad command line" : msg.str();
  out[0] = llvm::toLower(out[0]);
  return out;
}

} // namespace meg::tools

#endif
