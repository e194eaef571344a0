//===- ModelConfig.cpp - model descriptions (HF config.json keys) ----------===//
#include "frontend/ModelConfig.h"

#include "ir/Attribute.h"
#include "ir/File.h"
#include "ir/Json.h"

#include "llvm/ADT/Twine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

using namespace meg::frontend;
namespace json = llvm::json;

llvm::StringRef meg::frontend::familyName(ModelFamily f) { return f == ModelFamily::GPT2 ? "gpt2" : "bert"; }

llvm::StringRef meg::frontend::layerNormPlacementName(LayerNormPlacement p) {
  return p == LayerNormPlacement::Post ? "post" : "pre";
}

llvm::StringRef meg::frontend::activationName(Activation a) { return a == Activation::GeluTanh ? "tanh" : "erf"; }

llvm::StringRef meg::frontend::bertHeadName(BertHead h) {
  return h == BertHead::PreTraining      ? "pretraining"
         : h == BertHead::MultipleChoice ? "multiple-choice"
                                         : "classification";
}

std::optional<BertHead> meg::frontend::parseBertHead(llvm::StringRef s) {
  for (BertHead h : {BertHead::PreTraining, BertHead::MultipleChoice, BertHead::Classification})
    if (s == bertHeadName(h))
      return h;
  return std::nullopt;
}

namespace {

/// Reads typed keys of one JSON object; the first problem is kept as the error (later reads are no-ops).
class KeyReader {
public:
  KeyReader(llvm::StringRef file, const json::Object &obj, llvm::StringRef prefix = "")
      : file(file), obj(obj), prefix(prefix) {}

  /// An integer key. Absent or null: `fallback`, or a "missing key" error when there is none.
  int64_t getInt(llvm::StringRef key, std::optional<int64_t> fallback = std::nullopt) {
    const json::Value *v = lookup(key, fallback.has_value());
    if (!v)
      return fallback.value_or(0);
    if (auto i = v->getAsInteger())
      return *i;
    fail("key '" + qualified(key) + "' must be an integer");
    return 0;
  }

  /// A positive integer key (sizes).
  int64_t getSize(llvm::StringRef key, std::optional<int64_t> fallback = std::nullopt) {
    int64_t i = getInt(key, fallback);
    if (!error && i <= 0)
      fail(llvm::formatv("key '{0}' must be positive (got {1})", qualified(key), i).str());
    else if (!error && i > std::numeric_limits<int32_t>::max())
      fail(llvm::formatv("key '{0}' must be at most {1} (got {2})", qualified(key),
                         std::numeric_limits<int32_t>::max(), i)
               .str());
    return error ? 0 : i; // 0 after an error, so that sizes derived from it cannot overflow
  }

  double getNumber(llvm::StringRef key, double fallback) {
    const json::Value *v = lookup(key, /*optional=*/true);
    if (!v)
      return fallback;
    if (auto d = v->getAsNumber()) {
      if (std::isfinite(*d))
        return *d;
      fail("key '" + qualified(key) + "' must be a finite number");
      return fallback;
    }
    fail("key '" + qualified(key) + "' must be a number");
    return fallback;
  }

  /// A dropout probability in [0, 1).
  double getProbability(llvm::StringRef key, double fallback) {
    double p = getNumber(key, fallback);
    if (!error && !(p >= 0 && p < 1))
      fail(llvm::formatv("key '{0}' must be in [0, 1) (got {1})", qualified(key), meg::ir::formatDouble(p)).str());
    return p;
  }

  std::optional<std::string> getString(llvm::StringRef key) {
    const json::Value *v = lookup(key, /*optional=*/true);
    if (!v)
      return std::nullopt;
    if (auto s = v->getAsString())
      return s->str();
    fail("key '" + qualified(key) + "' must be a string");
    return std::nullopt;
  }

  std::optional<bool> getBool(llvm::StringRef key) {
    const json::Value *v = lookup(key, /*optional=*/true);
    if (!v)
      return std::nullopt;
    if (auto b = v->getAsBoolean())
      return *b;
    fail("key '" + qualified(key) + "' must be a boolean");
    return std::nullopt;
  }

  void fail(const llvm::Twine &msg) {
    if (!error)
      error = (file + ": " + msg).str();
  }
  bool failed() const { return error.has_value(); }
  llvm::Error takeError() {
    if (!error)
      return llvm::Error::success();
    return llvm::createStringError(llvm::inconvertibleErrorCode(), *std::exchange(error, std::nullopt));
  }
  std::string qualified(llvm::StringRef key) const { return (prefix + key).str(); }

private:
  /// The value of `key`, or nullptr when absent or null (an error unless optional).
  const json::Value *lookup(llvm::StringRef key, bool optional) {
    if (error)
      return nullptr;
    const json::Value *v = obj.get(key);
    if (v && v->kind() == json::Value::Null)
      v = nullptr;
    if (!v && !optional)
      fail("missing key '" + qualified(key) + "'");
    return v;
  }

