//===- TaskData.cpp - BERT fine-tuning examples (multiple choice, sentence pairs) -===//
#include "runtime/data/TaskData.h"

#include "ir/Json.h"
#include "runtime/data/TokenData.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <numeric>

using namespace meg;
using namespace meg::runtime;

std::optional<TaskKind> meg::runtime::parseTaskKind(llvm::StringRef name) {
  if (name == "race")
    return TaskKind::Race;
  if (name == "pair")
    return TaskKind::Pair;
  return std::nullopt;
}

llvm::Expected<std::unique_ptr<Tokenizer>> meg::runtime::makeTaskTokenizer(llvm::StringRef vocabFile,
                                                                           llvm::StringRef mergeFile,
                                                                           llvm::StringRef tokenizerFile,
                                                                           int64_t modelVocab) {
  const int64_t usable = modelVocab - 3; // [SEP], [CLS], [MASK] at the top
  if (vocabFile.empty() && tokenizerFile.empty()) {
    if (modelVocab != 256)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          llvm::formatv("the model's vocabulary is {0}: give the GPT-2 BPE files (--vocab-file and --merge-file, or "
                        "--tokenizer-file) (byte-level tokens need a vocabulary of 256)",
                        modelVocab));
    return std::make_unique<ByteTokenizer>();
  }
  auto bpe = tokenizerFile.empty() ? Gpt2BpeTokenizer::load(vocabFile, mergeFile)
                                   : Gpt2BpeTokenizer::loadTokenizerJson(tokenizerFile);
  if (!bpe)
    return bpe.takeError();
  if (int64_t((*bpe)->vocabSize()) > usable)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        llvm::formatv("the tokenizer has {0} ids, more than the {1} below BERT's [SEP], [CLS] and [MASK] (the model's "
                      "vocabulary is {2})",
                      (*bpe)->vocabSize(), usable, modelVocab));
  return std::unique_ptr<Tokenizer>(std::move(*bpe));
}

namespace {

llvm::Error lineError(llvm::StringRef path, size_t line, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ":" + llvm::Twine(line) + ": " + what);
}

/// One row [CLS] a [SEP] b [SEP] (no b: [CLS] a [SEP]) at `row` of `out`, padded to S.
void layRow(TaskExamples &out, const BertSpecialIds &ids, llvm::ArrayRef<int32_t> a, llvm::ArrayRef<int32_t> b,
            bool hasB) {
  const int64_t s = out.seq;
  std::vector<int32_t> tokens{ids.cls}, types{0};
  auto append = [&](llvm::ArrayRef<int32_t> part, int32_t type) {
    for (int32_t t : part)
      tokens.push_back(t), types.push_back(type);
    tokens.push_back(ids.sep), types.push_back(type);
  };
  append(a, 0);
  if (hasB)
    append(b, 1);
  assert(int64_t(tokens.size()) <= s && "the row was cut to fit");
  for (int64_t i = 0; i < s; ++i) {
    bool real = i < int64_t(tokens.size());
    out.inputIds.push_back(real ? tokens[size_t(i)] : ids.pad);
    out.tokenTypes.push_back(real ? types[size_t(i)] : 0);
    out.mask.push_back(real ? 1 : 0);
  }
}

/// A string key of `object`, or an error naming it.
llvm::Expected<llvm::StringRef> stringKey(const llvm::json::Object &object, llvm::StringRef key, llvm::StringRef path,
                                          size_t line) {
  const llvm::json::Value *v = object.get(key);
  if (!v)
    return lineError(path, line, "missing key '" + key + "'");
  if (auto s = v->getAsString())
    return *s;
  return lineError(path, line, "key '" + key + "' must be a string");
}

llvm::Error raceExample(const llvm::json::Object &object, llvm::StringRef path, size_t line, const Tokenizer &tok,
                        const TaskDataOptions &o, TaskExamples &out) {
  auto article = stringKey(object, "article", path, line);
  if (!article)
    return article.takeError();
  auto question = stringKey(object, "question", path, line);
  if (!question)
    return question.takeError();
  const llvm::json::Value *optionsValue = object.get("options");
  if (!optionsValue)
    return lineError(path, line, "missing key 'options'");
  const llvm::json::Array *options = optionsValue->getAsArray();
  if (!options)
    return lineError(path, line, "key 'options' must be an array of strings");
  if (int64_t(options->size()) != o.choices)
    return lineError(path, line,
                     llvm::formatv("{0} options, the model's multiple-choice head takes {1}", options->size(),
                                   o.choices));
  auto answer = stringKey(object, "answer", path, line);
  if (!answer)
    return answer.takeError();
  char last = char('A' + o.choices - 1);
  if (answer->size() != 1 || (*answer)[0] < 'A' || (*answer)[0] > last)
    return lineError(path, line, llvm::formatv("answer '{0}' is out of range (expected A..{1})", *answer, last));
  std::vector<int32_t> articleIds = tok.encode(*article);
  const int64_t room = o.seq - 3;
  for (size_t c = 0; c < options->size(); ++c) {
    auto option = (*options)[c].getAsString();
    if (!option)
      return lineError(path, line, llvm::formatv("option {0} is not a string", c + 1));
    std::string qa = question->contains('_') ? llvm::join(llvm::split(*question, '_'), *option)
                                             : (*question + " " + *option).str();
    std::vector<int32_t> qaIds = tok.encode(qa);
    if (int64_t(qaIds.size()) > room)
      qaIds.resize(size_t(room));
    size_t keep = std::min(articleIds.size(), size_t(room - int64_t(qaIds.size())));
    layRow(out, o.ids, llvm::ArrayRef<int32_t>(articleIds).take_front(keep), qaIds, /*hasB=*/true);
  }
  out.labels.push_back(int32_t((*answer)[0] - 'A'));
  return llvm::Error::success();
}

