//===- ActivationDump.cpp - every value of one training step, on disk ----------===//
#include "runtime/io/ActivationDump.h"

#include "ir/Json.h"
#include "runtime/io/AtomicFile.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace meg;
using namespace meg::runtime;

static constexpr llvm::StringLiteral kFormat("meg activations");
static constexpr int64_t kVersion = 1;

static llvm::Error error(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

static std::string inDir(llvm::StringRef dir, llvm::StringRef file) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, file);
  return std::string(path);
}

static std::string hex16(uint64_t v) { return llvm::formatv("{0:x-16}", v).str(); }

llvm::Error meg::runtime::writeActivationDump(llvm::StringRef dir, const DumpHeader &header,
                                              llvm::ArrayRef<DumpedValue> index,
                                              llvm::ArrayRef<std::vector<float>> values) {
  assert(index.size() == values.size() && "one buffer per value");
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return error(dir + ": cannot create directory: " + ec.message());
  SafetensorsWriter writer;
  llvm::StringSet<> keys;
  for (size_t i = 0; i < index.size(); ++i) {
    if (!keys.insert(index[i].key).second)
      return error(dir + ": two values have the key '" + index[i].key + "'");
    if (auto err = writer.addF32(index[i].key, index[i].shape, values[i]))
      return err;
  }
  writer.setMetadata("format", kFormat);
  std::string bytes = writer.serialize();
  if (auto err = writeFileAtomically(inDir(dir, "values.safetensors"), llvm::StringRef(bytes)))
    return err;

  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::formatv("{{\"format\": \"{0}\", \"version\": {1}, \"mesh\": \"{2}\", \"step\": {3}, \"backend\": "
                      "\"{4}\", \"vocab_rows\": {5}, \"vocab_padded\": {6}, \"values_checksum\": \"{7}\",\n"
                      "\"values\": [\n",
                      kFormat, kVersion, header.mesh, header.step, header.backend, header.vocabRows,
                      header.vocabPadded, hex16(checksum(llvm::StringRef(bytes))));
  for (size_t i = 0; i < index.size(); ++i) {
    const DumpedValue &v = index[i];
    llvm::json::Object entry{{"pos", int64_t(i)},  {"step", v.step},     {"key", v.key},
                             {"ir", v.ir},         {"op", v.op},         {"phase", v.phase},
                             {"result", v.result}, {"dtype", v.dtype},   {"shape", llvm::json::Array(v.shape)}};
    // llvm::json prints object keys sorted; the index is for people too, so the order above is kept by hand.
    os << "{";
    bool first = true;
    for (llvm::StringRef k : {"pos", "step", "key", "ir", "op", "phase", "result", "dtype", "shape"}) {
      os << (first ? "" : ", ") << '"' << k << "\": " << llvm::formatv("{0}", *entry.get(k));
      first = false;
    }
    os << (i + 1 < index.size() ? "},\n" : "}\n");
  }
  os << "]}\n";
  return writeFileAtomically(inDir(dir, "index.json"), llvm::StringRef(os.str()));
}

namespace {
/// Reads index.json's fields, each error naming the file and the entry.
class IndexReader {
public:
  explicit IndexReader(std::string path) : path(std::move(path)) {}

  llvm::Error fail(const llvm::Twine &what) const { return error(path + ": " + what); }

  llvm::Expected<int64_t> integer(const llvm::json::Object &o, llvm::StringRef key, const llvm::Twine &where) const {
    if (auto v = o.getInteger(key))
      return *v;
    return fail(where + ": '" + key + "' is missing or not an integer");
  }
  llvm::Expected<std::string> string(const llvm::json::Object &o, llvm::StringRef key,
                                     const llvm::Twine &where) const {
    if (auto v = o.getString(key))
      return v->str();
    return fail(where + ": '" + key + "' is missing or not a string");
  }

