//===- ActivationCapture.h - megrun --dump-activations -----------*- C++ -*-===//
//
// Captures every value one training step computes and writes it as an activation dump (runtime/io/ActivationDump.h).
// While the step runs, each hosted rank's thread copies the results of every Forward and Backward step out of its
// backend right after the step (the arena reuses memory, so later is too late), widened to f32. Afterwards the
// root gathers every rank's copies (Session::gatherToRoot) and assembles each value to its global shape from the
// shardings the plans carry (runtime/plan/ShardCopy.h): split dims by their offsets, a pending reduction
// (`partial(axis, sum|max)`) by summing (taking the max of) the addends of the ranks along that axis, replicas (the
// same box on ranks that differ only along an axis the value is not partial over) once. Update steps (the optimizer)
// are not captured; their effect is the next step's parameters (megrun --save-weights).
//
// Memory: every value of the step, per rank, on the host, and at the root every rank's and the assembled copy, so
// dumps are for small models and short sequences (the tiny models: a few MB).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_ACTIVATIONCAPTURE_H
#define MEG_RUNTIME_TRAIN_ACTIVATIONCAPTURE_H

#include "runtime/exec/Backend.h"
#include "runtime/train/Session.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace meg::runtime {

class ActivationCapture final : public StepObserver {
public:
  /// Error: plans with several micro-batches per step (gradient accumulation) are not supported.
  static llvm::Expected<std::unique_ptr<ActivationCapture>> create(Session &session);

  llvm::Error afterStep(int rank, size_t index, Backend &backend) override;

  /// Collective, after the captured step. The root writes the dump of training step `step` (1-based) run on
  /// `backend` to `dir`. The number of values and bytes written (at the root; 0 elsewhere).
  struct Written {
    size_t values = 0;
    uint64_t bytes = 0;
  };
  llvm::Expected<Written> write(llvm::StringRef dir, int64_t step, llvm::StringRef backend);

private:
  explicit ActivationCapture(Session &session);
  Session &session;
  /// By rank, the captured results in the order the rank ran them (hosted ranks only).
  std::vector<std::vector<float>> captured;
};

} // namespace meg::runtime

#endif
