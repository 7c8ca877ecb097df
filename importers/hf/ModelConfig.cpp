//===- ModelConfig.cpp - Hugging Face config.json model description -------===//
//
// Parses and validates a checkpoint's `config.json` for the supported MoE
// architectures. Absent keys take the defaults of transformers' config
// classes; every value is type- and range-checked before use, and each error
// names the file and the field. Also builds the expected tensor list.
//
//===----------------------------------------------------------------------===//

#include "importers/hf/ModelConfig.h"

#include "runtime/support/File.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

using namespace mlir::moec::hf;
using llvm::StringRef;
using llvm::Twine;
namespace json = llvm::json;

//===----------------------------------------------------------------------===//
// Architectures
//===----------------------------------------------------------------------===//

static constexpr StringRef kModelTypes[] = {"deepseek_v3", "mixtral",
                                            "qwen3_moe", "qwen2_moe"};

StringRef mlir::moec::hf::getModelType(Architecture arch) {
  return kModelTypes[static_cast<int>(arch)];
}

llvm::ArrayRef<StringRef> mlir::moec::hf::getSupportedModelTypes() {
  return kModelTypes;
}

//===----------------------------------------------------------------------===//
// Message helpers
//===----------------------------------------------------------------------===//

/// Quotes untrusted text for a message: at most 64 bytes, non-printable bytes
/// as \xNN, so a hostile config cannot garble a terminal or a log.
static std::string quote(StringRef text) {
  std::string out = "'";
  for (unsigned char ch : text.take_front(64)) {
    if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\')
      out += static_cast<char>(ch);
    else
      out += "\\x" + llvm::utohexstr(ch, /*LowerCase=*/true, /*Width=*/2);
  }
  if (text.size() > 64)
    out += "...";
  return out + "'";
}

static std::string formatDouble(double value) {
  std::string out;
  llvm::raw_string_ostream os(out);
  os << llvm::format("%g", value);
  return out;
}

/// Describes a JSON value's kind (and short value) for type errors.
static std::string describe(const json::Value &value) {
  switch (value.kind()) {
  case json::Value::Null:
    return "null";
  case json::Value::Boolean:
    return *value.getAsBoolean() ? "boolean true" : "boolean false";
  case json::Value::Number:
    if (std::optional<int64_t> i = value.getAsInteger())
      return "number " + std::to_string(*i);
    return "number " + formatDouble(*value.getAsNumber());
  case json::Value::String:
    return "string " + quote(*value.getAsString());
  case json::Value::Array:
    return "an array";
  case json::Value::Object:
    return "an object";
  }
  return "an unknown value";
}

