//===- OpExamples.h - the op examples of docs/ir.md, compiled and run -*- C++ -*-===//
//
// The completeness test of the op table (test/unit/ops) and the GPU suite (test/gpu) run the same list: every
// ```mir block of docs/ir.md. This library extracts the blocks, compiles one to per-rank plans and runs them on a
// world of backends, returning every value of the graph as a global (unsharded) host tensor:
//
//   compileExample  parse; optionally move to another mesh with some sources split (a Layout); `partition` (unless
//                   the example is already partitioned); an `output` for every computed value; `schedule`,
//                   `memory-plan`. The graph keeps its verified types, so each value's sharding is known.
//   runExample      one plan per rank, a backend and communicator per rank (a World), seeded inputs, parameters
//                   and optimizer state, one step; then every output is read on every rank and assembled by its
//                   IR sharding (split dims placed at their offsets, pending sums added, replicas compared).
//
//===----------------------------------------------------------------------===//
#ifndef MEG_TEST_SUPPORT_OPEXAMPLES_H
#define MEG_TEST_SUPPORT_OPEXAMPLES_H

#include "ir/Graph.h"
#include "runtime/exec/Backend.h"
#include "runtime/comm/Communicator.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace meg::optest {

/// One ```mir block: its text (comment lines included) and the line of docs/ir.md it starts on.
struct OpExample {
  std::string text;
  unsigned line = 0;
  /// The graph name (`graph @NAME`), for test names and messages.
  std::string name;
};

/// Every ```mir block of `doc`, in order.
std::vector<OpExample> mirBlocks(llvm::StringRef doc);
/// Every ```mir block of docs/ir.md (the path is compiled in; the environment variable MEG_IR_DOC overrides it).
llvm::Expected<std::vector<OpExample>> irDocExamples();
/// The printed form an example must round-trip to: the block without its comment lines.
std::string printedForm(llvm::StringRef block);

/// A global tensor on the host, in double (i32 values exactly).
struct HostTensor {
  ir::DType dtype = ir::DType::F32;
  std::vector<int64_t> shape;
  std::vector<double> data;

  HostTensor() = default;
  HostTensor(ir::DType dtype, std::vector<int64_t> shape);
  int64_t numel() const;
};

/// Where an example runs: on `mesh`, with the named sources (params, inputs, state) split over tp on a dim.
struct Layout {
  ir::Mesh mesh;
  std::vector<std::pair<std::string, unsigned>> tpSplits;
  std::string label() const;
};

/// The tp = 2 layouts of a 1 x 1 example: each source (param, input or state of rank >= 1) split on each dim whose
/// size is even, one at a time; the other operands of a node that updates the source in place (adamw: param,
/// grad, both moments) are split with it, as the optimizer pass lays them out. Empty for an example on a bigger mesh.
std::vector<Layout> tpLayouts(const ir::Graph &g);

struct CompiledExample {
  std::unique_ptr<ir::Graph> graph;
  /// The values an added output observes, by output name, and the declared outputs of the example.
  std::map<std::string, const ir::Value *> observed;
};

/// Parses `text`, applies `layout` (if any), partitions, adds an observing output per computed value when
/// `observeAll`, schedules and memory-plans.
llvm::Expected<CompiledExample> compileExample(llvm::StringRef text, const Layout *layout, bool observeAll = true);


struct ExampleRun {
  /// Every value of the graph: sources as they were filled, every other value as its observing output read back.
  std::map<const ir::Value *, HostTensor> values;
  /// Sources an op updates in place (the WritesMask column of Ops.def), read back after the step.
  std::map<const ir::Value *, HostTensor> updated;
  /// The outputs by name (declared and observing).
  std::map<std::string, HostTensor> outputs;
  /// Replicas that differ: "<what>: rank r differs from rank q at element i".
  std::vector<std::string> replicaMismatches;
};

/// The step context every run uses: seed 1234, step 149 (lr_schedule between warm-up and decay), dropout on.
runtime::StepContext exampleContext();

/// Compiles each rank's plan, fills sources from `seed` (identically for every layout of one example: values
/// depend on the source name and global index only), runs one step on a `backend` ("cpu", "cuda") per rank, ranks
/// as threads with the backend's thread communicators, and assembles every output.
llvm::Expected<ExampleRun> runExample(const CompiledExample &ex, llvm::StringRef backend, unsigned seed = 1);

/// |a - e| <= rtol (|e| + mean |e|) elementwise (the mean keeps near-zero entries to the tensor's scale); i32
/// exactly; NaN and inf must match. Empty when close, else the first few differences.
std::string compareTensors(const HostTensor &actual, const HostTensor &expected, double rtol);

/// `%N = op` of the value in the printed graph, for messages.
std::string describeValue(const ir::Graph &g, const ir::Value *v);

} // namespace meg::optest

#endif
