//===- PipelineReport.h - the pipeline lines of megc --emit report -*- C++ -*-===//
#ifndef MEG_PASSES_PIPELINEREPORT_H
#define MEG_PASSES_PIPELINEREPORT_H

#include "ir/Graph.h"

#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace meg::passes {

/// Per pipeline stage of a split graph: the 1F1B schedule, p2p messages and bytes per step, memory; the bubble
/// fraction. Empty without pipeline stages.
llvm::Expected<std::vector<std::string>> pipelineReportLines(const ir::Graph &g);

} // namespace meg::passes

#endif