static llvm::Error makeError(const Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

//===----------------------------------------------------------------------===//
// ConfigReader
//===----------------------------------------------------------------------===//

namespace {

/// Typed, range-checked access to one JSON object of the config. The first
/// error is kept and later reads return their defaults, so a caller reads a
/// group of fields and checks `failed()` once before deriving from them.
class ConfigReader {
public:
  /// A reader of the top-level object of the file `path`.
  ConfigReader(const json::Object &object, StringRef path)
      : object(object), path(path), error(&ownError) {}
  /// A reader of the nested object under `key` of `parent`; its errors go to
  /// the parent and name fields as '<key>.<field>'.
  ConfigReader(const json::Object &object, ConfigReader &parent, StringRef key)
      : object(object), path(parent.path), prefix((key + ".").str()),
        error(parent.error) {}
  ConfigReader(const ConfigReader &) = delete;
  ConfigReader &operator=(const ConfigReader &) = delete;

  const json::Object &getObject() const { return object; }

  /// Returns the value of `key`, or nullptr when absent.
  const json::Value *get(StringRef key) const { return object.get(key); }

  /// Returns true when `key` is absent or null.
  bool isAbsentOrNull(StringRef key) const {
    const json::Value *value = get(key);
    return !value || value->kind() == json::Value::Null;
  }

  /// The field's name in messages, e.g. 'rope_scaling.factor'.
  std::string field(StringRef key) const {
    return "field '" + prefix + key.str() + "'";
  }

  /// Records `message` (prefixed with the path) unless an error is recorded.
  void fail(const Twine &message) {
    if (!*error)
      *error = path.str() + ": " + message.str();
  }
  bool failed() const { return error->has_value(); }
  llvm::Error takeError() {
    if (!*error)
      return llvm::Error::success();
    std::string message = std::move(**error);
    error->reset();
    return makeError(message);
  }

  void failType(StringRef key, StringRef expected, const json::Value &value) {
    fail(field(key) + " must be " + expected + ", got " + describe(value));
  }

  /// Reads an integer; absent → `dflt`; null or another type is an error.
  int64_t getInt(StringRef key, int64_t dflt) {
    const json::Value *value = get(key);
    if (!value)
      return dflt;
    if (std::optional<int64_t> i = value->getAsInteger())
      return *i;
    failType(key, "an integer", *value);
    return dflt;
  }

  /// Reads an integer that may be null; absent → `dflt`, null → nullopt.
  std::optional<int64_t> getNullableInt(StringRef key,
                                        std::optional<int64_t> dflt) {
    const json::Value *value = get(key);
    if (!value)
      return dflt;
    if (value->kind() == json::Value::Null)
      return std::nullopt;
    return getInt(key, dflt.value_or(0));
  }

  /// Reads a finite number; absent → `dflt`.
  double getNumber(StringRef key, double dflt) {
    const json::Value *value = get(key);
    if (!value)
      return dflt;
    std::optional<double> d = value->getAsNumber();
    if (!d) {
      failType(key, "a number", *value);
      return dflt;
    }
    if (!std::isfinite(*d)) {
      fail(field(key) + " must be finite");
      return dflt;
    }
    return *d;
  }

  /// Reads a number that may be null; absent → `dflt`, null → nullopt.
  std::optional<double> getNullableNumber(StringRef key,
                                          std::optional<double> dflt) {
    const json::Value *value = get(key);
    if (!value)
      return dflt;
    if (value->kind() == json::Value::Null)
      return std::nullopt;
    return getNumber(key, dflt.value_or(0.0));
  }

  /// Reads a boolean; absent → `dflt`. With `nullMeans`, null reads as that
  /// value (Python's falsy None), else null is an error.
  bool getBool(StringRef key, bool dflt,
               std::optional<bool> nullMeans = std::nullopt) {
    const json::Value *value = get(key);
    if (!value)
      return dflt;
    if (value->kind() == json::Value::Null && nullMeans)
      return *nullMeans;
    if (std::optional<bool> b = value->getAsBoolean())
      return *b;
    failType(key, "a boolean", *value);
    return dflt;
  }

  /// Reads a string; absent (or null when `nullIsAbsent`) → `dflt`.
  std::string getString(StringRef key, StringRef dflt,
                        bool nullIsAbsent = false) {
    const json::Value *value = get(key);
    if (!value || (nullIsAbsent && value->kind() == json::Value::Null))
      return dflt.str();
    if (std::optional<StringRef> s = value->getAsString())
      return s->str();
    failType(key, "a string", *value);
    return dflt.str();
  }

  /// Reads a list of integers; absent or null → empty.
  std::vector<int64_t> getIntList(StringRef key) {
    std::vector<int64_t> result;
    const json::Value *value = get(key);
    if (!value || value->kind() == json::Value::Null)
      return result;
    const json::Array *array = value->getAsArray();
    if (!array) {
      failType(key, "a list of integers", *value);
      return result;
    }
    for (const json::Value &element : *array) {
      std::optional<int64_t> i = element.getAsInteger();
      if (!i) {
        fail(field(key) +
             " must be a list of integers, got an element that "
             "is " +
             describe(element));
        return {};
      }
      result.push_back(*i);
    }
    return result;
  }

  /// Reads a list of strings; absent or null → empty.
  std::vector<std::string> getStringList(StringRef key) {
    std::vector<std::string> result;
    const json::Value *value = get(key);
    if (!value || value->kind() == json::Value::Null)
      return result;
    const json::Array *array = value->getAsArray();
    if (!array) {
      failType(key, "a list of strings", *value);
      return result;
    }
    for (const json::Value &element : *array) {
      std::optional<StringRef> s = element.getAsString();
      if (!s) {
        fail(field(key) +
             " must be a list of strings, got an element that "
             "is " +
             describe(element));
        return {};
      }
      result.push_back(s->str());
    }
    return result;
  }

  /// Checks `lo <= value <= hi` for an integer field.
  void checkRange(StringRef key, int64_t value, int64_t lo, int64_t hi) {
    if (value < lo)
      fail(field(key) + " = " + Twine(value) + " must be >= " + Twine(lo));
    else if (value > hi)
      fail(field(key) + " = " + Twine(value) + " must be <= " + Twine(hi));
  }

  /// Checks `value > 0` for a number field.
  void checkPositive(StringRef key, double value) {
    if (!(value > 0.0))
      fail(field(key) + " = " + formatDouble(value) + " must be > 0");
  }

  /// Checks `value <= bound`, naming the bound, e.g. "must be <=
  /// n_routed_experts = 8".
  void checkAtMost(StringRef key, int64_t value, const Twine &boundName,
                   int64_t bound) {
    if (value > bound)
      fail(field(key) + " = " + Twine(value) + " must be <= " + boundName +
           " = " + Twine(bound));
  }

  /// Fails when `value` is not one of `allowed`.
  bool checkOneOf(StringRef key, StringRef value,
                  llvm::ArrayRef<StringRef> allowed) {
    if (llvm::is_contained(allowed, value))
      return true;
    fail(field(key) + " = " + quote(value) +
         " is not supported (supported: " + llvm::join(allowed, ", ") + ")");
    return false;
  }

private:
  const json::Object &object;
  StringRef path;
  std::string prefix;
  std::optional<std::string> ownError;
  /// The first error of the whole file (`ownError` of the top reader).
  std::optional<std::string> *error;
};

/// The defaults of one architecture's transformers config class.
struct ArchDefaults {
  int64_t vocab, hidden, intermediate, layers, heads, kvHeads, maxPositions;
  double eps, theta;
  int64_t experts, topK, moeIntermediate;
  bool normTopkProb;
};

} // namespace

/// transformers' defaults (configuration_<arch>.py, v4.57 and v5.x agree).
static ArchDefaults getDefaults(Architecture arch) {
  switch (arch) {
  case Architecture::DeepseekV3:
    return {129280, 7168,    18432, 61, 128,  128, 4096,
            1e-6,   10000.0, 256,   8,  2048, true};
  case Architecture::Mixtral:
    return {32000, 4096, 14336, 32, 32,    8,   4096 * 32,
            1e-5,  1e6,  8,     2,  14336, true};
  case Architecture::Qwen3Moe:
    return {151936, 2048,    6144, 24, 32,  4,    32768,
            1e-6,   10000.0, 128,  8,  768, false};
  case Architecture::Qwen2Moe:
    return {151936, 2048,    5632, 24, 16,   16,   32768,
            1e-6,   10000.0, 60,   4,  1408, false};
  }
  return {};
}

//===----------------------------------------------------------------------===//
// Field groups
//===----------------------------------------------------------------------===//

/// Reads the integer stored under the first present alias in `keys`; two
/// present aliases must agree. Returns the key used, for messages.
static StringRef readAliasedInt(ConfigReader &r, llvm::ArrayRef<StringRef> keys,
                                int64_t dflt, int64_t &out) {
  StringRef used = keys.front();
  bool found = false;
  out = dflt;
  for (StringRef key : keys) {
    if (!r.get(key))
      continue;
    int64_t value = r.getInt(key, dflt);
    if (!found) {
      used = key;
      out = value;
      found = true;
    } else if (value != out) {
      r.fail(r.field(used) + " = " + Twine(out) + " and " + r.field(key) +
             " = " + Twine(value) + " disagree");
    }
  }
  return used;
}

/// Reads the dense transformer part shared by all architectures.
static void readDense(ConfigReader &r, ModelConfig &c, const ArchDefaults &d) {
  c.vocabSize = r.getInt("vocab_size", d.vocab);
  r.checkRange("vocab_size", c.vocabSize, 1, kMaxVocab);
  c.hiddenSize = r.getInt("hidden_size", d.hidden);
  r.checkRange("hidden_size", c.hiddenSize, 1, kMaxDim);
  c.intermediateSize = r.getInt("intermediate_size", d.intermediate);
  r.checkRange("intermediate_size", c.intermediateSize, 1, kMaxDim);
  c.numLayers = r.getInt("num_hidden_layers", d.layers);
  r.checkRange("num_hidden_layers", c.numLayers, 1, kMaxLayers);
  c.numHeads = r.getInt("num_attention_heads", d.heads);
  r.checkRange("num_attention_heads", c.numHeads, 1, kMaxHeads);
  // Every class maps num_key_value_heads = None to plain multi-head attention.
  c.numKVHeads =
      r.getNullableInt("num_key_value_heads", d.kvHeads).value_or(c.numHeads);
  r.checkRange("num_key_value_heads", c.numKVHeads, 1, kMaxHeads);
  c.maxPositionEmbeddings = r.getInt("max_position_embeddings", d.maxPositions);
  r.checkRange("max_position_embeddings", c.maxPositionEmbeddings, 1,
               kMaxPositions);
  c.rmsNormEps = r.getNumber("rms_norm_eps", d.eps);
  r.checkPositive("rms_norm_eps", c.rmsNormEps);
  if (c.rmsNormEps >= 1.0)
    r.fail(r.field("rms_norm_eps") + " = " + formatDouble(c.rmsNormEps) +
           " must be < 1");
  c.tieWordEmbeddings = r.getBool("tie_word_embeddings", false);

  std::string act = r.getString("hidden_act", "silu");
  r.checkOneOf("hidden_act", act, {"silu"});

  // transformers >= 5 writes `dtype`; older versions `torch_dtype`.
  c.torchDtype = r.getString("torch_dtype", "", /*nullIsAbsent=*/true);
  if (c.torchDtype.empty())
    c.torchDtype = r.getString("dtype", "", /*nullIsAbsent=*/true);

  if (r.failed())
    return;
  if (c.numHeads % c.numKVHeads != 0)
    r.fail(
        r.field("num_attention_heads") + " = " + Twine(c.numHeads) +
        " must be a multiple of num_key_value_heads = " + Twine(c.numKVHeads));
}

/// Reads `head_dim` (or derives it) for the non-MLA architectures.
static void readHeadDim(ConfigReader &r, ModelConfig &c) {
  // Mixtral reads `head_dim or hidden // heads`; the Qwen classes
  // getattr(config, "head_dim", ...). A null head_dim derives it for all.
  std::optional<int64_t> headDim = r.getNullableInt("head_dim", std::nullopt);
  if (headDim) {
    r.checkRange("head_dim", *headDim, 1, kMaxDim);
    c.headDim = *headDim;
  } else if (c.hiddenSize % c.numHeads != 0) {
    r.fail(r.field("hidden_size") + " = " + Twine(c.hiddenSize) +
           " must be a multiple of num_attention_heads = " + Twine(c.numHeads) +
           " when 'head_dim' is not given");
  } else {
    c.headDim = c.hiddenSize / c.numHeads;
  }
  c.vHeadDim = c.headDim;
  c.ropeHeadDim = c.headDim;
}

/// Reads DeepSeek-V3's multi-head latent attention and MoE fields.
static void readDeepseek(ConfigReader &r, ModelConfig &c,
                         const ArchDefaults &d) {
  c.isMLA = true;
  c.qLoraRank = r.getNullableInt("q_lora_rank", 1536);
  if (c.qLoraRank)
    r.checkRange("q_lora_rank", *c.qLoraRank, 1, kMaxDim);
  c.kvLoraRank = r.getInt("kv_lora_rank", 512);
  r.checkRange("kv_lora_rank", c.kvLoraRank, 1, kMaxDim);
  c.qkNopeHeadDim = r.getInt("qk_nope_head_dim", 128);
  r.checkRange("qk_nope_head_dim", c.qkNopeHeadDim, 1, kMaxDim);
  c.qkRopeHeadDim = r.getInt("qk_rope_head_dim", 64);
  r.checkRange("qk_rope_head_dim", c.qkRopeHeadDim, 1, kMaxDim);
  c.vHeadDim = r.getInt("v_head_dim", 128);
  r.checkRange("v_head_dim", c.vHeadDim, 1, kMaxDim);
  // transformers sets head_dim = qk_rope_head_dim itself; a head_dim key in
  // the file is ignored.
  c.headDim = c.qkNopeHeadDim + c.qkRopeHeadDim;
  c.ropeHeadDim = c.qkRopeHeadDim;
  c.attentionBias = r.getBool("attention_bias", false);
  c.ropeInterleave = r.getBool("rope_interleave", true, /*nullMeans=*/false);
  c.numNextnPredictLayers = r.getInt("num_nextn_predict_layers", 1);
  r.checkRange("num_nextn_predict_layers", c.numNextnPredictLayers, 0, 16);

  readAliasedInt(r, {"n_routed_experts", "num_local_experts"}, d.experts,
                 c.numExperts);
  c.moeIntermediateSize = r.getInt("moe_intermediate_size", d.moeIntermediate);
  r.checkRange("moe_intermediate_size", c.moeIntermediateSize, 1, kMaxDim);
  c.numSharedExperts = r.getNullableInt("n_shared_experts", 1).value_or(0);
  r.checkRange("n_shared_experts", c.numSharedExperts, 0, 1024);
  c.routedScalingFactor = r.getNumber("routed_scaling_factor", 2.5);
  r.checkPositive("routed_scaling_factor", c.routedScalingFactor);
  c.normTopkProb = r.getBool("norm_topk_prob", d.normTopkProb,
                             /*nullMeans=*/false);
  c.firstKDenseReplace =
      r.getNullableInt("first_k_dense_replace", 3).value_or(0);
  c.moeLayerFreq = r.getInt("moe_layer_freq", 1);
  r.checkRange("moe_layer_freq", c.moeLayerFreq, 1, kMaxLayers);

  // The remote-code class's defaults; transformers' own class hardcodes the
  // same routing (sigmoid, bias-corrected, group sum of top-2).
  std::string scoring = r.getString("scoring_func", "sigmoid");
  if (r.checkOneOf("scoring_func", scoring, {"sigmoid", "softmax"}))
    c.scoring =
        scoring == "sigmoid" ? ScoringFunc::Sigmoid : ScoringFunc::Softmax;
  std::string method = r.getString("topk_method", "noaux_tc");
  r.checkOneOf("topk_method", method,
               {"noaux_tc", "group_limited_greedy", "greedy"});
  c.hasCorrectionBias = method == "noaux_tc";

  c.nGroup = r.getNullableInt("n_group", 8).value_or(1);
  c.topkGroup = r.getNullableInt("topk_group", 4).value_or(c.nGroup);
  if (method == "greedy") {
    // A plain top-k over all experts: the group fields are not used.
    c.nGroup = c.topkGroup = 1;
  } else {
    r.checkRange("n_group", c.nGroup, 1, kMaxExperts);
    if (c.nGroup > 1) {
      r.checkRange("topk_group", c.topkGroup, 1, kMaxExperts);
      c.groupScore =
          method == "noaux_tc" ? GroupScore::SumTop2 : GroupScore::Max;
    } else {
      c.topkGroup = 1;
    }
  }
}

/// Reads the Qwen MoE layer placement (`decoder_sparse_step`,
/// `mlp_only_layers`), shared by Qwen2-MoE and Qwen3-MoE.
static void readQwen(ConfigReader &r, ModelConfig &c, const ArchDefaults &d,
                     StringRef expertsKey) {
  readAliasedInt(r, {expertsKey, "num_local_experts"}, d.experts, c.numExperts);
  c.moeIntermediateSize = r.getInt("moe_intermediate_size", d.moeIntermediate);
  r.checkRange("moe_intermediate_size", c.moeIntermediateSize, 1, kMaxDim);
  c.normTopkProb = r.getBool("norm_topk_prob", d.normTopkProb,
                             /*nullMeans=*/false);
  c.decoderSparseStep = r.getInt("decoder_sparse_step", 1);
  r.checkRange("decoder_sparse_step", c.decoderSparseStep, 1, kMaxLayers);
  c.mlpOnlyLayers = r.getIntList("mlp_only_layers");
  // Each layer's placement looks the list up: one entry per layer at most,
  // so a long list of repeats cannot multiply that work.
  llvm::sort(c.mlpOnlyLayers);
  c.mlpOnlyLayers.erase(llvm::unique(c.mlpOnlyLayers), c.mlpOnlyLayers.end());
  for (int64_t layer : c.mlpOnlyLayers) {
    if (layer < 0 || layer >= c.numLayers) {
      r.fail(r.field("mlp_only_layers") + " holds layer " + Twine(layer) +
             ", outside [0, num_hidden_layers = " + Twine(c.numLayers) + ")");
      break;
    }
  }
  // Qwen's sliding window depends on max_window_layers in ways that changed
  // between transformers versions; refuse rather than guess.
  if (r.getBool("use_sliding_window", false))
    r.fail(r.field("use_sliding_window") + " = true is not supported");
}

//===----------------------------------------------------------------------===//
// rope_scaling / rope_parameters
//===----------------------------------------------------------------------===//

static void readRope(ConfigReader &r, ModelConfig &c, double defaultTheta) {
  c.ropeTheta = r.getNumber("rope_theta", defaultTheta);

  // transformers: `rope_parameters = rope_scaling or rope_parameters`, with
  // rope_theta inside the dict taking priority over the top-level key.
  StringRef key = "rope_scaling";
  const json::Value *value = r.get(key);
  auto isEmpty = [](const json::Value *v) {
    if (!v || v->kind() == json::Value::Null)
      return true;
    const json::Object *o = v->getAsObject();
    return o && o->empty();
  };
  if (isEmpty(value)) {
    key = "rope_parameters";
    value = r.get(key);
  }
  if (!isEmpty(value)) {
    const json::Object *object = value->getAsObject();
    if (!object) {
      r.failType(key, "an object", *value);
      return;
    }
    ConfigReader rope(*object, r, key);
    for (const auto &entry : *object) {
      if (entry.second.getAsObject()) {
        r.fail(r.field(key) + " holds per-layer-type parameters (" +
               quote(entry.first) + "), which are not supported");
        return;
      }
    }
    if (rope.get("rope_theta"))
      c.ropeTheta = rope.getNumber("rope_theta", c.ropeTheta);

    std::string ropeType = rope.getString("rope_type", "", true);
    std::string legacyType = rope.getString("type", "", true);
    StringRef typeKey = ropeType.empty() ? "type" : "rope_type";
    if (!ropeType.empty() && !legacyType.empty() && ropeType != legacyType)
      rope.fail(rope.field("rope_type") + " = " + quote(ropeType) + " and " +
                rope.field("type") + " = " + quote(legacyType) + " disagree");
    if (ropeType.empty())
      ropeType = legacyType.empty() ? "default" : legacyType;
    if (rope.checkOneOf(typeKey, ropeType, {"default", "linear", "yarn"})) {
      RopeScaling &s = c.ropeScaling;
      if (ropeType != "default") {
        s.kind = ropeType == "yarn" ? RopeScaling::Yarn : RopeScaling::Linear;
        if (rope.isAbsentOrNull("factor"))
          rope.fail(rope.field("factor") + " is required for rope type " +
                    quote(ropeType));
        s.factor = rope.getNumber("factor", 1.0);
        if (s.factor < 1.0)
          rope.fail(rope.field("factor") + " = " + formatDouble(s.factor) +
                    " must be >= 1");
      }
      if (s.kind == RopeScaling::Yarn) {
        s.originalMaxPositionEmbeddings =
            rope.getInt("original_max_position_embeddings",
                        r.getInt("original_max_position_embeddings",
                                 c.maxPositionEmbeddings));
        rope.checkRange("original_max_position_embeddings",
                        s.originalMaxPositionEmbeddings, 1, kMaxPositions);
        // `rope_scaling.get("beta_fast") or 32`: null and 0 take the default.
        s.betaFast = rope.getNullableNumber("beta_fast", 32.0).value_or(0.0);
        if (s.betaFast == 0.0)
          s.betaFast = 32.0;
        s.betaSlow = rope.getNullableNumber("beta_slow", 1.0).value_or(0.0);
        if (s.betaSlow == 0.0)
          s.betaSlow = 1.0;
        rope.checkPositive("beta_fast", s.betaFast);
        rope.checkPositive("beta_slow", s.betaSlow);
        s.mscale = rope.getNullableNumber("mscale", 0.0).value_or(0.0);
        s.mscaleAllDim =
            rope.getNullableNumber("mscale_all_dim", 0.0).value_or(0.0);
        if (s.mscale < 0.0 || s.mscaleAllDim < 0.0)
          rope.fail(rope.field(s.mscale < 0.0 ? "mscale" : "mscale_all_dim") +
                    " must be >= 0");
        s.attentionFactor =
            rope.getNullableNumber("attention_factor", std::nullopt);
        if (s.attentionFactor)
          rope.checkPositive("attention_factor", *s.attentionFactor);
        s.truncate = rope.getBool("truncate", true);
      }
    }
  }
  r.checkPositive("rope_theta", c.ropeTheta);
}

//===----------------------------------------------------------------------===//
// quantization_config
//===----------------------------------------------------------------------===//

static void readQuantization(ConfigReader &r, ModelConfig &c) {
  const json::Value *value = r.get("quantization_config");
  if (!value || value->kind() == json::Value::Null)
    return;
  const json::Object *object = value->getAsObject();
  if (!object) {
    r.failType("quantization_config", "an object", *value);
    return;
  }
  ConfigReader q(*object, r, "quantization_config");
  Quantization quant;
  if (!q.get("quant_method")) {
    q.fail(q.field("quant_method") + " is missing");
  } else {
    std::string method = q.getString("quant_method", "");
    q.checkOneOf("quant_method", method, {"fp8"});
  }
  quant.fmt = q.getString("fmt", "e4m3", /*nullIsAbsent=*/true);
  q.checkOneOf("fmt", quant.fmt, {"e4m3"});
  quant.activationScheme =
      q.getString("activation_scheme", "dynamic", /*nullIsAbsent=*/true);
  q.checkOneOf("activation_scheme", quant.activationScheme, {"dynamic"});
  // transformers' FineGrainedFP8Config defaults weight_block_size to
  // (128, 128); null would mean per-tensor scales, which moec does not read.
  if (const json::Value *block = q.get("weight_block_size")) {
    const json::Array *array = block->getAsArray();
    if (!array || array->size() != 2 || !(*array)[0].getAsInteger() ||
        !(*array)[1].getAsInteger()) {
      q.failType("weight_block_size", "a list of two integers", *block);
    } else {
      quant.blockOut = *(*array)[0].getAsInteger();
      quant.blockIn = *(*array)[1].getAsInteger();
      q.checkRange("weight_block_size", std::min(quant.blockOut, quant.blockIn),
                   1, kMaxDim);
      q.checkRange("weight_block_size", std::max(quant.blockOut, quant.blockIn),
                   1, kMaxDim);
    }
  }
  quant.modulesToNotConvert = q.getStringList("modules_to_not_convert");
  // Every quantizable weight is matched against every name (a substring
  // search): repeats and empty names, which match nothing, are dropped, and
  // the names times the weights is bounded (kMaxModuleNameChecks).
  std::vector<std::string> &skip = quant.modulesToNotConvert;
  llvm::sort(skip);
  skip.erase(llvm::unique(skip), skip.end());
  llvm::erase(skip, std::string());
  // The layer and expert counts were range-checked (checkMoE) unless the
  // reader failed, so the product below cannot overflow.
  if (!r.failed() && !skip.empty()) {
    int64_t layers = c.numLayers + c.numNextnPredictLayers;
    int64_t weights = layers * kMaxLinearsPerLayer + 3 * layers * c.numExperts;
    if (int64_t(skip.size()) > kMaxModuleNameChecks / weights)
      q.fail(q.field("modules_to_not_convert") + " holds " +
             Twine(uint64_t(skip.size())) +
             " distinct names; times the up to " + Twine(weights) +
             " quantizable weights they are matched against, " +
             "that is more than " + Twine(kMaxModuleNameChecks) +
             " substring checks");
  }
  if (!r.failed())
    c.quantization = std::move(quant);
}

//===----------------------------------------------------------------------===//
// Cross-field checks
//===----------------------------------------------------------------------===//

static void checkMoE(ConfigReader &r, ModelConfig &c, StringRef expertsKey) {
  r.checkRange(expertsKey, c.numExperts, 1, kMaxExperts);
  c.topK = r.getInt("num_experts_per_tok", getDefaults(c.arch).topK);
  r.checkRange("num_experts_per_tok", c.topK, 1, kMaxExperts);
  if (r.failed())
    return;
  r.checkAtMost("num_experts_per_tok", c.topK, expertsKey, c.numExperts);
  // Every layer with routed experts puts its experts' tensors in the
  // expected list: the main layers and DeepSeek's MTP layers, each a full
  // decoder layer (numNextnPredictLayers is 0 for the other models).
  if ((c.numLayers + c.numNextnPredictLayers) * c.numExperts >
      kMaxExpertInstances)
    r.fail(r.field("num_hidden_layers") + " = " + Twine(c.numLayers) +
           (c.numNextnPredictLayers > 0 ? " plus num_nextn_predict_layers = " +
                                              Twine(c.numNextnPredictLayers)
                                        : Twine()) +
           " times " + expertsKey + " = " + Twine(c.numExperts) +
           " must be <= " + Twine(kMaxExpertInstances));
  if (c.arch == Architecture::DeepseekV3) {
    r.checkRange("first_k_dense_replace", c.firstKDenseReplace, 0, kMaxLayers);
    r.checkAtMost("first_k_dense_replace", c.firstKDenseReplace,
                  "num_hidden_layers", c.numLayers);
    if (c.numSharedExperts * c.moeIntermediateSize > kMaxDim)
      r.fail(r.field("n_shared_experts") + " = " + Twine(c.numSharedExperts) +
             " times moe_intermediate_size = " + Twine(c.moeIntermediateSize) +
             " must be <= " + Twine(kMaxDim));
    c.sharedExpertIntermediateSize = c.numSharedExperts * c.moeIntermediateSize;
  }
  if (c.nGroup <= 1 || r.failed())
    return;
  r.checkAtMost("n_group", c.nGroup, expertsKey, c.numExperts);
  if (c.numExperts % c.nGroup != 0) {
    r.fail(r.field("n_group") + " = " + Twine(c.nGroup) + " must divide " +
           expertsKey + " = " + Twine(c.numExperts));
    return;
  }
  r.checkAtMost("topk_group", c.topkGroup, "n_group", c.nGroup);
  int64_t perGroup = c.numExperts / c.nGroup;
  if (c.topK > c.topkGroup * perGroup)
    r.fail(
        r.field("num_experts_per_tok") + " = " + Twine(c.topK) +
        " must be <= topk_group * experts per group = " + Twine(c.topkGroup) +
        " * " + Twine(perGroup) + " = " + Twine(c.topkGroup * perGroup));
  if (c.groupScore == GroupScore::SumTop2 && perGroup < 2)
    r.fail(r.field("n_group") + " = " + Twine(c.nGroup) + " leaves " +
           Twine(perGroup) +
           " expert per group; topk_method 'noaux_tc' needs at least 2");
}

//===----------------------------------------------------------------------===//
// parseModelConfig / loadModelConfig
//===----------------------------------------------------------------------===//

static llvm::Error tooLarge(StringRef path, uint64_t size) {
  return makeError(path + ": file is " + Twine(size) +
                   " bytes, larger than the " + Twine(kMaxConfigBytes) +
                   "-byte limit for config.json");
}

llvm::Expected<ModelConfig> mlir::moec::hf::parseModelConfig(StringRef jsonText,
                                                             StringRef path) {
  if (jsonText.size() > kMaxConfigBytes)
    return tooLarge(path, jsonText.size());
  if (nestsDeeperThan(jsonText, kMaxJsonDepth))
    return makeError(path + ": JSON nests deeper than " + Twine(kMaxJsonDepth) +
                     " levels");
  llvm::Expected<json::Value> parsed = json::parse(jsonText);
  if (!parsed)
    return makeError(path +
                     ": invalid JSON: " + llvm::toString(parsed.takeError()));
  const json::Object *root = parsed->getAsObject();
  if (!root)
    return makeError(path + ": top-level JSON value must be an object, got " +
                     describe(*parsed));

  ConfigReader r(*root, path);
  std::string supported = llvm::join(getSupportedModelTypes(), ", ");
  const json::Value *typeValue = root->get("model_type");
  if (!typeValue)
    return makeError(path +
                     ": missing field 'model_type' (supported "
                     "architectures: " +
                     supported + ")");
  std::optional<StringRef> modelType = typeValue->getAsString();
  if (!modelType)
    return makeError(path + ": field 'model_type' must be a string, got " +
                     describe(*typeValue));
  const auto *it = llvm::find(kModelTypes, *modelType);
  if (it == std::end(kModelTypes))
    return makeError(path + ": unsupported model_type " + quote(*modelType) +
                     " (supported architectures: " + supported + ")");

  ModelConfig c;
  c.arch = static_cast<Architecture>(it - std::begin(kModelTypes));
  c.path = path.str();
  ArchDefaults d = getDefaults(c.arch);

  readDense(r, c, d);
  if (r.failed())
    return r.takeError();

  StringRef expertsKey;
  switch (c.arch) {
  case Architecture::DeepseekV3:
    readDeepseek(r, c, d);
    expertsKey = "n_routed_experts";
    break;
  case Architecture::Mixtral: {
    readHeadDim(r, c);
    expertsKey = readAliasedInt(r, {"num_local_experts", "num_experts"},
                                d.experts, c.numExperts);
    // Mixtral's experts use intermediate_size; it has no dense MLP layers.
    c.moeIntermediateSize = c.intermediateSize;
    c.normTopkProb = true;
    c.slidingWindow = r.getNullableInt("sliding_window", std::nullopt);
    if (c.slidingWindow)
      r.checkRange("sliding_window", *c.slidingWindow, 1, kMaxPositions);
    break;
  }
  case Architecture::Qwen3Moe:
    readHeadDim(r, c);
    c.attentionBias = r.getBool("attention_bias", false);
    c.qkNorm = true;
    expertsKey = "num_experts";
    readQwen(r, c, d, expertsKey);
    break;
  case Architecture::Qwen2Moe:
    readHeadDim(r, c);
    // Always-on q/k/v bias; newer transformers make it the qkv_bias key.
    c.qkvBias = r.getBool("qkv_bias", true);
    expertsKey = "num_experts";
    readQwen(r, c, d, expertsKey);
    c.numSharedExperts = 1;
    c.sharedExpertIntermediateSize =
        r.getInt("shared_expert_intermediate_size", 5632);
    r.checkRange("shared_expert_intermediate_size",
                 c.sharedExpertIntermediateSize, 1, kMaxDim);
    c.sharedExpertGate = true;
    break;
  }
  if (r.failed())
    return r.takeError();

  checkMoE(r, c, expertsKey);
  readRope(r, c, d.theta);
  readQuantization(r, c);
  if (r.failed())
    return r.takeError();
  return c;
}

llvm::Expected<ModelConfig> mlir::moec::hf::loadModelConfig(StringRef dir) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, "config.json");
  // Opened without blocking and checked on the descriptor, so a FIFO or a
  // device is refused unread ("<path>: is a FIFO, not a regular file"); the
  // size is checked before a byte is read, and exactly that much is read.
  ::moec::runtime::StatusOr<::moec::runtime::RegularFile> file =
      ::moec::runtime::openRegularFile(std::string(path));
  if (!file.isOk())
    return makeError(file.status().message());
  if (file->size > kMaxConfigBytes)
    return tooLarge(path, file->size);
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getOpenFile(file->fd.get(), path, file->size,
                                      /*RequiresNullTerminator=*/false);
  if (!buffer)
    return makeError(path + ": cannot read: " + buffer.getError().message());
  return parseModelConfig((*buffer)->getBuffer(), path);
}

