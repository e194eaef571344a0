//===- Pass.h - graph passes and the pass manager ----------------*- C++ -*-===//
//
// A pass is one .cpp file plus one row in passes/Passes.def, which also declares its options; this header turns
// the rows into one typed options struct per pass (`ScheduleOptions{.policy = "memory"}`) and the factory that
// builds the pass from it. A pipeline is built either from those structs (passes/Pipeline.cpp, the default
// pipeline) or from text, `a,b{key=value,key=value},c` (PassManager::parse; `megc --passes`).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_PASS_H
#define MEG_PASSES_PASS_H

#include "ir/Graph.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
}

namespace meg::passes {

/// The error of a pass (or of the pass manager) that a user's input triggers: one line, no trailing period.
inline llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

/// The state holding the fp16 loss scale: autodiff{loss_scale} seeds the backward with it, the optimizer pass
/// unscales the gradients by it and updates it (Megatron's dynamic loss scaler).
inline constexpr const char *kLossScaleState = "loss_scale";

class Pass {
public:
  virtual ~Pass() = default;
  virtual llvm::StringRef getName() const = 0;
  virtual llvm::Error run(ir::Graph &g) = 0;
};

// The typed options of every pass: struct <Factory>Options with one member per PASS_OPTION of its row.
#define PASS_OPTION(Field, Key, Type, Default, Summary) Type Field = Default;
#define PASS(Factory, Name, Summary, ...)                                                                              \
  struct Factory##Options {                                                                                            \
    __VA_ARGS__                                                                                                        \
  };
#include "passes/Passes.def"

// One factory per registered pass, defined in the pass's own file; it checks the option values.
#define PASS(Factory, Name, Summary, ...)                                                                              \
  llvm::Expected<std::unique_ptr<Pass>> create##Factory##Pass(const Factory##Options &options);
#include "passes/Passes.def"

struct PipelineConfig {
  bool verifyEach = true;
  bool timePasses = false;
  /// Names of passes after which the IR is printed; "*" = all.
  std::vector<std::string> printIRAfter;
  llvm::raw_ostream *printStream = nullptr;
};

class PassManager {
public:
  /// Parses "a,b{k=v,k2=v2},c" into pass instances: each pass's options are read into its options struct
  /// (unknown keys and values of the wrong type are errors) and the pass is made by its factory.
  static llvm::Expected<PassManager> parse(llvm::StringRef pipeline);
  void add(std::unique_ptr<Pass> p) { passes.push_back(std::move(p)); }
  /// Adds the pass a factory made, or returns the factory's error.
  llvm::Error add(llvm::Expected<std::unique_ptr<Pass>> p);
  llvm::Error run(ir::Graph &g, const PipelineConfig &config) const;
  size_t size() const { return passes.size(); }

private:
  std::vector<std::unique_ptr<Pass>> passes;
};

} // namespace meg::passes

#endif
