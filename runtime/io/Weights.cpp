//===- Weights.cpp - full Hugging Face weights <-> per-rank shards ------------===//
#include "runtime/io/Weights.h"

#include "ir/Json.h"
#include "runtime/io/AtomicFile.h"
#include "runtime/io/HfCheckpoint.h"
#include "runtime/io/Safetensors.h"
#include "runtime/plan/ShardCopy.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"

#include <cstdio>
#include <set>

using namespace meg;
using namespace meg::runtime;

static std::string shapeText(llvm::ArrayRef<int64_t> s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

HfArchitecture meg::runtime::hfArchitecture(const LoadedPlan &plan) {
  if (plan.findParam("transformer.wte.weight"))
    return HfArchitecture::Gpt2;
  if (plan.findParam("bert.encoder.ln.weight"))
    return HfArchitecture::MegatronBert;
  if (plan.findParam("bert.embeddings.word_embeddings.weight"))
    return HfArchitecture::Bert;
  return HfArchitecture::Unknown;
}

llvm::StringRef meg::runtime::hfClassName(HfArchitecture a) {
  switch (a) {
  case HfArchitecture::Gpt2:
    return "GPT2LMHeadModel";
  case HfArchitecture::Bert:
    return "BertForPreTraining";
  case HfArchitecture::MegatronBert:
    return "MegatronBertForPreTraining";
  case HfArchitecture::Unknown:
    break;
  }
  return "";
}

std::string meg::runtime::hfConfigJson(const LoadedPlan &plan) {
  llvm::json::Object config;
  auto parsed = meg::parseJson(plan.model);
  if (!parsed)
    llvm::consumeError(parsed.takeError());
  else if (llvm::json::Object *obj = parsed->getAsObject())
    config = std::move(*obj);
  HfArchitecture arch = hfArchitecture(plan);
  static const char *modelTypes[] = {"gpt2", "bert", "megatron-bert"};
  if (arch != HfArchitecture::Unknown) {
    std::string cls = hfClassName(arch).str();
    // A fine-tuning head: BertForMultipleChoice ([B, C, S] inputs) or BertForSequenceClassification (num_labels =
    // the classifier's rows).
    if (auto head = plan.findParam("classifier.weight")) {
      auto ids = plan.findInput("input_ids");
      bool choices = ids && plan.inputs[*ids].globalShape.size() == 3;
      cls = llvm::StringRef(cls).drop_back(llvm::StringRef("ForPreTraining").size()).str() +
            (choices ? "ForMultipleChoice" : "ForSequenceClassification");
      if (!choices)
        config["num_labels"] = plan.params[*head].globalShape[0];
    }
    config["architectures"] = llvm::json::Array{cls};
    config["model_type"] = modelTypes[unsigned(arch)];
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(config))) << "\n";
  return os.str();
}

namespace {

/// Hugging Face state_dict entries that are not parameters of their own: tied aliases and buffers.
bool isIgnorableHfTensor(llvm::StringRef name) {
  return name == "lm_head.weight" || name == "cls.predictions.decoder.weight" ||
         name == "cls.predictions.decoder.bias" || name.endswith("embeddings.position_ids") ||
         name.endswith(".attn.bias") || name.endswith(".attn.masked_bias");
}

/// The base-model prefixes the hub's checkpoints may omit (a GPT2Model's or BertModel's state_dict).
constexpr llvm::StringRef basePrefixes[] = {"transformer.", "bert."};

/// The checkpoint's name for parameter `name`: `name` itself, else without its base-model prefix; empty when absent.
std::string checkpointName(const HfCheckpoint &file, llvm::StringRef name) {
  if (file.lookup(name))
    return name.str();
  for (llvm::StringRef prefix : basePrefixes)
    if (name.startswith(prefix) && file.lookup(name.drop_front(prefix.size())))
      return name.drop_front(prefix.size()).str();
  return "";
}

/// Up to three names, then a count.
std::string nameList(llvm::ArrayRef<std::string> names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 3; ++i)
    out += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 3)
    out += llvm::formatv(" and {0} more", names.size() - 3).str();
  return out;
}

} // namespace

