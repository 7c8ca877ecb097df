//===- ModelConfigTest.cpp - Tests for the config.json reader -------------===//
//
// Parses config.json files modelled on the published DeepSeek-V3,
// Mixtral-8x7B, Qwen3-30B-A3B and Qwen1.5-MoE-A2.7B checkpoints, checks the
// normalised fields, defaults and expected tensor lists, and runs the
// malformed corpus under test/data/malformed/config, one message per file.
//
//===----------------------------------------------------------------------===//

#include "importers/hf/ModelConfig.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

using namespace mlir::moec::hf;

namespace {

//===----------------------------------------------------------------------===//
// Configs modelled on the published checkpoints
//===----------------------------------------------------------------------===//

constexpr const char *kDeepseekV3 = R"json({
  "architectures": ["DeepseekV3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "auto_map": {
    "AutoConfig": "configuration_deepseek.DeepseekV3Config",
    "AutoModel": "modeling_deepseek.DeepseekV3Model",
    "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM"
  },
  "aux_loss_alpha": 0.001,
  "bos_token_id": 0,
  "eos_token_id": 1,
  "ep_size": 1,
  "first_k_dense_replace": 3,
  "hidden_act": "silu",
  "hidden_size": 7168,
  "initializer_range": 0.02,
  "intermediate_size": 18432,
  "kv_lora_rank": 512,
  "max_position_embeddings": 163840,
  "model_type": "deepseek_v3",
  "moe_intermediate_size": 2048,
  "moe_layer_freq": 1,
  "n_group": 8,
  "n_routed_experts": 256,
  "n_shared_experts": 1,
  "norm_topk_prob": true,
  "num_attention_heads": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 61,
  "num_key_value_heads": 128,
  "num_nextn_predict_layers": 1,
  "pretraining_tp": 1,
  "q_lora_rank": 1536,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "quantization_config": {
    "activation_scheme": "dynamic",
    "fmt": "e4m3",
    "quant_method": "fp8",
    "weight_block_size": [128, 128]
  },
  "rms_norm_eps": 1e-06,
  "rope_scaling": {
    "beta_fast": 32,
    "beta_slow": 1,
    "factor": 40,
    "mscale": 1.0,
    "mscale_all_dim": 1.0,
    "original_max_position_embeddings": 4096,
    "type": "yarn"
  },
  "rope_theta": 10000,
  "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid",
  "seq_aux": true,
  "tie_word_embeddings": false,
  "topk_group": 4,
  "topk_method": "noaux_tc",
  "torch_dtype": "bfloat16",
  "transformers_version": "4.33.1",
  "use_cache": true,
  "v_head_dim": 128,
  "vocab_size": 129280
})json";

constexpr const char *kMixtral8x7B = R"json({
  "architectures": ["MixtralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mixtral",
  "num_attention_heads": 32,
  "num_experts_per_tok": 2,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "num_local_experts": 8,
  "output_router_logits": false,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.02,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.36.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})json";

constexpr const char *kQwen3_30B_A3B = R"json({
  "architectures": ["Qwen3MoeForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "decoder_sparse_step": 1,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 6144,
  "max_position_embeddings": 40960,
  "max_window_layers": 48,
  "mlp_only_layers": [],
  "model_type": "qwen3_moe",
  "moe_intermediate_size": 768,
  "norm_topk_prob": true,
  "num_attention_heads": 32,
  "num_experts": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 48,
  "num_key_value_heads": 4,
  "output_router_logits": false,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.001,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})json";

constexpr const char *kQwen15MoE = R"json({
  "architectures": ["Qwen2MoeForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "decoder_sparse_step": 1,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 8192,
  "max_window_layers": 21,
  "model_type": "qwen2_moe",
  "moe_intermediate_size": 1408,
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts": 60,
  "num_experts_per_tok": 4,
  "num_hidden_layers": 24,
  "num_key_value_heads": 16,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.001,
  "shared_expert_intermediate_size": 5632,
  "sliding_window": 32768,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.0.dev0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})json";

/// A small DeepSeek-V3 with FP8 weights in 32 x 48 blocks, for exact tensor
/// lists with partial edge blocks.
constexpr const char *kTinyDeepseekFP8 = R"json({
  "model_type": "deepseek_v3",
  "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 16,
  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4,
  "n_routed_experts": 8, "n_shared_experts": 2, "num_experts_per_tok": 2,
  "n_group": 2, "topk_group": 1, "first_k_dense_replace": 1,
  "q_lora_rank": 32, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
  "qk_rope_head_dim": 4, "v_head_dim": 8, "vocab_size": 300,
  "num_nextn_predict_layers": 1,
  "quantization_config": {"quant_method": "fp8", "fmt": "e4m3",
    "activation_scheme": "dynamic", "weight_block_size": [32, 48]}
})json";

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

ModelConfig parseOrDie(llvm::StringRef text, llvm::StringRef path = "cfg") {
  llvm::Expected<ModelConfig> config = parseModelConfig(text, path);
  if (!config) {
    ADD_FAILURE() << llvm::toString(config.takeError());
    return ModelConfig();
  }
  return std::move(*config);
}

std::string parseError(llvm::StringRef text, llvm::StringRef path = "cfg") {
  llvm::Expected<ModelConfig> config = parseModelConfig(text, path);
  if (config)
    return "<parsed without error>";
  return llvm::toString(config.takeError());
}

using TensorMap = llvm::StringMap<ExpectedTensor>;

TensorMap byName(const std::vector<ExpectedTensor> &tensors) {
  TensorMap map;
  for (const ExpectedTensor &t : tensors)
    EXPECT_TRUE(map.try_emplace(t.name, t).second) << "duplicate " << t.name;
  return map;
}

std::vector<int64_t> shapeOf(const TensorMap &map, llvm::StringRef name) {
  auto it = map.find(name);
  if (it == map.end()) {
    ADD_FAILURE() << "missing tensor " << name.str();
    return {};
  }
  return {it->second.shape.begin(), it->second.shape.end()};
}

using Shape = std::vector<int64_t>;

size_t countRequired(const std::vector<ExpectedTensor> &tensors) {
  size_t n = 0;
  for (const ExpectedTensor &t : tensors)
    n += !t.optional;
  return n;
}

//===----------------------------------------------------------------------===//
// Published configs
//===----------------------------------------------------------------------===//

