//===- Frontend.cpp - model description -> ir::Graph ------------------------===//
#include "frontend/Frontend.h"

using namespace meg::frontend;

llvm::StringRef meg::frontend::buildModeName(BuildMode m) { return m == BuildMode::Train ? "train" : "infer"; }

std::optional<BuildMode> meg::frontend::parseBuildMode(llvm::StringRef s) {
  if (s == "train")
    return BuildMode::Train;
  if (s == "infer")
    return BuildMode::Infer;
  return std::nullopt;
}

llvm::Expected<std::unique_ptr<meg::ir::Graph>> meg::frontend::buildModel(const ModelConfig &config,
                                                                          const BuildOptions &options) {
  switch (config.family) {
  case ModelFamily::GPT2:
    return buildGpt(config, options);
  case ModelFamily::Bert:
    return buildBert(config, options);
  }
  llvm_unreachable("bad model family");
}
