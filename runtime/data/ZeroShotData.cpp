//===- ZeroShotData.cpp - the text side of zero-shot evaluation ---------------===//
#include "runtime/data/ZeroShotData.h"

#include "ir/Json.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>

using namespace meg::runtime;

namespace {

/// Python's whitespace within ASCII (str.isspace, re's \s): " \t\n\v\f\r" and the separators 0x1c..0x1f.
bool isSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

llvm::StringRef strip(llvm::StringRef s) {
  while (!s.empty() && isSpace(s.front()))
    s = s.drop_front();
  while (!s.empty() && isSpace(s.back()))
    s = s.drop_back();
  return s;
}

/// Python's str.replace: every non-overlapping occurrence, left to right.
void replaceAll(std::string &s, llvm::StringRef from, llvm::StringRef to) {
  std::string out;
  size_t at = 0;
  for (size_t hit; (hit = s.find(from.data(), at, from.size())) != std::string::npos; at = hit + from.size())
    out.append(s, at, hit - at).append(to.str());
  if (at == 0)
    return;
  out.append(s, at, std::string::npos);
  s = std::move(out);
}

/// re.sub(r"O\s*([^C]*?)\s*C", r"O\1C", s): each opening character that a closing one follows has the whitespace
/// just inside the pair removed; scanning resumes after the closing character.
void stripInsidePairs(std::string &s, char open, char close) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t end = s[i] == open ? s.find(close, i + 1) : std::string::npos;
    if (end == std::string::npos) {
      out += s[i++];
      continue;
    }
    out += open;
    out += strip(llvm::StringRef(s).slice(i + 1, end)).str();
    out += close;
    i = end + 1;
  }
  s = std::move(out);
}

/// re.sub(r"/' [0-9]/", r"/'[0-9]/", s): Megatron's replacement is that literal text.
void replaceQuoteDigit(std::string &s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (i + 5 <= s.size() && s.compare(i, 3, "/' ") == 0 && s[i + 3] >= '0' && s[i + 3] <= '9' && s[i + 4] == '/') {
      out += "/'[0-9]/";
      i += 5;
      continue;
    }
    out += s[i++];
  }
  s = std::move(out);
}

llvm::Error lineError(llvm::StringRef path, size_t line, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ":" + llvm::Twine(line) + ": " + what);
}

} // namespace

std::string meg::runtime::wikitextDetokenize(llvm::StringRef text) {
  std::string s = text.str();
  // Contractions.
  replaceAll(s, "s '", "s'");
  replaceQuoteDigit(s);
  // Number separators.
  replaceAll(s, " @-@ ", "-");
  replaceAll(s, " @,@ ", ",");
  replaceAll(s, " @.@ ", ".");
  // Punctuation.
  for (const char *p : {":", ";", ".", "!", "?", ","})
    replaceAll(s, std::string(" ") + p + " ", std::string(p) + " ");
  // Brackets and quotes.
  stripInsidePairs(s, '(', ')');
  stripInsidePairs(s, '[', ']');
  stripInsidePairs(s, '{', '}');
  stripInsidePairs(s, '"', '"');
  stripInsidePairs(s, '\'', '\'');
  // Miscellaneous.
  replaceAll(s, "= = = =", "====");
  replaceAll(s, "= = =", "===");
  replaceAll(s, "= =", "==");
  replaceAll(s, " \xC2\xB0 ", "\xC2\xB0");
  replaceAll(s, " \n", "\n");
  replaceAll(s, "\n ", "\n");
  replaceAll(s, " N ", " 1 ");
  replaceAll(s, " 's", "'s");
  return s;
}

int64_t meg::runtime::countOriginalTokens(llvm::StringRef text) { return int64_t(strip(text).count(' ')) + 1; }

LmWindows::LmWindows(std::vector<int32_t> tokens, int64_t seq, int64_t overlap, int32_t pad)
    : tokens(std::move(tokens)), seq(seq), overlap(std::max<int64_t>(1, overlap)), pad(pad) {
  int64_t rest = std::max<int64_t>(targets() - this->overlap, 0);
  count = std::max<int64_t>((rest + this->overlap - 1) / this->overlap + 1, 1);
}

void LmWindows::window(int64_t i, std::vector<int32_t> &input, std::vector<int32_t> &target,
                       std::vector<uint8_t> &scored) const {
  assert(i >= 0 && i < count && "window out of range");
  int64_t start = i * overlap, n = int64_t(tokens.size());
  input.assign(size_t(seq), pad);
  target.assign(size_t(seq), pad);
  scored.assign(size_t(seq), 0);
  for (int64_t t = 0; t < seq; ++t) {
    if (start + t < n)
      input[size_t(t)] = tokens[size_t(start + t)];
    if (start + t + 1 < n) {
      target[size_t(t)] = tokens[size_t(start + t + 1)];
      scored[size_t(t)] = i == 0 || overlap == seq || t >= seq - overlap;
    }
  }
}

llvm::Expected<std::vector<LambadaExample>> meg::runtime::readLambada(llvm::StringRef path, const Tokenizer &tokenizer,
                                                                      bool strict) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return llvm::createStringError(buffer.getError(), path + ": cannot read: " + buffer.getError().message());
  std::vector<LambadaExample> examples;
  llvm::StringRef rest = (*buffer)->getBuffer();
  for (size_t line = 1; !rest.empty(); ++line) {
    auto [text, next] = rest.split('\n');
    rest = next;
    if (strip(text).empty())
      continue;
    auto parsed = meg::parseJson(text);
    if (!parsed)
      return lineError(path, line, "not JSON: " + llvm::toString(parsed.takeError()));
    const llvm::json::Object *object = parsed->getAsObject();
    llvm::Optional<llvm::StringRef> value = object ? object->getString("text") : llvm::None;
    if (!value)
      return lineError(path, line, "expected an object with a string \"text\"");
    LambadaExample example;
    if (!strict) {
      std::vector<int32_t> tokens = tokenizer.encode(*value);
      if (tokens.size() < 2)
        return lineError(path, line, llvm::formatv("the text has {0} token(s): no context before the last", tokens.size()));
      example.target.push_back(tokens.back());
      tokens.pop_back();
      example.context = std::move(tokens);
    } else {
      // The last whitespace-separated word, and the text before its last occurrence.
      llvm::StringRef body = strip(*value);
      size_t wordStart = body.size();
      while (wordStart > 0 && !isSpace(body[wordStart - 1]))
        --wordStart;
      llvm::StringRef word = body.substr(wordStart);
      if (word.empty())
        return lineError(path, line, "the text has no word");
      llvm::StringRef context = strip(value->substr(0, value->rfind(word)));
      example.context = tokenizer.encode(context);
      example.target = tokenizer.encode((" " + word).str());
      if (example.context.empty())
        return lineError(path, line, "no context before the last word '" + word + "'");
    }
    examples.push_back(std::move(example));
  }
  if (examples.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": no examples");
  return examples;
}
