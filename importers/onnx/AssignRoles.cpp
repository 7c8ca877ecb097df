//===- AssignRoles.cpp - Weight roles of a legalised ONNX graph -*- C++ -*-===//
//
// Gives every `moe.weight` of a legalised ONNX graph its `#moe.role` from the
// structure the raise patterns recognised, never from initializer names: the
// table of `moe.embed`, the q/k/v projections traced back from each
// `moe.attention` and the o projection that reads its result, the router and
// experts of each `moe.moe`, the gate/up/down GEMMs around each
// `moe.silu_mul`, the GEMM ranked by a `moe.topk` router left as generic
// ops, the RMSNorm weights, and the lm_head (the returned GEMM to the
// vocabulary). Decoder layers are numbered by
// the order of the attention blocks in the graph (docs/importers-onnx.md).
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxPatterns.h"
#include "passes/Roles.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SetVector.h"

using namespace mlir;
using namespace mlir::moec;

namespace {

/// Assigns roles over one function body, in op order.
class RoleAssigner {
public:
  void run(func::FuncOp func);

private:
  /// Gives the weights `value` is computed from `role` and `layer`, unless an
  /// earlier use gave them one (a weight read twice keeps its first role).
  void assign(Value value, Role role, std::optional<int64_t> layer) {
    if (!value)
      return;
    for (moe::WeightOp weight : getWeightSources(value))
      if (!weight.getRoleAttr())
        setWeightRole(weight, role, layer);
  }
  /// A GEMM's weight and bias.
  void assignGemm(moe::MatmulOp gemm, Role role, std::optional<int64_t> layer) {
    assign(gemm.getW(), role, layer);
    assign(gemm.getBias(), role, layer);
  }
  void assignAttention(moe::AttentionOp attention, int64_t layer);
  void assignProjections(Value operand, Role direct, Role outer, Role inner,
                         int64_t layer);
  void assignMoE(moe::MoEOp moeOp, std::optional<int64_t> layer);
  void assignDenseMlp(moe::SiluMulOp siluMul, std::optional<int64_t> layer);
  /// The layer of the next block gives the RMSNorms before it theirs.
  void startBlock(int64_t layer) {
    for (Value weight : pendingNorms)
      assign(weight, Role::norm, layer);
    pendingNorms.clear();
  }

