//===- Lexer.h - tokens of the textual IR -----------------------*- C++ -*-===//
//
// Splits textual IR (docs/ir.md) into tokens with 1-based line:col positions. `//` comments and whitespace are
// skipped. A malformed token (unterminated string, bad escape, stray character) becomes an Error token whose
// message the parser reports at the token's position.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_IR_LEXER_H
#define MEG_IR_LEXER_H

#include "llvm/ADT/StringRef.h"

#include <string>

namespace meg::ir {

struct Token {
  enum Kind {
    Eof,
    Error,     ///< `text` is the error message
    Ident,     ///< [A-Za-z_][A-Za-z0-9_.]*
    AtIdent,   ///< `@name`; `text` excludes the '@' (graph names, split axes in types)
    ValueName, ///< `%name`; `text` includes the '%'
    Integer,   ///< [+-]?[0-9]+
    Float,     ///< [+-]?[0-9]+(.[0-9]*)?([eE][+-]?[0-9]+)? with '.' or exponent, or [+-]?(inf|nan)
    String,    ///< `text` is the unescaped contents
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Equal,
  };

  Kind kind = Eof;
  std::string text;      ///< see the kinds; for punctuation the character itself
  llvm::StringRef spelling; ///< the exact source text of the token
  unsigned line = 0;
  unsigned col = 0;

  bool is(Kind k) const { return kind == k; }
  bool isIdent(llvm::StringRef s) const { return kind == Ident && text == s; }
  /// How diagnostics name the token: `'foo'`, `'%3'`, `'{'`, `end of file`.
  std::string describe() const;
};

class Lexer {
public:
  explicit Lexer(llvm::StringRef buffer) : buf(buffer) {}
  /// The next token (Eof forever at the end).
  Token next();

private:
  void skipSpaceAndComments();
  char peek(size_t ahead = 0) const { return pos + ahead < buf.size() ? buf[pos + ahead] : '\0'; }
  void advance(size_t n = 1);
  Token make(Token::Kind k, size_t start, unsigned line, unsigned col, std::string text);
  Token lexNumber(size_t start, unsigned line, unsigned col);
  Token lexString(size_t start, unsigned line, unsigned col);

  llvm::StringRef buf;
  size_t pos = 0;
  unsigned line = 1;
  unsigned col = 1;
};

} // namespace meg::ir

#endif