//===----------------------------------------------------------------------===//
// ModelConfig::isMoELayer
//===----------------------------------------------------------------------===//

/// The MoE placement rule of `c`, for any index (MTP layers lie past
/// `numLayers`).
static bool followsMoERule(const ModelConfig &c, int64_t layer) {
  switch (c.arch) {
  case Architecture::Mixtral:
    return true;
  case Architecture::DeepseekV3:
    return layer >= c.firstKDenseReplace && layer % c.moeLayerFreq == 0;
  case Architecture::Qwen3Moe:
  case Architecture::Qwen2Moe:
    return !llvm::is_contained(c.mlpOnlyLayers, layer) &&
           (layer + 1) % c.decoderSparseStep == 0;
  }
  return false;
}

bool ModelConfig::isMoELayer(int64_t layer) const {
  if (layer < 0 || layer >= numLayers || moeLayerFreq < 1 ||
      decoderSparseStep < 1)
    return false;
  return followsMoERule(*this, layer);
}

//===----------------------------------------------------------------------===//
// expectedTensors
//===----------------------------------------------------------------------===//

std::string mlir::moec::hf::getBlockScaleName(StringRef weightName) {
  return (weightName + "_scale_inv").str();
}

bool mlir::moec::hf::isQuantizableWeight(const ModelConfig &config,
                                         StringRef tensorName) {
  StringRef module = tensorName;
  if (!module.consume_back(".weight") || !module.starts_with("model.layers."))
    return false;
  StringRef leaf = module.rsplit('.').second;
  bool isProjection =
      llvm::StringSwitch<bool>(leaf)
          .Cases({"q_proj", "k_proj", "v_proj", "o_proj", "q_a_proj",
                  "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "gate_proj",
                  "up_proj", "down_proj", "w1", "w2", "w3", "eh_proj"},
                 true)
          .Default(false);
  if (!isProjection)
    return false;
  if (config.quantization)
    for (const std::string &skip : config.quantization->modulesToNotConvert)
      if (!skip.empty() && module.contains(skip))
        return false;
  return true;
}