TEST(ModelConfigTest, DeepseekV3Fields) {
  ModelConfig c = parseOrDie(kDeepseekV3);
  EXPECT_EQ(c.arch, Architecture::DeepseekV3);
  EXPECT_EQ(c.torchDtype, "bfloat16");
  EXPECT_EQ(c.vocabSize, 129280);
  EXPECT_EQ(c.hiddenSize, 7168);
  EXPECT_EQ(c.intermediateSize, 18432);
  EXPECT_EQ(c.numLayers, 61);
  EXPECT_EQ(c.numHeads, 128);
  EXPECT_EQ(c.numKVHeads, 128);
  EXPECT_TRUE(c.isMLA);
  EXPECT_EQ(c.headDim, 192);
  EXPECT_EQ(c.vHeadDim, 128);
  EXPECT_EQ(c.ropeHeadDim, 64);
  ASSERT_TRUE(c.qLoraRank.has_value());
  EXPECT_EQ(*c.qLoraRank, 1536);
  EXPECT_EQ(c.kvLoraRank, 512);
  EXPECT_EQ(c.qkNopeHeadDim, 128);
  EXPECT_EQ(c.qkRopeHeadDim, 64);
  EXPECT_TRUE(c.ropeInterleave);
  EXPECT_FALSE(c.attentionBias);
  EXPECT_FALSE(c.qkNorm);
  EXPECT_EQ(c.maxPositionEmbeddings, 163840);
  EXPECT_DOUBLE_EQ(c.rmsNormEps, 1e-6);
  EXPECT_DOUBLE_EQ(c.ropeTheta, 10000.0);
  EXPECT_EQ(c.ropeScaling.kind, RopeScaling::Yarn);
  EXPECT_DOUBLE_EQ(c.ropeScaling.factor, 40.0);
  EXPECT_EQ(c.ropeScaling.originalMaxPositionEmbeddings, 4096);
  EXPECT_DOUBLE_EQ(c.ropeScaling.betaFast, 32.0);
  EXPECT_DOUBLE_EQ(c.ropeScaling.betaSlow, 1.0);
  EXPECT_DOUBLE_EQ(c.ropeScaling.mscale, 1.0);
  EXPECT_DOUBLE_EQ(c.ropeScaling.mscaleAllDim, 1.0);
  EXPECT_FALSE(c.ropeScaling.attentionFactor.has_value());
  EXPECT_EQ(c.numExperts, 256);
  EXPECT_EQ(c.topK, 8);
  EXPECT_EQ(c.moeIntermediateSize, 2048);
  EXPECT_EQ(c.numSharedExperts, 1);
  EXPECT_EQ(c.sharedExpertIntermediateSize, 2048);
  EXPECT_FALSE(c.sharedExpertGate);
  EXPECT_EQ(c.scoring, ScoringFunc::Sigmoid);
  EXPECT_TRUE(c.hasCorrectionBias);
  EXPECT_EQ(c.nGroup, 8);
  EXPECT_EQ(c.topkGroup, 4);
  EXPECT_EQ(c.groupScore, GroupScore::SumTop2);
  EXPECT_TRUE(c.normTopkProb);
  EXPECT_DOUBLE_EQ(c.routedScalingFactor, 2.5);
  EXPECT_EQ(c.firstKDenseReplace, 3);
  EXPECT_EQ(c.numNextnPredictLayers, 1);
  EXPECT_FALSE(c.isMoELayer(0));
  EXPECT_FALSE(c.isMoELayer(2));
  EXPECT_TRUE(c.isMoELayer(3));
  EXPECT_TRUE(c.isMoELayer(60));
  EXPECT_FALSE(c.isMoELayer(61));
  EXPECT_FALSE(c.isMoELayer(-1));
  ASSERT_TRUE(c.quantization.has_value());
  EXPECT_EQ(c.quantization->fmt, "e4m3");
  EXPECT_EQ(c.quantization->blockOut, 128);
  EXPECT_EQ(c.quantization->blockIn, 128);
  EXPECT_EQ(c.quantization->activationScheme, "dynamic");
}

