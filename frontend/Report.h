//===- Report.h - `megc --emit report`: a model at a glance -----*- C++ -*-===//
//
// A plain-text summary of a graph: the model (when built from a description), its inputs and outputs, the exact
// parameter count and bytes, the forward FLOPs (ir::countFlops summed over every node), and a parameter table
// grouped by layer: layer 0 in full, later layers that repeat its names and shapes collapsed to one line.
// Numbers are exact integers without separators, so tests and scripts can match them:
//
//   model: gpt2 (gpt2, GPT2LMHeadModel)
//   ...
//   vocab 50257 padded to 50304 (multiple of 128 x tp 1)
//   parameters: 124439808
//   parameters with vocab padding: 124475904
//   parameter bytes: 497759232
//   forward FLOPs: 250592722944
//
//===----------------------------------------------------------------------===//
#ifndef MEG_FRONTEND_REPORT_H
#define MEG_FRONTEND_REPORT_H

#include "frontend/Frontend.h"
#include "frontend/ModelConfig.h"
#include "ir/Graph.h"

#include <optional>

namespace llvm {
class raw_ostream;
}

namespace meg::frontend {

/// What the report knows beyond the graph (absent for a graph read from textual IR).
struct ReportContext {
  const ModelConfig *config = nullptr;
  std::optional<BuildMode> mode;
  int64_t tp = 1; ///< the tp the graph was built for (its vocabulary padding)
};

/// Parameters of the graph as Hugging Face counts them (a vocab-padded parameter's rows beyond `vocab_rows` are
/// left out: they never leave meg), and as meg stores them (with the padding).
struct ParamTotals {
  int64_t elements = 0;
  int64_t bytes = 0;
  int64_t storedElements = 0;
};
ParamTotals countParameters(const ir::Graph &g);

/// Sum of ir::countFlops over every node (global, unsharded).
double countGraphFlops(const ir::Graph &g);

void printReport(const ir::Graph &g, const ReportContext &context, llvm::raw_ostream &os);

} // namespace meg::frontend

#endif
