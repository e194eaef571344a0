// docs/ir.md shows one example of every op: every ```mir block parses and verifies, and together they use every op
// of Ops.def. Each block is also printed back unchanged (the examples are in printed form).
#include "ir/Op.h"
#include "ir/Parser.h"
#include "ir/Printer.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

using namespace meg::ir;

namespace {

std::vector<std::string> mirBlocks(llvm::StringRef doc) {
  std::vector<std::string> blocks;
  llvm::SmallVector<llvm::StringRef, 0> lines;
  doc.split(lines, '\n');
  std::string *cur = nullptr;
  for (llvm::StringRef line : lines) {
    if (!cur && line.trim() == "```mir") {
      cur = &blocks.emplace_back();
    } else if (cur && line.trim() == "```") {
      cur = nullptr;
    } else if (cur) {
      *cur += line.str() + "\n";
    }
  }
  return blocks;
}

TEST(IrDoc, EveryOpHasAParsedExample) {
  auto buf = llvm::MemoryBuffer::getFile(MEG_IR_DOC);
  ASSERT_TRUE(bool(buf)) << "cannot read " << MEG_IR_DOC;
  std::vector<std::string> blocks = mirBlocks((*buf)->getBuffer());
  ASSERT_GE(blocks.size(), 2u);

  llvm::StringSet<> used;
  for (size_t i = 0; i < blocks.size(); ++i) {
    SCOPED_TRACE("block " + std::to_string(i) + ":\n" + blocks[i]);
    auto g = parseGraph(blocks[i], "docs/ir.md");
    ASSERT_TRUE(bool(g)) << llvm::toString(g.takeError());
    for (auto &n : **g)
      used.insert(n->getName());
    // Printed form: the block minus its comment lines.
    std::string expected;
    llvm::SmallVector<llvm::StringRef, 0> lines;
    llvm::StringRef(blocks[i]).split(lines, '\n', -1, /*KeepEmpty=*/false);
    for (llvm::StringRef line : lines)
      if (!line.trim().startswith("//"))
        expected += line.str() + "\n";
    EXPECT_EQ(graphToString(**g), expected);
  }
  for (unsigned k = 0; k < kNumOpKinds; ++k)
    EXPECT_TRUE(used.contains(opName(OpKind(k)))) << "docs/ir.md has no example of '" << opName(OpKind(k)).str()
                                                  << "'";
}

} // namespace
