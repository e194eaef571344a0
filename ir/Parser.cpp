//===- Parser.cpp - textual IR input ----------------------------------------===//
//
// A recursive-descent parser over ir/Lexer.h tokens; docs/ir.md has the grammar. The parser stops at the first
// problem. It checks syntax, SSA names (defined before use, defined once), op names and arity, and the type
// syntax; everything about shapes and attributes is left to the verifier, which runs on the finished graph.
//
//===----------------------------------------------------------------------===//
#include "ir/Parser.h"
#include "ir/Lexer.h"
#include "ir/Verifier.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <charconv>
#include <cmath>
#include <limits>

using namespace meg::ir;

namespace {

class Parser {
public:
  Parser(llvm::StringRef text, llvm::StringRef filename) : lex(text), filename(filename) { consume(); }

  llvm::Expected<std::unique_ptr<Graph>> parseFile();
  llvm::Expected<TensorType> parseTypeOnly();
  llvm::Expected<AttrValue> parseAttrValueOnly();

private:
  void consume() { tok = lex.next(); }
  llvm::Error error(unsigned line, unsigned col, const llvm::Twine &msg) const;
  llvm::Error error(const Token &t, const llvm::Twine &msg) const { return error(t.line, t.col, msg); }
  /// "expected <what>, found <tok>", or the lexer's message when the current token is malformed.
  llvm::Error unexpected(const llvm::Twine &what) const;
  /// Consumes a token of kind `k` or fails with "expected <what>, found ...".
  llvm::Error expect(Token::Kind k, llvm::StringRef what);
  llvm::Error expectIdent(llvm::StringRef word);
  llvm::Error expectEnd(llvm::StringRef what);

  llvm::Error parseMesh(Mesh &mesh);
  llvm::Error parseNode(Graph &g);
  llvm::Error parseAttrDict(AttrDict &attrs);
  llvm::Error parseAttrValue(AttrValue &out);
  llvm::Error parseType(TensorType &out);
  llvm::Error parseInteger(int64_t &out);

  Lexer lex;
  Token tok;
  llvm::StringRef filename;
  llvm::StringMap<Value *> values;
};

} // namespace

llvm::Error Parser::error(unsigned line, unsigned col, const llvm::Twine &msg) const {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (filename + ":" + llvm::Twine(line) + ":" + llvm::Twine(col) + ": " + msg).str());
}

llvm::Error Parser::unexpected(const llvm::Twine &what) const {
  if (tok.is(Token::Error))
    return error(tok, tok.text);
  return error(tok, "expected " + what + ", found " + tok.describe());
}

llvm::Error Parser::expect(Token::Kind k, llvm::StringRef what) {
  if (!tok.is(k))
    return unexpected(what);
  consume();
  return llvm::Error::success();
}

llvm::Error Parser::expectIdent(llvm::StringRef word) {
  if (!tok.isIdent(word))
    return unexpected("'" + word + "'");
  consume();
  return llvm::Error::success();
}

llvm::Error Parser::expectEnd(llvm::StringRef what) {
  if (tok.is(Token::Eof))
    return llvm::Error::success();
  if (tok.is(Token::Error))
    return error(tok, tok.text);
  return error(tok, "unexpected " + tok.describe() + " after " + what);
}

llvm::Error Parser::parseInteger(int64_t &out) {
  if (!tok.is(Token::Integer))
    return unexpected("an integer");
  llvm::StringRef text = tok.text;
  if (text.startswith("+"))
    text = text.drop_front();
  if (text.getAsInteger(10, out))
    return error(tok, "integer " + tok.text + " is out of range");
  consume();
  return llvm::Error::success();
}

//===-- graph ------------------------------------------------------------------===//

