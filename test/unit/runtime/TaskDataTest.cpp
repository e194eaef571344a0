//===- TaskDataTest.cpp - BERT fine-tuning examples -----------------------------===//
#include "TestUtil.h"

#include "runtime/data/TaskData.h"

#include <set>

using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

TaskDataOptions raceOptions(int64_t seq) {
  TaskDataOptions o;
  o.kind = TaskKind::Race;
  o.seq = seq;
  o.choices = 2;
  o.ids = bertSpecialIds(256); // [SEP] 253, [CLS] 254, [MASK] 255, [PAD] 0
  return o;
}

TEST(TaskDataTest, RaceRowsAreArticleThenQuestionAndOption) {
  TempDir dir;
  std::string path = dir.path("race.jsonl");
  writeRaw(path, "{\"article\": \"ab\", \"question\": \"q_?\", \"options\": [\"x\", \"yz\"], \"answer\": \"B\"}\n\n"
                 "{\"article\": \"abcdefgh\", \"question\": \"q\", \"options\": [\"x\", \"y\"], \"answer\": \"A\"}\n");
  ByteTokenizer tok;
  auto data = readTaskExamples(path, tok, raceOptions(10));
  ASSERT_TRUE(bool(data)) << message(data.takeError());
  ASSERT_EQ(data->size(), 2);
  EXPECT_EQ(data->labels, (std::vector<int32_t>{1, 0}));
  auto row = [&](int64_t example, int64_t option, const std::vector<int32_t> &from) {
    int64_t at = (example * 2 + option) * 10;
    return std::vector<int32_t>(from.begin() + at, from.begin() + at + 10);
  };
  // "_" in the question is replaced by the option: [CLS] ab [SEP] qx? [SEP] pad pad.
  std::vector<int32_t> want = {254, 'a', 'b', 253, 'q', 'x', '?', 253, 0, 0};
  EXPECT_EQ(row(0, 0, data->inputIds), want);
  EXPECT_EQ(row(0, 0, data->tokenTypes), (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(row(0, 0, data->mask), (std::vector<int32_t>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(row(0, 1, data->inputIds), (std::vector<int32_t>{254, 'a', 'b', 253, 'q', 'y', 'z', '?', 253, 0}));
  // Without "_": question + " " + option; the article is cut at its end to fit: 10 - 3 - 3 = 4 article tokens.
  EXPECT_EQ(row(1, 1, data->inputIds), (std::vector<int32_t>{254, 'a', 'b', 'c', 'd', 253, 'q', ' ', 'y', 253}));
}

TEST(TaskDataTest, PairsCutTheLongerText) {
  TempDir dir;
  std::string path = dir.path("pair.jsonl");
  writeRaw(path, "{\"text_a\": \"abcdef\", \"text_b\": \"xy\", \"label\": 1}\n{\"text_a\": \"abc\", \"label\": 0}\n");
  ByteTokenizer tok;
  TaskDataOptions o = raceOptions(8);
  o.kind = TaskKind::Pair;
  o.numLabels = 2;
  auto data = readTaskExamples(path, tok, o);
  ASSERT_TRUE(bool(data)) << message(data.takeError());
  EXPECT_EQ(data->rowsPerExample, 1);
  std::vector<int32_t> first(data->inputIds.begin(), data->inputIds.begin() + 8);
  EXPECT_EQ(first, (std::vector<int32_t>{254, 'a', 'b', 'c', 253, 'x', 'y', 253})); // 5 tokens of room: a loses 3
  std::vector<int32_t> second(data->inputIds.begin() + 8, data->inputIds.end());
  EXPECT_EQ(second, (std::vector<int32_t>{254, 'a', 'b', 'c', 253, 0, 0, 0})); // a single text
  GlobalBatch batch = taskBatch(*data, {1, 0, 1}, /*choices=*/false);
  EXPECT_EQ(batch.tensors["input_ids"].shape, (llvm::SmallVector<int64_t, 4>{3, 8}));
  EXPECT_EQ(batch.tensors["labels"].data, (std::vector<int32_t>{0, 1, 0}));
}

TEST(TaskDataTest, ErrorsNameFileAndLine) {
  TempDir dir;
  ByteTokenizer tok;
  auto errorOf = [&](llvm::StringRef text) {
    std::string path = dir.path("bad.jsonl");
    writeRaw(path, text);
    auto data = readTaskExamples(path, tok, raceOptions(16));
    return data ? std::string("no error") : message(data.takeError());
  };
  std::string path = dir.path("bad.jsonl");
  EXPECT_EQ(errorOf("{\"article\": \"a\", \"question\": \"q\", \"options\": [\"a\", \"b\"], \"answer\": \"C\"}\n"),
            path + ":1: answer 'C' is out of range (expected A..B)");
  EXPECT_EQ(errorOf("\n{\"article\": \"a\", \"question\": \"q\", \"options\": [\"a\"], \"answer\": \"A\"}\n"),
            path + ":2: 1 options, the model's multiple-choice head takes 2");
  EXPECT_EQ(errorOf("{\"article\": 3, \"question\": \"q\", \"options\": [\"a\", \"b\"], \"answer\": \"A\"}\n"),
            path + ":1: key 'article' must be a string");
  EXPECT_EQ(errorOf("[1]\n"), path + ":1: expected a JSON object");
  EXPECT_EQ(errorOf(""), path + ": no examples");
}

TEST(TaskDataTest, EveryExampleOncePerEpoch) {
  std::multiset<int64_t> seen;
  for (uint64_t step = 0; step < 5; ++step) // 5 steps of 4 rows = 2 epochs of 10
    for (int64_t e : taskBatchExamples(10, 4, step, 7))
      seen.insert(e);
  for (int64_t e = 0; e < 10; ++e)
    EXPECT_EQ(seen.count(e), 2u) << e;
  EXPECT_NE(taskBatchExamples(10, 4, 0, 7), taskBatchExamples(10, 4, 0, 8)); // seeded order
}

} // namespace
