//===- PassManager.cpp - pipeline parsing and running -----------------------===//
//
// The one parser of pass options: for every row of passes/Passes.def, forEachOption visits the members of the
// pass's options struct with their keys, and parseValue reads a `key=value` text into a member by its type.
//
//===----------------------------------------------------------------------===//
#include "passes/Pass.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Timer.h"
#include "llvm/Support/raw_ostream.h"

#include <deque>
#include <type_traits>

using namespace meg;
using namespace meg::passes;

namespace {

// forEachOption(options, fn) calls fn(key, member) for each option of a pass, in Passes.def order.
#define PASS_OPTION(Field, Key, Type, Default, Summary) fn(llvm::StringRef(Key), options.Field);
#define PASS(Factory, Name, Summary, ...)                                                                              \
  template <typename Fn> void forEachOption([[maybe_unused]] Factory##Options &options, [[maybe_unused]] Fn &&fn) {   \
    __VA_ARGS__                                                                                                        \
  }
#include "passes/Passes.def"

/// Reads `text` into `out`; false (and `out` unchanged) when it is not a value of the member's type.
bool parseValue(llvm::StringRef text, int64_t &out) { return !text.getAsInteger(10, out); }
bool parseValue(llvm::StringRef text, double &out) { return !text.getAsDouble(out); }
bool parseValue(llvm::StringRef text, std::string &out) {
  out = text.str();
  return true;
}
bool parseValue(llvm::StringRef text, bool &out) {
  if (text != "true" && text != "false")
    return false;
  out = text == "true";
  return true;
}

/// What a value of type T must be, for the error message.
template <typename T> llvm::StringRef expectedValue() {
  if constexpr (std::is_same_v<T, int64_t>)
    return "an integer";
  else if constexpr (std::is_same_v<T, double>)
    return "a number";
  else if constexpr (std::is_same_v<T, bool>)
    return "true or false";
  else
    return "a string";
}

using TextOptions = llvm::StringMap<std::string>;

/// Fills the options struct of `pass` from key=value texts, then makes the pass with its factory.
template <typename Options, auto Create>
llvm::Expected<std::unique_ptr<Pass>> createFromText(llvm::StringRef pass, const TextOptions &values) {
  Options options;
  llvm::StringSet<> known;
  forEachOption(options, [&](llvm::StringRef key, auto &) { known.insert(key); });
  llvm::SmallVector<llvm::StringRef, 8> keys;
  for (const auto &kv : values)
    keys.push_back(kv.getKey());
  llvm::sort(keys);
  for (llvm::StringRef k : keys)
    if (!known.contains(k))
      return fail("pass '" + pass + "' has no option '" + k + "'");
  std::string problem;
  forEachOption(options, [&](llvm::StringRef key, auto &member) {
    auto it = values.find(key);
    if (!problem.empty() || it == values.end() || parseValue(it->second, member))
      return;
    problem = (pass + ": option '" + key + "' must be " +
               expectedValue<std::remove_reference_t<decltype(member)>>() + ", got '" + it->second + "'")
                  .str();
  });
  if (!problem.empty())
    return fail(problem);
  return Create(options);
}

struct PassInfo {
  llvm::StringRef name;
  llvm::Expected<std::unique_ptr<Pass>> (*create)(llvm::StringRef name, const TextOptions &values);
};

const PassInfo kPasses[] = {
#define PASS(Factory, Name, Summary, ...) {Name, &createFromText<Factory##Options, &create##Factory##Pass>},
#include "passes/Passes.def"
};

} // namespace

llvm::Error PassManager::add(llvm::Expected<std::unique_ptr<Pass>> p) {
  if (!p)
    return p.takeError();
  add(std::move(*p));
  return llvm::Error::success();
}

llvm::Expected<PassManager> PassManager::parse(llvm::StringRef pipeline) {
  PassManager pm;
  llvm::StringRef rest = pipeline.trim();
  while (!rest.empty()) {
    size_t end = rest.find_first_of(",{");
    llvm::StringRef name = rest.substr(0, end).trim();
    rest = end == llvm::StringRef::npos ? llvm::StringRef() : rest.substr(end);
    TextOptions values;
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
        values[k.trim()] = v.trim().str();
      }
      rest = rest.substr(close + 1);
    }
    if (name.empty())
      return fail("pipeline: empty pass name in '" + pipeline + "'");
    const PassInfo *info = llvm::find_if(kPasses, [&](const PassInfo &p) { return p.name == name; });
    if (info == std::end(kPasses))
      return fail("pipeline: unknown pass '" + name + "'");
    if (auto err = pm.add(info->create(info->name, values)))
      return err;
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
  for (const std::string &name : config.printIRAfter)
    if (name != "*" && llvm::none_of(passes, [&](const auto &p) { return p->getName() == name; })) {
      std::string names;
      for (const auto &p : passes)
        names += (names.empty() ? "" : ", ") + p->getName().str();
      return fail("--print-ir-after: '" + name + "' is not a pass of this pipeline (" + names + ")");
    }
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