  std::string file;
  const json::Object &obj;
  std::string prefix;
  std::optional<std::string> error;
};

/// `[line:col, byte=N]: message` (llvm::json::ParseError) -> `file:line:col: message`. LLVM counts the column
/// after the character it stopped on, which is that character's 1-based column.
llvm::Error convertParseError(llvm::Error err, llvm::StringRef file) {
  std::string text = llvm::toString(std::move(err));
  llvm::SmallVector<llvm::StringRef, 4> m;
  static const llvm::Regex re("^\\[([0-9]+):([0-9]+), byte=[0-9]+\\]: (.*)$");
  if (!re.match(text, &m))
    return llvm::createStringError(llvm::inconvertibleErrorCode(), file + ": " + text);
  unsigned line = 0, col = 0;
  m[1].getAsInteger(10, line);
  m[2].getAsInteger(10, col);
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 llvm::formatv("{0}:{1}:{2}: {3}", file, line, std::max(col, 1u), m[3]).str());
}

/// The family from model_type, else from the first known class in `architectures`.
std::optional<std::string> detectModelType(const json::Object &root, KeyReader &r) {
  if (auto t = r.getString("model_type"))
    return t;
  if (r.failed())
    return std::nullopt;
  if (const json::Array *archs = root.getArray("architectures"))
    for (const json::Value &a : *archs)
      if (auto s = a.getAsString()) {
        if (s->startswith("MegatronBert"))
          return std::string("megatron-bert");
        if (s->startswith("GPT2"))
          return std::string("gpt2");
        if (s->startswith("Bert"))
          return std::string("bert");
      }
  r.fail("missing key 'model_type'");
  return std::nullopt;
}

/// HF activation names: gelu_new / gelu_pytorch_tanh = tanh form, gelu = erf form.
Activation parseActivation(KeyReader &r, llvm::StringRef key, llvm::StringRef fallback) {
  std::string act = r.getString(key).value_or(fallback.str());
  if (act == "gelu_new" || act == "gelu_pytorch_tanh")
    return Activation::GeluTanh;
  if (act == "gelu")
    return Activation::GeluErf;
  if (!r.failed())
    r.fail("unknown " + key + " '" + meg::printableText(act) + "' (expected gelu_new, gelu_pytorch_tanh or gelu)");
  return Activation::GeluTanh;
}

/// HF options that change the model in ways meg does not implement: reject rather than silently differ.
void rejectUnsupported(KeyReader &r, ModelFamily family) {
  struct Flag {
    const char *key;
    bool supported;
  };
  static const Flag gptFlags[] = {{"tie_word_embeddings", true},
                                  {"scale_attn_weights", true},
                                  {"scale_attn_by_inverse_layer_idx", false},
                                  {"add_cross_attention", false}};
  static const Flag bertFlags[] = {{"tie_word_embeddings", true}, {"is_decoder", false}, {"add_cross_attention", false}};
  llvm::ArrayRef<Flag> flags = family == ModelFamily::GPT2 ? llvm::ArrayRef<Flag>(gptFlags) : bertFlags;
  for (const Flag &f : flags)
    if (auto b = r.getBool(f.key); b && *b != f.supported)
      r.fail(llvm::formatv("{0} = {1} is not supported", f.key, *b ? "true" : "false").str());
  if (family == ModelFamily::Bert)
    if (auto pe = r.getString("position_embedding_type"); pe && *pe != "absolute")
      r.fail("position_embedding_type '" + meg::printableText(*pe) + "' is not supported (expected absolute)");
}

void readGpt2(KeyReader &r, ModelConfig &c) {
  c.numLayers = r.getSize("n_layer");
  c.hidden = r.getSize("n_embd");
  c.numHeads = r.getSize("n_head");
  c.vocabSize = r.getSize("vocab_size");
  c.maxPositions = r.getSize("n_positions");
  c.ffnHidden = r.getSize("n_inner", 4 * c.hidden);
  c.layerNormEps = r.getNumber("layer_norm_epsilon", 1e-5);
  c.activation = parseActivation(r, "activation_function", "gelu_new");
  c.residDropout = r.getProbability("resid_pdrop", 0.1);
  c.embdDropout = r.getProbability("embd_pdrop", 0.1);
  c.attnDropout = r.getProbability("attn_pdrop", 0.1);
  c.initStd = r.getNumber("initializer_range", 0.02);
}

