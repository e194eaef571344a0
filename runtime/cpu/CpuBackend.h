//===- CpuBackend.h - the CPU backend ---------------------------*- C++ -*-===//
#ifndef MEG_RUNTIME_CPU_CPUBACKEND_H
#define MEG_RUNTIME_CPU_CPUBACKEND_H

#include "runtime/exec/Backend.h"

#include <memory>

namespace meg::runtime {

/// The CPU backend: OpenBLAS + kernels/cpu (runtime/cpu/CpuBackend.cpp).
std::unique_ptr<Backend> createCpuBackend();

} // namespace meg::runtime

#endif
