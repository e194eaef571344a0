//===- HfCheckpointTest.cpp - checkpoints as the Hugging Face hub publishes them ===//
#include "PlanBuilder.h"
#include "TestUtil.h"

#include "runtime/io/HfCheckpoint.h"
#include "runtime/io/Safetensors.h"
#include "runtime/io/Weights.h"

#include "kernels/Half.h"

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::test;

namespace {

/// One rank of a BERT-named model: a word embedding and a head bias.
std::vector<LoadedPlan> bertPlan() {
  PlanSpec p;
  p.model = R"({"model_type": "bert", "vocab_size": 4, "hidden_size": 2})";
  p.params = {{"bert.embeddings.word_embeddings.weight", {4, 2}, {4, 2}, {0, 0}},
              {"cls.predictions.bias", {4}, {4}, {0}}};
  auto plan = parsePlan(buildPlan(p), "b.megplan");
  EXPECT_TRUE(bool(plan)) << llvm::toString(plan.takeError());
  std::vector<LoadedPlan> plans;
  plans.push_back(std::move(*plan));
  return plans;
}

std::vector<std::vector<float>> load(llvm::StringRef path, std::string &error) {
  std::vector<std::vector<float>> got(2);
  error = message(loadWeights(path, bertPlan(), [&](int, size_t i, llvm::ArrayRef<float> v) {
    got[i].assign(v.begin(), v.end());
  }));
  return got;
}

const std::vector<float> kWords = {0.1f, -1.5f, 3.14159f, 2.0f, -0.3f, 7.0f, 1e-3f, -2.5f};

TEST(HfCheckpointTest, PrefixlessBf16WithBuffersLoads) {
  TempDir dir;
  SafetensorsWriter w;
  ASSERT_FALSE(bool(w.addFloats("embeddings.word_embeddings.weight", SafetensorsDType::BF16, {4, 2}, kWords)));
  ASSERT_FALSE(bool(w.addF32("cls.predictions.bias", {4}, {1, 2, 3, 4})));
  ASSERT_FALSE(bool(w.addI64("embeddings.position_ids", {1, 3}, {0, 1, 2}))); // a buffer: ignored
  std::string path = dir.path("model.safetensors");
  ASSERT_FALSE(bool(w.write(path)));
  std::string error;
  auto got = load(dir.path(""), error); // the folder
  EXPECT_EQ(error, "<success>");
  std::vector<float> rounded;
  for (float x : kWords)
    rounded.push_back(kernels::bf16ToFloat(kernels::floatToBf16(x)));
  EXPECT_EQ(got[0], rounded);
  EXPECT_NE(got[0], kWords); // the values were rounded (so the test sees the dtype)
  EXPECT_EQ(got[1], (std::vector<float>{1, 2, 3, 4}));
}

TEST(HfCheckpointTest, BothSpellingsOfOneTensorAreAnError) {
  TempDir dir;
  SafetensorsWriter w;
  ASSERT_FALSE(bool(w.addF32("bert.embeddings.word_embeddings.weight", {4, 2}, kWords)));
  ASSERT_FALSE(bool(w.addF32("embeddings.word_embeddings.weight", {4, 2}, kWords)));
  ASSERT_FALSE(bool(w.addF32("cls.predictions.bias", {4}, {1, 2, 3, 4})));
  std::string path = dir.path("w.safetensors");
  ASSERT_FALSE(bool(w.write(path)));
  std::string error;
  load(path, error);
  EXPECT_EQ(error, path + ": unexpected tensor 'embeddings.word_embeddings.weight'");
}

TEST(HfCheckpointTest, IndexErrors) {
  TempDir dir;
  SafetensorsWriter a, b;
  ASSERT_FALSE(bool(a.addF32("embeddings.word_embeddings.weight", {4, 2}, kWords)));
  ASSERT_FALSE(bool(b.addF32("cls.predictions.bias", {4}, {1, 2, 3, 4})));
  ASSERT_FALSE(bool(a.write(dir.path("a.safetensors"))));
  ASSERT_FALSE(bool(b.write(dir.path("b.safetensors"))));
  std::string index = dir.path("model.safetensors.index.json");
  auto writeIndex = [&](llvm::StringRef map) {
    writeRaw(index, (R"({"metadata": {"total_size": 48}, "weight_map": {)" + map + "}}").str());
  };
  std::string error;
  writeIndex(R"("embeddings.word_embeddings.weight": "a.safetensors", "cls.predictions.bias": "b.safetensors")");
  auto got = load(index, error);
  EXPECT_EQ(error, "<success>");
  EXPECT_EQ(got[0], kWords);
  EXPECT_EQ(got[1], (std::vector<float>{1, 2, 3, 4}));

  writeIndex(R"("embeddings.word_embeddings.weight": "b.safetensors", "cls.predictions.bias": "b.safetensors")");
  EXPECT_EQ(message(HfCheckpoint::open(index)),
            index + ": the weight_map puts 'embeddings.word_embeddings.weight' in shard 'b.safetensors', which does "
                    "not hold it");
  // A shard holding a tensor the index does not list.
  SafetensorsWriter c;
  ASSERT_FALSE(bool(c.addF32("embeddings.word_embeddings.weight", {4, 2}, kWords)));
  ASSERT_FALSE(bool(c.addF32("cls.predictions.bias", {4}, {1, 2, 3, 4})));
  ASSERT_FALSE(bool(c.write(dir.path("c.safetensors"))));
  writeIndex(R"("cls.predictions.bias": "c.safetensors")");
  EXPECT_EQ(message(HfCheckpoint::open(index)),
            dir.path("c.safetensors") + ": tensor 'embeddings.word_embeddings.weight' is not in the weight_map of " +
                index + " for this shard");
  writeIndex(R"("embeddings.word_embeddings.weight": "a.safetensors", "cls.predictions.bias": "../b.safetensors")");
  EXPECT_EQ(message(HfCheckpoint::open(index)),
            index + ": weight_map entry 'cls.predictions.bias' must name a shard file in the same folder");
  writeRaw(index, "{\"weight_map\": 3}");
  EXPECT_EQ(message(HfCheckpoint::open(index)),
            index + ": expected an object with a 'weight_map' object (tensor name -> shard file)");
}

} // namespace
