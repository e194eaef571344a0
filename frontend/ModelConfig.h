//===- ModelConfig.h - model descriptions (HF config.json keys) -*- C++ -*-===//
//
// A model description is a Hugging Face config.json (GPT-2, BERT or Megatron-BERT keys) plus an optional "meg"
// object for what HF does not describe (BERT layer-norm placement, default micro batch and sequence length, a
// display name, the vocabulary padding multiple `vocab_divisible_by`). Unknown keys are ignored, so a real config.json loads as is. models/README.md lists the keys.
//
// Errors name the file and the key: `<file>: missing key 'n_head'`, `<file>:<line>:<col>: <json message>`.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_FRONTEND_MODELCONFIG_H
#define MEG_FRONTEND_MODELCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

namespace meg::frontend {

enum class ModelFamily { GPT2, Bert };
/// Original BERT: LN after each residual add. Megatron (and GPT-2): LN before attention/MLP, final LN.
enum class LayerNormPlacement { Post, Pre };
/// GeLU form: HF `gelu_new` (tanh approximation, GPT-2) or `gelu` (erf, BERT).
enum class Activation { GeluTanh, GeluErf };
/// BERT's head: pre-training (MLM + NSP), or a fine-tuning head on the pooler (Hugging Face's
/// BertForMultipleChoice: one score per option, softmax over the options; BertForSequenceClassification:
/// num_labels logits). From `architectures`, `meg.head` or megc --head.
enum class BertHead { PreTraining, MultipleChoice, Classification };

llvm::StringRef familyName(ModelFamily f);
llvm::StringRef layerNormPlacementName(LayerNormPlacement p);
llvm::StringRef activationName(Activation a); // the IR `approx` symbol: "tanh" | "erf"
llvm::StringRef bertHeadName(BertHead h);     // "pretraining" | "multiple-choice" | "classification"
std::optional<BertHead> parseBertHead(llvm::StringRef s);

struct ModelConfig {
  std::string name;      ///< meg.name, else the file name without directory and extension
  std::string modelType; ///< "gpt2" | "bert" | "megatron-bert"
  ModelFamily family = ModelFamily::GPT2;
  /// The Hugging Face class whose state_dict names the parameters.
  std::string hfClass;

  int64_t numLayers = 0;
  int64_t hidden = 0;
  int64_t numHeads = 0;
  int64_t ffnHidden = 0;     ///< n_inner / intermediate_size
  int64_t vocabSize = 0;
  int64_t maxPositions = 0;  ///< n_positions / max_position_embeddings
  int64_t typeVocabSize = 0; ///< BERT only
  double layerNormEps = 1e-5;
  Activation activation = Activation::GeluTanh;
  double embdDropout = 0;  ///< GPT-2 embd_pdrop; BERT hidden_dropout_prob
  double residDropout = 0; ///< GPT-2 resid_pdrop; BERT hidden_dropout_prob
  double attnDropout = 0;  ///< attn_pdrop / attention_probs_dropout_prob
  double initStd = 0.02;   ///< initializer_range
  LayerNormPlacement layerNorm = LayerNormPlacement::Pre;
  BertHead head = BertHead::PreTraining; ///< BERT only
  int64_t numChoices = 4;                ///< multiple choice: options per example (meg.num_choices)
  int64_t numLabels = 2;                 ///< classification: num_labels, else the size of id2label
  double classifierDropout = 0;          ///< classifier_dropout, else hidden_dropout_prob

  int64_t microBatch = 1;
  int64_t seq = 0;
  /// meg.vocab_divisible_by (Megatron's --make-vocab-size-divisible-by): the vocabulary is padded to a multiple of
  /// this times tp.
  int64_t vocabDivisibleBy = 128;

  int64_t headDim() const { return hidden / numHeads; }
  /// Megatron's padded vocabulary at tensor-parallel size `tp`: vocabSize rounded up to a multiple of
  /// vocabDivisibleBy * tp (GPT-2's 50257 -> 50304 at tp 1, 50432 at tp 2, 51200 at tp 8).
  int64_t paddedVocab(int64_t tp) const {
    int64_t multiple = vocabDivisibleBy * tp;
    return (vocabSize + multiple - 1) / multiple * multiple;
  }
};

/// Command-line overrides of the description's defaults (--micro-batch, --seq, --make-vocab-size-divisible-by).
struct ConfigOverrides {
  std::optional<int64_t> microBatch;
  std::optional<int64_t> seq;
  std::optional<int64_t> vocabDivisibleBy;
  std::optional<BertHead> head; ///< megc --head
};

/// Parses a description from text; `filename` prefixes every error and names the default model name.
llvm::Expected<ModelConfig> parseModelConfig(llvm::StringRef text, llvm::StringRef filename,
                                             const ConfigOverrides &overrides = {});
/// The description file of `path`: a Hugging Face model folder's config.json, else `path` itself.
std::string modelDescriptionPath(llvm::StringRef path);
/// Reads and parses a description file, or a model folder's config.json (the model is then named after the folder
/// unless meg.name says otherwise).
llvm::Expected<ModelConfig> loadModelConfig(llvm::StringRef path, const ConfigOverrides &overrides = {});

} // namespace meg::frontend

#endif
