//===- TokenizerJson.cpp - GPT-2 BPE from a Hugging Face tokenizer.json -------===//
//
// tokenizer.json (the `tokenizers` library's format) holds what vocab.json and merges.txt hold: model.vocab is
// vocab.json's object, model.merges merges.txt's lines (as "a b" strings, or as ["a", "b"] pairs in newer files).
// They are handed to Gpt2BpeTokenizer::fromStrings in the files' own forms, so both paths build one tokenizer.
//
//===----------------------------------------------------------------------===//
#include "runtime/data/Tokenizer.h"

#include "ir/Json.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace meg::runtime;

static llvm::Error fail(llvm::StringRef path, const llvm::Twine &what) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": " + what);
}

llvm::Expected<std::unique_ptr<Gpt2BpeTokenizer>> Gpt2BpeTokenizer::loadTokenizerJson(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return fail(path, "cannot read: " + buffer.getError().message());
  auto parsed = meg::parseJson((*buffer)->getBuffer());
  if (!parsed)
    return fail(path, llvm::toString(parsed.takeError()));
  const llvm::json::Object *root = parsed->getAsObject();
  const llvm::json::Object *model = root ? root->getObject("model") : nullptr;
  if (!model)
    return fail(path, "no 'model' object (a Hugging Face tokenizer.json)");
  if (auto type = model->getString("type"); type && *type != "BPE")
    return fail(path, "model.type is '" + *type + "', GPT-2 needs 'BPE'");
  const llvm::json::Object *vocab = model->getObject("vocab");
  const llvm::json::Array *merges = model->getArray("merges");
  if (!vocab || !merges)
    return fail(path, "model.vocab (an object) and model.merges (an array) are both needed");

  std::string vocabText;
  llvm::raw_string_ostream(vocabText) << llvm::json::Value(llvm::json::Object(*vocab));
  std::string mergesText = "#version: 0.2\n"; // merges.txt's first line, which the reader skips
  for (size_t i = 0; i < merges->size(); ++i) {
    const llvm::json::Value &m = (*merges)[i];
    if (auto pair = m.getAsString()) {
      mergesText += pair->str();
    } else if (const llvm::json::Array *two = m.getAsArray();
               two && two->size() == 2 && (*two)[0].getAsString() && (*two)[1].getAsString() &&
               !(*two)[0].getAsString()->contains(' ') && !(*two)[1].getAsString()->contains(' ')) {
      mergesText += (*(*two)[0].getAsString() + " " + *(*two)[1].getAsString()).str();
    } else {
      return fail(path, "model.merges[" + llvm::Twine(i) + "] is not \"a b\" or [\"a\", \"b\"] (tokens without spaces)");
    }
    mergesText += "\n";
  }
  return fromStrings(vocabText, mergesText, (path + " (model.vocab)").str(), (path + " (model.merges)").str());
}
