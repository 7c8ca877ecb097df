//===- ModelConfig.h - Hugging Face config.json reader ----------*- C++ -*-===//
//
// Reads the `config.json` of a Hugging Face checkpoint folder (untrusted input)
// into a validated, architecture-neutral `ModelConfig` for the supported MoE
// families, applying transformers' class defaults for absent keys, and lists
// the tensors (names and HF `[out, in]` shapes) such a checkpoint must hold.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_HF_MODELCONFIG_H
#define MOEC_IMPORTERS_HF_MODELCONFIG_H

#include "importers/hf/JsonDepth.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moec::hf {

//===----------------------------------------------------------------------===//
// Limits
//===----------------------------------------------------------------------===//

/// Largest `config.json` that `loadModelConfig`/`parseModelConfig` accept.
constexpr uint64_t kMaxConfigBytes = 16u << 20;
/// Upper bound on any width (hidden, intermediate, head and LoRA dimensions).
constexpr int64_t kMaxDim = int64_t(1) << 20;
/// Upper bound on `vocab_size`.
constexpr int64_t kMaxVocab = int64_t(1) << 24;
/// Upper bound on `num_hidden_layers`.
constexpr int64_t kMaxLayers = 4096;
/// Upper bound on attention heads (query and key/value).
constexpr int64_t kMaxHeads = 65536;
/// Upper bound on the number of routed experts.
constexpr int64_t kMaxExperts = 65536;
/// Upper bound on the layers with routed experts (`num_hidden_layers` plus
/// DeepSeek's `num_nextn_predict_layers`) times the number of routed experts,
/// which bounds the size of the expected tensor list: 2.7 times Kimi K2's
/// 62 x 384, and at the bound a config costs under a second to refuse.
constexpr int64_t kMaxExpertInstances = int64_t(1) << 16;
/// Most Linear weights one decoder layer has besides its routed experts
/// (attention, dense or shared MLP, MTP projection), for
/// `kMaxModuleNameChecks`.
constexpr int64_t kMaxLinearsPerLayer = 16;
/// Upper bound on the distinct names of `modules_to_not_convert` times the
/// quantizable weights they are matched against (each match a substring
/// search): at most `kMaxLinearsPerLayer` per layer plus 3 per routed expert.
constexpr int64_t kMaxModuleNameChecks = int64_t(1) << 25;
/// Upper bound on `max_position_embeddings` and YaRN's original length.
constexpr int64_t kMaxPositions = int64_t(1) << 31;

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

/// The model families moec imports, keyed by config.json's `model_type`.
enum class Architecture { DeepseekV3, Mixtral, Qwen3Moe, Qwen2Moe };

/// Returns the `model_type` string of `arch` (e.g. "deepseek_v3").
llvm::StringRef getModelType(Architecture arch);

/// Returns every supported `model_type`, in a fixed order.
llvm::ArrayRef<llvm::StringRef> getSupportedModelTypes();

/// How router logits become expert scores (DESIGN.md §3, step 2).
enum class ScoringFunc { Softmax, Sigmoid };

/// How a group of experts is scored for group-limited routing (§3, step 4).
enum class GroupScore {
  /// No group limiting (`n_group` <= 1 or a plain greedy top-k).
  None,
  /// Sum of the group's two best selection scores (`noaux_tc`).
  SumTop2,
  /// The group's best selection score (`group_limited_greedy`).
  Max,
};

//===----------------------------------------------------------------------===//
// RopeScaling, Quantization
//===----------------------------------------------------------------------===//

/// Rotary embedding scaling from `rope_scaling` (or `rope_parameters` in the
/// transformers >= 5 layout). Defaults follow transformers'
/// `modeling_rope_utils.py`.
struct RopeScaling {
  /// The kinds moec implements; any other `rope_type` is rejected.
  enum Kind { None, Linear, Yarn };

