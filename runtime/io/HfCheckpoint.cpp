//===- HfCheckpoint.cpp - Hugging Face checkpoints as published ---------------===//
#include "runtime/io/HfCheckpoint.h"

#include "ir/Json.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace meg::runtime;

static llvm::Error fail(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

static std::string lowerFirst(std::string s) {
  if (!s.empty())
    s[0] = char(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

llvm::Expected<HfCheckpoint> HfCheckpoint::open(llvm::StringRef path) {
  HfCheckpoint c;
  std::string file = path.str();
  if (llvm::sys::fs::is_directory(path)) {
    llvm::SmallString<256> index(path), single(path);
    llvm::sys::path::append(index, kHfIndexFile);
    llvm::sys::path::append(single, kHfWeightsFile);
    if (llvm::sys::fs::exists(index))
      file = std::string(index);
    else if (llvm::sys::fs::exists(single))
      file = std::string(single);
    else
      return fail(path + ": a model folder needs " + kHfWeightsFile + " or " + kHfIndexFile);
  }
  c.describedBy = file;
  if (!llvm::StringRef(file).endswith(".json")) {
    auto opened = SafetensorsFile::open(file);
    if (!opened)
      return opened.takeError();
    for (const std::string &name : opened->names())
      c.fileOf[name] = 0;
    c.files.push_back(std::move(*opened));
    return c;
  }

  // A sharded checkpoint: the index maps each tensor to its shard.
  auto text = llvm::MemoryBuffer::getFile(file, /*IsText=*/true);
  if (!text)
    return fail(file + ": " + lowerFirst(text.getError().message()));
  auto parsed = meg::parseJson((*text)->getBuffer());
  if (!parsed)
    return fail(file + ": " + llvm::toString(parsed.takeError()));
  const llvm::json::Object *root = parsed->getAsObject();
  const llvm::json::Object *map = root ? root->getObject("weight_map") : nullptr;
  if (!map)
    return fail(file + ": expected an object with a 'weight_map' object (tensor name -> shard file)");
  std::map<std::string, size_t> shardIndex; // shard file name -> index into files
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto &[key, value] : *map) {
    llvm::Optional<llvm::StringRef> shard = value.getAsString();
    if (!shard || shard->empty() || llvm::sys::path::has_parent_path(*shard))
      return fail(file + ": weight_map entry '" + key.str() + "' must name a shard file in the same folder");
    entries.emplace_back(key.str(), shard->str());
    shardIndex.emplace(shard->str(), 0);
  }
  if (entries.empty())
    return fail(file + ": the weight_map is empty");
  llvm::StringRef dir = llvm::sys::path::parent_path(file);
  for (auto &[shard, index] : shardIndex) {
    llvm::SmallString<256> shardPath(dir);
    llvm::sys::path::append(shardPath, shard);
    if (!llvm::sys::fs::exists(shardPath))
      return fail(file + ": the weight_map names shard '" + shard + "', which does not exist");
    auto opened = SafetensorsFile::open(shardPath);
    if (!opened)
      return opened.takeError();
    index = c.files.size();
    c.files.push_back(std::move(*opened));
  }
  for (const auto &[name, shard] : entries) {
    size_t index = shardIndex[shard];
    if (!c.files[index].contains(name))
      return fail(file + ": the weight_map puts '" + name + "' in shard '" + shard + "', which does not hold it");
    c.fileOf[name] = index;
  }
  for (const SafetensorsFile &f : c.files)
    for (const std::string &name : f.names())
      if (!c.fileOf.count(name) || c.files[c.fileOf.find(name)->second].path() != f.path())
        return fail(f.path() + ": tensor '" + name + "' is not in the weight_map of " + file + " for this shard");
  return c;
}

std::vector<std::string> HfCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto &entry : fileOf)
    out.push_back(entry.first);
  return out;
}

const SafetensorsTensor *HfCheckpoint::lookup(llvm::StringRef name) const {
  auto it = fileOf.find(name);
  return it == fileOf.end() ? nullptr : files[it->second].lookup(name);
}

llvm::Expected<std::vector<float>> HfCheckpoint::toFloats(llvm::StringRef name) const {
  auto it = fileOf.find(name);
  if (it == fileOf.end())
    return fail(describedBy + ": no tensor '" + name + "'");
  return files[it->second].toFloats(name);
}
