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

    All ops have value semantics and no side effects. Activations are ranked
    tensors whose leading dimension is the dynamic token count `?`; weights
    enter the graph only through `moe.weight`, which names checkpoint tensors
    and never inlines their data.
  }];
  let useDefaultAttributePrinterParser = 1;
  let dependentDialects = [];
}

/// Every tensor an op touches has static dimensions except, possibly, the
/// leading (token) one.
def MoE_StaticFeatureDims : NativeOpTrait<"StaticFeatureDims"> {
  let cppNamespace = "::mlir::moe::OpTrait";
}

/// Base class of every `moe` op. All ops are free of side effects and only
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
