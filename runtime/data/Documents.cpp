//===- Documents.cpp - documents and sentences of a corpus ----------------===//

#include "runtime/data/Documents.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <cassert>

using namespace llvm;

namespace meg::runtime {

static constexpr StringLiteral AsciiSpace = " \t\r\n\v\f";

std::vector<StringRef> splitDocuments(StringRef Text, StringRef SeparatorLine) {
  std::vector<StringRef> Docs;
  auto Keep = [&](StringRef Doc) {
    if (!Doc.trim(AsciiSpace).empty())
      Docs.push_back(Doc);
  };
  if (SeparatorLine.empty()) {
    Keep(Text);
    return Docs;
  }
  size_t DocBegin = 0, Pos = 0;
  while (Pos < Text.size()) {
    size_t Eol = Text.find('\n', Pos);
    size_t Next = Eol == StringRef::npos ? Text.size() : Eol + 1;
    StringRef Line =
        Text.slice(Pos, Eol == StringRef::npos ? Text.size() : Eol);
    if (Line.endswith("\r"))
      Line = Line.drop_back();
    if (Line == SeparatorLine) {
      Keep(Text.slice(DocBegin, Pos));
      DocBegin = Next;
    }
    Pos = Next;
  }
  Keep(Text.slice(DocBegin, Text.size()));
  return Docs;
}

/// The flags of one token's bytes.
static uint8_t flagsOf(StringRef Bytes) {
  uint8_t F = 0;
  if (Bytes.empty())
    return F;
  if (StringRef(".!?").contains(Bytes.back()))
    F |= EndsWithSentencePunct;
  if (AsciiSpace.contains(Bytes.front()))
    F |= StartsWithSpace;
  if (Bytes.find_first_not_of(AsciiSpace) == StringRef::npos)
    F |= AllSpace;
  return F;
}

std::vector<uint8_t> tokenFlags(const Tokenizer &Tok) {
  std::vector<uint8_t> Flags(Tok.vocabSize(), 0);
  for (uint32_t Id = 0; Id < Tok.vocabSize(); ++Id) {
    int32_t One = static_cast<int32_t>(Id);
    Expected<std::string> Bytes = Tok.decode(One);
    if (!Bytes) {
      consumeError(Bytes.takeError());
      continue;
    }
    Flags[Id] = flagsOf(*Bytes);
  }
  return Flags;
}

DocumentRule documentRuleFor(TokenizerKind Kind, int32_t EndOfDocument,
                             ArrayRef<uint8_t> Flags) {
  DocumentRule R;
  R.EndOfDocument = EndOfDocument;
  R.Flags = Flags.vec();
  if (Kind == TokenizerKind::Byte) {
    if (R.Flags.empty())
      R.Flags = tokenFlags(ByteTokenizer());
    R.ByteTextSeparators = EndOfDocument < 0;
  }
  return R;
}

DocumentIndex DocumentIndex::build(ArrayRef<int32_t> Tokens,
                                   const DocumentRule &Rule) {
  DocumentIndex Index;
  auto FlagsOf = [&](uint64_t I) -> uint8_t {
    int32_t T = Tokens[I];
    return T >= 0 && static_cast<size_t>(T) < Rule.Flags.size() ? Rule.Flags[T]
                                                                : 0;
  };
  auto AddDocument = [&](uint64_t Begin, uint64_t End) {
    if (Begin >= End)
      return;
    size_t First = Index.Sentences.size();
    uint64_t Start = Begin;
    for (uint64_t I = Begin; I < End; ++I) {
      bool EndsHere = (FlagsOf(I) & EndsWithSentencePunct) &&
                      (I + 1 == End || (FlagsOf(I + 1) & StartsWithSpace));
      if (EndsHere) {
        Index.Sentences.push_back({Start, I + 1});
        Start = I + 1;
      }
    }
    if (Start < End) {
      // A tail of whitespace belongs to the last sentence.
      bool Blank = true;
      for (uint64_t I = Start; I < End && Blank; ++I)
        Blank = FlagsOf(I) & AllSpace;
      if (Blank && Index.Sentences.size() > First)
        Index.Sentences.back().End = End;
      else if (!Blank)
        Index.Sentences.push_back({Start, End});
    }
    if (Index.Sentences.size() == First)
      return; // nothing but whitespace
    Index.Docs.push_back({Begin, End});
    Index.FirstSentence.push_back(First);
  };

  uint64_t N = Tokens.size(), DocBegin = 0;
  if (Rule.ByteTextSeparators) {
    // Lines; a "%" line or an empty line ends a document.
    uint64_t Pos = 0;
    while (Pos < N) {
      uint64_t Eol = Pos;
      while (Eol < N && Tokens[Eol] != '\n')
        ++Eol;
      uint64_t Next = std::min(N, Eol + 1);
      uint64_t ContentEnd = Eol;
      if (ContentEnd > Pos && Tokens[ContentEnd - 1] == '\r')
        --ContentEnd;
      bool Separator =
          Eol < N &&
          (ContentEnd == Pos || (ContentEnd == Pos + 1 && Tokens[Pos] == '%'));
      if (Separator) {
        AddDocument(DocBegin, Pos);
        DocBegin = Next;
      }
      Pos = Next;
    }
  } else {
    for (uint64_t I = 0; I < N; ++I)
      if (Tokens[I] == Rule.EndOfDocument) {
        AddDocument(DocBegin, I);
        DocBegin = I + 1;
      }
  }
  AddDocument(DocBegin, N);
  Index.FirstSentence.push_back(Index.Sentences.size());
  return Index;
}

size_t DocumentIndex::sentenceAt(uint64_t Pos) const {
  assert(!Sentences.empty() && "no sentences");
  auto It = llvm::partition_point(
      Sentences, [Pos](const TokenRange &R) { return R.End <= Pos; });
  if (It == Sentences.end())
    return Sentences.size() - 1;
  return static_cast<size_t>(It - Sentences.begin());
}

size_t DocumentIndex::documentOf(size_t S) const {
  assert(S < Sentences.size() && "sentence out of range");
  auto It = std::upper_bound(FirstSentence.begin(), FirstSentence.end(), S);
  return static_cast<size_t>(It - FirstSentence.begin()) - 1;
}

} // namespace meg::runtime
