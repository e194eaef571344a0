//===- TaskEval.h - held-out accuracy of a fine-tuned BERT -----*- C++ -*-===//
//
// After fine-tuning (megrun --task race|pair, runtime/data/TaskData.h), the held-out file's examples run forward in
// file order, B a run (the last run padded with repeats of its last example, not counted), dropout off; the plan's
// output "logits" ([B, C] option scores, or [B, num_labels]) is assembled over the ranks and each example's
// prediction is the first maximum. accuracy = correct / total.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_TASKEVAL_H
#define MEG_RUNTIME_TRAIN_TASKEVAL_H

#include "runtime/data/BatchSource.h"
#include "runtime/train/Session.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace meg::runtime {

struct TaskAccuracy {
  std::string task;
  int64_t correct = 0, total = 0;
  double accuracy = 0;
  std::vector<int32_t> predictions; ///< per example, in file order

  /// One line for stdout: `race: accuracy 0.8125 correct 52 total 64`.
  std::string summary() const;
  /// The JSON object --task-result writes: task, accuracy, correct, total, predictions.
  std::string json() const;
};

/// Collective. The accuracy of the session's plan on `heldout` (a task source).
llvm::Expected<TaskAccuracy> evaluateTask(Session &session, const BatchSource &heldout, llvm::StringRef task,
                                          uint64_t seed);

} // namespace meg::runtime

#endif