llvm::Error pairExample(const llvm::json::Object &object, llvm::StringRef path, size_t line, const Tokenizer &tok,
                        const TaskDataOptions &o, TaskExamples &out) {
  auto a = stringKey(object, "text_a", path, line);
  if (!a)
    return a.takeError();
  bool hasB = object.get("text_b") != nullptr;
  llvm::StringRef bText;
  if (hasB) {
    auto b = stringKey(object, "text_b", path, line);
    if (!b)
      return b.takeError();
    bText = *b;
  }
  const llvm::json::Value *labelValue = object.get("label");
  if (!labelValue)
    return lineError(path, line, "missing key 'label'");
  auto label = labelValue->getAsInteger();
  if (!label)
    return lineError(path, line, "key 'label' must be an integer");
  if (*label < 0 || *label >= o.numLabels)
    return lineError(path, line,
                     llvm::formatv("label {0} is out of range (expected 0..{1})", *label, o.numLabels - 1));
  std::vector<int32_t> aIds = tok.encode(*a), bIds = hasB ? tok.encode(bText) : std::vector<int32_t>();
  const size_t room = size_t(o.seq - (hasB ? 3 : 2));
  while (aIds.size() + bIds.size() > room)
    (aIds.size() >= bIds.size() ? aIds : bIds).pop_back();
  layRow(out, o.ids, aIds, bIds, hasB);
  out.labels.push_back(int32_t(*label));
  return llvm::Error::success();
}

} // namespace

llvm::Expected<TaskExamples> meg::runtime::readTaskExamples(llvm::StringRef path, const Tokenizer &tokenizer,
                                                            const TaskDataOptions &o) {
  assert(o.seq >= 4 && "no room for [CLS] a [SEP] b [SEP]");
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return llvm::createStringError(buffer.getError(), path + ": cannot read: " + buffer.getError().message());
  TaskExamples out;
  out.seq = o.seq;
  out.rowsPerExample = o.kind == TaskKind::Race ? o.choices : 1;
  llvm::StringRef rest = (*buffer)->getBuffer();
  for (size_t line = 1; !rest.empty(); ++line) {
    auto [text, next] = rest.split('\n');
    rest = next;
    if (text.trim().empty())
      continue;
    auto parsed = meg::parseJson(text);
    if (!parsed)
      return lineError(path, line, "not JSON: " + llvm::toString(parsed.takeError()));
    const llvm::json::Object *object = parsed->getAsObject();
    if (!object)
      return lineError(path, line, "expected a JSON object");
    if (auto err = o.kind == TaskKind::Race ? raceExample(*object, path, line, tokenizer, o, out)
                                            : pairExample(*object, path, line, tokenizer, o, out))
      return err;
  }
  if (out.labels.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": no examples");
  return out;
}

GlobalBatch meg::runtime::taskBatch(const TaskExamples &data, llvm::ArrayRef<int64_t> examples, bool choices) {
  const int64_t b = int64_t(examples.size()), rowElems = data.rowsPerExample * data.seq;
  llvm::SmallVector<int64_t, 4> shape{b};
  if (choices)
    shape.push_back(data.rowsPerExample);
  shape.push_back(data.seq);
  GlobalBatch batch;
  auto gather = [&](const char *name, const std::vector<int32_t> &from) {
    IntTensor &t = batch.tensors[name];
    t.shape = shape;
    for (int64_t e : examples)
      t.data.insert(t.data.end(), from.begin() + e * rowElems, from.begin() + (e + 1) * rowElems);
  };
  gather("input_ids", data.inputIds);
  gather("token_type_ids", data.tokenTypes);
  gather("attention_mask", data.mask);
  IntTensor &labels = batch.tensors["labels"];
  labels.shape = {b};
  for (int64_t e : examples)
    labels.data.push_back(data.labels[size_t(e)]);
  return batch;
}

std::vector<int64_t> meg::runtime::taskBatchExamples(int64_t numExamples, int64_t rows, uint64_t step, uint64_t seed) {
  assert(numExamples > 0 && rows > 0 && "an empty task");
  std::vector<int64_t> order, out;
  uint64_t cachedEpoch = ~uint64_t(0);
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t i = step * uint64_t(rows) + uint64_t(r), epoch = i / uint64_t(numExamples);
    if (epoch != cachedEpoch) {
      order.resize(size_t(numExamples));
      std::iota(order.begin(), order.end(), 0);
      SplitMix64 rng(seed ^ (0x7461736bull + epoch * 0x9e3779b97f4a7c15ull));
      for (size_t k = order.size(); k > 1; --k)
        std::swap(order[k - 1], order[size_t(rng.below(k))]);
      cachedEpoch = epoch;
    }
    out.push_back(order[size_t(i % uint64_t(numExamples))]);
  }
  return out;
}