llvm::Expected<std::unique_ptr<Graph>> Parser::parseFile() {
  if (auto e = expectIdent("graph"))
    return e;
  if (!tok.is(Token::AtIdent))
    return unexpected("a graph name '@name'");
  auto g = std::make_unique<Graph>(tok.text);
  consume();
  if (tok.isIdent("mesh")) {
    Mesh mesh;
    if (auto e = parseMesh(mesh))
      return e;
    g->setMesh(mesh);
  }
  if (auto e = expect(Token::LBrace, "'{'"))
    return e;
  while (!tok.is(Token::RBrace)) {
    if (!tok.is(Token::ValueName) && !tok.is(Token::Ident))
      return unexpected("a node or '}'");
    if (auto e = parseNode(*g))
      return e;
  }
  consume();
  if (auto e = expectEnd("the graph"))
    return e;
  if (auto e = verifyGraph(*g, filename))
    return e;
  return g;
}

llvm::Error Parser::parseMesh(Mesh &mesh) {
  consume(); // 'mesh'
  if (auto e = expect(Token::LParen, "'('"))
    return e;
  std::array<bool, kNumMeshAxes> seen{};
  while (true) {
    if (!tok.is(Token::Ident))
      return unexpected("a mesh axis");
    auto axis = parseMeshAxis(tok.text);
    if (!axis)
      return error(tok, "unknown mesh axis '" + tok.text + "'");
    if (seen[unsigned(*axis)])
      return error(tok, "duplicate mesh axis '" + tok.text + "'");
    seen[unsigned(*axis)] = true;
    consume();
    if (auto e = expect(Token::Equal, "'='"))
      return e;
    Token sizeTok = tok;
    int64_t size;
    if (auto e = parseInteger(size))
      return e;
    if (size < 1)
      return error(sizeTok, "mesh axis size must be positive, got " + llvm::Twine(size));
    if (size > kMaxWorld)
      return error(sizeTok, "mesh axis size must be at most " + llvm::Twine(kMaxWorld) + ", got " + llvm::Twine(size));
    mesh.size[unsigned(*axis)] = size;
    if (mesh.world() > kMaxWorld)
      return error(sizeTok, "the mesh has more than " + llvm::Twine(kMaxWorld) + " ranks");
    if (tok.is(Token::Comma)) {
      consume();
      continue;
    }
    return expect(Token::RParen, "',' or ')'");
  }
}

//===-- nodes ------------------------------------------------------------------===//

llvm::Error Parser::parseNode(Graph &g) {
  // Result names.
  llvm::SmallVector<Token, 2> resultNames;
  if (tok.is(Token::ValueName)) {
    while (true) {
      if (!tok.is(Token::ValueName))
        return unexpected("a value name");
      if (values.count(tok.text))
        return error(tok, "redefinition of value '" + tok.text + "'");
      for (const Token &prev : resultNames)
        if (prev.text == tok.text)
          return error(tok, "redefinition of value '" + tok.text + "'");
      resultNames.push_back(tok);
      consume();
      if (!tok.is(Token::Comma))
        break;
      consume();
    }
    if (auto e = expect(Token::Equal, "'='"))
      return e;
  }

  // Op name and operands.
  if (!tok.is(Token::Ident))
    return unexpected("an op name");
  Token opTok = tok;
  auto kind = parseOpKind(tok.text);
  if (!kind)
    return error(tok, "unknown op '" + tok.text + "'");
  consume();
  if (auto e = expect(Token::LParen, "'('"))
    return e;
  llvm::SmallVector<Value *, 4> operands;
  if (!tok.is(Token::RParen)) {
    while (true) {
      if (!tok.is(Token::ValueName))
        return unexpected("a value name");
      auto it = values.find(tok.text);
      if (it == values.end())
        return error(tok, "undefined value '" + tok.text + "'");
      operands.push_back(it->second);
      consume();
      if (!tok.is(Token::Comma))
        break;
      consume();
    }
  }
  if (auto e = expect(Token::RParen, "',' or ')'"))
    return e;
  std::string arity = arityProblem(*kind, operands.size(), resultNames.size());
  if (!arity.empty())
    return error(opTok, "'" + opTok.text + "' " + arity);

  // Attributes.
  AttrDict attrs;
  if (tok.is(Token::LBrace))
    if (auto e = parseAttrDict(attrs))
      return e;

  // Result types.
  llvm::SmallVector<TensorType, 2> types;
  if (tok.is(Token::Colon)) {
    Token colon = tok;
    if (resultNames.empty())
      return error(colon, "result types given for a node without results");
    consume();
    while (true) {
      TensorType t;
      if (auto e = parseType(t))
        return e;
      types.push_back(std::move(t));
      if (!tok.is(Token::Comma))
        break;
      consume();
    }
    if (types.size() != resultNames.size())
      return error(colon, "expected " + llvm::Twine(resultNames.size()) + " result type" +
                              (resultNames.size() == 1 ? "" : "s") + ", found " + llvm::Twine(types.size()));
  } else if (!resultNames.empty()) {
    return unexpected("':' and the result types");
  }

  Node *n = g.append(*kind, operands, std::move(attrs), types);
  n->loc = Loc{opTok.line, opTok.col};
  for (unsigned i = 0; i < resultNames.size(); ++i)
    values[resultNames[i].text] = n->getResult(i);
  return llvm::Error::success();
}