  Kind kind = None;
  /// Context extension factor (`factor`), >= 1 for linear and YaRN.
  double factor = 1.0;
  /// Pre-extension context length; YaRN defaults it to
  /// `max_position_embeddings`.
  int64_t originalMaxPositionEmbeddings = 0;
  /// YaRN ramp bounds; absent, null or 0 mean 32 and 1, as in transformers.
  double betaFast = 32.0;
  double betaSlow = 1.0;
  /// YaRN `mscale` / `mscale_all_dim`; 0 means absent. DeepSeek-V3 also
  /// multiplies its softmax scale by yarn_get_mscale(factor, mscale_all_dim)^2
  /// when `mscaleAllDim` is non-zero.
  double mscale = 0.0;
  double mscaleAllDim = 0.0;
  /// Explicit YaRN `attention_factor`; when absent it is inferred from
  /// `factor`, `mscale` and `mscaleAllDim`.
  std::optional<double> attentionFactor;
  /// YaRN `truncate`: round the correction range to whole dimensions.
  bool truncate = true;
};

/// Weight quantization from `quantization_config`. Only the fine-grained FP8
/// scheme of DeepSeek-V3 (DESIGN.md §4) is accepted.
struct Quantization {
  /// Element format (`fmt`); only "e4m3" (float8_e4m3fn) is accepted.
  std::string fmt = "e4m3";
  /// Block of `[out, in]` covered by one `weight_scale_inv` entry.
  int64_t blockOut = 128;
  int64_t blockIn = 128;
  /// `activation_scheme`; only "dynamic" (per-token scales) is accepted.
  std::string activationScheme = "dynamic";
  /// `modules_to_not_convert`: a Linear whose module name contains one of
  /// these strings stays unquantized (transformers' substring rule).
  std::vector<std::string> modulesToNotConvert;
};

//===----------------------------------------------------------------------===//
// ModelConfig
//===----------------------------------------------------------------------===//

/// A validated description of the model, normalised across architectures:
/// everything the graph builder needs and nothing it does not.
struct ModelConfig {
  Architecture arch = Architecture::Mixtral;
  /// The file the description came from, for later messages.
  std::string path;
  /// `torch_dtype` (or `dtype`), e.g. "bfloat16"; empty when absent.
  std::string torchDtype;

  // Dense transformer.
  int64_t vocabSize = 0;
  int64_t hiddenSize = 0;
  /// Width of a dense (non-MoE) MLP layer.
  int64_t intermediateSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKVHeads = 0;
  /// Query/key head dimension: `head_dim` if given, else hidden/heads; for MLA
  /// `qk_nope_head_dim + qk_rope_head_dim`.
  int64_t headDim = 0;
  /// Value head dimension (`headDim` except for MLA's `v_head_dim`).
  int64_t vHeadDim = 0;
  /// Dimensions per head that RoPE rotates (`headDim`, or MLA's rope part).
  int64_t ropeHeadDim = 0;
  double rmsNormEps = 0.0;
  double ropeTheta = 0.0;
  RopeScaling ropeScaling;
  /// RoPE on interleaved pairs (DeepSeek `rope_interleave`) rather than on
  /// the two halves of the head (`rotate_half`).
  bool ropeInterleave = false;
  int64_t maxPositionEmbeddings = 0;
  /// Mixtral's `sliding_window`, when set.
  std::optional<int64_t> slidingWindow;
  bool tieWordEmbeddings = false;
  /// `attention_bias`: biases on q/k/v/o (Qwen3-MoE) or on q_a, kv_a and o
  /// (DeepSeek-V3).
  bool attentionBias = false;
  /// Biases on q/k/v only (Qwen2-MoE `qkv_bias`, true in every release).
  bool qkvBias = false;
  /// Per-head RMSNorm of q and k before RoPE (Qwen3-MoE).
  bool qkNorm = false;

  // Multi-head latent attention (DeepSeek-V3).
  bool isMLA = false;
  /// Rank of the query compression; nullopt means a plain `q_proj`.
  std::optional<int64_t> qLoraRank;
  int64_t kvLoraRank = 0;
  int64_t qkNopeHeadDim = 0;
  int64_t qkRopeHeadDim = 0;
  /// Multi-token-prediction layers stored after the main ones (DeepSeek);
  /// their tensors are optional and unused by inference.
  int64_t numNextnPredictLayers = 0;