/// The fine-tuning head a config.json's `architectures` names (BertFor..., MegatronBertFor...).
BertHead headFromArchitectures(const json::Object &root) {
  if (const json::Array *archs = root.getArray("architectures"))
    for (const json::Value &a : *archs)
      if (auto s = a.getAsString()) {
        if (s->endswith("ForMultipleChoice"))
          return BertHead::MultipleChoice;
        if (s->endswith("ForSequenceClassification"))
          return BertHead::Classification;
      }
  return BertHead::PreTraining;
}

/// num_labels, else the size of id2label (what transformers writes), else 2.
int64_t readNumLabels(KeyReader &r, const json::Object &root) {
  if (root.get("num_labels"))
    return r.getSize("num_labels");
  if (const json::Object *labels = root.getObject("id2label"))
    return std::max<int64_t>(1, int64_t(labels->size()));
  return 2;
}

void readBert(KeyReader &r, ModelConfig &c) {
  c.numLayers = r.getSize("num_hidden_layers");
  c.hidden = r.getSize("hidden_size");
  c.numHeads = r.getSize("num_attention_heads");
  c.ffnHidden = r.getSize("intermediate_size");
  c.vocabSize = r.getSize("vocab_size");
  c.maxPositions = r.getSize("max_position_embeddings");
  c.typeVocabSize = r.getSize("type_vocab_size", 2);
  c.layerNormEps = r.getNumber("layer_norm_eps", 1e-12);
  c.activation = parseActivation(r, "hidden_act", "gelu");
  c.residDropout = r.getProbability("hidden_dropout_prob", 0.1);
  c.embdDropout = c.residDropout;
  c.attnDropout = r.getProbability("attention_probs_dropout_prob", 0.1);
  c.initStd = r.getNumber("initializer_range", 0.02);
}

} // namespace

