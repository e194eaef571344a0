//===- BatchSource.cpp - the batches a plan is fed -----------------------------===//
#include "runtime/data/BatchSource.h"

#include "ir/File.h"
#include "ir/Json.h"
#include "runtime/data/BertData.h"
#include "runtime/data/Documents.h"
#include "runtime/data/IndexedDataset.h"
#include "runtime/data/Split.h"
#include "runtime/data/TaskData.h"
#include "runtime/data/Tokenizer.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace meg;
using namespace meg::runtime;

static llvm::Error dataError(llvm::StringRef path, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), (path.empty() ? "--data" : path) + ": " + what);
}

int64_t meg::runtime::modelVocabSize(const LoadedPlan &plan) {
  if (auto model = meg::parseJson(plan.model))
    if (const llvm::json::Object *obj = model->getAsObject())
      if (auto v = obj->getInteger("vocab_size"))
        return *v;
  for (llvm::StringRef name : {"transformer.wte.weight", "bert.embeddings.word_embeddings.weight"})
    if (auto i = plan.findParam(name)) {
      const PlanParam &p = plan.params[*i];
      return p.vocabRows ? p.vocabRows : p.globalShape[0];
    }
  return 0;
}

BatchSource::~BatchSource() = default;

uint64_t BatchSource::windowsPerEpoch() const { return task ? uint64_t(task->size()) : batcher->windowsPerEpoch(); }

llvm::Expected<std::unique_ptr<BatchSource>> BatchSource::createTask(const LoadedPlan &plan, const DataOptions &o) {
  auto kind = parseTaskKind(o.task);
  if (!kind)
    return dataError(o.path, "unknown task '" + o.task + "' (expected race or pair)");
  std::unique_ptr<BatchSource> src(new BatchSource());
  src->seed = o.seed;
  src->bert = true;
  src->choices = *kind == TaskKind::Race;
  auto ids = plan.findInput("input_ids");
  auto labels = plan.findInput("labels");
  const PlanOutput *logits = plan.findOutput("logits");
  size_t rank = src->choices ? 3 : 2;
  if (!ids || !labels || !logits || plan.inputs[*ids].globalShape.size() != rank ||
      plan.inputs[*labels].globalShape.size() != 1 || logits->tensor.globalShape.size() != 2 ||
      !plan.findParam("classifier.weight"))
    return dataError(plan.path, src->choices ? "--task race needs a BERT plan with the multiple-choice head (megc "
                                               "--head multiple-choice)"
                                             : "--task pair needs a BERT plan with the classification head (megc "
                                               "--head classification)");
  const Shape &shape = plan.inputs[*ids].globalShape;
  src->batchRows = shape[0];
  // Positions per example (tokens/s counts every option's row).
  src->seq = src->choices ? shape[1] * shape[2] : shape[1];
  src->modelVocab = modelVocabSize(plan);
  for (const PlanInput &in : plan.inputs)
    src->inputNames.push_back(in.name);
  auto tok = makeTaskTokenizer(o.vocabFile, o.mergeFile, o.tokenizerFile, src->modelVocab);
  if (!tok)
    return tok.takeError();
  TaskDataOptions options;
  options.kind = *kind;
  options.seq = shape.back();
  options.choices = src->choices ? shape[1] : 1;
  options.numLabels = logits->tensor.globalShape[1];
  options.ids = bertSpecialIds(src->modelVocab);
  if (options.seq < 4)
    return dataError(plan.path, llvm::formatv("seq {0} leaves no room for [CLS] a [SEP] b [SEP]", options.seq));
  auto examples = readTaskExamples(o.path, **tok, options);
  if (!examples)
    return examples.takeError();
  src->task = std::make_unique<TaskExamples>(std::move(*examples));
  return src;
}

