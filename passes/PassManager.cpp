//===- PassManager.cpp - pipeline parsing and running -----------------------===//
#include "passes/Pass.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Timer.h"
#include "llvm/Support/raw_ostream.h"

#include <deque>

using namespace meg;
using namespace meg::passes;

static const PassInfo kPasses[] = {
#define PASS(Factory, Name, Summary) {Name, Summary, &create##Factory##Pass},
#include "passes/Passes.def"
};

llvm::ArrayRef<PassInfo> meg::passes::registeredPasses() { return kPasses; }

static llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

llvm::Expected<int64_t> PassOptions::getInt(llvm::StringRef key, int64_t dflt) const {
  auto it = values.find(key);
  if (it == values.end())
    return dflt;
  int64_t v;
  if (llvm::StringRef(it->second).getAsInteger(10, v))
    return fail("option '" + key + "' must be an integer, got '" + it->second + "'");
  return v;
}

llvm::Expected<double> PassOptions::getFloat(llvm::StringRef key, double dflt) const {
  auto it = values.find(key);
  if (it == values.end())
    return dflt;
  double v;
  if (llvm::StringRef(it->second).getAsDouble(v))
    return fail("option '" + key + "' must be a number, got '" + it->second + "'");
  return v;
}

llvm::StringRef PassOptions::getString(llvm::StringRef key, llvm::StringRef dflt) const {
  auto it = values.find(key);
  return it == values.end() ? dflt : llvm::StringRef(it->second);
}

llvm::Error PassOptions::checkKnown(llvm::StringRef pass, llvm::ArrayRef<llvm::StringRef> known) const {
  llvm::SmallVector<llvm::StringRef, 8> keys;
  for (auto &kv : values)
    keys.push_back(kv.getKey());
  llvm::sort(keys);
  for (llvm::StringRef k : keys)
    if (!llvm::is_contained(known, k))
      return fail("pass '" + pass + "' has no option '" + k + "'");
  return llvm::Error::success();
}

llvm::Expected<PassManager> PassManager::parse(llvm::StringRef pipeline) {
  PassManager pm;
  llvm::StringRef rest = pipeline.trim();
  while (!rest.empty()) {
    size_t end = rest.find_first_of(",{");
    llvm::StringRef name = rest.substr(0, end).trim();
    rest = end == llvm::StringRef::npos ? llvm::StringRef() : rest.substr(end);
    PassOptions opts;
    if (rest.startswith("{")) {
      size_t close = rest.find('}');
      if (close == llvm::StringRef::npos)
        return fail("pipeline: missing '}' after options of pass '" + name + "'");
      llvm::SmallVector<llvm::StringRef, 4> items;
      rest.substr(1, close - 1).split(items, ',', -1, false);
      for (llvm::StringRef item : items) {
        auto [k, v] = item.split('=');
        if (!item.contains('=') || k.trim().empty())
          return fail("pipeline: option '" + item.trim() + "' of pass '" + name + "' is not key=value");
        opts.values[k.trim()] = v.trim().str();
      }
      rest = rest.substr(close + 1);
    }
    if (name.empty())
      return fail("pipeline: empty pass name in '" + pipeline + "'");
    const PassInfo *info = llvm::find_if(kPasses, [&](const PassInfo &p) { return p.name == name; });
    if (info == std::end(kPasses))
      return fail("pipeline: unknown pass '" + name + "'");
    auto pass = info->create(opts);
    if (!pass)
      return pass.takeError();
    pm.add(std::move(*pass));
    rest = rest.ltrim();
    if (rest.startswith(","))
      rest = rest.drop_front().ltrim();
    else if (!rest.empty())
      return fail("pipeline: expected ',' before '" + rest + "'");
  }
  return pm;
}

llvm::Error PassManager::run(ir::Graph &g, const PipelineConfig &config) const {
  llvm::TimerGroup timers("megc", "pass execution times");
  std::deque<llvm::Timer> passTimers; // kept alive: a group prints by itself when its last timer is destroyed
  for (const auto &pass : passes) {
    llvm::Timer &timer = passTimers.emplace_back(pass->getName(), pass->getName(), timers);
    if (config.timePasses)
      timer.startTimer();
    if (auto err = pass->run(g))
      return fail(pass->getName() + ": " + llvm::toString(std::move(err)));
    if (config.timePasses)
      timer.stopTimer();
    if (config.verifyEach)
      if (auto err = ir::verifyGraph(g))
        return fail("after pass '" + pass->getName() + "': " + llvm::toString(std::move(err)));
    bool print = llvm::any_of(config.printIRAfter,
                              [&](const std::string &n) { return n == "*" || n == pass->getName(); });
    if (print && config.printStream) {
      *config.printStream << "// -----// IR after " << pass->getName() << " //----- //\n";
      ir::printGraph(g, *config.printStream);
    }
  }
  if (config.timePasses)
    timers.print(llvm::errs(), /*ResetAfterPrint=*/true);
  return llvm::Error::success();
}