/// Rounds `a / b` up, for positive operands.
static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

namespace {

/// Appends the tensors of one model to a list.
class TensorListBuilder {
public:
  explicit TensorListBuilder(const ModelConfig &c) : c(c) {}

  /// Marks every tensor added from now on as optional.
  void setAllOptional(bool value) { allOptional = value; }

  void add(const Twine &name, llvm::ArrayRef<int64_t> shape) {
    ExpectedTensor t;
    t.name = name.str();
    t.shape.assign(shape.begin(), shape.end());
    t.optional = allOptional;
    tensors.push_back(std::move(t));
  }

  /// A Linear `module` with weight `[out, in]`, its block scale if the model
  /// is quantized and the weight quantizable, and an optional bias.
  void linear(const Twine &module, int64_t out, int64_t in, bool bias = false) {
    std::string weight = (module + ".weight").str();
    add(weight, {out, in});
    bool quantizable = isQuantizableWeight(c, weight);
    tensors.back().quantizable = quantizable;
    if (c.quantization && quantizable) {
      add(getBlockScaleName(weight), {ceilDiv(out, c.quantization->blockOut),
                                      ceilDiv(in, c.quantization->blockIn)});
      tensors.back().optional = true;
      tensors.back().scaleFor = weight;
    }
    if (bias)
      add(module + ".bias", {out});
  }

