/* Linked into the bundle's executables only (scripts/gpu-bundle.sh): arc4random, which glibc has since 2.36 and
 * Debian's static LLVMSupport calls (llvm::sys::Process::GetRandomNumber), defined here over getrandom (glibc 2.25),
 * so that the bundle needs glibc 2.34 (Ubuntu 22.04, RHEL 9), not 2.36. The executable's own definition is the one
 * every reference binds to; no versioned reference to GLIBC_2.36 remains. */
#include <stdint.h>
#include <sys/random.h>

uint32_t arc4random(void) {
  uint32_t value = 0;
  while (getrandom(&value, sizeof(value), 0) != (long)sizeof(value)) {
  }
  return value;
}