TEST(ModelConfigTest, DeepseekV3Tensors) {
  ModelConfig c = parseOrDie(kDeepseekV3);
  std::vector<ExpectedTensor> tensors = expectedTensors(c);
  // Per MoE layer: 2 norms, 5 attention Linears + 2 norms, router weight and
  // bias, 256 x 3 expert and 3 shared Linears: 2 + 7 + 2 + 771 = 782 required
  // tensors; a dense layer has 2 + 7 + 3 = 12. Plus embed, norm, lm_head.
  EXPECT_EQ(countRequired(tensors), 3u * 12 + 58u * 782 + 3);
  TensorMap map = byName(tensors);
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_a_proj.weight"),
            (Shape{1536, 7168}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_a_proj.weight_scale_inv"),
            (Shape{12, 56}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_b_proj.weight"),
            (Shape{128 * 192, 1536}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight"),
            (Shape{576, 7168}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_"
                         "scale_inv"),
            (Shape{5, 56}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.kv_a_layernorm.weight"),
            (Shape{512}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.kv_b_proj.weight"),
            (Shape{128 * 256, 512}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.o_proj.weight"),
            (Shape{7168, 128 * 128}));
  EXPECT_EQ(shapeOf(map, "model.layers.2.mlp.down_proj.weight"),
            (Shape{7168, 18432}));
  EXPECT_EQ(shapeOf(map, "model.layers.3.mlp.gate.weight"), (Shape{256, 7168}));
  EXPECT_EQ(shapeOf(map, "model.layers.3.mlp.gate.e_score_correction_bias"),
            (Shape{256}));
  EXPECT_EQ(shapeOf(map, "model.layers.60.mlp.experts.255.down_proj.weight"),
            (Shape{7168, 2048}));
  EXPECT_EQ(shapeOf(map, "model.layers.3.mlp.shared_experts.up_proj.weight"),
            (Shape{2048, 7168}));
  EXPECT_EQ(map.count("model.layers.3.mlp.gate_proj.weight"), 0u);
  EXPECT_EQ(map.count("model.layers.3.mlp.gate.weight_scale_inv"), 0u);
  EXPECT_EQ(map.count("model.embed_tokens.weight_scale_inv"), 0u);
  EXPECT_EQ(shapeOf(map, "lm_head.weight"), (Shape{129280, 7168}));
  // The MTP layer is listed, optional.
  ASSERT_EQ(map.count("model.layers.61.eh_proj.weight"), 1u);
  EXPECT_TRUE(map.find("model.layers.61.eh_proj.weight")->second.optional);
  EXPECT_EQ(shapeOf(map, "model.layers.61.eh_proj.weight"),
            (Shape{7168, 14336}));
  EXPECT_TRUE(map.find("model.layers.61.mlp.experts.0.up_proj.weight")
                  ->second.optional);
}

TEST(ModelConfigTest, Mixtral8x7B) {
  ModelConfig c = parseOrDie(kMixtral8x7B);
  EXPECT_EQ(c.arch, Architecture::Mixtral);
  EXPECT_EQ(c.headDim, 128);
  EXPECT_EQ(c.numKVHeads, 8);
  EXPECT_EQ(c.numExperts, 8);
  EXPECT_EQ(c.topK, 2);
  EXPECT_EQ(c.moeIntermediateSize, 14336);
  EXPECT_EQ(c.scoring, ScoringFunc::Softmax);
  EXPECT_FALSE(c.hasCorrectionBias);
  EXPECT_EQ(c.groupScore, GroupScore::None);
  EXPECT_TRUE(c.normTopkProb);
  EXPECT_DOUBLE_EQ(c.routedScalingFactor, 1.0);
  EXPECT_DOUBLE_EQ(c.ropeTheta, 1e6);
  EXPECT_DOUBLE_EQ(c.rmsNormEps, 1e-5);
  EXPECT_EQ(c.ropeScaling.kind, RopeScaling::None);
  EXPECT_FALSE(c.ropeInterleave);
  EXPECT_FALSE(c.slidingWindow.has_value());
  EXPECT_EQ(c.numSharedExperts, 0);
  EXPECT_FALSE(c.quantization.has_value());
  for (int64_t layer = 0; layer < 32; ++layer)
    EXPECT_TRUE(c.isMoELayer(layer)) << layer;

  std::vector<ExpectedTensor> tensors = expectedTensors(c);
  EXPECT_EQ(tensors.size(), 995u); // the published index's count
  EXPECT_EQ(countRequired(tensors), 995u);
  TensorMap map = byName(tensors);
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.k_proj.weight"),
            (Shape{1024, 4096}));
  EXPECT_EQ(shapeOf(map, "model.layers.31.block_sparse_moe.gate.weight"),
            (Shape{8, 4096}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.block_sparse_moe.experts.7.w1.weight"),
            (Shape{14336, 4096}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.block_sparse_moe.experts.7.w2.weight"),
            (Shape{4096, 14336}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.block_sparse_moe.experts.7.w3.weight"),
            (Shape{14336, 4096}));
  EXPECT_TRUE(map.find("model.layers.0.block_sparse_moe.experts.7.w3.weight")
                  ->second.quantizable);
  EXPECT_FALSE(map.find("model.layers.0.block_sparse_moe.gate.weight")
                   ->second.quantizable);
}

TEST(ModelConfigTest, Qwen3_30B_A3B) {
  ModelConfig c = parseOrDie(kQwen3_30B_A3B);
  EXPECT_EQ(c.arch, Architecture::Qwen3Moe);
  EXPECT_EQ(c.headDim, 128); // explicit, not 2048 / 32
  EXPECT_EQ(c.numKVHeads, 4);
  EXPECT_TRUE(c.qkNorm);
  EXPECT_FALSE(c.attentionBias);
  EXPECT_FALSE(c.qkvBias);
  EXPECT_EQ(c.numExperts, 128);
  EXPECT_EQ(c.topK, 8);
  EXPECT_EQ(c.moeIntermediateSize, 768);
  EXPECT_TRUE(c.normTopkProb);
  EXPECT_EQ(c.maxPositionEmbeddings, 40960);
  EXPECT_DOUBLE_EQ(c.ropeTheta, 1e6);
  EXPECT_EQ(c.ropeScaling.kind, RopeScaling::None);
  for (int64_t layer = 0; layer < 48; ++layer)
    EXPECT_TRUE(c.isMoELayer(layer)) << layer;

  std::vector<ExpectedTensor> tensors = expectedTensors(c);
  // Per layer: 2 norms, 4 projections, q/k norms, router, 128 x 3 experts.
  EXPECT_EQ(tensors.size(), 48u * (2 + 4 + 2 + 1 + 384) + 3);
  TensorMap map = byName(tensors);
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_proj.weight"),
            (Shape{4096, 2048}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.k_proj.weight"),
            (Shape{512, 2048}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.o_proj.weight"),
            (Shape{2048, 4096}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_norm.weight"),
            (Shape{128}));
  EXPECT_EQ(shapeOf(map, "model.layers.47.mlp.experts.127.gate_proj.weight"),
            (Shape{768, 2048}));
  EXPECT_EQ(map.count("model.layers.0.self_attn.q_proj.bias"), 0u);
}

TEST(ModelConfigTest, Qwen15MoEA27B) {
  ModelConfig c = parseOrDie(kQwen15MoE);
  EXPECT_EQ(c.arch, Architecture::Qwen2Moe);
  EXPECT_EQ(c.headDim, 128);
  EXPECT_TRUE(c.qkvBias);
  EXPECT_FALSE(c.qkNorm);
  EXPECT_EQ(c.numExperts, 60);
  EXPECT_EQ(c.topK, 4);
  EXPECT_FALSE(c.normTopkProb);
  EXPECT_EQ(c.numSharedExperts, 1);
  EXPECT_EQ(c.sharedExpertIntermediateSize, 5632);
  EXPECT_TRUE(c.sharedExpertGate);
  EXPECT_EQ(c.scoring, ScoringFunc::Softmax);

  std::vector<ExpectedTensor> tensors = expectedTensors(c);
  // Per layer: 2 norms, 4 projections + 3 biases, router, 60 x 3 experts,
  // 3 shared expert projections and the shared expert gate.
  EXPECT_EQ(tensors.size(), 24u * (2 + 7 + 1 + 180 + 3 + 1) + 3);
  TensorMap map = byName(tensors);
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_proj.bias"),
            (Shape{2048}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.v_proj.bias"),
            (Shape{2048}));
  EXPECT_EQ(map.count("model.layers.0.self_attn.o_proj.bias"), 0u);
  EXPECT_EQ(shapeOf(map, "model.layers.5.mlp.shared_expert.down_proj.weight"),
            (Shape{2048, 5632}));
  EXPECT_EQ(shapeOf(map, "model.layers.5.mlp.shared_expert_gate.weight"),
            (Shape{1, 2048}));
  EXPECT_EQ(shapeOf(map, "model.layers.5.mlp.experts.59.up_proj.weight"),
            (Shape{1408, 2048}));
  EXPECT_FALSE(map.find("model.layers.5.mlp.shared_expert_gate.weight")
                   ->second.quantizable);
}

//===----------------------------------------------------------------------===//
// Small configs: exact tensor lists
//===----------------------------------------------------------------------===//

TEST(ModelConfigTest, TinyDeepseekFP8TensorList) {
  ModelConfig c = parseOrDie(kTinyDeepseekFP8);
  EXPECT_EQ(c.sharedExpertIntermediateSize, 32);
  EXPECT_FALSE(c.isMoELayer(0));
  EXPECT_TRUE(c.isMoELayer(1));
  std::vector<ExpectedTensor> tensors = expectedTensors(c);

  // Layer 0 (dense), in order, with scales after their weights.
  std::vector<std::string> layer0;
  for (const ExpectedTensor &t : tensors)
    if (llvm::StringRef(t.name).starts_with("model.layers.0."))
      layer0.push_back(t.name.substr(15));
  std::vector<std::string> expected = {
      "input_layernorm.weight",
      "self_attn.q_a_proj.weight",
      "self_attn.q_a_proj.weight_scale_inv",
      "self_attn.q_a_layernorm.weight",
      "self_attn.q_b_proj.weight",
      "self_attn.q_b_proj.weight_scale_inv",
      "self_attn.kv_a_proj_with_mqa.weight",
      "self_attn.kv_a_proj_with_mqa.weight_scale_inv",
      "self_attn.kv_a_layernorm.weight",
      "self_attn.kv_b_proj.weight",
      "self_attn.kv_b_proj.weight_scale_inv",
      "self_attn.o_proj.weight",
      "self_attn.o_proj.weight_scale_inv",
      "post_attention_layernorm.weight",
      "mlp.gate_proj.weight",
      "mlp.gate_proj.weight_scale_inv",
      "mlp.up_proj.weight",
      "mlp.up_proj.weight_scale_inv",
      "mlp.down_proj.weight",
      "mlp.down_proj.weight_scale_inv",
  };
  EXPECT_EQ(layer0, expected);

  TensorMap map = byName(tensors);
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_b_proj.weight"),
            (Shape{4 * 12, 32}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight"),
            (Shape{16 + 4, 64}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.kv_b_proj.weight"),
            (Shape{4 * 16, 16}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.o_proj.weight"),
            (Shape{64, 32}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.mlp.down_proj.weight"),
            (Shape{64, 96}));
  EXPECT_EQ(shapeOf(map, "model.layers.1.mlp.shared_experts.gate_proj.weight"),
            (Shape{32, 64}));
  EXPECT_EQ(shapeOf(map, "model.layers.2.mlp.experts.7.down_proj.weight"),
            (Shape{64, 16}));
  // Scales cover 32 x 48 blocks; partial edge blocks round up.
  EXPECT_EQ(shapeOf(map, "model.layers.0.mlp.down_proj.weight_scale_inv"),
            (Shape{2, 2}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_"
                         "scale_inv"),
            (Shape{1, 2}));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_b_proj.weight_scale_inv"),
            (Shape{2, 1}));

  const ExpectedTensor &scale =
      map.find("model.layers.0.mlp.down_proj.weight_scale_inv")->second;
  EXPECT_TRUE(scale.optional);
  EXPECT_EQ(scale.scaleFor, "model.layers.0.mlp.down_proj.weight");
  const ExpectedTensor &weight =
      map.find("model.layers.0.mlp.down_proj.weight")->second;
  EXPECT_FALSE(weight.optional);
  EXPECT_TRUE(weight.quantizable);
  EXPECT_TRUE(weight.scaleFor.empty());
  for (llvm::StringRef name :
       {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
        "model.layers.1.mlp.gate.weight",
        "model.layers.1.mlp.gate.e_score_correction_bias",
        "model.layers.1.input_layernorm.weight",
        "model.layers.1.self_attn.q_a_layernorm.weight"}) {
    EXPECT_FALSE(map.find(name)->second.quantizable) << name.str();
    EXPECT_FALSE(isQuantizableWeight(c, name)) << name.str();
    EXPECT_EQ(map.count(getBlockScaleName(name)), 0u) << name.str();
  }

  // Every quantizable weight has exactly one scale, right after it.
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].quantizable)
      continue;
    ASSERT_LT(i + 1, tensors.size());
    EXPECT_EQ(tensors[i + 1].scaleFor, tensors[i].name);
    EXPECT_EQ(tensors[i + 1].name, getBlockScaleName(tensors[i].name));
  }

  // Main model: embed + norm + lm_head, a dense and two MoE layers. Dense:
  // 2 + 5 Linears + 2 norms + 3 = 12 required; MoE: 2 + 7 + 2 router tensors
  // + 8 x 3 + 3 shared = 38. The MTP layer 3 adds only optional tensors.
  EXPECT_EQ(countRequired(tensors), 3u + 12 + 2 * 38);
  ASSERT_EQ(map.count("model.layers.3.shared_head.head.weight"), 1u);
  EXPECT_TRUE(
      map.find("model.layers.3.shared_head.head.weight")->second.optional);
  EXPECT_EQ(shapeOf(map, "model.layers.3.eh_proj.weight"), (Shape{64, 128}));
}

TEST(ModelConfigTest, TinyDeepseekWithoutQLoraTied) {
  std::string text = kTinyDeepseekFP8;
  text.replace(text.find("\"q_lora_rank\": 32"), 17, "\"q_lora_rank\": null");
  text.replace(
      text.find("\"num_nextn_predict_layers\": 1"), 29,
      "\"num_nextn_predict_layers\": 0, \"tie_word_embeddings\": true");
  ModelConfig c = parseOrDie(text);
  EXPECT_FALSE(c.qLoraRank.has_value());
  EXPECT_TRUE(c.tieWordEmbeddings);
  TensorMap map = byName(expectedTensors(c));
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_proj.weight"),
            (Shape{4 * 12, 64}));
  EXPECT_EQ(map.count("model.layers.0.self_attn.q_a_proj.weight"), 0u);
  EXPECT_EQ(map.count("model.layers.0.self_attn.q_a_layernorm.weight"), 0u);
  EXPECT_EQ(map.count("lm_head.weight"), 0u);
  EXPECT_EQ(map.count("model.layers.3.eh_proj.weight"), 0u);
}

TEST(ModelConfigTest, ModulesToNotConvert) {
  ModelConfig c = parseOrDie(R"json({"model_type": "qwen3_moe",
    "num_hidden_layers": 2, "num_experts": 4, "num_experts_per_tok": 2,
    "quantization_config": {"quant_method": "fp8", "activation_scheme":
      "dynamic", "weight_block_size": [128, 128],
      "modules_to_not_convert": ["lm_head",
                                 "model.layers.1.self_attn"]}})json");
  ASSERT_TRUE(c.quantization.has_value());
  EXPECT_EQ(c.quantization->fmt, "e4m3"); // absent: e4m3
  EXPECT_TRUE(isQuantizableWeight(c, "model.layers.0.self_attn.q_proj.weight"));
  EXPECT_FALSE(
      isQuantizableWeight(c, "model.layers.1.self_attn.q_proj.weight"));
  EXPECT_TRUE(
      isQuantizableWeight(c, "model.layers.1.mlp.experts.0.up_proj.weight"));
  EXPECT_FALSE(isQuantizableWeight(c, "model.layers.0.self_attn.q_proj.bias"));
  TensorMap map = byName(expectedTensors(c));
  EXPECT_EQ(map.count("model.layers.0.self_attn.q_proj.weight_scale_inv"), 1u);
  EXPECT_EQ(map.count("model.layers.1.self_attn.q_proj.weight_scale_inv"), 0u);
  EXPECT_EQ(shapeOf(map, "model.layers.0.self_attn.q_proj.weight_scale_inv"),
            (Shape{16, 16}));
}

//===----------------------------------------------------------------------===//
// Defaults (transformers' config classes) and normalisation
//===----------------------------------------------------------------------===//

TEST(ModelConfigTest, DeepseekV3Defaults) {
  ModelConfig c = parseOrDie(R"({"model_type": "deepseek_v3"})");
  EXPECT_EQ(c.vocabSize, 129280);
  EXPECT_EQ(c.hiddenSize, 7168);
  EXPECT_EQ(c.intermediateSize, 18432);
  EXPECT_EQ(c.numLayers, 61);
  EXPECT_EQ(c.numHeads, 128);
  EXPECT_EQ(c.numKVHeads, 128);
  EXPECT_EQ(*c.qLoraRank, 1536);
  EXPECT_EQ(c.kvLoraRank, 512);
  EXPECT_EQ(c.headDim, 192);
  EXPECT_EQ(c.maxPositionEmbeddings, 4096);
  EXPECT_DOUBLE_EQ(c.ropeTheta, 10000.0);
  EXPECT_DOUBLE_EQ(c.rmsNormEps, 1e-6);
  EXPECT_EQ(c.numExperts, 256);
  EXPECT_EQ(c.topK, 8);
  EXPECT_EQ(c.nGroup, 8);
  EXPECT_EQ(c.topkGroup, 4);
  EXPECT_EQ(c.firstKDenseReplace, 3);
  EXPECT_EQ(c.moeLayerFreq, 1);
  EXPECT_EQ(c.scoring, ScoringFunc::Sigmoid);
  EXPECT_TRUE(c.hasCorrectionBias);
  EXPECT_TRUE(c.normTopkProb);
  EXPECT_DOUBLE_EQ(c.routedScalingFactor, 2.5);
  EXPECT_TRUE(c.ropeInterleave);
  EXPECT_FALSE(c.tieWordEmbeddings);
  EXPECT_FALSE(c.quantization.has_value());
}

TEST(ModelConfigTest, MixtralDefaults) {
  ModelConfig c = parseOrDie(R"({"model_type": "mixtral"})");
  EXPECT_EQ(c.vocabSize, 32000);
  EXPECT_EQ(c.hiddenSize, 4096);
  EXPECT_EQ(c.numLayers, 32);
  EXPECT_EQ(c.numKVHeads, 8);
  EXPECT_EQ(c.headDim, 128);
  EXPECT_EQ(c.maxPositionEmbeddings, 131072);
  EXPECT_DOUBLE_EQ(c.ropeTheta, 1e6);
  EXPECT_DOUBLE_EQ(c.rmsNormEps, 1e-5);
  EXPECT_EQ(c.numExperts, 8);
  EXPECT_EQ(c.topK, 2);
  EXPECT_EQ(c.moeIntermediateSize, 14336);
}

TEST(ModelConfigTest, QwenDefaults) {
  ModelConfig q3 = parseOrDie(R"({"model_type": "qwen3_moe"})");
  EXPECT_EQ(q3.vocabSize, 151936);
  EXPECT_EQ(q3.hiddenSize, 2048);
  EXPECT_EQ(q3.intermediateSize, 6144);
  EXPECT_EQ(q3.numLayers, 24);
  EXPECT_EQ(q3.numHeads, 32);
  EXPECT_EQ(q3.numKVHeads, 4);
  EXPECT_EQ(q3.headDim, 64);
  EXPECT_EQ(q3.numExperts, 128);
  EXPECT_EQ(q3.topK, 8);
  EXPECT_EQ(q3.moeIntermediateSize, 768);
  EXPECT_FALSE(q3.normTopkProb);
  EXPECT_DOUBLE_EQ(q3.ropeTheta, 10000.0);
  EXPECT_EQ(q3.maxPositionEmbeddings, 32768);

  ModelConfig q2 = parseOrDie(R"({"model_type": "qwen2_moe"})");
  EXPECT_EQ(q2.intermediateSize, 5632);
  EXPECT_EQ(q2.numHeads, 16);
  EXPECT_EQ(q2.numKVHeads, 16);
  EXPECT_EQ(q2.numExperts, 60);
  EXPECT_EQ(q2.topK, 4);
  EXPECT_EQ(q2.moeIntermediateSize, 1408);
  EXPECT_EQ(q2.sharedExpertIntermediateSize, 5632);
  EXPECT_TRUE(q2.qkvBias);
  EXPECT_FALSE(q2.normTopkProb);
}

TEST(ModelConfigTest, NullsFollowTransformers) {
  ModelConfig c = parseOrDie(R"({"model_type": "deepseek_v3",
    "num_key_value_heads": null, "num_attention_heads": 16,
    "n_group": null, "topk_group": null, "first_k_dense_replace": null,
    "n_shared_experts": null, "norm_topk_prob": null})");
  EXPECT_EQ(c.numKVHeads, 16);
  EXPECT_EQ(c.nGroup, 1);
  EXPECT_EQ(c.topkGroup, 1);
  EXPECT_EQ(c.groupScore, GroupScore::None);
  EXPECT_EQ(c.firstKDenseReplace, 0);
  EXPECT_EQ(c.numSharedExperts, 0);
  EXPECT_FALSE(c.normTopkProb);
  EXPECT_TRUE(c.isMoELayer(0));
  ModelConfig m = parseOrDie(
      R"({"model_type": "mixtral", "head_dim": null, "sliding_window": 4096})");
  EXPECT_EQ(m.headDim, 128);
  ASSERT_TRUE(m.slidingWindow.has_value());
  EXPECT_EQ(*m.slidingWindow, 4096);
}

TEST(ModelConfigTest, DeepseekRoutingMethods) {
  ModelConfig greedy = parseOrDie(
      R"({"model_type": "deepseek_v3", "topk_method": "greedy",
          "scoring_func": "softmax"})");
  EXPECT_EQ(greedy.scoring, ScoringFunc::Softmax);
  EXPECT_FALSE(greedy.hasCorrectionBias);
  EXPECT_EQ(greedy.nGroup, 1);
  EXPECT_EQ(greedy.groupScore, GroupScore::None);
  EXPECT_EQ(byName(expectedTensors(greedy))
                .count("model.layers.3.mlp.gate.e_score_correction_bias"),
            0u);
  ModelConfig limited = parseOrDie(
      R"({"model_type": "deepseek_v3",
          "topk_method": "group_limited_greedy"})");
  EXPECT_EQ(limited.groupScore, GroupScore::Max);
  EXPECT_FALSE(limited.hasCorrectionBias);
  ModelConfig oneGroup =
      parseOrDie(R"({"model_type": "deepseek_v3", "n_group": 1})");
  EXPECT_EQ(oneGroup.groupScore, GroupScore::None);
  EXPECT_TRUE(oneGroup.hasCorrectionBias);
  EXPECT_EQ(parseError(R"({"model_type": "deepseek_v3", "topk_method": "x"})"),
            "cfg: field 'topk_method' = 'x' is not supported (supported: "
            "noaux_tc, group_limited_greedy, greedy)");
  EXPECT_EQ(parseError(R"({"model_type": "deepseek_v3", "n_group": 256,
                            "topk_group": 8})"),
            "cfg: field 'n_group' = 256 leaves 1 expert per group; "
            "topk_method 'noaux_tc' needs at least 2");
}

TEST(ModelConfigTest, LayerPlacement) {
  ModelConfig q = parseOrDie(R"({"model_type": "qwen2_moe",
    "num_hidden_layers": 6, "decoder_sparse_step": 2,
    "mlp_only_layers": [3]})");
  std::vector<bool> moe;
  for (int64_t layer = 0; layer < 6; ++layer)
    moe.push_back(q.isMoELayer(layer));
  EXPECT_EQ(moe, (std::vector<bool>{false, true, false, false, false, true}));
  TensorMap map = byName(expectedTensors(q));
  EXPECT_EQ(shapeOf(map, "model.layers.0.mlp.gate_proj.weight"),
            (Shape{5632, 2048}));
  EXPECT_EQ(map.count("model.layers.3.mlp.gate.weight"), 0u);
  EXPECT_EQ(map.count("model.layers.5.mlp.gate.weight"), 1u);

  ModelConfig d = parseOrDie(R"({"model_type": "deepseek_v3",
    "num_hidden_layers": 7, "first_k_dense_replace": 1, "moe_layer_freq": 2})");
  moe.clear();
  for (int64_t layer = 0; layer < 7; ++layer)
    moe.push_back(d.isMoELayer(layer));
  EXPECT_EQ(moe,
            (std::vector<bool>{false, false, true, false, true, false, true}));
}

