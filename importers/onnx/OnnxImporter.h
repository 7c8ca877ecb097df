//===- OnnxImporter.h - ONNX models into the moe dialect --------*- C++ -*-===//
//
// The entry points of the ONNX importer: read a model file (first layer,
// `onnx` dialect) and legalise it into the `moe` dialect (second layer).
// `moec model.onnx` calls importOnnxFile.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_ONNXIMPORTER_H
#define MOEC_IMPORTERS_ONNX_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/StringRef.h"

namespace mlir::moec {

/// Reads the ONNX model at `path` into the `onnx` dialect without
/// interpreting any operator. Errors are emitted on `context`.
FailureOr<OwningOpRef<ModuleOp>> readOnnxFile(llvm::StringRef path,
                                              MLIRContext *context);

/// Reads the ONNX model at `path` and legalises it into the `moe` dialect:
/// the `import` phase of moec for `.onnx` inputs. Errors (a file that fails
/// validation, or one error listing every node with no `moe` lowering) are
/// emitted on `context`.
FailureOr<OwningOpRef<ModuleOp>> importOnnxFile(llvm::StringRef path,
                                                MLIRContext *context);

/// Adds the `onnx` dialect (and what its IR uses) to `registry`.
void registerOnnxDialect(DialectRegistry &registry);

} // namespace mlir::moec

#endif // MOEC_IMPORTERS_ONNX_ONNXIMPORTER_H