//===-- attributes ---------------------------------------------------------------===//

llvm::Error Parser::parseAttrDict(AttrDict &attrs) {
  consume(); // '{'
  if (tok.is(Token::RBrace)) {
    consume();
    return llvm::Error::success();
  }
  while (true) {
    if (!tok.is(Token::Ident))
      return unexpected("an attribute name");
    Token key = tok;
    if (attrs.has(key.text))
      return error(key, "duplicate attribute '" + key.text + "'");
    consume();
    if (auto e = expect(Token::Equal, "'='"))
      return e;
    AttrValue v;
    if (auto e = parseAttrValue(v))
      return e;
    attrs.set(key.text, std::move(v));
    if (tok.is(Token::Comma)) {
      consume();
      continue;
    }
    return expect(Token::RBrace, "',' or '}'");
  }
}

static bool parseFloatText(llvm::StringRef text, double &out) {
  bool negative = text.startswith("-");
  if (text.startswith("-") || text.startswith("+"))
    text = text.drop_front();
  if (text == "inf") {
    out = std::numeric_limits<double>::infinity();
  } else if (text == "nan") {
    out = std::numeric_limits<double>::quiet_NaN();
  } else {
    auto [ptr, ec] = std::from_chars(text.begin(), text.end(), out, std::chars_format::general);
    if (ec != std::errc() || ptr != text.end())
      return false;
  }
  if (negative)
    out = -out; // also gives -0.0 and -nan
  return true;
}

llvm::Error Parser::parseAttrValue(AttrValue &out) {
  switch (tok.kind) {
  case Token::Ident:
    if (tok.text == "true" || tok.text == "false") {
      out = tok.text == "true";
    } else if (tok.text == "inf" || tok.text == "nan") {
      double d;
      parseFloatText(tok.text, d);
      out = d;
    } else {
      out = Symbol{tok.text};
    }
    consume();
    return llvm::Error::success();
  case Token::Integer: {
    int64_t i;
    if (auto e = parseInteger(i))
      return e;
    out = i;
    return llvm::Error::success();
  }
  case Token::Float: {
    double d;
    if (!parseFloatText(tok.text, d))
      return error(tok, "float " + tok.text + " is out of range");
    out = d;
    consume();
    return llvm::Error::success();
  }
  case Token::String:
    out = tok.text;
    consume();
    return llvm::Error::success();
  case Token::LBracket: {
    consume();
    std::vector<int64_t> list;
    if (!tok.is(Token::RBracket)) {
      while (true) {
        int64_t i;
        if (auto e = parseInteger(i))
          return e;
        list.push_back(i);
        if (!tok.is(Token::Comma))
          break;
        consume();
      }
    }
    if (auto e = expect(Token::RBracket, "',' or ']'"))
      return e;
    out = std::move(list);
    return llvm::Error::success();
  }
  default:
    return unexpected("an attribute value");
  }
}

//===-- types ------------------------------------------------------------------===//

