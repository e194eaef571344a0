//===- CudaGraph.h - the training step captured once and replayed -*- C++ -*-===//
//
// After warm-up the CUDA backend runs the training step through a CUDA graph: the first graph run captures the
// step list as the launches enqueue it (cudaStreamBeginCapture ... cudaStreamEndCapture, cudaGraphInstantiate),
// every run (the capturing one included) launches the instantiated graph with one cudaGraphLaunch. Nothing in the
// captured launches may change between steps except through device memory (runtime/cuda/CudaOps.h); the backend
// replays only for the seed and dropout setting it captured with.
//
// One rank per process (one GPU per process, NCCL collectives): the backend's stream is captured alone.
// Several ranks of one process on one GPU (one-GPU mode, runtime/comm/OneGpuCommunicator.cpp): a member's
// collectives wait on CUDA events recorded on the other members' streams, which one capture cannot take from
// another, so the members capture TOGETHER into one graph: member 0 begins the capture and records a fork event,
// the others join the capture by waiting on it, everyone enqueues its steps (the collectives' events become graph
// edges), the others record a join event that member 0 waits on before it ends the capture. Member 0 then launches
// the whole group's graph on its stream after waiting for the others' earlier work (their uploads), and the others'
// streams wait for it to finish (an event), so every member's later work stays ordered after the step. The host
// rendezvous of the members is a std::barrier; the host never waits for the device.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_CUDA_CUDAGRAPH_H
#define MEG_RUNTIME_CUDA_CUDAGRAPH_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <cuda_runtime_api.h>

#include <barrier>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace meg::runtime::cuda {

/// The members of one process that share a GPU and capture their step together.
class GraphGroup {
public:
  /// Events are created on the current device.
  static llvm::Expected<std::shared_ptr<GraphGroup>> create(int members);
  ~GraphGroup();
  GraphGroup(const GraphGroup &) = delete;
  GraphGroup &operator=(const GraphGroup &) = delete;

private:
  explicit GraphGroup(int members) : members(members), rendezvous(members), joined(size_t(members), nullptr) {}
  friend class StepGraph;

  /// Keeps the first failure of any member.
  void fail(const std::string &what);
  std::string failure();

  const int members;
  std::barrier<> rendezvous;
  cudaEvent_t fork = nullptr, after = nullptr;
  std::vector<cudaEvent_t> joined; ///< per member: its work so far (member 0's unused)
  cudaGraphExec_t exec = nullptr;
  bool capturing = false;
  std::mutex lock;
  std::string error;
};

/// The captured training step of one backend (a member of `group`, or alone when group is null).
class StepGraph {
public:
  StepGraph() = default;
  StepGraph(const StepGraph &) = delete;
  StepGraph &operator=(const StepGraph &) = delete;
  ~StepGraph();

  /// Joins `group` as `member` (before the first run).
  void setGroup(std::shared_ptr<GraphGroup> g, int m) {
    group = std::move(g);
    member = m;
  }
  /// True once the step is captured (by this backend or its group).
  bool captured() const;
  /// True for a member of a group (whose run must be called by every member, even one that has failed).
  bool grouped() const { return group != nullptr; }
  /// Runs the step: `enqueue` enqueues every step on `stream` (captured on the first call), then the graph is
  /// launched. Every member of a group must call it together, with the same decisions.
  llvm::Error run(cudaStream_t stream, llvm::function_ref<llvm::Error()> enqueue);

private:
  llvm::Error runAlone(cudaStream_t stream, llvm::function_ref<llvm::Error()> enqueue);
  llvm::Error runInGroup(cudaStream_t stream, llvm::function_ref<llvm::Error()> enqueue);

  std::shared_ptr<GraphGroup> group;
  int member = 0;
  cudaGraphExec_t exec = nullptr; ///< alone
};

} // namespace meg::runtime::cuda

#endif
