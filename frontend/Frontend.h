//===- Frontend.h - model description -> ir::Graph --------------*- C++ -*-===//
//
// Builds the forward graph (+ loss) of a model described by a ModelConfig. Parameter names are Hugging Face's
// state_dict keys (GPT2LMHeadModel, BertForPreTraining, MegatronBertForPreTraining); IR shapes name the heads
// where the sharding needs them, with the HF shape in the `hf_shape` attribute (same element order).
//
// Vocabulary padding (Megatron): the word embedding (and BERT's MLM bias) has ModelConfig::paddedVocab(tp) rows, with
// `vocab_rows` = the real vocabulary so that weights files keep Hugging Face's shapes; the logits of the padding
// columns are set to -inf by `mask_padding` before the loss (and in the inference logits), so they never win and
// get no gradient.
//
//   train: inputs + labels -> output "loss" (f32[])
//   infer: inputs only -> output "logits" (GPT-2), "prediction_logits" + "seq_relationship_logits" (BERT); no
//          dropout nodes
//   BERT with a fine-tuning head (frontend/Bert.cpp): output "logits" in both modes, plus "loss" in train mode
//
//===----------------------------------------------------------------------===//
#ifndef MEG_FRONTEND_FRONTEND_H
#define MEG_FRONTEND_FRONTEND_H

#include "frontend/ModelConfig.h"
#include "ir/Graph.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <optional>

namespace meg::frontend {

/// Train: loss; Infer: logits of a whole sequence; Decode (GPT only): logits of one new token per sequence at input
/// `position`, keys and values of earlier tokens kept in KV-cache states of --seq positions (frontend/Gpt.cpp).
enum class BuildMode { Train, Infer, Decode };

llvm::StringRef buildModeName(BuildMode m);
std::optional<BuildMode> parseBuildMode(llvm::StringRef s);

struct BuildOptions {
  BuildMode mode = BuildMode::Train;
  /// The tensor-parallel size the graph is built for: the vocabulary is padded to ModelConfig::paddedVocab(tp)
  /// (the padded rows exist only inside meg: vocab_rows on the parameters, mask_padding on the logits).
  int64_t tp = 1;
  /// Decode mode: new tokens per sequence per pass (1 to generate; more to prefill a prompt that many at a time).
  int64_t decodeTokens = 1;
};

/// Builds the graph of any supported family.
llvm::Expected<std::unique_ptr<ir::Graph>> buildModel(const ModelConfig &config, const BuildOptions &options = {});

/// GPT2LMHeadModel (frontend/Gpt.cpp).
llvm::Expected<std::unique_ptr<ir::Graph>> buildGpt(const ModelConfig &config, const BuildOptions &options);
/// BertForPreTraining (post-LN) or MegatronBertForPreTraining (pre-LN) (frontend/Bert.cpp).
llvm::Expected<std::unique_ptr<ir::Graph>> buildBert(const ModelConfig &config, const BuildOptions &options);

} // namespace meg::frontend

#endif
