//===- BackendRegistry.cpp - backends by name -----------------------------------===//
#include "runtime/train/BackendRegistry.h"

#include "runtime/cpu/CpuBackend.h"
#ifdef MEG_HAVE_CUDA
#include "runtime/cuda/CudaBackend.h"
#endif

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/Twine.h"

using namespace meg;
using namespace meg::runtime;

llvm::StringRef meg::runtime::availableBackends() {
#ifdef MEG_HAVE_CUDA
  return "cpu, cuda";
#else
  return "cpu";
#endif
}

BackendSettings &meg::runtime::backendSettings() {
  static BackendSettings settings;
  return settings;
}

llvm::Expected<std::unique_ptr<Backend>> meg::runtime::createBackend(llvm::StringRef name, const BackendPlace &place) {
  if (name == "cpu")
    return createCpuBackend();
#ifdef MEG_HAVE_CUDA
  if (name == "cuda") {
    BackendPlace configured = place;
    configured.cudaGraphs = place.cudaGraphs && backendSettings().cudaGraphs;
    return createCudaBackend(configured);
  }
#endif
  (void)place;
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "backend '" + name +
                                                                     "' is not available (this megrun has: " +
                                                                     availableBackends() + ")");
}

llvm::Error meg::runtime::checkBackendFlag(llvm::StringRef name) {
  if (name != "cpu" && name != "cuda")
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "unknown --backend '" + name + "' (expected cpu or cuda)");
  if (!llvm::is_contained(llvm::split(availableBackends(), ", "), name))
    return llvm::createStringError(llvm::inconvertibleErrorCode(), "--backend " + name +
                                                                       ": this megrun was built without it (it has: " +
                                                                       availableBackends() + ")");
  return llvm::Error::success();
}
