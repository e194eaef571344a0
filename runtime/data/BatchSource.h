//===- BatchSource.h - the batches a plan is fed ----------------*- C++ -*-===//
//
// A BatchSource produces, per step, the GLOBAL batch (all dp ranks' rows) of every input the plan names; each rank
// is then fed its shard (rows by the input's offset). Sources:
//   - a binary token file (runtime/data/TokenData.h format, detected by its magic "MEGTOK01");
//   - any other file: text, tokenized byte-level (ids = bytes; needs a model vocabulary of at least 256);
//   - none: a seeded stream of random tokens (for benchmarks).
// Token windows come from the Batcher (train or valid split; seq and micro-batch from input_ids' global shape).
// GPT plans get input_ids and labels (shifted by one); BERT plans (which have token_type_ids) get sentence pairs with
// MLM masking (runtime/data/BertData.h: documents from the token file's end-of-document id, or `%` lines / blank lines of
// byte-level text; special ids at the top of the model's vocabulary).
// Token files must fit the model: data vocabulary <= the model's (BERT: <= V - 3, byte-level data excepted).
// A fine-tuning task (DataOptions::task, runtime/data/TaskData.h) feeds a BERT plan with a task head its examples
// instead: every example once per epoch, shuffled per epoch from the seed.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_DATA_BATCHSOURCE_H
#define MEG_RUNTIME_DATA_BATCHSOURCE_H

#include "runtime/data/Batch.h"
#include "runtime/data/TokenData.h"
#include "runtime/plan/Plan.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace meg::runtime {

struct DataOptions {
  std::string path; ///< empty: random tokens
  /// `path` is the prefix of a Megatron indexed dataset (PREFIX.bin + PREFIX.idx, runtime/data/IndexedDataset.h).
  bool indexed = false;
  uint64_t seed = 0;
  DataSplit split = DataSplit::Train;
  double validFraction = 0.1;
  /// Megatron's --split (runtime/data/Split.h), over the documents of an indexed dataset, else over tokens; empty:
  /// validFraction.
  std::string splitWeights;
  /// "race" or "pair": `path` is that task's jsonl file (runtime/data/TaskData.h), tokenized with these files (none:
  /// byte level).
  std::string task;
  std::string vocabFile, mergeFile, tokenizerFile;
};

class BertPairBuilder;
struct TaskExamples;

class BatchSource {
public:
  /// Errors name the data file: unreadable, too short for one window, tokens outside the model's vocabulary, or a
  /// plan input this source cannot produce.
  static llvm::Expected<std::unique_ptr<BatchSource>> create(const LoadedPlan &plan, const DataOptions &options);
  ~BatchSource();

  int64_t microBatch() const { return batchRows; }
  /// Positions of a row (a multiple-choice example: its C rows of S).
  int64_t seqLen() const { return seq; }
  bool isBert() const { return bert; }
  /// Windows in this split (one epoch); a task's examples.
  uint64_t windowsPerEpoch() const;
  /// A task's examples (null for token data), and whether they are multiple-choice rows ([B, C, S] inputs).
  const TaskExamples *taskExamples() const { return task.get(); }
  bool isMultipleChoice() const { return choices; }
  /// The global batch of step `step` (counted from 0).
  llvm::Expected<GlobalBatch> batch(uint64_t step) const;

private:
  BatchSource() = default;
  std::unique_ptr<Batcher> batcher;
  std::unique_ptr<BertPairBuilder> bertPairs;
  std::unique_ptr<TaskExamples> task;
  bool choices = false;
  /// The source of a fine-tuning task (DataOptions::task).
  static llvm::Expected<std::unique_ptr<BatchSource>> createTask(const LoadedPlan &plan, const DataOptions &options);
  std::vector<std::string> inputNames;
  int64_t batchRows = 0, seq = 0;
  int64_t modelVocab = 0, dataVocab = 0;
  bool bert = false;
  uint64_t seed = 0;
};

/// The model's (unpadded) vocabulary: `vocab_size` of the plan's model JSON, else the rows of the word embedding.
int64_t modelVocabSize(const LoadedPlan &plan);

} // namespace meg::runtime

#endif
