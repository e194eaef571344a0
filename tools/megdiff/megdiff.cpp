//===- megdiff.cpp - the first value where two activation dumps differ ---------===//
//
// megdiff A B [--rtol R] [--atol A] [--all]
// A and B are folders written by `megrun --dump-activations` (runtime/io/ActivationDump.h), e.g. of a tp 1 and a
// tp 4 run, of CPU and CUDA, of fp32 and bf16. Values are matched by key (ir/ValueKey.h) and compared in A's schedule
// order (runtime/io/DumpDiff.h); megdiff prints how many were matched, then the first value with an element beyond
// the tolerance (|b - a| > atol + rtol * |a|): its key, the op that produced it, its `%N` and position in each dump,
// its largest absolute and relative differences and where they are. --all prints every matched value's differences
// first, one line each. Exit status: 0 when no matched value differs, 1 when one does, 2 on bad input (one line
// `megdiff: error: <what>`: a missing or corrupt dump, a matched value of other shapes, a bad flag).
//
//===----------------------------------------------------------------------===//
#include "tools/common/ParseFlags.h"
#include "runtime/io/ActivationDump.h"
#include "runtime/io/DumpDiff.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace meg;
using namespace meg::runtime;
namespace cl = llvm::cl;

static cl::OptionCategory megdiffCategory("megdiff options");
static cl::list<std::string> dumps(cl::Positional, cl::desc("A B"), cl::ZeroOrMore, cl::cat(megdiffCategory));
static cl::opt<std::string> rtolText("rtol", cl::desc("Relative tolerance (default 1e-5)"), cl::init("1e-5"),
                                     cl::value_desc("R"), cl::cat(megdiffCategory));
static cl::opt<std::string> atolText("atol", cl::desc("Absolute tolerance (default 1e-5)"), cl::init("1e-5"),
                                     cl::value_desc("A"), cl::cat(megdiffCategory));
static cl::opt<bool> all("all", cl::desc("Print every matched value's differences, in A's order"),
                         cl::cat(megdiffCategory));

static int fail(const llvm::Twine &what) {
  llvm::errs() << "megdiff: error: " << what << "\n";
  return 2;
}

static std::string indexText(llvm::ArrayRef<int64_t> idx) {
  return "[" + llvm::join(llvm::map_range(idx, [](int64_t d) { return std::to_string(d); }), ",") + "]";
}

static std::string number(double v) { return llvm::formatv("{0}", llvm::format("%.6g", v)).str(); }

/// `'key' (op, phase, %N in A / %M in B) dtype[shape]`
static std::string describe(const ActivationDump &a, const ActivationDump &b, const ValueDiff &d) {
  const DumpedValue &va = a.values()[d.posA], &vb = b.values()[d.posB];
  return llvm::formatv("'{0}' ({1}, {2}; A #{3} step {4} {5}, B #{6} step {7} {8}) {9}{10}", va.key, va.op, va.phase,
                       d.posA, va.step, va.ir, d.posB, vb.step, vb.ir, va.dtype, indexText(va.shape))
      .str();
}

static std::string differences(const ValueDiff &d) {
  std::string text = llvm::formatv("max abs diff {0}", number(d.maxAbs)).str();
  if (!d.whereAbs.empty() || d.maxAbs > 0)
    text += llvm::formatv(" at {0} (A {1}, B {2})", indexText(d.whereAbs), number(d.absA), number(d.absB)).str();
  text += llvm::formatv(", max rel diff {0}", number(d.maxRel)).str();
  if (d.maxRel > 0)
    text += llvm::formatv(" at {0} (A {1}, B {2})", indexText(d.whereRel), number(d.relA), number(d.relB)).str();
  return text;
}

int main(int argc, char **argv) {
  cl::HideUnrelatedOptions(megdiffCategory);
  if (auto bad = meg::tools::parseFlags(argc, argv,
                                        "meg divergence localizer: compare two megrun --dump-activations\n"))
    return fail(*bad);
  if (dumps.size() != 2)
    return fail("expected two dumps (usage: megdiff A B [--rtol R] [--atol A])");
  DiffTolerance tol;
  for (auto [flag, text, into] : {std::tuple<const char *, std::string *, double *>{"--rtol", &rtolText, &tol.rtol},
                                  {"--atol", &atolText, &tol.atol}})
    if (llvm::StringRef(*text).getAsDouble(*into) || !std::isfinite(*into) || *into < 0)
      return fail(llvm::Twine(flag) + ": '" + *text + "' is not a non-negative number");

  auto a = ActivationDump::load(dumps[0]);
  if (!a)
    return fail(llvm::toString(a.takeError()));
  auto b = ActivationDump::load(dumps[1]);
  if (!b)
    return fail(llvm::toString(b.takeError()));
  auto diff = diffDumps(*a, *b, tol);
  if (!diff)
    return fail(llvm::toString(diff.takeError()));

  llvm::raw_ostream &out = llvm::outs();
  for (auto [name, dump] : {std::pair<const char *, const ActivationDump *>{"A", &*a}, {"B", &*b}})
    out << llvm::formatv("{0}: {1} ({2}, {3}, step {4}): {5} values\n", name, dump->path(), dump->header().mesh,
                         dump->header().backend, dump->header().step, dump->values().size());
  out << llvm::formatv("matched {0} values ({1} only in A, {2} only in B: collectives, casts and values the meshes "
                       "compute differently)\n",
                       diff->matched, diff->onlyA, diff->onlyB);
  if (all)
    for (const ValueDiff &d : diff->values)
      out << llvm::formatv("  {0}: {1}\n", describe(*a, *b, d), differences(d));
  std::string tolerance = llvm::formatv("rtol {0}, atol {1}", number(tol.rtol), number(tol.atol)).str();
  if (diff->first) {
    const ValueDiff &d = diff->values[*diff->first];
    out << llvm::formatv("first difference ({0}): {1}: {2} of {3} elements differ; {4}\n", tolerance,
                         describe(*a, *b, d), d.differing, d.compared, differences(d));
    return 1;
  }
  if (diff->matched == 0) {
    out << "no difference: no value is in both dumps\n";
    return 0;
  }
  const ValueDiff &d = diff->values[*diff->largestAbs];
  out << llvm::formatv("no difference ({0}) in {1} matched values; largest: {2}: {3}\n", tolerance, diff->matched,
                       describe(*a, *b, d), differences(d));
  return 0;
}