  llvm::Error value(const llvm::json::Value &json, size_t i, DumpedValue &v) const {
    std::string where = "value " + std::to_string(i);
    const llvm::json::Object *o = json.getAsObject();
    if (!o)
      return fail(where + " is not an object");
    for (auto [key, into] : {std::pair<llvm::StringRef, int64_t *>{"step", &v.step}, {"result", &v.result}}) {
      auto n = integer(*o, key, where);
      if (!n)
        return n.takeError();
      *into = *n;
    }
    for (auto [key, into] : {std::pair<llvm::StringRef, std::string *>{"key", &v.key},
                             {"ir", &v.ir},
                             {"op", &v.op},
                             {"phase", &v.phase},
                             {"dtype", &v.dtype}}) {
      auto s = string(*o, key, where);
      if (!s)
        return s.takeError();
      *into = std::move(*s);
    }
    const llvm::json::Array *shape = o->getArray("shape");
    if (!shape)
      return fail(where + ": 'shape' is missing or not an array");
    for (const llvm::json::Value &d : *shape) {
      auto n = d.getAsInteger();
      if (!n || *n < 0)
        return fail(where + ": 'shape' holds something other than sizes");
      v.shape.push_back(*n);
    }
    return llvm::Error::success();
  }

private:
  std::string path;
};
} // namespace

llvm::Expected<ActivationDump> ActivationDump::load(llvm::StringRef dir) {
  if (!llvm::sys::fs::is_directory(dir))
    return error(dir + ": not an activation dump (no such directory)");
  std::string indexPath = inDir(dir, "index.json");
  IndexReader reader(indexPath);
  auto buffer = llvm::MemoryBuffer::getFile(indexPath, /*IsText=*/true);
  if (!buffer)
    return reader.fail("cannot read: " + buffer.getError().message());
  auto json = parseJson((*buffer)->getBuffer());
  if (!json)
    return reader.fail("malformed JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *top = json->getAsObject();
  if (!top)
    return reader.fail("not a JSON object");
  auto format = top->getString("format");
  if (!format || *format != kFormat)
    return reader.fail("not an activation dump (format is not \"meg activations\")");
  auto version = top->getInteger("version");
  if (!version || *version != kVersion)
    return reader.fail(llvm::formatv("version {0} (this tool reads version {1})", version ? *version : -1, kVersion));

  ActivationDump dump;
  dump.dirPath = dir.str();
  DumpHeader &h = dump.head;
  for (auto [key, into] : {std::pair<llvm::StringRef, std::string *>{"mesh", &h.mesh}, {"backend", &h.backend}}) {
    auto s = reader.string(*top, key, "index");
    if (!s)
      return s.takeError();
    *into = std::move(*s);
  }
  for (auto [key, into] : {std::pair<llvm::StringRef, int64_t *>{"step", &h.step},
                           {"vocab_rows", &h.vocabRows},
                           {"vocab_padded", &h.vocabPadded}}) {
    auto n = reader.integer(*top, key, "index");
    if (!n)
      return n.takeError();
    *into = *n;
  }
  auto sum = reader.string(*top, "values_checksum", "index");
  if (!sum)
    return sum.takeError();
  const llvm::json::Array *values = top->getArray("values");
  if (!values)
    return reader.fail("index: 'values' is missing or not an array");
  llvm::StringSet<> keys;
  for (size_t i = 0; i < values->size(); ++i) {
    DumpedValue v;
    if (auto err = reader.value((*values)[i], i, v))
      return std::move(err);
    if (!keys.insert(v.key).second)
      return reader.fail("value " + llvm::Twine(i) + ": key '" + v.key + "' is listed twice");
    dump.index.push_back(std::move(v));
  }

  std::string valuesPath = inDir(dir, "values.safetensors");
  auto bytes = llvm::MemoryBuffer::getFile(valuesPath, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!bytes)
    return error(valuesPath + ": cannot read: " + bytes.getError().message());
  if (hex16(checksum((*bytes)->getBuffer())) != *sum)
    return error(valuesPath + ": checksum mismatch with index.json (corrupted or from another dump)");
  auto file = SafetensorsFile::fromBuffer(std::move(*bytes), valuesPath);
  if (!file)
    return file.takeError();
  dump.file = std::make_shared<SafetensorsFile>(std::move(*file));
  for (const DumpedValue &v : dump.index) {
    const SafetensorsTensor *t = dump.file->lookup(v.key);
    if (!t)
      return error(valuesPath + ": no tensor '" + v.key + "' (listed in index.json)");
    if (t->DType != SafetensorsDType::F32 || t->Shape != v.shape)
      return error(valuesPath + ": tensor '" + v.key + "' is not f32 of the shape index.json lists");
    auto data = dump.file->toFloats(v.key);
    if (!data)
      return data.takeError();
    dump.floats.push_back(std::move(*data));
  }
  return dump;
}

llvm::ArrayRef<float> ActivationDump::data(size_t i) const { return floats[i]; }
