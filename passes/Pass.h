//===- Pass.h - graph passes and the pass manager ----------------*- C++ -*-===//
//
// A pass is one .cpp file plus one line in passes/Passes.def. Options are written `name{key=value,key=value}` in a
// pipeline string; `megc --passes=a,b{k=v}` runs any pipeline, and passes/Pipeline.cpp holds the default one.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_PASSES_PASS_H
#define MEG_PASSES_PASS_H

#include "ir/Graph.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace llvm {
class raw_ostream;
}

namespace meg::passes {

/// key=value options of one pass instance, with typed getters that report bad values as errors.
class PassOptions {
public:
  llvm::StringMap<std::string> values;

  llvm::Expected<int64_t> getInt(llvm::StringRef key, int64_t dflt) const;
  llvm::Expected<double> getFloat(llvm::StringRef key, double dflt) const;
  llvm::StringRef getString(llvm::StringRef key, llvm::StringRef dflt) const;
  /// Errors when an option not in `known` was given.
  llvm::Error checkKnown(llvm::StringRef pass, llvm::ArrayRef<llvm::StringRef> known) const;
};

class Pass {
public:
  virtual ~Pass() = default;
  virtual llvm::StringRef getName() const = 0;
  virtual llvm::Error run(ir::Graph &g) = 0;
};

using PassFactory = llvm::Expected<std::unique_ptr<Pass>> (*)(const PassOptions &);

struct PassInfo {
  llvm::StringRef name;
  llvm::StringRef summary;
  PassFactory create;
};

// One factory per registered pass, defined in the pass's own file.
#define PASS(Factory, Name, Summary) llvm::Expected<std::unique_ptr<Pass>> create##Factory##Pass(const PassOptions &);
#include "passes/Passes.def"

/// Every registered pass, in Passes.def order.
llvm::ArrayRef<PassInfo> registeredPasses();

struct PipelineConfig {
  bool verifyEach = true;
  bool timePasses = false;
  /// Names of passes after which the IR is printed; "*" = all.
  std::vector<std::string> printIRAfter;
  llvm::raw_ostream *printStream = nullptr;
};

class PassManager {
public:
  /// Parses "a,b{k=v,k2=v2},c" into pass instances.
  static llvm::Expected<PassManager> parse(llvm::StringRef pipeline);
  void add(std::unique_ptr<Pass> p) { passes.push_back(std::move(p)); }
  llvm::Error run(ir::Graph &g, const PipelineConfig &config) const;
  size_t size() const { return passes.size(); }

private:
  std::vector<std::unique_ptr<Pass>> passes;
};

} // namespace meg::passes

#endif
