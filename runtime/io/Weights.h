//===- Weights.h - full Hugging Face weights <-> per-rank shards -*- C++ -*-===//
//
// Weights files hold full (unsharded) fp32 tensors under Hugging Face names and shapes (the plan's hf_shape; same
// element order as the IR shape, so export and import are reshapes). Vocabulary padding never leaks: a parameter
// with vocab_rows exports only its first vocab_rows rows, and the padding rows are zero after a load.
// config.json beside the weights is the plan's model JSON plus `architectures` and `model_type` of the Hugging Face
// class the names follow (GPT2LMHeadModel, BertForPreTraining for post-LN, MegatronBertForPreTraining for pre-LN).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_IO_WEIGHTS_H
#define MEG_RUNTIME_IO_WEIGHTS_H

#include "runtime/io/Safetensors.h"
#include "runtime/plan/Plan.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace meg::runtime {

/// Copies rank `rank`'s shard of its param `param` into `out`.
using ShardReader = llvm::function_ref<void(int rank, size_t param, llvm::MutableArrayRef<float> out)>;
/// Stores `values` as rank `rank`'s shard of its param `param`.
using ShardWriter = llvm::function_ref<void(int rank, size_t param, llvm::ArrayRef<float> values)>;

enum class HfArchitecture { Gpt2, Bert, MegatronBert, Unknown };
/// Decided by the parameter names (GPT-2: transformer.*, Megatron-BERT: bert.encoder.ln, else BERT: bert.*).
HfArchitecture hfArchitecture(const LoadedPlan &plan);
llvm::StringRef hfClassName(HfArchitecture a);

/// The Hugging Face config.json for the plan's model.
std::string hfConfigJson(const LoadedPlan &plan);

/// Assembles every parameter from the ranks' shards and writes `path` (safetensors) and, with `withConfig`,
/// config.json beside it, each atomically. A `path` that is a folder (existing, or ending in '/') gets Hugging Face's
/// layout: FOLDER/model.safetensors and FOLDER/config.json (a folder megc and --load-weights read back). The reader may hand out any per-parameter tensor laid out like the
/// parameter (the gradients, for --dump). `dtype` (F32, BF16 or F16) is the stored element type: 16-bit files
/// hold the fp32 values rounded to nearest even, as the hub publishes 16-bit checkpoints.
/// `shards` > 1 (a folder only) splits the tensors, in plan order and by bytes, over Hugging Face's
/// model-0000s-of-0000N.safetensors files and writes model.safetensors.index.json last.
llvm::Error saveWeights(llvm::StringRef path, llvm::ArrayRef<LoadedPlan> plans, ShardReader read,
                        bool withConfig = true, SafetensorsDType dtype = SafetensorsDType::F32, int shards = 1);

/// Reads `path` (a checkpoint as the hub publishes it: runtime/io/HfCheckpoint.h) and hands each rank its shards.
/// Every parameter must be present with its HF shape, under its name or without its base-model prefix
/// (`transformer.`, `bert.`); F32, BF16, F16 and F64 values are widened to f32. Unknown tensors are errors, except
/// Hugging Face's tied aliases and buffers (lm_head.weight, cls.predictions.decoder.*, attn.bias, attn.masked_bias,
/// position_ids), which are ignored. Errors name the file (the index for a sharded checkpoint).
///
/// Fine-tuning (a plan with a task head: isTaskHead names some of its parameters): the checkpoint may lack the head,
/// whose parameters are then left alone and listed in `absentHead` (the caller initializes them), and its
/// pre-training heads (cls.*) are skipped. Without `absentHead` every parameter must be present.
llvm::Error loadWeights(llvm::StringRef path, llvm::ArrayRef<LoadedPlan> plans, ShardWriter write,
                        std::vector<std::string> *absentHead = nullptr);

/// A fine-tuning head's parameter (Hugging Face's BertForMultipleChoice / BertForSequenceClassification:
/// classifier.*).
bool isTaskHead(llvm::StringRef name);

} // namespace meg::runtime

#endif