llvm::Error Parser::parseType(TensorType &out) {
  if (!tok.is(Token::Ident))
    return unexpected("a type");
  auto dtype = parseDType(tok.text);
  if (!dtype)
    return error(tok, "unknown dtype '" + tok.text + "'");
  consume();
  if (auto e = expect(Token::LBracket, "'['"))
    return e;

  llvm::SmallVector<int64_t, 4> shape;
  Sharding sharding;
  std::array<int, kNumMeshAxes> splitDim;
  splitDim.fill(-1);
  if (!tok.is(Token::RBracket)) {
    while (true) {
      Token dimTok = tok;
      int64_t size;
      if (auto e = parseInteger(size))
        return e;
      if (size < 0)
        return error(dimTok, "negative dimension size " + dimTok.text);
      shape.push_back(size);
      if (tok.is(Token::AtIdent)) {
        auto axis = parseMeshAxis(tok.text);
        if (!axis)
          return error(tok.line, tok.col + 1, "unknown mesh axis '" + tok.text + "'");
        int &prev = splitDim[unsigned(*axis)];
        if (prev >= 0)
          return error(tok.line, tok.col + 1,
                       "mesh axis '" + tok.text + "' already splits dim " + llvm::Twine(prev));
        prev = shape.size() - 1;
        sharding.dims.resize(shape.size());
        sharding.dims.back() = *axis;
        consume();
      }
      if (!tok.is(Token::Comma))
        break;
      consume();
    }
  }
  if (!checkedNumElements(shape))
    return error(tok, "the tensor has more than " + llvm::Twine(kMaxElements) + " elements");
  if (auto e = expect(Token::RBracket, "',' or ']'"))
    return e;

  while (tok.isIdent("partial")) {
    consume();
    if (auto e = expect(Token::LParen, "'('"))
      return e;
    if (!tok.is(Token::Ident))
      return unexpected("a mesh axis");
    auto axis = parseMeshAxis(tok.text);
    if (!axis)
      return error(tok, "unknown mesh axis '" + tok.text + "'");
    if (sharding.partial[unsigned(*axis)])
      return error(tok, "duplicate partial axis '" + tok.text + "'");
    consume();
    if (auto e = expect(Token::Comma, "','"))
      return e;
    if (!tok.is(Token::Ident))
      return unexpected("a reduction (sum or max)");
    auto kind = parseReduceKind(tok.text);
    if (!kind)
      return error(tok, "unknown reduction '" + tok.text + "'");
    sharding.partial[unsigned(*axis)] = *kind;
    consume();
    if (auto e = expect(Token::RParen, "')'"))
      return e;
  }
  out = TensorType(*dtype, shape, std::move(sharding));
  return llvm::Error::success();
}

llvm::Expected<TensorType> Parser::parseTypeOnly() {
  TensorType t;
  if (auto e = parseType(t))
    return e;
  if (auto e = expectEnd("the type"))
    return e;
  return t;
}

llvm::Expected<AttrValue> Parser::parseAttrValueOnly() {
  AttrValue v;
  if (auto e = parseAttrValue(v))
    return e;
  if (auto e = expectEnd("the attribute value"))
    return e;
  return v;
}

//===-- entry points -------------------------------------------------------------===//

llvm::Expected<std::unique_ptr<Graph>> meg::ir::parseGraph(llvm::StringRef text, llvm::StringRef filename) {
  return Parser(text, filename).parseFile();
}

llvm::Expected<std::unique_ptr<Graph>> meg::ir::parseGraphFile(llvm::StringRef path) {
  auto buf = llvm::MemoryBuffer::getFileOrSTDIN(path, /*IsText=*/true);
  if (!buf) {
    std::string reason = buf.getError().message();
    if (!reason.empty())
      reason[0] = llvm::toLower(reason[0]);
    return llvm::createStringError(buf.getError(), "cannot read '%s': %s", path.str().c_str(), reason.c_str());
  }
  return parseGraph((*buf)->getBuffer(), path == "-" ? llvm::StringRef("<stdin>") : path);
}

llvm::Expected<TensorType> meg::ir::parseTensorType(llvm::StringRef text, llvm::StringRef filename) {
  return Parser(text, filename).parseTypeOnly();
}

llvm::Expected<AttrValue> meg::ir::parseAttrValue(llvm::StringRef text, llvm::StringRef filename) {
  return Parser(text, filename).parseAttrValueOnly();
}