TEST(ModelConfigTest, RopeLayouts) {
  // Legacy `type` key, linear.
  ModelConfig linear = parseOrDie(R"({"model_type": "qwen3_moe",
    "rope_scaling": {"type": "linear", "factor": 4}})");
  EXPECT_EQ(linear.ropeScaling.kind, RopeScaling::Linear);
  EXPECT_DOUBLE_EQ(linear.ropeScaling.factor, 4.0);
  // `rope_type: default` means no scaling.
  ModelConfig plain = parseOrDie(R"({"model_type": "qwen3_moe",
    "rope_scaling": {"rope_type": "default"}})");
  EXPECT_EQ(plain.ropeScaling.kind, RopeScaling::None);
  // transformers >= 5: rope_parameters, with rope_theta inside.
  ModelConfig v5 = parseOrDie(R"({"model_type": "qwen3_moe",
    "rope_theta": 5.0,
    "rope_parameters": {"rope_type": "yarn", "rope_theta": 1000000.0,
                        "factor": 4.0, "beta_fast": null}})");
  EXPECT_DOUBLE_EQ(v5.ropeTheta, 1e6);
  EXPECT_EQ(v5.ropeScaling.kind, RopeScaling::Yarn);
  EXPECT_DOUBLE_EQ(v5.ropeScaling.betaFast, 32.0);
  EXPECT_DOUBLE_EQ(v5.ropeScaling.betaSlow, 1.0);
  EXPECT_DOUBLE_EQ(v5.ropeScaling.mscale, 0.0);
  EXPECT_TRUE(v5.ropeScaling.truncate);
  // YaRN's original length defaults to max_position_embeddings.
  EXPECT_EQ(v5.ropeScaling.originalMaxPositionEmbeddings, 32768);
  ModelConfig v5Plain = parseOrDie(R"({"model_type": "mixtral",
    "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}})");
  EXPECT_DOUBLE_EQ(v5Plain.ropeTheta, 5e5);
  EXPECT_EQ(v5Plain.ropeScaling.kind, RopeScaling::None);

  EXPECT_EQ(parseError(R"({"model_type": "qwen3_moe",
    "rope_scaling": {"type": "yarn"}})"),
            "cfg: field 'rope_scaling.factor' is required for rope type "
            "'yarn'");
  EXPECT_EQ(parseError(R"({"model_type": "qwen3_moe",
    "rope_scaling": {"type": "yarn", "rope_type": "linear", "factor": 2}})"),
            "cfg: field 'rope_scaling.rope_type' = 'linear' and field "
            "'rope_scaling.type' = 'yarn' disagree");
  EXPECT_EQ(parseError(R"({"model_type": "qwen3_moe",
    "rope_parameters": {"full_attention": {"rope_type": "default"}}})"),
            "cfg: field 'rope_parameters' holds per-layer-type parameters "
            "('full_attention'), which are not supported");
  EXPECT_EQ(parseError(R"({"model_type": "qwen3_moe", "rope_scaling": 3})"),
            "cfg: field 'rope_scaling' must be an object, got number 3");
}