  void norm(const Twine &module, int64_t size) {
    add(module + ".weight", {size});
  }

  /// A gated MLP under `module` with the published projection names.
  void mlp(const Twine &module, int64_t intermediate) {
    std::string m = module.str();
    linear(m + ".gate_proj", intermediate, c.hiddenSize);
    linear(m + ".up_proj", intermediate, c.hiddenSize);
    linear(m + ".down_proj", c.hiddenSize, intermediate);
  }

  void attention(const std::string &p) {
    int64_t h = c.hiddenSize, d = c.headDim;
    if (c.isMLA) {
      int64_t qk = c.qkNopeHeadDim + c.qkRopeHeadDim;
      if (c.qLoraRank) {
        linear(p + "q_a_proj", *c.qLoraRank, h, c.attentionBias);
        norm(p + "q_a_layernorm", *c.qLoraRank);
        linear(p + "q_b_proj", c.numHeads * qk, *c.qLoraRank);
      } else {
        linear(p + "q_proj", c.numHeads * qk, h);
      }
      linear(p + "kv_a_proj_with_mqa", c.kvLoraRank + c.qkRopeHeadDim, h,
             c.attentionBias);
      norm(p + "kv_a_layernorm", c.kvLoraRank);
      linear(p + "kv_b_proj", c.numHeads * (c.qkNopeHeadDim + c.vHeadDim),
             c.kvLoraRank);
      linear(p + "o_proj", h, c.numHeads * c.vHeadDim, c.attentionBias);
      return;
    }
    bool qkvBias = c.qkvBias || c.attentionBias;
    linear(p + "q_proj", c.numHeads * d, h, qkvBias);
    linear(p + "k_proj", c.numKVHeads * d, h, qkvBias);
    linear(p + "v_proj", c.numKVHeads * d, h, qkvBias);
    linear(p + "o_proj", h, c.numHeads * d, c.attentionBias);
    if (c.qkNorm) {
      norm(p + "q_norm", d);
      norm(p + "k_norm", d);
    }
  }