llvm::Expected<std::unique_ptr<BatchSource>> BatchSource::create(const LoadedPlan &plan, const DataOptions &o) {
  if (!o.task.empty())
    return createTask(plan, o);
  if (plan.findParam("classifier.weight"))
    return dataError(plan.path, "the plan has a fine-tuning head: train it with --task race|pair --task-data FILE");
  std::unique_ptr<BatchSource> src(new BatchSource());
  src->seed = o.seed;
  auto ids = plan.findInput("input_ids");
  if (!ids || plan.inputs[*ids].globalShape.size() != 2)
    return dataError(plan.path, "the plan has no input 'input_ids' of shape [batch, seq] to feed");
  src->batchRows = plan.inputs[*ids].globalShape[0];
  src->seq = plan.inputs[*ids].globalShape[1];
  src->bert = plan.findInput("token_type_ids").has_value();
  src->modelVocab = modelVocabSize(plan);
  static const char *known[] = {"input_ids", "labels", "token_type_ids", "attention_mask", "next_sentence_label"};
  for (const PlanInput &in : plan.inputs) {
    if (!llvm::is_contained(known, in.name))
      return dataError(plan.path, "plan input '" + in.name + "' cannot be fed from token data");
    if (in.dtype != DType::I32)
      return dataError(plan.path, "plan input '" + in.name + "' is not i32");
    src->inputNames.push_back(in.name);
  }

  std::shared_ptr<const std::vector<int32_t>> tokens;
  std::vector<uint64_t> documentStarts; // an indexed dataset's documents (token offsets, then the end)
  // How BERT data finds documents and sentences (random tokens: one document of one sentence).
  DocumentRule rule;
  const int64_t bertSpecials = 3; // [SEP], [CLS], [MASK] at the top of the vocabulary
  bool byteLevel = false;
  if (o.path.empty()) {
    // Random tokens: enough windows for many distinct batches.
    auto stream = std::make_shared<std::vector<int32_t>>();
    size_t n = size_t(src->batchRows * (src->seq + 1)) * 64;
    SplitMix64 rng(o.seed ^ 0x72616e646f6dull);
    int64_t vocab = std::max<int64_t>(1, src->bert ? src->modelVocab - bertSpecials : src->modelVocab);
    for (size_t i = 0; i < n; ++i)
      stream->push_back(int32_t(rng.below(uint64_t(vocab))));
    tokens = std::move(stream);
    src->dataVocab = vocab;
  } else if (o.indexed) {
    auto dataset = readIndexedDataset(o.path);
    if (!dataset)
      return dataset.takeError();
    int32_t largest = 0;
    for (int32_t t : *dataset->tokens)
      largest = std::max(largest, t);
    if (largest >= src->modelVocab)
      return dataError(o.path, llvm::formatv("token id {0} does not fit the model's vocabulary of {1}", largest,
                                             src->modelVocab));
    src->dataVocab = src->modelVocab;
    documentStarts = dataset->documentStarts;
    tokens = std::move(dataset->tokens);
  } else {
    auto buffer = readInputFile(o.path);
    if (!buffer)
      return dataError(o.path, "cannot read data file: " + llvm::toString(buffer.takeError()));
    if ((*buffer)->getBuffer().startswith(TokenFileMagic)) {
      auto file = TokenFile::open(o.path);
      if (!file)
        return file.takeError();
      if (int64_t(file->vocabSize()) > src->modelVocab)
        return dataError(o.path, llvm::formatv("token vocabulary of {0} does not fit the model's {1}",
                                               file->vocabSize(), src->modelVocab));
      byteLevel = file->kind() == TokenizerKind::Byte;
      if (src->bert && !byteLevel && int64_t(file->vocabSize()) > src->modelVocab - bertSpecials)
        return dataError(o.path, llvm::formatv("token vocabulary of {0} leaves no room for BERT's [SEP], [CLS] and "
                                               "[MASK] (ids V-3..V-1 of the model's V = {1})",
                                               file->vocabSize(), src->modelVocab));
      src->dataVocab = file->vocabSize();
      tokens = file->sharedTokens();
      rule = documentRuleFor(file->kind(), file->meta().EndOfDocument, file->meta().Flags);
    } else {
      ByteTokenizer tok;
      if (src->modelVocab < 256)
        return dataError(o.path, llvm::formatv("byte-level text needs a vocabulary of at least 256 (the model has {0})",
                                               src->modelVocab));
      // BERT's specials are V-3..V-1 (253..255 for a 256-token model: bytes that UTF-8 text never contains).
      tokens = std::make_shared<std::vector<int32_t>>(tok.encode((*buffer)->getBuffer()));
      src->dataVocab = 256;
      byteLevel = true;
      rule = documentRuleFor(TokenizerKind::Byte, /*EndOfDocument=*/-1, {});
    }
  }
  BatcherOptions bo;
  bo.SeqLen = src->seq;
  bo.MicroBatch = src->batchRows;
  bo.ValidFraction = o.validFraction;
  bo.Seed = o.seed;
  bo.Split = o.split;
  if (!o.splitWeights.empty()) {
    auto weights = parseSplit(o.splitWeights);
    if (!weights)
      return weights.takeError();
    // Megatron splits documents; without a document index, tokens.
    bool byDocument = !documentStarts.empty();
    std::array<uint64_t, 4> bounds = splitBounds(*weights, byDocument ? documentStarts.size() - 1 : tokens->size());
    for (uint64_t b : bounds)
      bo.SplitBounds.push_back(byDocument ? documentStarts[size_t(b)] : b);
  }
  auto batcher = Batcher::create(tokens, bo);
  if (!batcher)
    return dataError(o.path, llvm::toString(batcher.takeError()));
  src->batcher = std::make_unique<Batcher>(std::move(*batcher));
  if (src->bert) {
    BertDataOptions pairOptions;
    pairOptions.seed = o.seed;
    pairOptions.seqLen = src->seq;
    pairOptions.ids = bertSpecialIds(src->modelVocab);
    int64_t dataIds = byteLevel ? std::min<int64_t>(256, src->modelVocab - bertSpecials) : src->dataVocab;
    pairOptions.randomEnd = int32_t(std::min(dataIds, src->modelVocab - bertSpecials));
    auto pairs = BertPairBuilder::create(tokens, src->batcher->splitBegin(),
                                         src->batcher->splitBegin() + src->batcher->splitSize(), rule,
                                         pairOptions);
    if (!pairs)
      return dataError(o.path, llvm::toString(pairs.takeError()));
    src->bertPairs = std::move(*pairs);
  }
  return src;
}

llvm::Expected<GlobalBatch> BatchSource::batch(uint64_t step) const {
  if (task)
    return taskBatch(*task, taskBatchExamples(task->size(), batchRows, step, seed), choices);
  auto rows = batcher->batchFor(step);
  if (!rows)
    return rows.takeError();
  if (bert) {
    GlobalBatch all = bertPairs->batch(*rows, step);
    GlobalBatch out;
    for (const std::string &name : inputNames)
      out.tensors[name] = std::move(all.tensors[name]);
    return out;
  }
  GlobalBatch out;
  for (const std::string &name : inputNames) {
    if (name == "input_ids")
      out.tensors[name] = IntTensor{{batchRows, seq}, rows->InputIds};
    else if (name == "labels")
      out.tensors[name] = IntTensor{{batchRows, seq}, rows->Labels};
    else
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "plan input '" + name + "' needs BERT data (the plan has no token_type_ids)");
  }
  return out;
}
