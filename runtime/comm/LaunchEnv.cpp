//===- LaunchEnv.cpp - where a process sits in a torchrun / Slurm launch -------===//
#include "runtime/comm/LaunchEnv.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstdlib>
#include <optional>

using namespace meg::runtime;

static llvm::Error failure(const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), "--ranks env: " + what);
}

namespace {

/// An integer variable: the first of `names` that is set; nullopt when none is.
struct EnvInt {
  const char *name = nullptr; ///< the variable read
  std::optional<int> value;
};

llvm::Expected<EnvInt> readInt(std::initializer_list<const char *> names) {
  for (const char *name : names) {
    const char *text = std::getenv(name);
    if (!text)
      continue;
    int value = 0;
    if (llvm::StringRef(text).trim().getAsInteger(10, value))
      return failure(llvm::formatv("{0}='{1}' is not an integer", name, text));
    return EnvInt{name, value};
  }
  return EnvInt{*names.begin(), std::nullopt};
}

} // namespace

static const char *const kWhatToSet = "(torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; "
                                      "under Slurm, SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID stand for the first "
                                      "three)";

llvm::Expected<LaunchEnvironment> meg::runtime::readLaunchEnvironment() {
  LaunchEnvironment env;
  EnvInt rank, world, local, masterPort, port, timeout;
  struct Read {
    EnvInt *into;
    std::initializer_list<const char *> names;
  };
  for (const Read &r : {Read{&rank, {"RANK", "SLURM_PROCID"}}, Read{&world, {"WORLD_SIZE", "SLURM_NTASKS"}},
                        Read{&local, {"LOCAL_RANK", "SLURM_LOCALID"}}, Read{&masterPort, {"MASTER_PORT"}},
                        Read{&port, {"MEG_RENDEZVOUS_PORT"}}, Read{&timeout, {"MEG_RENDEZVOUS_TIMEOUT"}}}) {
    auto value = readInt(r.names);
    if (!value)
      return value.takeError();
    *r.into = *value;
  }
  for (const EnvInt *v : {&rank, &world})
    if (!v->value)
      return failure(llvm::Twine(v->name) + " is not set " + kWhatToSet);
  const char *addr = std::getenv("MASTER_ADDR");
  if (!addr || !*addr)
    return failure(llvm::Twine("MASTER_ADDR is not set ") + kWhatToSet);
  if (!masterPort.value && !port.value)
    return failure(llvm::Twine("MASTER_PORT is not set ") + kWhatToSet);
  env.rank = *rank.value;
  env.worldSize = *world.value;
  env.localRank = local.value.value_or(0);
  env.masterAddr = addr;
  env.port = port.value ? *port.value : *masterPort.value + 1;
  env.timeoutSec = timeout.value.value_or(300);
  if (env.worldSize < 1)
    return failure(llvm::formatv("{0}={1} is not a positive world size", world.name, env.worldSize));
  if (env.rank < 0 || env.rank >= env.worldSize)
    return failure(llvm::formatv("{0}={1} is outside a world of {2}={3}", rank.name, env.rank, world.name,
                                 env.worldSize));
  if (env.localRank < 0)
    return failure(llvm::formatv("{0}={1} is negative", local.name, env.localRank));
  if (env.port < 1 || env.port > 65535)
    return failure(llvm::formatv("rendezvous port {0} ({1}) is outside 1..65535", env.port,
                                 port.value ? "MEG_RENDEZVOUS_PORT" : "MASTER_PORT + 1"));
  if (env.timeoutSec < 1)
    return failure(llvm::formatv("MEG_RENDEZVOUS_TIMEOUT={0} is not a positive number of seconds", env.timeoutSec));
  return env;
}
