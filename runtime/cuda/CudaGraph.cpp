//===- CudaGraph.cpp - the training step captured once and replayed ----------===//
#include "runtime/cuda/CudaGraph.h"

#include "llvm/ADT/Twine.h"

using namespace meg;
using namespace meg::runtime;
using namespace meg::runtime::cuda;

namespace {

std::string describe(const char *call, cudaError_t err) {
  return std::string("cuda graph: ") + call + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err) +
         " (--cuda-graphs=false runs the steps without capture)";
}

llvm::Error graphError(const std::string &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), what);
}

/// Ends a capture of `stream` and instantiates it into `exec`; `stepError` (a launch that failed while capturing)
/// discards the graph.
std::string endCapture(cudaStream_t stream, const std::string &stepError, cudaGraphExec_t &exec) {
  cudaGraph_t graph = nullptr;
  cudaError_t end = cudaStreamEndCapture(stream, &graph);
  std::string err = stepError;
  if (err.empty() && end != cudaSuccess)
    err = describe("cudaStreamEndCapture", end);
  if (err.empty())
    if (cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0); inst != cudaSuccess) {
      exec = nullptr;
      err = describe("cudaGraphInstantiate", inst);
    }
  if (graph)
    cudaGraphDestroy(graph);
  return err;
}

} // namespace

llvm::Expected<std::shared_ptr<GraphGroup>> GraphGroup::create(int members) {
  std::shared_ptr<GraphGroup> g(new GraphGroup(members));
  auto make = [](cudaEvent_t &e) { return cudaEventCreateWithFlags(&e, cudaEventDisableTiming); };
  cudaError_t err = make(g->fork);
  if (err == cudaSuccess)
    err = make(g->after);
  for (int m = 1; m < members && err == cudaSuccess; ++m)
    err = make(g->joined[size_t(m)]);
  if (err != cudaSuccess)
    return graphError(describe("cudaEventCreateWithFlags", err));
  return g;
}

GraphGroup::~GraphGroup() {
  if (exec)
    cudaGraphExecDestroy(exec);
  for (cudaEvent_t e : joined)
    if (e)
      cudaEventDestroy(e);
  if (fork)
    cudaEventDestroy(fork);
  if (after)
    cudaEventDestroy(after);
}

void GraphGroup::fail(const std::string &what) {
  std::lock_guard<std::mutex> hold(lock);
  if (error.empty())
    error = what;
}

std::string GraphGroup::failure() {
  std::lock_guard<std::mutex> hold(lock);
  return error;
}

StepGraph::~StepGraph() {
  if (exec)
    cudaGraphExecDestroy(exec);
}

bool StepGraph::captured() const { return group ? group->exec != nullptr : exec != nullptr; }

llvm::Error StepGraph::run(cudaStream_t stream, llvm::function_ref<llvm::Error()> enqueue) {
  return group ? runInGroup(stream, enqueue) : runAlone(stream, enqueue);
}

llvm::Error StepGraph::runAlone(cudaStream_t stream, llvm::function_ref<llvm::Error()> enqueue) {
  if (!exec) {
    if (cudaError_t err = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed))
      return graphError(describe("cudaStreamBeginCapture", err));
    std::string stepError;
    if (llvm::Error err = enqueue())
      stepError = llvm::toString(std::move(err));
    if (std::string err = endCapture(stream, stepError, exec); !err.empty())
      return graphError(err);
  }
  if (cudaError_t err = cudaGraphLaunch(exec, stream))
    return graphError(describe("cudaGraphLaunch", err));
  return llvm::Error::success();
}

llvm::Error StepGraph::runInGroup(cudaStream_t stream, llvm::function_ref<llvm::Error()> enqueue) {
  GraphGroup &g = *group;
  bool leader = member == 0;
  auto note = [&](const char *call, cudaError_t err) {
    if (err != cudaSuccess)
      g.fail(describe(call, err));
  };
  if (!g.exec) {
    g.rendezvous.arrive_and_wait(); // every member has enqueued its earlier work (uploads) outside the capture
    if (leader) {
      g.error.clear();
      cudaError_t err = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
      g.capturing = err == cudaSuccess;
      note("cudaStreamBeginCapture", err);
      if (g.capturing)
        note("cudaEventRecord", cudaEventRecord(g.fork, stream));
    }
    g.rendezvous.arrive_and_wait(); // the fork event is recorded in the capture
    if (g.capturing) {
      if (!leader)
        note("cudaStreamWaitEvent", cudaStreamWaitEvent(stream, g.fork, 0)); // joins the capture
      if (llvm::Error err = enqueue())
        g.fail(llvm::toString(std::move(err)));
      if (!leader)
        note("cudaEventRecord", cudaEventRecord(g.joined[size_t(member)], stream));
    }
    g.rendezvous.arrive_and_wait(); // every member's work and join event are in the capture
    if (leader && g.capturing) {
      for (int m = 1; m < g.members; ++m)
        note("cudaStreamWaitEvent", cudaStreamWaitEvent(stream, g.joined[size_t(m)], 0));
      if (std::string err = endCapture(stream, g.failure(), g.exec); !err.empty())
        g.fail(err);
      g.capturing = false;
    }
    g.rendezvous.arrive_and_wait(); // the graph exists, or every member reports the failure
    if (!g.exec)
      return graphError(g.failure());
  }
  // The others' work so far (their parameter blocks, inputs) before the graph; their later work after it.
  if (!leader)
    note("cudaEventRecord", cudaEventRecord(g.joined[size_t(member)], stream));
  g.rendezvous.arrive_and_wait();
  if (leader) {
    for (int m = 1; m < g.members; ++m)
      note("cudaStreamWaitEvent", cudaStreamWaitEvent(stream, g.joined[size_t(m)], 0));
    note("cudaGraphLaunch", cudaGraphLaunch(g.exec, stream));
    note("cudaEventRecord", cudaEventRecord(g.after, stream));
  }
  g.rendezvous.arrive_and_wait();
  if (!leader)
    note("cudaStreamWaitEvent", cudaStreamWaitEvent(stream, g.after, 0));
  if (std::string err = g.failure(); !err.empty())
    return graphError(err);
  return llvm::Error::success();
}
