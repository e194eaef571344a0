//===- TaskEval.cpp - held-out accuracy of a fine-tuned BERT -------------------===//
#include "runtime/train/TaskEval.h"

#include "runtime/data/TaskData.h"

#include "llvm/Support/FormatVariadic.h"

#include <cstdio>

using namespace meg::runtime;

std::string TaskAccuracy::summary() const {
  return llvm::formatv("{0}: accuracy {1:F4} correct {2} total {3}", task, accuracy, correct, total);
}

std::string TaskAccuracy::json() const {
  char number[64];
  std::snprintf(number, sizeof(number), "%.17g", accuracy);
  std::string out = "{\"task\": \"" + task + "\", \"accuracy\": " + number + ", \"correct\": " +
                    std::to_string(correct) + ", \"total\": " + std::to_string(total) + ", \"predictions\": [";
  for (size_t i = 0; i < predictions.size(); ++i)
    out += (i ? ", " : "") + std::to_string(predictions[i]);
  return out + "]}\n";
}

llvm::Expected<TaskAccuracy> meg::runtime::evaluateTask(Session &session, const BatchSource &heldout,
                                                        llvm::StringRef task, uint64_t seed) {
  const TaskExamples *data = heldout.taskExamples();
  assert(data && "not a task source");
  if (session.microBatches() != 1)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   session.plan().path + ": task accuracy needs a plan of one micro-batch per step "
                                                         "(compile without --global-batch-size)");
  const int64_t rows = heldout.microBatch();
  TaskAccuracy result;
  result.task = task.str();
  StepContext ctx;
  ctx.seed = seed;
  ctx.dropout = false;
  ctx.evaluation = true;
  std::vector<int64_t> examples;
  for (int64_t first = 0; first < data->size(); first += rows) {
    int64_t n = std::min(rows, data->size() - first);
    examples.clear();
    for (int64_t r = 0; r < rows; ++r)
      examples.push_back(first + std::min(r, n - 1));
    ctx.step = uint32_t(first / rows);
    auto ran = session.step(ctx, {taskBatch(*data, examples, heldout.isMultipleChoice())});
    if (!ran)
      return ran.takeError();
    auto logits = session.assembleOutput("logits");
    if (!logits)
      return logits.takeError();
    const int64_t classes = int64_t(logits->size()) / rows;
    for (int64_t r = 0; r < n; ++r) {
      const float *row = logits->data() + r * classes;
      int32_t best = 0;
      for (int32_t k = 1; k < classes; ++k)
        if (row[k] > row[best])
          best = k;
      result.predictions.push_back(best);
      result.correct += best == data->labels[size_t(first + r)];
    }
  }
  result.total = data->size();
  result.accuracy = double(result.correct) / double(result.total);
  return result;
}
