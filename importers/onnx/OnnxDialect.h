//===- OnnxDialect.h - The onnx import dialect ------------------*- C++ -*-===//
//
// Declares the `onnx` dialect of the ONNX importer: `onnx.node`,
// `onnx.initializer`, `onnx.none` and `!onnx.opaque`. It exists only between
// reading a model and legalising it into the `moe` dialect.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_ONNXDIALECT_H
#define MOEC_IMPORTERS_ONNX_ONNXDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "importers/onnx/OnnxDialect.h.inc"

#define GET_TYPEDEF_CLASSES
#include "importers/onnx/OnnxTypes.h.inc"

#define GET_OP_CLASSES
#include "importers/onnx/OnnxOps.h.inc"

#endif // MOEC_IMPORTERS_ONNX_ONNXDIALECT_H
