//===- VerifyCommand.h - `megc verify PLAN_DIR` -----------------*- C++ -*-===//
#ifndef MEG_TOOLS_MEGC_VERIFYCOMMAND_H
#define MEG_TOOLS_MEGC_VERIFYCOMMAND_H

namespace meg {

/// Whether the command line is `megc verify ...` (the first argument is the word `verify`).
bool isVerifyCommand(int argc, char **argv);
/// Runs `megc verify PLAN_DIR`: proves a plan directory loads and its collective order holds; the exit code.
int runVerifyCommand(int argc, char **argv);

} // namespace meg

#endif
