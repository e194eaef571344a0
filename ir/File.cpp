//===- File.cpp - reading input files safely ------------------------------===//
#include "ir/File.h"

#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

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

std::string meg::printableText(llvm::StringRef text, size_t maxBytes, bool keepNewlines) {
  std::string out;
  llvm::raw_string_ostream os(out);
  auto escape = [&](unsigned char c) { os << "\\x" << llvm::format_hex_no_prefix(c, 2); };
  size_t i = 0;
  while (i < text.size() && i < maxBytes) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if ((c >= 0x20 && c != 0x7f) || (keepNewlines && c == '\n'))
        os << char(c);
      else
        escape(c);
      ++i;
      continue;
    }
    unsigned length = llvm::getNumBytesForUTF8(c);
    const auto *begin = reinterpret_cast<const llvm::UTF8 *>(text.data() + i);
    if (i + length > text.size() || !llvm::isLegalUTF8Sequence(begin, begin + length)) {
      escape(c);
      ++i;
      continue;
    }
    // U+0080..U+009F (C1 controls) are two bytes, C2 80..C2 9F.
    bool c1 = length == 2 && c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0;
    for (unsigned k = 0; k < length; ++k) {
      if (c1)
        escape(static_cast<unsigned char>(text[i + k]));
      else
        os << text[i + k];
    }
    i += length;
  }
  if (i < text.size())
    os << "... (" << text.size() << " bytes)";
  return out;
}
