//===- MoEDialect.td - The moe dialect definition ----------*- tablegen -*-===//
//
// The `moe` dialect: graph-level ops of Mixture-of-Experts transformers with
// value semantics. Tensors carry a symbolic token dimension (`?`) for the
// flattened batch x sequence axis; every other dimension is static.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_TD
#define MOE_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Graph-level ops of Mixture-of-Experts language models";
  let description = [{
    The `moe` dialect is the graph-level IR of moec. Importers (Hugging Face
    safetensors + config.json, ONNX) produce it; passes decompose, fuse and
    lower it to FP8 with DeepSeek-style block scaling; code generators turn
    it into CUDA C++ kernels or an LLVM shared object.

    All ops have value semantics and no side effects, except
    `moe.paged_attention` and `moe.paged_mla_attention`, which write the
    model's KV cache (function arguments marked `moe.kv_cache`) in place. Activations are ranked
    tensors whose leading dimension is the dynamic token count `?`; weights
    enter the graph only through `moe.weight`, which names checkpoint tensors
    and never inlines their data.

    A planned function carries its plan as dialect attributes, which the
    dialect verifies: `moe.plan` (`#moe.plan`) on the function, `moe.step`
    (`#moe.step`) and `moe.buffers` (`#moe.buffers`) on steps, `moe.buffers`
    on reshape aliases and arguments, the unit `moe.constant` on folded
    constants, and the unit `moe.kv_cache` on the arguments that are the
    model's KV cache state (docs/planning.md, docs/generation.md).
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = [];
  // The plan's attributes (MoEPlan.td) are verified in MoEPlan.cpp.
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let extraClassDeclaration = [{
    /// `#moe.plan` on a planned function.
    static constexpr ::llvm::StringLiteral getPlanAttrName() { return "moe.plan"; }
    /// `#moe.step` on a step.
    static constexpr ::llvm::StringLiteral getStepAttrName() { return "moe.step"; }
    /// `#moe.buffers` on a step, a reshape alias or a function argument.
    static constexpr ::llvm::StringLiteral getBuffersAttrName() { return "moe.buffers"; }
    /// Unit attribute on an op the artifact writer folds into the weights.
    static constexpr ::llvm::StringLiteral getConstantAttrName() { return "moe.constant"; }
    /// Unit attribute on a function argument that is a KV cache: the model's
    /// state, `[pages, page tokens, heads, dim]`, owned by the runtime.
    static constexpr ::llvm::StringLiteral getKvCacheAttrName() { return "moe.kv_cache"; }
  }];
}

/// Every tensor an op touches has static dimensions except, possibly, the
/// leading (token) one.
def MoE_StaticFeatureDims : NativeOpTrait<"StaticFeatureDims"> {
  let cppNamespace = "::mlir::moe::OpTrait";
}

/// Base class of the `moe` ops without side effects (all but the stateful
/// ones, `MoE_StatefulOp` in MoEOps.td); only
/// the token dimension of their tensors may be dynamic.
class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic,
         !listconcat(traits, [Pure, MoE_StaticFeatureDims])>;

/// Base class of every `moe` attribute.
class MoE_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<MoE_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // MOE_DIALECT_TD
