//===- megdata.cpp - text corpus -> token file ---------------------------------===//
//
// megdata CORPUS.txt [CORPUS2.txt ...] -o OUT.tok|--output-prefix PREFIX [--tokenizer byte|gpt2]
//         [--vocab vocab.json --merges merges.txt | --tokenizer-file tokenizer.json] [--separator LINE] [--eod=false]
// Splits every input into documents (one per file, or at lines holding exactly LINE, e.g. `%` for the fortunes
// files), tokenizes each document on its own and writes the ids, each document followed by the end-of-document
// token, as a token file (runtime/data/TokenData.h, version 2: with the end-of-document id and the per-id sentence flags
// that BERT's sentence pairs use), or with --output-prefix as a Megatron indexed dataset (runtime/data/IndexedDataset.h). End of document: GPT-2 BPE's `<|endoftext|>`; byte level's 0x1E (ASCII record
// separator, runtime/data/Documents.h), which text does not contain. A thin driver: everything is a runtime/ call.
// Errors are one line `megdata: error: <what>`, exit code 1, and no output file (it is written atomically).
//
//===----------------------------------------------------------------------===//
#include "tools/common/ParseFlags.h"
#include "ir/File.h"
#include "runtime/data/Documents.h"
#include "runtime/data/IndexedDataset.h"
#include "runtime/data/TokenData.h"
#include "runtime/data/Tokenizer.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/raw_ostream.h"

#include <csignal>

using namespace meg;
using namespace meg::runtime;
namespace cl = llvm::cl;

static cl::OptionCategory megdataCategory("megdata options");

static cl::list<std::string> inputs(cl::Positional, cl::desc("CORPUS.txt..."), cl::ZeroOrMore,
                                    cl::cat(megdataCategory));
static cl::opt<std::string> outputPath("o", cl::desc("Token file to write"), cl::value_desc("OUT.tok"),
                                       cl::cat(megdataCategory));
static cl::opt<std::string> outputPrefix("output-prefix",
                                         cl::desc("Write a Megatron indexed dataset instead: PREFIX.bin + PREFIX.idx "
                                                  "(MMIDIDX version 1, one sequence per document, uint16 tokens "
                                                  "below 65500 ids else int32), for megrun --data-path"),
                                         cl::value_desc("PREFIX"), cl::cat(megdataCategory));
static cl::opt<std::string> tokenizerFile("tokenizer-file",
                                          cl::desc("GPT-2 BPE from a Hugging Face tokenizer.json (model.vocab + "
                                                   "model.merges) instead of --vocab and --merges"),
                                          cl::value_desc("tokenizer.json"), cl::cat(megdataCategory));
static cl::opt<std::string> tokenizerName("tokenizer",
                                          cl::desc("byte (ids = bytes, vocabulary 256) or gpt2 (byte-level BPE "
                                                   "from --vocab and --merges, as Hugging Face's GPT2Tokenizer)"),
                                          cl::value_desc("byte|gpt2"), cl::init("byte"), cl::cat(megdataCategory));
static cl::opt<std::string> vocabPath("vocab", cl::desc("GPT-2 vocab.json (token -> id)"), cl::value_desc("vocab.json"),
                                      cl::cat(megdataCategory));
static cl::opt<std::string> mergesPath("merges", cl::desc("GPT-2 merges.txt"), cl::value_desc("merges.txt"),
                                       cl::cat(megdataCategory));
static cl::opt<std::string> separatorLine("separator",
                                          cl::desc("A line holding exactly LINE ends a document (e.g. % for "
                                                   "fortunes); default: one document per input file"),
                                          cl::value_desc("LINE"), cl::cat(megdataCategory));
static cl::opt<bool> endOfDocument("eod",
                                   cl::desc("Append the end-of-document token after every document (gpt2: "
                                            "<|endoftext|>, byte: 0x1E); default true, --eod=false to leave it out"),
                                   cl::init(true), cl::cat(megdataCategory));

