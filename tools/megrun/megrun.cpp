// megrun: the meg plan executor (placeholder).
#include "llvm/Support/raw_ostream.h"
int main() { llvm::errs() << "usage: megrun PLAN_DIR [options]\n"; return 1; }
