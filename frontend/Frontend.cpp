//===- Frontend.cpp - model description -> ir::Graph ------------------------===//
#include "frontend/Frontend.h"

using namespace meg::frontend;

llvm::StringRef meg::frontend::buildModeName(BuildMode m) {
  switch (m) {
  case BuildMode::Train: return "train";
  case BuildMode::Infer: return "infer";
  case BuildMode::Decode: return "decode";
  }
  llvm_unreachable("bad build mode");
}

std::optional<BuildMode> meg::frontend::parseBuildMode(llvm::StringRef s) {
  if (s == "train")
    return BuildMode::Train;
  if (s == "infer")
    return BuildMode::Infer;
  if (s == "decode")
    return BuildMode::Decode;
  return std::nullopt;
}

llvm::Expected<std::unique_ptr<meg::ir::Graph>> meg::frontend::buildModel(const ModelConfig &config,
                                                                          const BuildOptions &options) {
  switch (config.family) {
  case ModelFamily::GPT2:
    return buildGpt(config, options);
  case ModelFamily::Bert:
    if (options.mode == BuildMode::Decode)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "--mode decode (a KV cache) needs a GPT model; '" + config.name +
                                         "' is a BERT model (bidirectional: no token is ever final)");
    return buildBert(config, options);
  }
  llvm_unreachable("bad model family");
}