  // Mixture of experts.
  int64_t numExperts = 0;
  int64_t topK = 0;
  /// Width of one routed expert.
  int64_t moeIntermediateSize = 0;
  int64_t numSharedExperts = 0;
  /// Total width of the shared expert MLP (0 when there is none).
  int64_t sharedExpertIntermediateSize = 0;
  /// Shared expert output scaled by sigmoid(x · w_shared_gate) (Qwen2-MoE).
  bool sharedExpertGate = false;
  ScoringFunc scoring = ScoringFunc::Softmax;
  /// Selection adds `e_score_correction_bias` (DeepSeek `noaux_tc`).
  bool hasCorrectionBias = false;
  /// Expert groups; 1 when routing is not group limited.
  int64_t nGroup = 1;
  int64_t topkGroup = 1;
  GroupScore groupScore = GroupScore::None;
  bool normTopkProb = false;
  double routedScalingFactor = 1.0;
  /// DeepSeek: layers [0, firstKDenseReplace) are dense, later ones MoE when
  /// `layer % moeLayerFreq == 0`.
  int64_t firstKDenseReplace = 0;
  int64_t moeLayerFreq = 1;
  /// Qwen: layer `l` is MoE when `(l + 1) % decoderSparseStep == 0` and `l`
  /// is not in `mlpOnlyLayers`.
  int64_t decoderSparseStep = 1;
  std::vector<int64_t> mlpOnlyLayers;

  /// Quantization of the stored weights, when the checkpoint has any.
  std::optional<Quantization> quantization;

  /// Returns true when decoder layer `layer` (0-based) has a MoE block rather
  /// than a dense MLP; false for layers out of range.
  bool isMoELayer(int64_t layer) const;
};

/// Parses and validates the text of a `config.json`. `path` names the file in
/// every message. Unknown keys, including `auto_map` (remote code), are
/// ignored; a missing key takes transformers' default for the architecture.
llvm::Expected<ModelConfig> parseModelConfig(llvm::StringRef jsonText,
                                             llvm::StringRef path);

/// Reads `<dir>/config.json` (a regular file of at most `kMaxConfigBytes`)
/// and parses it with `parseModelConfig`.
llvm::Expected<ModelConfig> loadModelConfig(llvm::StringRef dir);

//===----------------------------------------------------------------------===//
// Expected tensors
//===----------------------------------------------------------------------===//

/// One tensor a checkpoint is expected to hold.
struct ExpectedTensor {
  /// Name in the published checkpoints, e.g.
  /// "model.layers.3.mlp.experts.7.down_proj.weight".
  std::string name;
  /// Shape; Linear weights use PyTorch's `[out, in]`.
  llvm::SmallVector<int64_t, 4> shape;
  /// May be absent: multi-token-prediction layers, and block scales (see
  /// `scaleFor`).
  bool optional = false;
  /// A Linear weight that an FP8 checkpoint may store as F8_E4M3 with a block
  /// scale (see `isQuantizableWeight`).
  bool quantizable = false;
  /// For a block scale `<weight>_scale_inv`: the weight it belongs to. Such a
  /// scale is required exactly when that weight is stored as F8_E4M3 and must
  /// be absent otherwise; `shape` is `[ceil(out/blockOut), ceil(in/blockIn)]`.
  std::string scaleFor;
};

/// Lists every tensor a checkpoint of `config` holds, in model order: the
/// embedding, each decoder layer, the final norm and `lm_head` (absent when
/// the embeddings are tied), then DeepSeek's optional MTP layers. Block scales
/// are listed after their weight when `config.quantization` is set.
std::vector<ExpectedTensor> expectedTensors(const ModelConfig &config);

/// Returns true when `tensorName` is a Linear weight that the FP8 scheme
/// quantizes: every attention, MLP and expert projection (and DeepSeek's MTP
/// `eh_proj`), but never embeddings, `lm_head`, norms, router gates,
/// Qwen2-MoE's shared expert gate, biases, or a module matched by
/// `modules_to_not_convert`. Whether a given checkpoint did quantize it is
/// decided by its dtype (F8_E4M3) and a `_scale_inv` sibling.
bool isQuantizableWeight(const ModelConfig &config, llvm::StringRef tensorName);

/// Returns the name of the block scale of weight `weightName`
/// (`<weightName>_scale_inv`, e.g. "…q_a_proj.weight_scale_inv").
std::string getBlockScaleName(llvm::StringRef weightName);

} // namespace mlir::moec::hf

#endif // MOEC_IMPORTERS_HF_MODELCONFIG_H