  void moe(const std::string &p) {
    int64_t h = c.hiddenSize, e = c.numExperts, i = c.moeIntermediateSize;
    if (c.arch == Architecture::Mixtral) {
      std::string m = p + "block_sparse_moe.";
      add(m + "gate.weight", {e, h});
      for (int64_t x = 0; x < e; ++x) {
        std::string ex = m + "experts." + std::to_string(x) + ".";
        linear(ex + "w1", i, h);
        linear(ex + "w2", h, i);
        linear(ex + "w3", i, h);
      }
      return;
    }
    std::string m = p + "mlp.";
    add(m + "gate.weight", {e, h});
    if (c.hasCorrectionBias)
      add(m + "gate.e_score_correction_bias", {e});
    for (int64_t x = 0; x < e; ++x)
      mlp(m + "experts." + std::to_string(x), i);
    if (c.arch == Architecture::DeepseekV3 && c.numSharedExperts > 0)
      mlp(m + "shared_experts", c.sharedExpertIntermediateSize);
    if (c.arch == Architecture::Qwen2Moe) {
      mlp(m + "shared_expert", c.sharedExpertIntermediateSize);
      add(m + "shared_expert_gate.weight", {1, h});
    }
  }

  void decoderLayer(int64_t layer) {
    std::string p = "model.layers." + std::to_string(layer) + ".";
    norm(p + "input_layernorm", c.hiddenSize);
    attention(p + "self_attn.");
    norm(p + "post_attention_layernorm", c.hiddenSize);
    if (followsMoERule(c, layer))
      moe(p);
    else
      mlp(p + "mlp", c.intermediateSize);
  }