static int fail(const llvm::Twine &what) {
  llvm::errs() << "megdata: error: " << printableText(what.str(), SIZE_MAX, /*keepNewlines=*/true) << "\n";
  return 1;
}
static int fail(llvm::Error err) { return fail(llvm::toString(std::move(err))); }

int main(int argc, char **argv) {
  // A write past the file-size limit fails with EFBIG (reported with the file) instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  cl::HideUnrelatedOptions(megdataCategory);
  if (auto bad = meg::tools::parseFlags(argc, argv,
                                        "meg corpus tokenizer: text files -> a token file for megrun --data\n"))
    return fail(*bad);

  // Checked here rather than by cl::Required/OneOrMore, whose errors bypass the one-line error format.
  if (inputs.empty())
    return fail("no input files (usage: megdata CORPUS.txt... -o OUT.tok)");
  if (outputPath.empty() == outputPrefix.empty())
    return fail(outputPath.empty() ? "no output file: pass -o OUT.tok or --output-prefix PREFIX"
                                   : "-o and --output-prefix both name an output (use one)");

  std::unique_ptr<Tokenizer> tok;
  int32_t eod = -1;
  if (tokenizerName == "byte") {
    if (!vocabPath.empty() || !mergesPath.empty() || !tokenizerFile.empty())
      return fail("--vocab, --merges and --tokenizer-file need --tokenizer gpt2");
    tok = std::make_unique<ByteTokenizer>();
    eod = ByteEndOfDocument;
  } else if (tokenizerName == "gpt2") {
    if (!tokenizerFile.empty() && (!vocabPath.empty() || !mergesPath.empty()))
      return fail("--tokenizer-file and --vocab/--merges both give the BPE (use one)");
    if (tokenizerFile.empty() && (vocabPath.empty() || mergesPath.empty()))
      return fail("--tokenizer gpt2 needs --vocab vocab.json and --merges merges.txt, or --tokenizer-file "
                  "tokenizer.json");
    auto bpe = tokenizerFile.empty() ? Gpt2BpeTokenizer::load(vocabPath, mergesPath)
                                     : Gpt2BpeTokenizer::loadTokenizerJson(tokenizerFile);
    if (!bpe)
      return fail(bpe.takeError());
    eod = (*bpe)->endOfTextId();
    if (eod < 0 && endOfDocument)
      return fail(vocabPath + ": no <|endoftext|> token to end documents with (or pass --eod=false)");
    tok = std::move(*bpe);
  } else {
    return fail("unknown --tokenizer '" + tokenizerName + "' (expected byte or gpt2)");
  }

  CorpusOptions options;
  options.SeparatorLine = separatorLine;
  options.EndOfDocument = endOfDocument ? eod : -1;
  auto corpus = TextCorpus::fromFiles(inputs, *tok, options);
  if (!corpus)
    return fail(corpus.takeError());
  if (corpus->Documents == 0)
    return fail("the corpus is empty: no input holds a document with text");
  std::string written = outputPath;
  if (!outputPrefix.empty()) {
    if (auto err = writeIndexedDataset(outputPrefix, corpus->Tokens, corpus->DocumentEnds, corpus->VocabSize))
      return fail(std::move(err));
    written = outputPrefix + ".bin, " + outputPrefix + ".idx";
  } else if (auto err = corpus->write(outputPath)) {
    return fail(std::move(err));
  }
  llvm::outs() << "megdata: " << corpus->Documents << " documents, " << corpus->Bytes << " bytes, "
               << corpus->Tokens.size() << " tokens, vocabulary " << corpus->VocabSize << " (" << tokenizerName
               << "), end of document ";
  if (options.EndOfDocument >= 0)
    llvm::outs() << options.EndOfDocument;
  else
    llvm::outs() << "none";
  llvm::outs() << " -> " << written << "\n";
  return 0;
}