TEST(ModelConfigTest, ExpertAliases) {
  // transformers 5 may save Qwen3-MoE's expert count as num_local_experts.
  ModelConfig c =
      parseOrDie(R"({"model_type": "qwen3_moe", "num_local_experts": 16})");
  EXPECT_EQ(c.numExperts, 16);
  EXPECT_EQ(parseError(R"({"model_type": "mixtral", "num_local_experts": 8,
    "num_experts": 4})"),
            "cfg: field 'num_local_experts' = 8 and field 'num_experts' = 4 "
            "disagree");
}

TEST(ModelConfigTest, MoreTypeAndRangeErrors) {
  EXPECT_EQ(parseError(R"({"model_type": 3})"),
            "cfg: field 'model_type' must be a string, got number 3");
  EXPECT_EQ(parseError(R"({"model_type": "mixtral", "hidden_size": 4096.5})"),
            "cfg: field 'hidden_size' must be an integer, got number 4096.5");
  EXPECT_EQ(parseError(R"({"model_type": "mixtral", "hidden_size": null})"),
            "cfg: field 'hidden_size' must be an integer, got null");
  EXPECT_EQ(parseError(R"({"model_type": "mixtral", "rms_norm_eps": 1e999})"),
            "cfg: field 'rms_norm_eps' must be finite");
  EXPECT_EQ(parseError(R"({"model_type": "mixtral", "hidden_size": 1000,
    "num_attention_heads": 3, "num_key_value_heads": 1})"),
            "cfg: field 'hidden_size' = 1000 must be a multiple of "
            "num_attention_heads = 3 when 'head_dim' is not given");
  EXPECT_EQ(parseError(R"({"model_type": "qwen2_moe",
    "use_sliding_window": true})"),
            "cfg: field 'use_sliding_window' = true is not supported");
  EXPECT_EQ(parseError(R"({"model_type": "mixtral",
    "quantization_config": {"quant_method": "fp8",
      "weight_block_size": [128]}})"),
            "cfg: field 'quantization_config.weight_block_size' must be a "
            "list of two integers, got an array");
  EXPECT_EQ(parseError(R"({"model_type": "mixtral",
    "quantization_config": {"quant_method": "fp8",
      "activation_scheme": "static"}})"),
            "cfg: field 'quantization_config.activation_scheme' = 'static' is "
            "not supported (supported: dynamic)");
  EXPECT_EQ(parseError(R"({"model_type": "mixtral",
    "quantization_config": {"bits": 4}})"),
            "cfg: field 'quantization_config.quant_method' is missing");
  // Untrusted text is quoted, clipped and escaped in messages.
  EXPECT_EQ(parseError("{\"model_type\": \"a\\u001b[2Jb'\"}"),
            "cfg: unsupported model_type 'a\\x1b[2Jb\\x27' (supported "
            "architectures: deepseek_v3, mixtral, qwen3_moe, qwen2_moe)");
}

