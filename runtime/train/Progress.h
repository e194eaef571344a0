//===- Progress.h - the live progress line of a training run ----*- C++ -*-===//
//
// One line per step:
//
//   step 3: loss 5.12345679 (3/12, lr 0.001, 1834.2 tokens/s, elapsed 0:02, eta 0:07)
//
// `step N: loss X` first (scripts and tests cut at " ("), then the step out of the run's last, the learning rate
// (with fp16 loss scaling then the loss scale and `skipped` on a step that overflowed),
// the step's throughput, the wall time since the first step of this run started and the estimated time to the
// last step (the mean time of this run's steps so far times the steps left). Durations read M:SS, or H:MM:SS from
// an hour. On a terminal the line is rewritten in place ('\r', clear to the end of the line); otherwise (pipes,
// files, CI) every step gets its own line.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_PROGRESS_H
#define MEG_RUNTIME_TRAIN_PROGRESS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdint>
#include <string>

namespace meg::runtime {

class ProgressLine {
public:
  /// Steps firstStep + 1 .. lastStep (1-based) will be reported; the clock starts now. `inPlace`: rewrite one line.
  ProgressLine(llvm::raw_ostream &os, int64_t firstStep, int64_t lastStep, bool inPlace);
  /// Reports the completed step `step` (1-based); `scaling` (fp16 loss scaling, after the lr) is e.g.
  /// ", loss scale 65536, skipped".
  void step(int64_t step, llvm::StringRef lossText, double lr, double tokensPerSecond, llvm::StringRef scaling = "");
  /// Ends an in-place line so that other output starts on a line of its own (nothing otherwise).
  void endLine();

  /// `M:SS` or `H:MM:SS`.
  static std::string duration(double seconds);

private:
  llvm::raw_ostream &os;
  int64_t firstStep, lastStep;
  bool inPlace, open = false;
  std::chrono::steady_clock::time_point start;
};

} // namespace meg::runtime

#endif
