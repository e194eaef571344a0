//===- BackendRegistry.h - backends by name ---------------------*- C++ -*-===//
//
// The one place that maps a --backend name to a Backend (runtime/train/BackendRegistry.cpp). Backends compiled only
// on some machines (CUDA) are listed under their build macro, so a megrun without them names what it has.
//
//===----------------------------------------------------------------------===//
#ifndef MEG_RUNTIME_TRAIN_BACKENDREGISTRY_H
#define MEG_RUNTIME_TRAIN_BACKENDREGISTRY_H

#include "runtime/exec/Backend.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>

namespace meg::runtime {

/// Process-wide backend settings that megrun's flags set before any backend is created; createBackend applies
/// them to every place.
struct BackendSettings {
  bool cudaGraphs = true; ///< --cuda-graphs: CUDA captures the training step in a graph after warm-up
};
BackendSettings &backendSettings();

/// The backend called `name` ("cpu", "cuda"), or an error naming the backends this build has.
llvm::Expected<std::unique_ptr<Backend>> createBackend(llvm::StringRef name, const BackendPlace &place);
/// The backend names this build has, comma-separated.
llvm::StringRef availableBackends();
/// Error unless `name` (the value of megrun's --backend) is a backend of meg that this build has.
llvm::Error checkBackendFlag(llvm::StringRef name);

} // namespace meg::runtime

#endif
