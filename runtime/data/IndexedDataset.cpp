//===- IndexedDataset.cpp - Megatron's indexed datasets (.bin + .idx) ---------===//
#include "runtime/data/IndexedDataset.h"

#include "runtime/io/AtomicFile.h"

#include "llvm/Support/Endian.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <cstring>

using namespace meg::runtime;
namespace endian = llvm::support::endian;

static constexpr char kMagic[] = "MMIDIDX\0\0";
static constexpr size_t kMagicSize = 9, kHeaderSize = 34;

static llvm::Error fail(const llvm::Twine &file, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), file + ": " + what);
}

/// Bytes per token of a dtype code; 0 when the code is unknown.
static size_t codeSize(uint8_t code) {
  static const size_t sizes[] = {0, 1, 1, 2, 4, 8, 8, 4, 2};
  return code < std::size(sizes) ? sizes[code] : 0;
}

/// Token `i` of a sequence stored with `code` at `p`, as a double (exact for every integer that fits an int32).
static double tokenAt(const uint8_t *p, uint8_t code, uint64_t i) {
  switch (code) {
  case 1:
    return p[i];
  case 2:
    return int8_t(p[i]);
  case 3:
    return int16_t(endian::read16le(p + 2 * i));
  case 4:
    return int32_t(endian::read32le(p + 4 * i));
  case 5:
    return double(int64_t(endian::read64le(p + 8 * i)));
  case 6: {
    uint64_t bits = endian::read64le(p + 8 * i);
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  case 7: {
    uint32_t bits = endian::read32le(p + 4 * i);
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }
  default:
    return endian::read16le(p + 2 * i);
  }
}

llvm::Expected<IndexedDataset> meg::runtime::readIndexedDataset(llvm::StringRef prefix) {
  std::string idxPath = (prefix + ".idx").str(), binPath = (prefix + ".bin").str();
  auto idx = llvm::MemoryBuffer::getFile(idxPath, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!idx)
    return fail(idxPath, "cannot read: " + idx.getError().message());
  llvm::StringRef bytes = (*idx)->getBuffer();
  const uint8_t *p = reinterpret_cast<const uint8_t *>(bytes.data());
  if (bytes.size() < kHeaderSize)
    return fail(idxPath, llvm::formatv("truncated: {0} bytes, the header alone is {1}", bytes.size(), kHeaderSize));
  if (std::memcmp(p, kMagic, kMagicSize) != 0)
    return fail(idxPath, "not a Megatron indexed dataset index (no MMIDIDX header)");
  if (uint64_t version = endian::read64le(p + 9); version != 1)
    return fail(idxPath, llvm::formatv("version {0} (only version 1 is known)", version));
  IndexedDataset d;
  d.dtypeCode = p[17];
  size_t size = codeSize(d.dtypeCode);
  if (!size)
    return fail(idxPath, llvm::formatv("unknown dtype code {0} (expected 1..8)", unsigned(d.dtypeCode)));
  uint64_t n = endian::read64le(p + 18), docs = endian::read64le(p + 26);
  uint64_t limit = bytes.size(); // counts beyond the file size are refused before any arithmetic overflows
  if (n > limit || docs > limit)
    return fail(idxPath, llvm::formatv("truncated: {0} sequences and {1} document index entries do not fit in {2} "
                                       "bytes",
                                       n, docs, bytes.size()));
  uint64_t need = kHeaderSize + 12 * n + 8 * docs;
  if (bytes.size() != need && bytes.size() != need + n)
    return fail(idxPath, llvm::formatv("{0} bytes, expected {1} for {2} sequences and {3} document index entries",
                                       bytes.size(), need, n, docs));
  if (docs < 1)
    return fail(idxPath, "the document index is empty (it starts with 0)");
  const uint8_t *lengths = p + kHeaderSize, *pointers = lengths + 4 * n, *docIndex = pointers + 8 * n;

  auto bin = llvm::MemoryBuffer::getFile(binPath, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!bin)
    return fail(binPath, "cannot read: " + bin.getError().message());
  const uint8_t *data = reinterpret_cast<const uint8_t *>((*bin)->getBufferStart());
  uint64_t binSize = (*bin)->getBufferSize();

  d.sequences = n;
  d.tokens = std::make_shared<std::vector<int32_t>>();
  std::vector<uint64_t> sequenceStarts;
  for (uint64_t s = 0; s < n; ++s) {
    int32_t length = int32_t(endian::read32le(lengths + 4 * s));
    int64_t pointer = int64_t(endian::read64le(pointers + 8 * s));
    if (length < 0)
      return fail(idxPath, llvm::formatv("sequence {0} has length {1}", s, length));
    if (pointer < 0 || uint64_t(pointer) % size || uint64_t(pointer) > binSize ||
        uint64_t(length) * size > binSize - uint64_t(pointer))
      return fail(idxPath, llvm::formatv("sequence {0} ({1} tokens at byte {2}) is not inside {3} ({4} bytes)", s,
                                         length, pointer, binPath, binSize));
    sequenceStarts.push_back(d.tokens->size());
    for (int32_t i = 0; i < length; ++i) {
      double v = tokenAt(data + pointer, d.dtypeCode, uint64_t(i));
      if (!(v >= 0 && v < 2147483648.0 && v == std::floor(v)))
        return fail(binPath, llvm::formatv("sequence {0}, token {1}: {2} is not a token id", s, i, v));
      d.tokens->push_back(int32_t(v));
    }
  }
  sequenceStarts.push_back(d.tokens->size());
  for (uint64_t i = 0; i < docs; ++i) {
    int64_t seqIndex = int64_t(endian::read64le(docIndex + 8 * i));
    int64_t previous = i ? int64_t(endian::read64le(docIndex + 8 * (i - 1))) : 0;
    if (seqIndex < previous || uint64_t(seqIndex) > n || (i == 0 && seqIndex != 0))
      return fail(idxPath, llvm::formatv("document index entry {0} is {1} (entries rise from 0 to the {2} sequences)",
                                         i, seqIndex, n));
    d.documentStarts.push_back(sequenceStarts[size_t(seqIndex)]);
  }
  if (uint64_t(endian::read64le(docIndex + 8 * (docs - 1))) != n)
    return fail(idxPath, llvm::formatv("the document index ends at sequence {0}, not at the {1} sequences",
                                       endian::read64le(docIndex + 8 * (docs - 1)), n));
  return d;
}

uint8_t meg::runtime::indexedDatasetDTypeFor(uint32_t vocabSize) { return vocabSize < 65500 ? 8 : 4; }

llvm::Error meg::runtime::writeIndexedDataset(llvm::StringRef prefix, llvm::ArrayRef<int32_t> tokens,
                                              llvm::ArrayRef<uint64_t> documentEnds, uint32_t vocabSize) {
  uint8_t code = indexedDatasetDTypeFor(vocabSize);
  size_t size = codeSize(code);
  std::string bin, idx;
  bin.resize(tokens.size() * size);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || uint32_t(tokens[i]) >= vocabSize)
      return fail(prefix + ".bin", llvm::formatv("token {0} ({1}) is outside the vocabulary of {2}", i, tokens[i],
                                                 vocabSize));
    if (size == 2)
      endian::write16le(&bin[2 * i], uint16_t(tokens[i]));
    else
      endian::write32le(&bin[4 * i], uint32_t(tokens[i]));
  }
  auto put = [&](auto value) {
    char buf[sizeof(value)];
    endian::write<decltype(value), llvm::support::little, 1>(buf, value);
    idx.append(buf, sizeof(value));
  };
  idx.append(kMagic, kMagicSize);
  put(uint64_t(1));
  put(code);
  put(uint64_t(documentEnds.size()));
  put(uint64_t(documentEnds.size() + 1));
  uint64_t begin = 0;
  for (uint64_t end : documentEnds) {
    assert(end >= begin && end <= tokens.size() && "document ends out of order");
    put(int32_t(end - begin));
    begin = end;
  }
  begin = 0;
  for (uint64_t end : documentEnds) {
    put(int64_t(begin * size));
    begin = end;
  }
  for (uint64_t i = 0; i <= documentEnds.size(); ++i)
    put(int64_t(i));
  if (auto err = writeFileAtomically(prefix.str() + ".bin", llvm::StringRef(bin)))
    return err;
  return writeFileAtomically(prefix.str() + ".idx", llvm::StringRef(idx));
}