TEST(ModelConfigTest, AutoMapIsIgnored) {
  ModelConfig c = parseOrDie(R"({"model_type": "qwen3_moe",
    "auto_map": {"AutoModelForCausalLM": "evil.Model"},
    "trust_remote_code": true})");
  EXPECT_EQ(c.arch, Architecture::Qwen3Moe);
}

TEST(ModelConfigTest, TruncatedInputNeverCrashes) {
  // Every prefix of a real config either parses or fails cleanly.
  llvm::StringRef full = kDeepseekV3;
  for (size_t n = 0; n < full.size(); ++n) {
    llvm::Expected<ModelConfig> c = parseModelConfig(full.take_front(n), "t");
    if (c)
      continue;
    std::string message = llvm::toString(c.takeError());
    EXPECT_TRUE(llvm::StringRef(message).starts_with("t: ")) << message;
  }
}

TEST(ModelConfigTest, MutatedInputNeverCrashes) {
  // Deterministic byte mutations of a real config: each parses or fails with
  // a message naming the file; parsed ones give a bounded tensor list.
  std::string original = kTinyDeepseekFP8;
  uint32_t state = 12345;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  const char alphabet[] = "0123456789-.eE\"{}[],:ntfx \\";
  for (int i = 0; i < 3000; ++i) {
    std::string text = original;
    for (int edits = 1 + next() % 3; edits > 0; --edits)
      text[next() % text.size()] = alphabet[next() % (sizeof(alphabet) - 1)];
    llvm::Expected<ModelConfig> c = parseModelConfig(text, "m");
    if (!c) {
      std::string message = llvm::toString(c.takeError());
      EXPECT_TRUE(llvm::StringRef(message).starts_with("m: ")) << message;
      continue;
    }
    EXPECT_LE((c->numLayers + c->numNextnPredictLayers) * c->numExperts,
              kMaxExpertInstances);
    EXPECT_FALSE(expectedTensors(*c).empty());
  }
}