llvm::Error meg::runtime::saveWeights(llvm::StringRef path, llvm::ArrayRef<LoadedPlan> plans, ShardReader read,
                                      bool withConfig, SafetensorsDType dtype, int shards) {
  assert(!plans.empty() && "no plans");
  bool folder = llvm::sys::fs::is_directory(path) || path.endswith("/");
  const std::vector<PlanParam> params = planSetParams(plans);
  if (shards < 1 || size_t(shards) > params.size() || (shards > 1 && !folder))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   llvm::formatv("{0}: cannot write {1} shards of {2} tensors (more than one shard "
                                                 "needs a folder, DIR/)",
                                                 path, shards, params.size()));
  // Shard s holds the parameters, in plan order, whose bytes start in the s-th N-th of the total (Hugging Face's
  // file names model-0000s-of-0000N.safetensors, its index model.safetensors.index.json).
  std::vector<SafetensorsWriter> writers(static_cast<size_t>(shards));
  for (SafetensorsWriter &w : writers)
    w.setMetadata("format", "pt");
  int64_t totalBytes = 0, before = 0;
  for (const PlanParam &param : params)
    totalBytes += numElements(param.fileShape()) * int64_t(dtypeSize(dtype));
  std::vector<std::pair<std::string, int>> weightMap;
  std::vector<float> full, shard;
  for (const PlanParam &param : params) {
    full.assign(size_t(param.globalNumel()), 0.0f);
    for (int r = 0; r < int(plans.size()); ++r) {
      auto index = plans[r].findParam(param.name);
      if (!index)
        continue;
      const PlanParam &p = plans[r].params[*index];
      shard.resize(size_t(p.numel()));
      read(r, *index, shard);
      insertShard(shard.data(), p.globalShape, p.offset, p.shape, full.data());
    }
    Shape fileShape = param.fileShape();
    size_t keep = size_t(numElements(fileShape));
    int s = totalBytes ? int(before * shards / totalBytes) : 0;
    before += int64_t(keep * dtypeSize(dtype));
    weightMap.emplace_back(param.name, s);
    if (auto err = writers[size_t(s)].addFloats(param.name, dtype, fileShape, llvm::ArrayRef<float>(full.data(), keep)))
      return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": " + llvm::toString(std::move(err)));
  }
  // A folder (an existing one, or a path ending in a separator) gets Hugging Face's layout: model.safetensors (or the
  // shards and their index) and config.json in it.
  llvm::SmallString<256> file(path);
  if (folder)
    llvm::sys::path::append(file, shards > 1 ? kHfIndexFile : kHfWeightsFile);
  llvm::StringRef dir = llvm::sys::path::parent_path(file);
  if (!dir.empty())
    if (std::error_code ec = llvm::sys::fs::create_directories(dir))
      return llvm::createStringError(ec, dir + ": cannot create directory: " + ec.message());
  if (shards == 1) {
    if (auto err = writers[0].write(file))
      return err;
  } else {
    auto shardName = [&](int s) {
      char name[64];
      std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", s + 1, shards);
      return std::string(name);
    };
    for (int s = 0; s < shards; ++s) {
      if (!writers[size_t(s)].size())
        return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                       llvm::formatv("{0}: shard {1} of {2} would be empty", path, s + 1, shards));
      llvm::SmallString<256> shardPath(dir);
      llvm::sys::path::append(shardPath, shardName(s));
      if (auto err = writers[size_t(s)].write(shardPath))
        return err;
    }
    llvm::json::Object map;
    for (const auto &[name, s] : weightMap)
      map[name] = shardName(s);
    llvm::json::Object index{{"metadata", llvm::json::Object{{"total_size", totalBytes}}}, {"weight_map", std::move(map)}};
    std::string text;
    llvm::raw_string_ostream os(text);
    os << llvm::formatv("{0:2}", llvm::json::Value(std::move(index))) << "\n";
    if (auto err = writeFileAtomically(file, llvm::StringRef(os.str())))
      return err;
  }
  if (!withConfig)
    return llvm::Error::success();
  llvm::SmallString<256> config = dir;
  llvm::sys::path::append(config, "config.json");
  return writeFileAtomically(config, llvm::StringRef(hfConfigJson(plans[0])));
}

