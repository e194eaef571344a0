//===- Progress.cpp - the live progress line of a training run ---------------===//
#include "runtime/train/Progress.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

using namespace meg::runtime;

ProgressLine::ProgressLine(llvm::raw_ostream &os, int64_t firstStep, int64_t lastStep, bool inPlace)
    : os(os), firstStep(firstStep), lastStep(lastStep), inPlace(inPlace), start(std::chrono::steady_clock::now()) {}

std::string ProgressLine::duration(double seconds) {
  int64_t s = int64_t(std::llround(std::max(seconds, 0.0)));
  char buf[48];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60),
                  (long long)(s % 60));
  else
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

void ProgressLine::step(int64_t step, llvm::StringRef lossText, double lr, double tokensPerSecond,
                        llvm::StringRef scaling) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int64_t done = step - firstStep;
  double eta = done > 0 ? elapsed / double(done) * double(lastStep - step) : 0;
  char lrText[32];
  std::snprintf(lrText, sizeof(lrText), "%.6g", lr);
  std::string line = llvm::formatv("step {0}: loss {1} ({0}/{2}, lr {3}{7}, {4:F1} tokens/s, elapsed {5}, eta {6})",
                                   step, lossText, lastStep, lrText, tokensPerSecond, duration(elapsed),
                                   duration(eta), scaling)
                         .str();
  if (inPlace) {
    os << "\r" << line << "\x1b[K";
    open = true;
  } else {
    os << line << "\n";
  }
  os.flush();
}

void ProgressLine::endLine() {
  if (!open)
    return;
  os << "\n";
  os.flush();
  open = false;
}
