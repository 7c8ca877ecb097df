//===- OnnxImporter.cpp - ONNX models into the moe dialect ------*- C++ -*-===//
//
// Ties the two layers together: OnnxModel reads and validates the file,
// legalizeOnnxToMoE gives the nodes their meaning. Reader errors (an
// llvm::Error) become one diagnostic here, at the IR boundary.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxImporter.h"
#include "importers/onnx/OnnxDialect.h"
#include "importers/onnx/OnnxPatterns.h"
#include "importers/onnx/OnnxReader.h"

#include "dialects/MoEDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"

namespace mlir::moec {
#define GEN_PASS_DECL
#define GEN_PASS_REGISTRATION
#include "importers/onnx/OnnxPasses.h.inc"
} // namespace mlir::moec

using namespace mlir;
using namespace mlir::moec;

void mlir::moec::registerOnnxDialect(DialectRegistry &registry) {
  registry.insert<onnx_ir::OnnxDialect, moe::MoEDialect, func::FuncDialect>();
}

void mlir::moec::registerOnnxPasses() { registerOnnxImportPasses(); }

/// Loads and reads the model; the error, if any, becomes a diagnostic.
static FailureOr<std::pair<std::unique_ptr<OnnxModel>, OwningOpRef<ModuleOp>>>
load(StringRef path, MLIRContext *context) {
  context
      ->loadDialect<onnx_ir::OnnxDialect, moe::MoEDialect, func::FuncDialect>();
  Location loc = FileLineColLoc::get(context, path, 0, 0);
  auto model = OnnxModel::load(path);
  if (!model) {
    emitError(loc) << llvm::toString(model.takeError());
    return failure();
  }
  auto module = (*model)->toIR(context);
  if (!module) {
    emitError(loc) << llvm::toString(module.takeError());
    return failure();
  }
  return std::make_pair(std::move(*model), std::move(*module));
}

FailureOr<OwningOpRef<ModuleOp>>
mlir::moec::readOnnxFile(StringRef path, MLIRContext *context) {
  auto loaded = load(path, context);
  if (failed(loaded) || failed(verify(*loaded->second)))
    return failure();
  return std::move(loaded->second);
}

FailureOr<OwningOpRef<ModuleOp>>
mlir::moec::importOnnxFile(StringRef path, MLIRContext *context) {
  auto loaded = load(path, context);
  if (failed(loaded))
    return failure();
  OnnxModel &model = *loaded->first;
  OwningOpRef<ModuleOp> module = std::move(loaded->second);
  // Patterns that need the values of a large initializer (RoPE tables) read
  // them from the model, up to 64 MiB.
  OnnxValueReader reader = [&](onnx_ir::InitializerOp init) {
    auto type = dyn_cast<RankedTensorType>(init.getType());
    if (!type || !isa<FloatType>(type.getElementType()) ||
        type.getNumElements() > (int64_t(64) << 20) / 4)
      return DenseElementsAttr();
    auto bytes = model.readTensorData(init.getTensorName());
    if (!bytes) {
      llvm::consumeError(bytes.takeError());
      return DenseElementsAttr();
    }
    bool splat = false;
    if (!DenseElementsAttr::isValidRawBuffer(type, *bytes, splat))
      return DenseElementsAttr();
    return DenseElementsAttr::getFromRawBuffer(type, *bytes);
  };
  if (failed(legalizeOnnxToMoE(*module, &reader)) || failed(verify(*module)))
    return failure();
  return std::move(module);
}