TEST(ModelConfigTest, ExpertInstancesAreBounded) {
  EXPECT_EQ(parseError(R"({"model_type": "qwen3_moe",
    "num_hidden_layers": 4096, "num_experts": 65536})"),
            "cfg: field 'num_hidden_layers' = 4096 times num_experts = 65536 "
            "must be <= 65536");
}

/// A 0.7 KB DeepSeek config whose 16 MTP layers each hold 16384 experts.
constexpr const char *kHugeMtpConfig = R"json({
  "model_type": "deepseek_v3", "vocab_size": 128, "hidden_size": 64,
  "intermediate_size": 96, "moe_intermediate_size": 32,
  "num_hidden_layers": 4, "num_nextn_predict_layers": 16,
  "num_attention_heads": 2, "num_key_value_heads": 2,
  "n_routed_experts": 16384, "n_shared_experts": 1, "num_experts_per_tok": 2,
  "n_group": 1, "topk_group": 1, "first_k_dense_replace": 0,
  "q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16,
  "qk_rope_head_dim": 16, "v_head_dim": 16,
  "quantization_config": {"quant_method": "fp8",
    "weight_block_size": [128, 128]}
})json";

TEST(ModelConfigTest, MtpLayersCountTowardTheExpertBound) {
  // 4 main layers x 16384 experts is at the bound, but the 16 MTP layers
  // are decoder layers with experts too: 20 x 16384 tensors' worth of
  // experts (2 million tensors, seconds and gigabytes) is refused by the
  // parse, before any tensor list is built.
  EXPECT_EQ(parseError(kHugeMtpConfig),
            "cfg: field 'num_hidden_layers' = 4 plus num_nextn_predict_layers "
            "= 16 times n_routed_experts = 16384 must be <= 65536");
  // At the bound with MTP counted: 3 + 1 layers of 16384 experts.
  std::string atBound = kHugeMtpConfig;
  for (auto [from, to] :
       {std::pair<std::string, std::string>{"\"num_hidden_layers\": 4",
                                            "\"num_hidden_layers\": 3"},
        {"\"num_nextn_predict_layers\": 16",
         "\"num_nextn_predict_layers\": 1"}})
    atBound.replace(atBound.find(from), from.size(), to);
  ModelConfig c = parseOrDie(atBound);
  EXPECT_EQ((c.numLayers + c.numNextnPredictLayers) * c.numExperts,
            kMaxExpertInstances);
  // DeepSeek's default is one MTP layer, which counts as well.
  EXPECT_EQ(parseError(R"({"model_type": "deepseek_v3",
    "num_hidden_layers": 4, "n_routed_experts": 16384, "n_group": 1})"),
            "cfg: field 'num_hidden_layers' = 4 plus num_nextn_predict_layers "
            "= 1 times n_routed_experts = 16384 must be <= 65536");
}

TEST(ModelConfigTest, ModulesToNotConvertWorkIsBounded) {
  // Every quantizable weight is matched against every name: names times
  // weights is bounded. Repeats and empty names are dropped first.
  std::string names;
  for (int i = 0; i < 400; ++i)
    names += (i ? ", " : "") + std::string("\"m") + std::to_string(i) + "\"";
  std::string config = R"({"model_type": "mixtral", "num_hidden_layers": 32,
    "num_local_experts": 1024, "quantization_config": {"quant_method": "fp8",
    "modules_to_not_convert": [)" +
                       names + "]}}";
  EXPECT_EQ(parseError(config),
            "cfg: field 'quantization_config.modules_to_not_convert' holds "
            "400 distinct names; times the up to 98816 quantizable weights "
            "they are matched against, that is more than 33554432 substring "
            "checks");
  config = R"({"model_type": "mixtral", "quantization_config": {
    "quant_method": "fp8", "modules_to_not_convert": ["lm_head", "", "gate",
    "lm_head", "gate", ""]}})";
  ModelConfig c = parseOrDie(config);
  ASSERT_TRUE(c.quantization);
  EXPECT_EQ(c.quantization->modulesToNotConvert,
            (std::vector<std::string>{"gate", "lm_head"}));
}

