// megc: the meg compiler driver (placeholder until the frontend lands).
#include "llvm/Support/raw_ostream.h"
int main() { llvm::errs() << "megc: not built yet\n"; return 1; }
