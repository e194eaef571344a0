//===- Lexer.cpp - tokens of the textual IR ---------------------------------===//
#include "ir/Lexer.h"
#include "ir/File.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/raw_ostream.h"

using namespace meg::ir;

static bool isIdentStart(char c) { return llvm::isAlpha(c) || c == '_'; }
static bool isIdentChar(char c) { return llvm::isAlnum(c) || c == '_' || c == '.'; }
static bool isValueNameChar(char c) { return llvm::isAlnum(c) || c == '_' || c == '.'; }
static bool isGraphNameChar(char c) { return isIdentChar(c) || c == '-'; }

std::string Token::describe() const {
  switch (kind) {
  case Eof:
    return "end of file";
  case String:
    return "string " + printableText(spelling);
  default:
    return "'" + printableText(spelling) + "'";
  }
}

void Lexer::advance(size_t n) {
  for (; n && pos < buf.size(); --n, ++pos) {
    if (buf[pos] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
}

void Lexer::skipSpaceAndComments() {
  while (pos < buf.size()) {
    char c = peek();
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      advance();
    } else if (c == '/' && peek(1) == '/') {
      while (pos < buf.size() && peek() != '\n')
        advance();
    } else {
      return;
    }
  }
}

Token Lexer::make(Token::Kind k, size_t start, unsigned tokLine, unsigned tokCol, std::string text) {
  Token t;
  t.kind = k;
  t.text = std::move(text);
  t.spelling = buf.slice(start, pos);
  t.line = tokLine;
  t.col = tokCol;
  return t;
}

Token Lexer::next() {
  skipSpaceAndComments();
  size_t start = pos;
  unsigned tokLine = line, tokCol = col;
  if (pos >= buf.size())
    return make(Token::Eof, start, tokLine, tokCol, "");

  char c = peek();
  auto punct = [&](Token::Kind k) {
    advance();
    return make(k, start, tokLine, tokCol, std::string(1, c));
  };
  switch (c) {
  case '(': return punct(Token::LParen);
  case ')': return punct(Token::RParen);
  case '{': return punct(Token::LBrace);
  case '}': return punct(Token::RBrace);
  case '[': return punct(Token::LBracket);
  case ']': return punct(Token::RBracket);
  case ',': return punct(Token::Comma);
  case ':': return punct(Token::Colon);
  case '=': return punct(Token::Equal);
  case '"': return lexString(start, tokLine, tokCol);
  default: break;
  }

  if (isIdentStart(c)) {
    while (isIdentChar(peek()))
      advance();
    return make(Token::Ident, start, tokLine, tokCol, buf.slice(start, pos).str());
  }
  if (c == '@') {
    advance();
    if (!isIdentStart(peek()))
      return make(Token::Error, start, tokLine, tokCol, "expected a name after '@'");
    while (isGraphNameChar(peek()))
      advance();
    return make(Token::AtIdent, start, tokLine, tokCol, buf.slice(start + 1, pos).str());
  }
  if (c == '%') {
    advance();
    if (!isValueNameChar(peek()))
      return make(Token::Error, start, tokLine, tokCol, "expected a value name after '%'");
    while (isValueNameChar(peek()))
      advance();
    return make(Token::ValueName, start, tokLine, tokCol, buf.slice(start, pos).str());
  }
  if (llvm::isDigit(c) || ((c == '-' || c == '+') && (llvm::isDigit(peek(1)) || isIdentStart(peek(1)))))
    return lexNumber(start, tokLine, tokCol);

  advance();
  std::string msg;
  if (llvm::isPrint(c))
    msg = std::string("unexpected character '") + c + "'";
  else
    msg = "unexpected character 0x" + llvm::utohexstr((unsigned char)c, /*LowerCase=*/true, /*Width=*/2);
  return make(Token::Error, start, tokLine, tokCol, msg);
}

Token Lexer::lexNumber(size_t start, unsigned tokLine, unsigned tokCol) {
  if (peek() == '-' || peek() == '+')
    advance();
  // Signed inf/nan: the sign is followed by a name.
  if (isIdentStart(peek())) {
    size_t nameStart = pos;
    while (isIdentChar(peek()))
      advance();
    llvm::StringRef name = buf.slice(nameStart, pos);
    if (name == "inf" || name == "nan")
      return make(Token::Float, start, tokLine, tokCol, buf.slice(start, pos).str());
    return make(Token::Error, start, tokLine, tokCol,
                std::string("unexpected character '") + buf[start] + "'");
  }
  bool isFloat = false;
  while (llvm::isDigit(peek()))
    advance();
  if (peek() == '.') {
    isFloat = true;
    advance();
    while (llvm::isDigit(peek()))
      advance();
  }
  if ((peek() == 'e' || peek() == 'E') &&
      (llvm::isDigit(peek(1)) || ((peek(1) == '-' || peek(1) == '+') && llvm::isDigit(peek(2))))) {
    isFloat = true;
    advance(2);
    while (llvm::isDigit(peek()))
      advance();
  }
  return make(isFloat ? Token::Float : Token::Integer, start, tokLine, tokCol, buf.slice(start, pos).str());
}

static int hexValue(char c) {
  if (llvm::isDigit(c))
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

Token Lexer::lexString(size_t start, unsigned tokLine, unsigned tokCol) {
  advance(); // opening quote
  std::string out;
  while (true) {
    if (pos >= buf.size() || peek() == '\n')
      return make(Token::Error, start, tokLine, tokCol, "unterminated string");
    char c = peek();
    if (c == '"') {
      advance();
      return make(Token::String, start, tokLine, tokCol, std::move(out));
    }
    if (c != '\\') {
      out += c;
      advance();
      continue;
    }
    // Escapes as written by llvm::raw_ostream::write_escaped: \\ \" \n \t \NNN (octal), plus \xHH.
    size_t escStart = pos;
    unsigned escLine = line, escCol = col;
    char e = peek(1);
    if (e == '\\' || e == '"') {
      out += e;
      advance(2);
    } else if (e == 'n') {
      out += '\n';
      advance(2);
    } else if (e == 't') {
      out += '\t';
      advance(2);
    } else if (e >= '0' && e <= '3' && peek(2) >= '0' && peek(2) <= '7' && peek(3) >= '0' && peek(3) <= '7') {
      out += char(((e - '0') << 6) | ((peek(2) - '0') << 3) | (peek(3) - '0'));
      advance(4);
    } else if (e == 'x' && hexValue(peek(2)) >= 0 && hexValue(peek(3)) >= 0) {
      out += char((hexValue(peek(2)) << 4) | hexValue(peek(3)));
      advance(4);
    } else {
      advance(e && e != '\n' ? 2 : 1);
      Token t = make(Token::Error, escStart, escLine, escCol, "");
      t.text = "unknown escape sequence '" + printableText(t.spelling) + "'";
      return t;
    }
  }
}