  llvm::SmallVector<Value> pendingNorms;
};

/// Adds to `gemms` the GEMMs that compute `value` through the layout and
/// elementwise ops of an attention block (reshape, RoPE, slice, concat,
/// expand, transpose, RMSNorm).
void findGemms(Value value, llvm::SetVector<moe::MatmulOp> &gemms) {
  llvm::SmallVector<Value> worklist = {value};
  llvm::DenseSet<Value> seen;
  while (!worklist.empty()) {
    Value v = worklist.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    Operation *def = v.getDefiningOp();
    if (auto gemm = dyn_cast_or_null<moe::MatmulOp>(def)) {
      gemms.insert(gemm);
    } else if (isa_and_nonnull<moe::RmsNormOp, moe::ReshapeOp, moe::RopeOp,
                               moe::SliceOp, moe::ExpandOp, moe::TransposeOp>(
                   def)) {
      worklist.push_back(def->getOperand(0));
    } else if (isa_and_nonnull<moe::ConcatOp>(def)) {
      llvm::append_range(worklist, def->getOperands());
    }
  }
}

void RoleAssigner::assignProjections(Value operand, Role direct, Role outer,
                                     Role inner, int64_t layer) {
  // The GEMMs nearest to the operand, then those that feed them (MLA's
  // low-rank q_a / kv_a under q_b / kv_b).
  llvm::SetVector<moe::MatmulOp> nearest, deeper;
  findGemms(operand, nearest);
  for (moe::MatmulOp gemm : nearest)
    findGemms(gemm.getX(), deeper);
  for (moe::MatmulOp gemm : nearest)
    if (!deeper.contains(gemm))
      assignGemm(gemm, deeper.empty() ? direct : outer, layer);
  for (moe::MatmulOp gemm : deeper)
    assignGemm(gemm, inner, layer);
}

void RoleAssigner::assignAttention(moe::AttentionOp attention, int64_t layer) {
  assignProjections(attention.getQ(), Role::attn_q, Role::attn_q_b,
                    Role::attn_q_a, layer);
  assignProjections(attention.getK(), Role::attn_k, Role::attn_kv_b,
                    Role::attn_kv_a, layer);
  assignProjections(attention.getV(), Role::attn_v, Role::attn_kv_b,
                    Role::attn_kv_a, layer);
  startBlock(layer);
  // The o projection reads the heads, reshaped back to [tokens, hidden].
  llvm::SmallVector<Value> worklist = {attention.getResult()};
  while (!worklist.empty()) {
    Value v = worklist.pop_back_val();
    for (OpOperand &use : v.getUses()) {
      if (auto gemm = dyn_cast<moe::MatmulOp>(use.getOwner());
          gemm && use.get() == gemm.getX())
        assignGemm(gemm, Role::attn_o, layer);
      else if (isa<moe::ReshapeOp, moe::TransposeOp>(use.getOwner()))
        worklist.push_back(use.getOwner()->getResult(0));
    }
  }
}

void RoleAssigner::assignMoE(moe::MoEOp moeOp, std::optional<int64_t> layer) {
  assign(moeOp.getGate(), Role::router, layer);
  assign(moeOp.getBias(), Role::router, layer);
  assign(moeOp.getGateProj(), Role::expert_gate, layer);
  assign(moeOp.getUpProj(), Role::expert_up, layer);
  assign(moeOp.getDownProj(), Role::expert_down, layer);
  assign(moeOp.getSharedGateProj(), Role::shared_gate, layer);
  assign(moeOp.getSharedUpProj(), Role::shared_up, layer);
  assign(moeOp.getSharedDownProj(), Role::shared_down, layer);
  assign(moeOp.getSharedExpertGate(), Role::shared_expert_gate, layer);
}

void RoleAssigner::assignDenseMlp(moe::SiluMulOp siluMul,
                                  std::optional<int64_t> layer) {
  if (auto gate = siluMul.getGate().getDefiningOp<moe::MatmulOp>())
    assignGemm(gate, Role::mlp_gate, layer);
  if (auto up = siluMul.getUp().getDefiningOp<moe::MatmulOp>())
    assignGemm(up, Role::mlp_up, layer);
  for (OpOperand &use : siluMul.getResult().getUses())
    if (auto down = dyn_cast<moe::MatmulOp>(use.getOwner());
        down && use.get() == down.getX())
      assignGemm(down, Role::mlp_down, layer);
}

/// The GEMM whose scores a router of generic ops ranks with `moe.topk`,
/// through softmax, sigmoid and bias additions; null if there is none.
moe::MatmulOp findRouterGemm(moe::TopKOp topk) {
  Value v = topk->getOperand(0);
  while (Operation *def = v.getDefiningOp()) {
    if (auto gemm = dyn_cast<moe::MatmulOp>(def))
      return gemm;
    if (!isa<moe::SoftmaxOp, moe::UnaryOp, moe::AddOp, moe::BinaryOp>(def))
      return {};
    v = def->getOperand(0);
  }
  return {};
}

void RoleAssigner::run(func::FuncOp func) {
  // The lm_head first: a GEMM to the vocabulary (as many outputs as the
  // embedding table has rows) whose result the graph returns.
  std::optional<int64_t> vocab;
  func.walk([&](moe::EmbedOp embed) {
    vocab = cast<RankedTensorType>(embed.getTable().getType()).getDimSize(0);
  });
  auto ret = cast<func::ReturnOp>(func.getBody().back().getTerminator());
  for (Value result : ret.getOperands())
    if (auto gemm = result.getDefiningOp<moe::MatmulOp>();
        gemm && vocab &&
        cast<RankedTensorType>(gemm.getType()).getShape().back() == *vocab)
      assignGemm(gemm, Role::lm_head, std::nullopt);

  // Layer i is the i-th attention block and the MLP after it; a graph of MLP
  // blocks alone numbers those.
  int64_t attentions = 0, mlps = 0;
  auto mlpLayer = [&] { return attentions > 0 ? attentions - 1 : mlps++; };
  func.walk([&](Operation *op) {
    if (auto embed = dyn_cast<moe::EmbedOp>(op)) {
      assign(embed.getTable(), Role::embedding, std::nullopt);
    } else if (auto attention = dyn_cast<moe::AttentionOp>(op)) {
      assignAttention(attention, attentions++);
    } else if (auto moeOp = dyn_cast<moe::MoEOp>(op)) {
      int64_t layer = mlpLayer();
      startBlock(layer);
      assignMoE(moeOp, layer);
    } else if (auto siluMul = dyn_cast<moe::SiluMulOp>(op)) {
      int64_t layer = mlpLayer();
      startBlock(layer);
      assignDenseMlp(siluMul, layer);
    } else if (auto norm = dyn_cast<moe::RmsNormOp>(op)) {
      pendingNorms.push_back(norm.getWeight());
    } else if (auto topk = dyn_cast<moe::TopKOp>(op)) {
      // A router left as generic ops (softmax or sigmoid, then top-k).
      if (moe::MatmulOp gemm = findRouterGemm(topk))
        assignGemm(gemm, Role::router,
                   attentions > 0 ? std::optional<int64_t>(attentions - 1)
                                  : std::nullopt);
    }
  });
  // Norms after the last block (the final norm) are outside the layers.
  for (Value weight : pendingNorms)
    assign(weight, Role::norm, std::nullopt);
  pendingNorms.clear();
}

} // namespace

void mlir::moec::assignOnnxWeightRoles(ModuleOp module) {
  module.walk([](func::FuncOp func) {
    if (!func.isExternal())
      RoleAssigner().run(func);
  });
}
