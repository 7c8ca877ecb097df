//===- OnnxDialect.td - The onnx import dialect ------------*- tablegen -*-===//
//
// A small dialect that holds an ONNX graph exactly as the protobuf says: one
// generic `onnx.node` per node, `onnx.initializer` for initializers and
// Constant nodes, `onnx.none` for omitted optional inputs. The ONNX importer's
// legalisation patterns rewrite it into the `moe` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_ONNXDIALECT_TD
#define MOEC_IMPORTERS_ONNX_ONNXDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Onnx_Dialect : Dialect {
  let name = "onnx";
  let cppNamespace = "::mlir::moec::onnx_ir";
  let summary = "ONNX graphs as read, before legalisation to `moe`";
  let description = [{
    The first layer of the ONNX importer (STYLE.md): a mechanical, lossless
    image of the protobuf. Every node becomes an `onnx.node` that carries its
    domain, op type, the opset version its domain resolves to in the model's
    `opset_import`, its name and its attributes. Initializers become
    `onnx.initializer` ops that name the tensor and its external-data
    location; only small ones (at most 1 KiB) carry their values.
  }];
  let useDefaultTypePrinterParser = 1;
}

class Onnx_Op<string mnemonic, list<Trait> traits = []>
    : Op<Onnx_Dialect, mnemonic, !listconcat(traits, [Pure])>;

//===----------------------------------------------------------------------===//
// !onnx.opaque
//===----------------------------------------------------------------------===//

def Onnx_OpaqueType : TypeDef<Onnx_Dialect, "Opaque"> {
  let mnemonic = "opaque";
  let summary = "a value whose ONNX type has no builtin MLIR equivalent";
  let description = [{
    Sequences, maps, optionals, string tensors and values without a type in
    the model's `value_info` (`"unknown"`). `desc` spells the ONNX type.

    ```mlir
    !onnx.opaque<"seq(tensor(float))">
    ```
  }];
  let parameters = (ins StringRefParameter<"the ONNX type">:$desc);
  let assemblyFormat = "`<` $desc `>`";
}

//===----------------------------------------------------------------------===//
// onnx.node
//===----------------------------------------------------------------------===//

def Onnx_NodeOp : Onnx_Op<"node"> {
  let summary = "one ONNX node, uninterpreted";
  let description = [{
    `op_type` and `domain` (empty for the default `ai.onnx` domain) name the
    operator; `opset` is the version the model imports for that domain, which
    selects the operator's signature. `name` is the node's name and
    `node_attributes` its attributes: INT as i64, FLOAT as f32, STRING as a string,
    INTS/FLOATS as dense arrays, TENSOR as dense elements, GRAPH as a summary
    string. An omitted optional input is an `onnx.none` operand; an omitted
    optional output is a result of type `none`.

    ```mlir
    %v, %i = onnx.node "TopK"(%scores, %k) {opset = 21 : i64, name = "topk",
        node_attributes = {axis = -1 : i64}}
        : (tensor<?x8xf32>, tensor<1xi64>) -> (tensor<?x2xf32>, tensor<?x2xi64>)
    ```
  }];
  let arguments = (ins Variadic<AnyType>:$inputs, StrAttr:$op_type,
                       DefaultValuedStrAttr<StrAttr, "">:$domain,
                       I64Attr:$opset,
                       DefaultValuedStrAttr<StrAttr, "">:$name,
                       DefaultValuedAttr<DictionaryAttr, "{}">:$node_attributes);
  let results = (outs Variadic<AnyType>:$outputs);
  let assemblyFormat = [{
    $op_type `(` $inputs `)` attr-dict `:` functional-type($inputs, results)
  }];
  let extraClassDeclaration = [{
    /// The opset version, signed (the `opset` getter is unsigned).
    int64_t getVersion() { return getOpsetAttr().getInt(); }
    /// The domain with `ai.onnx` spelled as the empty string.
    ::llvm::StringRef getCanonicalDomain();
    /// The input at `index`, or a null value when it is absent or omitted.
    ::mlir::Value getInputOrNull(unsigned index);
    /// The attribute `name` of the ONNX node, or null.
    ::mlir::Attribute getNodeAttr(::llvm::StringRef name);
    /// `(domain, op type, opset, name)` as the importer's messages print it.
    std::string describe();
  }];
}

//===----------------------------------------------------------------------===//
// onnx.initializer
//===----------------------------------------------------------------------===//

def Onnx_InitializerOp : Onnx_Op<"initializer"> {
  let summary = "a graph initializer or Constant node, by name";
  let description = [{
    Names a tensor of the model. `value` holds the data of small tensors
    (at most 1 KiB) only; larger data stays where it is: in the model file
    (no `location`) or in an external-data file `location` at byte `offset`
    with `length` bytes, already checked to lie under the model's folder.
    `constant` marks a tensor that came from a Constant node's output.

    ```mlir
    %w = onnx.initializer "mlp.gate.weight" : tensor<32x4xf32>
    %s = onnx.initializer "shape" {value = dense<[0, 4, 8]> : tensor<3xi64>}
        : tensor<3xi64>
    %e = onnx.initializer "big" {location = "weights.bin", offset = 0 : i64,
                                 length = 4096 : i64} : tensor<32x32xf32>
    ```
  }];
  let arguments = (ins StrAttr:$tensor_name,
                       OptionalAttr<ElementsAttr>:$value,
                       OptionalAttr<StrAttr>:$location,
                       OptionalAttr<I64Attr>:$offset,
                       OptionalAttr<I64Attr>:$length,
                       OptionalAttr<StrAttr>:$checksum,
                       UnitAttr:$constant);
  let results = (outs AnyType:$result);
  let assemblyFormat = "$tensor_name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// onnx.none
//===----------------------------------------------------------------------===//

def Onnx_NoneOp : Onnx_Op<"none"> {
  let summary = "an omitted optional input";
  let description = [{
    ```mlir
    %none = onnx.none : none
    ```
  }];
  let results = (outs NoneType:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
}

#endif // MOEC_IMPORTERS_ONNX_ONNXDIALECT_TD