  /// DeepSeek's multi-token-prediction layer `layer` (past the main ones).
  void mtpLayer(int64_t layer) {
    std::string p = "model.layers." + std::to_string(layer) + ".";
    add(p + "embed_tokens.weight", {c.vocabSize, c.hiddenSize});
    norm(p + "enorm", c.hiddenSize);
    norm(p + "hnorm", c.hiddenSize);
    linear(p + "eh_proj", c.hiddenSize, 2 * c.hiddenSize);
    decoderLayer(layer);
    norm(p + "shared_head.norm", c.hiddenSize);
    add(p + "shared_head.head.weight", {c.vocabSize, c.hiddenSize});
  }

  std::vector<ExpectedTensor> take() { return std::move(tensors); }

private:
  const ModelConfig &c;
  bool allOptional = false;
  std::vector<ExpectedTensor> tensors;
};

} // namespace

std::vector<ExpectedTensor>
mlir::moec::hf::expectedTensors(const ModelConfig &config) {
  TensorListBuilder b(config);
  b.add("model.embed_tokens.weight", {config.vocabSize, config.hiddenSize});
  for (int64_t layer = 0; layer < config.numLayers; ++layer)
    b.decoderLayer(layer);
  b.norm("model.norm", config.hiddenSize);
  if (!config.tieWordEmbeddings)
    b.add("lm_head.weight", {config.vocabSize, config.hiddenSize});
  if (config.arch == Architecture::DeepseekV3) {
    b.setAllOptional(true);
    for (int64_t n = 0; n < config.numNextnPredictLayers; ++n)
      b.mtpLayer(config.numLayers + n);
  }
  return b.take();
}
