//===- TokenData.cpp - token files, text corpora and the batcher ---------===//

#include "runtime/data/TokenData.h"

#include "ir/File.h"
#include "runtime/io/AtomicFile.h"
#include "runtime/data/Documents.h"

#include "llvm/Support/Endian.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace llvm;

namespace meg::runtime {

static Error fail(StringRef Path, const Twine &What) {
  return createStringError(inconvertibleErrorCode(), Path + ": " + What);
}

//===----------------------------------------------------------------------===//
// Token files
//===----------------------------------------------------------------------===//

/// Size of the version-2 flag table on disk (padded to 4 bytes).
static uint64_t paddedFlags(uint64_t F) { return (F + 3) / 4 * 4; }

Error writeTokenFile(StringRef Path, ArrayRef<int32_t> Tokens,
                     uint32_t VocabSize, TokenizerKind Kind,
                     const TokenFileMeta &Meta) {
  if (VocabSize == 0)
    return fail(Path, "vocabulary size must be positive");
  for (size_t I = 0; I < Tokens.size(); ++I)
    if (Tokens[I] < 0 || static_cast<uint32_t>(Tokens[I]) >= VocabSize)
      return fail(Path, "token " + Twine(Tokens[I]) + " at index " + Twine(I) +
                            " is outside the vocabulary [0, " +
                            Twine(VocabSize) + ")");
  if (Meta.EndOfDocument < -1 ||
      (Meta.EndOfDocument >= 0 &&
       static_cast<uint32_t>(Meta.EndOfDocument) >= VocabSize))
    return fail(Path, "end-of-document id " + Twine(Meta.EndOfDocument) +
                          " is outside the vocabulary [0, " + Twine(VocabSize) +
                          ")");
  if (!Meta.Flags.empty() && Meta.Flags.size() != VocabSize)
    return fail(Path, "flag table has " + Twine(Meta.Flags.size()) +
                          " entries for a vocabulary of " + Twine(VocabSize));
  bool V2 = Meta.EndOfDocument >= 0 || !Meta.Flags.empty();
  return writeFileAtomically(Path, [&](raw_ostream &OS) {
    char Header[TokenFileHeaderSize + 8];
    std::memcpy(Header, TokenFileMagic.data(), 8);
    support::endian::write32le(Header + 8, V2 ? 2 : 1);
    support::endian::write32le(Header + 12, VocabSize);
    support::endian::write64le(Header + 16, Tokens.size());
    support::endian::write32le(Header + 24, static_cast<uint32_t>(Kind));
    support::endian::write32le(Header + 28,
                               static_cast<uint32_t>(Meta.EndOfDocument));
    support::endian::write32le(Header + 32, Meta.Flags.size());
    OS.write(Header, V2 ? sizeof(Header) : TokenFileHeaderSize);
    if (V2) {
      OS.write(reinterpret_cast<const char *>(Meta.Flags.data()),
               Meta.Flags.size());
      OS.write_zeros(paddedFlags(Meta.Flags.size()) - Meta.Flags.size());
    }
    char Buf[4096];
    size_t Fill = 0;
    for (int32_t T : Tokens) {
      support::endian::write32le(Buf + Fill, static_cast<uint32_t>(T));
      Fill += 4;
      if (Fill == sizeof(Buf)) {
        OS.write(Buf, Fill);
        Fill = 0;
      }
    }
    OS.write(Buf, Fill);
    return Error::success();
  });
}

Expected<TokenFile> TokenFile::open(StringRef Path) {
  Expected<std::unique_ptr<MemoryBuffer>> Buffer = meg::readInputFile(Path);
  if (!Buffer)
    return fail(Path, "cannot open file: " + toString(Buffer.takeError()));
  StringRef Bytes = (*Buffer)->getBuffer();
  if (Bytes.size() < TokenFileHeaderSize)
    return fail(Path, "file is too short for a token file header (" +
                          Twine(Bytes.size()) + " bytes, need " +
                          Twine(TokenFileHeaderSize) + ")");
  if (!Bytes.startswith(TokenFileMagic))
    return fail(Path, "not a token file (bad magic, expected \"MEGTOK01\")");
  const char *P = Bytes.data();
  uint32_t Version = support::endian::read32le(P + 8);
  if (Version != 1 && Version != 2)
    return fail(Path, "unsupported token file version " + Twine(Version) +
                          " (expected 1 or 2)");
  uint32_t VocabSize = support::endian::read32le(P + 12);
  if (VocabSize == 0)
    return fail(Path, "vocabulary size is 0");
  uint64_t Count = support::endian::read64le(P + 16);
  uint32_t Kind = support::endian::read32le(P + 24);
  if (Kind > static_cast<uint32_t>(TokenizerKind::Gpt2Bpe))
    return fail(Path, "unknown tokenizer kind " + Twine(Kind));
  uint64_t HeaderSize = TokenFileHeaderSize;
  TokenFileMeta Meta;
  if (Version == 2) {
    if (Bytes.size() < TokenFileHeaderSize + 8)
      return fail(Path, "file is too short for a version 2 header (" +
                            Twine(Bytes.size()) + " bytes, need " +
                            Twine(TokenFileHeaderSize + 8) + ")");
    Meta.EndOfDocument =
        static_cast<int32_t>(support::endian::read32le(P + 28));
    if (Meta.EndOfDocument < -1 ||
        (Meta.EndOfDocument >= 0 &&
         static_cast<uint32_t>(Meta.EndOfDocument) >= VocabSize))
      return fail(Path, "end-of-document id " + Twine(Meta.EndOfDocument) +
                            " is outside the vocabulary [0, " +
                            Twine(VocabSize) + ")");
    uint32_t F = support::endian::read32le(P + 32);
    if (F != 0 && F != VocabSize)
      return fail(Path, "flag table has " + Twine(F) +
                            " entries for a vocabulary of " + Twine(VocabSize));
    HeaderSize = TokenFileHeaderSize + 8 + paddedFlags(F);
    if (Bytes.size() < HeaderSize)
      return fail(Path, "file is too short for its flag table (" +
                            Twine(Bytes.size()) + " bytes, need " +
                            Twine(HeaderSize) + ")");
    Meta.Flags.assign(P + TokenFileHeaderSize + 8,
                      P + TokenFileHeaderSize + 8 + F);
  }
  uint64_t Payload = Bytes.size() - HeaderSize;
  if (Count > Payload / 4 || Payload != Count * 4)
    return fail(Path, "header says " + Twine(Count) + " tokens (" +
                          Twine(HeaderSize) + " + 4*" + Twine(Count) +
                          " bytes) but the file has " + Twine(Bytes.size()) +
                          " bytes");
  auto Tokens = std::make_shared<std::vector<int32_t>>(Count);
  const char *Data = P + HeaderSize;
  for (uint64_t I = 0; I < Count; ++I) {
    int32_t T = static_cast<int32_t>(support::endian::read32le(Data + 4 * I));
    if (T < 0 || static_cast<uint32_t>(T) >= VocabSize)
      return fail(Path, "token " + Twine(T) + " at index " + Twine(I) +
                            " (byte offset " + Twine(HeaderSize + 4 * I) +
                            ") is outside the vocabulary [0, " +
                            Twine(VocabSize) + ")");
    (*Tokens)[I] = T;
  }
  TokenFile File;
  File.Path = Path.str();
  File.VocabSize = VocabSize;
  File.Kind = static_cast<TokenizerKind>(Kind);
  File.Version = Version;
  File.Meta = std::move(Meta);
  File.Tokens = std::move(Tokens);
  return File;
}

//===----------------------------------------------------------------------===//
// TextCorpus
//===----------------------------------------------------------------------===//

TextCorpus TextCorpus::fromText(StringRef Text, const Tokenizer &Tok) {
  TextCorpus C;
  C.Tokens = Tok.encode(Text);
  C.VocabSize = Tok.vocabSize();
  C.Kind = Tok.kind();
  return C;
}

Expected<TextCorpus> TextCorpus::fromFiles(ArrayRef<std::string> Paths,
                                           const Tokenizer &Tok,
                                           int32_t Separator) {
  if (Separator >= 0 && static_cast<uint32_t>(Separator) >= Tok.vocabSize())
    return createStringError(inconvertibleErrorCode(),
                             "separator id " + Twine(Separator) +
                                 " is outside the vocabulary");
  TextCorpus C;
  C.VocabSize = Tok.vocabSize();
  C.Kind = Tok.kind();
  for (const std::string &Path : Paths) {
    Expected<std::unique_ptr<MemoryBuffer>> Buffer = meg::readInputFile(Path);
    if (!Buffer)
      return fail(Path, "cannot open file: " + toString(Buffer.takeError()));
    llvm::append_range(C.Tokens, Tok.encode((*Buffer)->getBuffer()));
    if (Separator >= 0)
      C.Tokens.push_back(Separator);
  }
  return C;
}

Expected<TextCorpus> TextCorpus::fromFiles(ArrayRef<std::string> Paths,
                                           const Tokenizer &Tok,
                                           const CorpusOptions &Options) {
  int32_t Eod = Options.EndOfDocument;
  if (Eod >= 0 && static_cast<uint32_t>(Eod) >= Tok.vocabSize())
    return createStringError(inconvertibleErrorCode(),
                             "end-of-document id " + Twine(Eod) +
                                 " is outside the vocabulary");
  TextCorpus C;
  C.VocabSize = Tok.vocabSize();
  C.Kind = Tok.kind();
  C.Meta.EndOfDocument = Eod;
  C.Meta.Flags = tokenFlags(Tok);
  for (const std::string &Path : Paths) {
    Expected<std::unique_ptr<MemoryBuffer>> Buffer = meg::readInputFile(Path);
    if (!Buffer)
      return fail(Path, "cannot open file: " + toString(Buffer.takeError()));
    for (StringRef Doc :
         splitDocuments((*Buffer)->getBuffer(), Options.SeparatorLine)) {
      llvm::append_range(C.Tokens, Tok.encode(Doc));
      if (Eod >= 0)
        C.Tokens.push_back(Eod);
      ++C.Documents;
      C.Bytes += Doc.size();
      C.DocumentEnds.push_back(C.Tokens.size());
    }
  }
  return C;
}

Error TextCorpus::write(StringRef Path) const {
  return writeTokenFile(Path, Tokens, VocabSize, Kind, Meta);
}

//===----------------------------------------------------------------------===//
// Batcher
//===----------------------------------------------------------------------===//

uint64_t SplitMix64::next() {
  uint64_t Z = (State += 0x9E3779B97F4A7C15ull);
  Z = (Z ^ (Z >> 30)) * 0xBF58476D1CE4E5B9ull;
  Z = (Z ^ (Z >> 27)) * 0x94D049BB133111EBull;
  return Z ^ (Z >> 31);
}

uint64_t SplitMix64::below(uint64_t N) {
  assert(N > 0 && "empty range");
  // Reject the lowest 2^64 mod N values so that every residue is equally
  // likely.
  uint64_t Threshold = (0 - N) % N;
  for (;;) {
    uint64_t X = next();
    if (X >= Threshold)
      return X % N;
  }
}

json::Value toJSON(const BatcherPosition &P) {
  return json::Object{{"epoch", static_cast<int64_t>(P.Epoch)},
                      {"index", static_cast<int64_t>(P.Index)}};
}

bool fromJSON(const json::Value &V, BatcherPosition &P, json::Path Path) {
  json::ObjectMapper O(V, Path);
  return O && O.map("epoch", P.Epoch) && O.map("index", P.Index);
}

Expected<Batcher> Batcher::create(ArrayRef<int32_t> Tokens,
                                  const BatcherOptions &Options) {
  return create(std::make_shared<const std::vector<int32_t>>(Tokens.vec()),
                Options);
}

Expected<Batcher>
Batcher::create(std::shared_ptr<const std::vector<int32_t>> Tokens,
                const BatcherOptions &Options) {
  auto Bad = [](const Twine &What) {
    return createStringError(inconvertibleErrorCode(), "batcher: " + What);
  };
  if (Options.SeqLen <= 0)
    return Bad("sequence length must be positive, got " +
               Twine(Options.SeqLen));
  if (Options.MicroBatch <= 0)
    return Bad("micro-batch size must be positive, got " +
               Twine(Options.MicroBatch));
  if (!(Options.ValidFraction >= 0 && Options.ValidFraction < 1)) {
    std::string Got;
    raw_string_ostream(Got) << format("%g", Options.ValidFraction);
    return Bad("validation fraction must be in [0, 1), got " + Got);
  }
  uint64_t Total = Tokens->size();
  uint64_t ValidTokens =
      static_cast<uint64_t>(std::floor(Total * Options.ValidFraction));
  uint64_t TrainTokens = Total - ValidTokens;
  Batcher B;
  B.Options = Options;
  B.SplitBegin = Options.Split == DataSplit::Train ? 0 : TrainTokens;
  B.SplitSize = Options.Split == DataSplit::Train ? TrainTokens : ValidTokens;
  if (!Options.SplitBounds.empty()) {
    const std::vector<uint64_t> &Bounds = Options.SplitBounds;
    size_t I = static_cast<size_t>(Options.Split);
    if (Bounds.size() != 4 || !std::is_sorted(Bounds.begin(), Bounds.end()) ||
        Bounds[3] > Total)
      return Bad("split bounds must be 4 rising token offsets within the "
                 "stream");
    B.SplitBegin = Bounds[I];
    B.SplitSize = Bounds[I + 1] - Bounds[I];
  } else if (Options.Split == DataSplit::Test) {
    return Bad("a test split needs split bounds (--split)");
  }
  uint64_t Window = static_cast<uint64_t>(Options.SeqLen) + 1;
  B.NumWindows = B.SplitSize / Window;
  static const char *const SplitNames[] = {"train", "valid", "test"};
  if (B.NumWindows == 0)
    return Bad(Twine(SplitNames[static_cast<size_t>(Options.Split)]) +
               " split has " + Twine(B.SplitSize) +
               " tokens, fewer than one window of " + Twine(Window));
  B.Tokens = std::move(Tokens);
  B.Cache = std::make_unique<OrderCache>();
  return B;
}

std::vector<uint64_t> Batcher::epochOrder(uint64_t Epoch) const {
  std::vector<uint64_t> Order(NumWindows);
  for (uint64_t I = 0; I < NumWindows; ++I)
    Order[I] = I;
  if (!Options.Shuffle)
    return Order;
  // Fisher-Yates, drawing j uniformly from [0, i].
  SplitMix64 Rng(Options.Seed + Epoch);
  for (uint64_t I = NumWindows - 1; I > 0; --I)
    std::swap(Order[I], Order[Rng.below(I + 1)]);
  return Order;
}

uint64_t Batcher::windowOf(uint64_t G) const {
  uint64_t Epoch = G / NumWindows, Index = G % NumWindows;
  std::lock_guard<std::mutex> Lock(Cache->Mutex);
  for (int Slot = 0; Slot < 2; ++Slot)
    if (Cache->Epochs[Slot] == Epoch)
      return Cache->Orders[Slot][Index];
  // Keep the two most recent epochs (a batch can straddle two).
  int Slot;
  if (Cache->Epochs[0] == ~0ull)
    Slot = 0;
  else if (Cache->Epochs[1] == ~0ull)
    Slot = 1;
  else
    Slot = Cache->Epochs[0] < Cache->Epochs[1] ? 0 : 1;
  Cache->Epochs[Slot] = Epoch;
  Cache->Orders[Slot] = epochOrder(Epoch);
  return Cache->Orders[Slot][Index];
}

BatcherPosition Batcher::positionOfStep(uint64_t Step) const {
  uint64_t G = Step * static_cast<uint64_t>(Options.MicroBatch);
  return {G / NumWindows, G % NumWindows};
}

Expected<Batch> Batcher::batchAt(uint64_t FirstWindow, unsigned DpRank,
                                 unsigned DpSize) const {
  uint64_t B = Options.MicroBatch;
  if (DpSize == 0 || B % DpSize != 0)
    return createStringError(inconvertibleErrorCode(),
                             "batcher: micro-batch " + Twine(B) +
                                 " is not divisible by data-parallel size " +
                                 Twine(DpSize));
  if (DpRank >= DpSize)
    return createStringError(inconvertibleErrorCode(),
                             "batcher: data-parallel rank " + Twine(DpRank) +
                                 " is not below size " + Twine(DpSize));
  int64_t S = Options.SeqLen;
  uint64_t Rows = B / DpSize;
  Batch Out;
  Out.Rows = static_cast<int64_t>(Rows);
  Out.SeqLen = S;
  Out.Start = {FirstWindow / NumWindows, FirstWindow % NumWindows};
  Out.InputIds.resize(Rows * S);
  Out.Labels.resize(Rows * S);
  Out.RowOffsets.resize(Rows);
  const std::vector<int32_t> &T = *Tokens;
  for (uint64_t R = 0; R < Rows; ++R) {
    uint64_t W = windowOf(FirstWindow + DpRank * Rows + R);
    Out.RowOffsets[R] = SplitBegin + W * (S + 1);
    const int32_t *Src = T.data() + Out.RowOffsets[R];
    std::copy(Src, Src + S, Out.InputIds.begin() + R * S);
    std::copy(Src + 1, Src + S + 1, Out.Labels.begin() + R * S);
  }
  return Out;
}

Expected<Batch> Batcher::batchFor(uint64_t Step, unsigned DpRank,
                                  unsigned DpSize) const {
  return batchAt(Step * static_cast<uint64_t>(Options.MicroBatch), DpRank,
                 DpSize);
}

Expected<Batch> Batcher::next(unsigned DpRank, unsigned DpSize) {
  uint64_t G = Position.Epoch * NumWindows + Position.Index;
  Expected<Batch> B = batchAt(G, DpRank, DpSize);
  if (!B)
    return B.takeError();
  G += Options.MicroBatch;
  Position = {G / NumWindows, G % NumWindows};
  return B;
}

Error Batcher::setPosition(BatcherPosition P) {
  if (P.Index >= NumWindows)
    return createStringError(inconvertibleErrorCode(),
                             "batcher: position index " + Twine(P.Index) +
                                 " is not below the " + Twine(NumWindows) +
                                 " windows of an epoch");
  Position = P;
  return Error::success();
}

} // namespace meg::runtime