llvm::Expected<ModelConfig> meg::frontend::parseModelConfig(llvm::StringRef text, llvm::StringRef filename,
                                                            const ConfigOverrides &overrides) {
  auto parsed = meg::parseJson(text);
  if (!parsed)
    return convertParseError(parsed.takeError(), filename);
  const json::Object *root = parsed->getAsObject();
  if (!root)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   filename + ": expected a JSON object at the top level");

  KeyReader r(filename, *root);
  ModelConfig c;
  std::optional<std::string> type = detectModelType(*root, r);
  if (!type)
    return r.takeError();
  c.modelType = *type;
  if (c.modelType == "gpt2") {
    c.family = ModelFamily::GPT2;
    readGpt2(r, c);
  } else if (c.modelType == "bert" || c.modelType == "megatron-bert") {
    c.family = ModelFamily::Bert;
    readBert(r, c);
    c.head = headFromArchitectures(*root);
    c.numLabels = readNumLabels(r, *root);
    c.classifierDropout = r.getProbability("classifier_dropout", c.residDropout);
  } else {
    r.fail("unknown model_type '" + meg::printableText(c.modelType) + "' (expected gpt2, bert or megatron-bert)");
  }
  if (r.failed())
    return r.takeError();
  rejectUnsupported(r, c.family);
  if (r.failed())
    return r.takeError();

  // meg's own keys, under "meg".
  c.name = llvm::sys::path::stem(filename).str();
  c.microBatch = 1;
  c.seq = c.maxPositions;
  c.layerNorm = c.modelType == "bert" ? LayerNormPlacement::Post : LayerNormPlacement::Pre;
  if (const json::Value *megValue = root->get("meg")) {
    const json::Object *meg = megValue->getAsObject();
    if (!meg)
      return llvm::createStringError(llvm::inconvertibleErrorCode(), filename + ": key 'meg' must be an object");
    KeyReader m(filename, *meg, "meg.");
    if (auto name = m.getString("name"))
      c.name = *name;
    if (auto ln = m.getString("layernorm")) {
      if (*ln == "post")
        c.layerNorm = LayerNormPlacement::Post;
      else if (*ln == "pre")
        c.layerNorm = LayerNormPlacement::Pre;
      else
        m.fail("unknown meg.layernorm '" + meg::printableText(*ln) + "' (expected post or pre)");
    }
    c.microBatch = m.getSize("micro_batch", c.microBatch);
    c.seq = m.getSize("seq", c.seq);
    c.vocabDivisibleBy = m.getSize("vocab_divisible_by", c.vocabDivisibleBy);
    if (auto head = m.getString("head")) {
      if (auto h = parseBertHead(*head))
        c.head = *h;
      else
        m.fail("unknown meg.head '" + *head + "' (expected pretraining, multiple-choice or classification)");
    }
    c.numChoices = m.getSize("num_choices", c.numChoices);
    if (m.failed())
      return m.takeError();
  }
  if (c.family == ModelFamily::GPT2 && c.layerNorm != LayerNormPlacement::Pre)
    r.fail("gpt2 supports only meg.layernorm 'pre'");
  if (c.modelType == "megatron-bert" && c.layerNorm != LayerNormPlacement::Pre)
    r.fail("megatron-bert supports only meg.layernorm 'pre'");
  if (overrides.head)
    c.head = *overrides.head;
  if (c.family == ModelFamily::GPT2 && c.head != BertHead::PreTraining)
    r.fail("the " + bertHeadName(c.head) + " head applies to BERT only");
  if (c.head == BertHead::Classification && c.numLabels < 2)
    r.fail(llvm::formatv("the classification head needs num_labels >= 2 (got {0}; regression is not supported)",
                         c.numLabels)
               .str());
  if (c.head == BertHead::MultipleChoice && c.numChoices < 2)
    r.fail(llvm::formatv("the multiple-choice head needs meg.num_choices >= 2 (got {0})", c.numChoices).str());
  static const char *bertClasses[] = {"ForPreTraining", "ForMultipleChoice", "ForSequenceClassification"};
  c.hfClass = c.family == ModelFamily::GPT2 ? "GPT2LMHeadModel"
              : (c.layerNorm == LayerNormPlacement::Post ? std::string("Bert") : std::string("MegatronBert")) +
                    bertClasses[unsigned(c.head)];

  if (overrides.microBatch)
    c.microBatch = *overrides.microBatch;
  if (overrides.seq)
    c.seq = *overrides.seq;
  if (overrides.vocabDivisibleBy)
    c.vocabDivisibleBy = *overrides.vocabDivisibleBy;

  // Cross-key checks.
  bool gpt = c.family == ModelFamily::GPT2;
  if (!r.failed() && c.hidden % c.numHeads != 0)
    r.fail(llvm::formatv("{0} ({1}) does not divide {2} ({3})", gpt ? "n_head" : "num_attention_heads", c.numHeads,
                         gpt ? "n_embd" : "hidden_size", c.hidden)
               .str());
  if (!r.failed() && c.microBatch <= 0)
    r.fail(llvm::formatv("micro_batch must be positive (got {0})", c.microBatch).str());
  if (!r.failed() && c.seq <= 0)
    r.fail(llvm::formatv("seq must be positive (got {0})", c.seq).str());
  if (!r.failed() && c.seq > c.maxPositions)
    r.fail(llvm::formatv("seq ({0}) exceeds {1} ({2})", c.seq, gpt ? "n_positions" : "max_position_embeddings",
                         c.maxPositions)
               .str());
  if (!r.failed() && !(c.layerNormEps > 0))
    r.fail(llvm::formatv("key '{0}' must be positive (got {1})", gpt ? "layer_norm_epsilon" : "layer_norm_eps",
                         meg::ir::formatDouble(c.layerNormEps))
               .str());
  if (!r.failed() && !(c.initStd > 0))
    r.fail(llvm::formatv("key 'initializer_range' must be positive (got {0})", meg::ir::formatDouble(c.initStd))
               .str());
  if (r.failed())
    return r.takeError();
  return c;
}

std::string meg::frontend::modelDescriptionPath(llvm::StringRef path) {
  if (!llvm::sys::fs::is_directory(path))
    return path.str();
  llvm::SmallString<256> config(path);
  llvm::sys::path::append(config, "config.json");
  return std::string(config);
}

llvm::Expected<ModelConfig> meg::frontend::loadModelConfig(llvm::StringRef folderOrFile,
                                                           const ConfigOverrides &overrides) {
  std::string path = modelDescriptionPath(folderOrFile);
  auto buf = readInputFile(path, /*isText=*/true);
  if (!buf) {
    std::string msg = llvm::toString(buf.takeError());
    if (!msg.empty())
      msg[0] = char(std::tolower(static_cast<unsigned char>(msg[0])));
    return llvm::createStringError(llvm::inconvertibleErrorCode(), path + ": " + msg);
  }
  auto config = parseModelConfig((*buf)->getBuffer(), path, overrides);
  if (config && path != folderOrFile && config->name == "config")
    config->name = llvm::sys::path::filename(llvm::StringRef(folderOrFile).rtrim('/')).str();
  return config;
}