TEST(ModelConfigTest, MlpOnlyLayersRepeatsAreMerged) {
  // The list is looked up for every layer: repeats are merged so that its
  // length is at most the layer count.
  std::string repeats;
  for (int i = 0; i < 100000; ++i)
    repeats += (i ? ", " : "") + std::to_string(i % 3);
  ModelConfig c = parseOrDie(R"({"model_type": "qwen3_moe",
    "num_hidden_layers": 4, "mlp_only_layers": [)" +
                             repeats + "]}");
  EXPECT_EQ(c.mlpOnlyLayers, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_FALSE(c.isMoELayer(2));
  EXPECT_TRUE(c.isMoELayer(3));
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

class TempDir {
public:
  TempDir() {
    if (std::error_code ec =
            llvm::sys::fs::createUniqueDirectory("moec-config", path))
      ADD_FAILURE() << ec.message();
  }
  ~TempDir() { llvm::sys::fs::remove_directories(path); }
  std::string file(llvm::StringRef name) const {
    llvm::SmallString<256> p(path);
    llvm::sys::path::append(p, name);
    return std::string(p);
  }
  std::string dir() const { return std::string(path); }

private:
  llvm::SmallString<256> path;
};

void writeFile(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  ASSERT_FALSE(ec) << ec.message();
  os << text;
}

TEST(ModelConfigTest, LoadFromDirectory) {
  TempDir tmp;
  writeFile(tmp.file("config.json"), kMixtral8x7B);
  llvm::Expected<ModelConfig> c = loadModelConfig(tmp.dir());
  ASSERT_TRUE(static_cast<bool>(c)) << llvm::toString(c.takeError());
  EXPECT_EQ(c->arch, Architecture::Mixtral);
  EXPECT_EQ(c->path, tmp.file("config.json"));
}

TEST(ModelConfigTest, LoadMissingFile) {
  TempDir tmp;
  llvm::Expected<ModelConfig> c = loadModelConfig(tmp.dir());
  ASSERT_FALSE(static_cast<bool>(c));
  EXPECT_EQ(llvm::toString(c.takeError()), tmp.file("config.json") +
                                               ": cannot open: No such file or "
                                               "directory");
}

TEST(ModelConfigTest, LoadDirectoryNamedConfigJson) {
  TempDir tmp;
  ASSERT_FALSE(llvm::sys::fs::create_directory(tmp.file("config.json")));
  llvm::Expected<ModelConfig> c = loadModelConfig(tmp.dir());
  ASSERT_FALSE(static_cast<bool>(c));
  EXPECT_EQ(llvm::toString(c.takeError()),
            tmp.file("config.json") + ": is a folder, not a regular file");
}

TEST(ModelConfigTest, LoadFifoOrDeviceNamedConfigJson) {
  // Refused on the opened descriptor, without blocking on the FIFO (no
  // writer ever comes) or reading the device.
  TempDir tmp;
  std::string path = tmp.file("config.json");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  llvm::Expected<ModelConfig> c = loadModelConfig(tmp.dir());
  ASSERT_FALSE(static_cast<bool>(c));
  EXPECT_EQ(llvm::toString(c.takeError()),
            path + ": is a FIFO, not a regular file");
  // (llvm::sys::fs::remove refuses to remove a FIFO.)
  ASSERT_EQ(::unlink(path.c_str()), 0) << std::strerror(errno);
  if (::access("/dev/zero", R_OK) != 0)
    GTEST_SKIP() << "no readable /dev/zero";
  // A symbolic link is followed (as in the Hugging Face cache).
  ASSERT_FALSE(llvm::sys::fs::create_link("/dev/zero", path));
  c = loadModelConfig(tmp.dir());
  ASSERT_FALSE(static_cast<bool>(c));
  EXPECT_EQ(llvm::toString(c.takeError()),
            path + ": is a character device, not a regular file");
}

TEST(ModelConfigTest, FileTooLarge) {
  TempDir tmp;
  std::string path = tmp.file("config.json");
  writeFile(path, kMixtral8x7B);
  // A sparse file just over the limit: rejected before it is read.
  {
    int fd;
    ASSERT_FALSE(llvm::sys::fs::openFileForWrite(
        path, fd, llvm::sys::fs::CD_OpenExisting));
    ASSERT_FALSE(llvm::sys::fs::resize_file(fd, kMaxConfigBytes + 1));
    ASSERT_FALSE(llvm::sys::fs::closeFile(fd));
  }
  llvm::Expected<ModelConfig> c = loadModelConfig(tmp.dir());
  ASSERT_FALSE(static_cast<bool>(c));
  EXPECT_EQ(llvm::toString(c.takeError()),
            path + ": file is 16777217 bytes, larger than the 16777216-byte "
                   "limit for config.json");
  // The same limit holds for text handed over directly.
  std::string big(kMaxConfigBytes + 1, ' ');
  EXPECT_EQ(parseError(big, "big.json"),
            "big.json: file is 16777217 bytes, larger than the 16777216-byte "
            "limit for config.json");
}

//===----------------------------------------------------------------------===//
// Malformed corpus
//===----------------------------------------------------------------------===//

struct CorpusCase {
  const char *file;
  /// The whole message after "<path>: ".
  const char *message;
};

constexpr CorpusCase kCorpus[] = {
    {"not-json.json", nullptr}, // the JSON parser's own words; checked below
    {"array-top-level.json",
     "top-level JSON value must be an object, got an array"},
    {"missing-model-type.json",
     "missing field 'model_type' (supported architectures: deepseek_v3, "
     "mixtral, qwen3_moe, qwen2_moe)"},
    {"unsupported-model-type.json",
     "unsupported model_type 'llama' (supported architectures: deepseek_v3, "
     "mixtral, qwen3_moe, qwen2_moe)"},
    {"wrong-type-hidden-size.json",
     "field 'hidden_size' must be an integer, got string '64'"},
    {"wrong-type-norm-topk-prob.json",
     "field 'norm_topk_prob' must be a boolean, got string 'yes'"},
    {"topk-exceeds-experts.json",
     "field 'num_experts_per_tok' = 9 must be <= n_routed_experts = 8"},
    {"n-group-not-dividing-experts.json",
     "field 'n_group' = 3 must divide n_routed_experts = 8"},
    {"topk-group-exceeds-n-group.json",
     "field 'topk_group' = 3 must be <= n_group = 2"},
    {"topk-exceeds-group-capacity.json",
     "field 'num_experts_per_tok' = 5 must be <= topk_group * experts per "
     "group = 1 * 4 = 4"},
    {"heads-not-divisible-by-kv-heads.json",
     "field 'num_attention_heads' = 4 must be a multiple of "
     "num_key_value_heads = 3"},
    {"zero-hidden-size.json", "field 'hidden_size' = 0 must be >= 1"},
    {"negative-intermediate-size.json",
     "field 'intermediate_size' = -5632 must be >= 1"},
    {"huge-layer-count.json",
     "field 'num_hidden_layers' = 100000 must be <= 4096"},
    {"first-k-dense-exceeds-layers.json",
     "field 'first_k_dense_replace' = 5 must be <= num_hidden_layers = 4"},
    {"zero-rms-norm-eps.json", "field 'rms_norm_eps' = 0 must be > 0"},
    {"negative-rope-theta.json", "field 'rope_theta' = -10000 must be > 0"},
    {"unsupported-rope-type.json",
     "field 'rope_scaling.rope_type' = 'dynamic' is not supported "
     "(supported: default, linear, yarn)"},
    {"yarn-factor-below-one.json",
     "field 'rope_scaling.factor' = 0.5 must be >= 1"},
    {"unsupported-quant-method.json",
     "field 'quantization_config.quant_method' = 'gptq' is not supported "
     "(supported: fp8)"},
    {"unsupported-fp8-format.json",
     "field 'quantization_config.fmt' = 'e5m2' is not supported "
     "(supported: e4m3)"},
    {"mlp-only-layer-out-of-range.json",
     "field 'mlp_only_layers' holds layer 7, outside [0, num_hidden_layers "
     "= 2)"},
    {"unsupported-hidden-act.json",
     "field 'hidden_act' = 'gelu' is not supported (supported: silu)"},
    {"deep-nesting.json", "JSON nests deeper than 64 levels"},
};

std::string corpusDir() {
  const char *data = std::getenv("MOEC_TEST_DATA");
  if (!data)
    return "";
  llvm::SmallString<256> dir(data);
  llvm::sys::path::append(dir, "malformed", "config");
  return std::string(dir);
}

TEST(ModelConfigCorpusTest, EachFileFailsWithItsMessage) {
  std::string dir = corpusDir();
  ASSERT_FALSE(dir.empty()) << "MOEC_TEST_DATA is not set";
  for (const CorpusCase &entry : kCorpus) {
    SCOPED_TRACE(entry.file);
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, entry.file);
    llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
        llvm::MemoryBuffer::getFile(path);
    ASSERT_TRUE(static_cast<bool>(buffer)) << buffer.getError().message();
    std::string message = parseError((*buffer)->getBuffer(), path);
    std::string prefix = std::string(path) + ": ";
    if (entry.message) {
      EXPECT_EQ(message, prefix + entry.message);
    } else {
      EXPECT_TRUE(
          llvm::StringRef(message).starts_with(prefix + "invalid JSON: "))
          << message;
    }
  }
}

TEST(ModelConfigCorpusTest, EveryFileHasACase) {
  std::string dir = corpusDir();
  ASSERT_FALSE(dir.empty()) << "MOEC_TEST_DATA is not set";
  std::set<std::string> known;
  for (const CorpusCase &entry : kCorpus)
    known.insert(entry.file);
  std::error_code ec;
  size_t count = 0;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec)) {
    llvm::StringRef name = llvm::sys::path::filename(it->path());
    if (!name.ends_with(".json"))
      continue;
    ++count;
    EXPECT_TRUE(known.count(name.str()))
        << "no expected message for " << name.str();
  }
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(count, known.size());
}

} // namespace