bool meg::runtime::isTaskHead(llvm::StringRef name) { return name.startswith("classifier."); }

llvm::Error meg::runtime::loadWeights(llvm::StringRef path, llvm::ArrayRef<LoadedPlan> plans, ShardWriter write,
                                      std::vector<std::string> *absentHead) {
  assert(!plans.empty() && "no plans");
  auto file = HfCheckpoint::open(path);
  if (!file)
    return file.takeError();

  // Check every name and shape first, so that a bad file changes nothing.
  const std::vector<PlanParam> params = planSetParams(plans);
  std::vector<std::string> missing, unexpected, misShaped, stored(params.size());
  std::set<std::string, std::less<>> used;
  for (size_t i = 0; i < params.size(); ++i) {
    const PlanParam &param = params[i];
    stored[i] = checkpointName(*file, param.name);
    const SafetensorsTensor *t = stored[i].empty() ? nullptr : file->lookup(stored[i]);
    if (!t) {
      if (absentHead && isTaskHead(param.name))
        absentHead->push_back(param.name);
      else
        missing.push_back(param.name);
      continue;
    }
    used.insert(stored[i]);
    Shape want = param.fileShape();
    if (llvm::ArrayRef<int64_t>(t->Shape) != llvm::ArrayRef<int64_t>(want))
      misShaped.push_back(llvm::formatv("'{0}' has shape {1}, expected {2}", stored[i], shapeText(t->Shape),
                                        shapeText(want)));
    else if (t->DType != SafetensorsDType::F32 && t->DType != SafetensorsDType::BF16 &&
             t->DType != SafetensorsDType::F16 && t->DType != SafetensorsDType::F64)
      misShaped.push_back(llvm::formatv("'{0}' has dtype {1}, expected a float type", stored[i],
                                        dtypeName(t->DType)));
  }
  for (const std::string &name : file->names())
    if (!used.count(name) && !isIgnorableHfTensor(name) &&
        !(absentHead && llvm::StringRef(name).startswith("cls.")))
      unexpected.push_back(name);
  std::vector<std::string> problems;
  if (!missing.empty())
    problems.push_back("missing tensor" + std::string(missing.size() > 1 ? "s " : " ") + nameList(missing));
  if (!unexpected.empty())
    problems.push_back("unexpected tensor" + std::string(unexpected.size() > 1 ? "s " : " ") + nameList(unexpected));
  for (size_t i = 0; i < misShaped.size() && i < 3; ++i)
    problems.push_back("tensor " + misShaped[i]);
  if (misShaped.size() > 3)
    problems.push_back(llvm::formatv("{0} more mis-shaped tensors", misShaped.size() - 3));
  if (!problems.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), file->path() + ": " + llvm::join(problems, "; "));

  std::vector<float> full, shard;
  for (size_t i = 0; i < params.size(); ++i) {
    const PlanParam &param = params[i];
    if (stored[i].empty() || !file->lookup(stored[i]))
      continue; // an absent head
    auto values = file->toFloats(stored[i]);
    if (!values)
      return values.takeError();
    full = std::move(*values);
    full.resize(size_t(param.globalNumel()), 0.0f); // vocab padding rows are zero
    for (int r = 0; r < int(plans.size()); ++r) {
      auto index = plans[r].findParam(param.name);
      if (!index)
        continue;
      const PlanParam &p = plans[r].params[*index];
      shard.resize(size_t(p.numel()));
      extractShard(full.data(), p.globalShape, p.offset, p.shape, shard.data());
      write(r, *index, shard);
    }
  }
  return llvm::Error::success();
}
