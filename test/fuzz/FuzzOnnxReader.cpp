//===- FuzzOnnxReader.cpp - Fuzz the ONNX model reader --------------------===//
//
// `fuzz-onnx-reader`: the input is a serialized ONNX ModelProto, parsed and
// validated by `OnnxModel::fromBuffer`. An accepted model is turned into the
// `onnx` dialect in a fresh context, and that IR must verify.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "importers/onnx/OnnxReader.h"

#include "mlir/IR/Verifier.h"

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  // External data is resolved next to the model; this folder does not
  // exist, so no input can make the reader open a file.
  llvm::MemoryBufferRef buffer(
      llvm::StringRef(reinterpret_cast<const char *>(data), size),
      "/nonexistent-moec-fuzz/model.onnx");
  auto model = mlir::moec::OnnxModel::fromBuffer(buffer);
  if (!model)
    return FuzzOutcome::reject(llvm::toString(model.takeError()));

  // A fresh context per input: nothing is uniqued across inputs, so memory
  // stays flat and a crash reproduces from its input alone.
  mlir::MLIRContext context(mlir::MLIRContext::Threading::DISABLED);
  auto module = (*model)->toIR(&context);
  if (!module)
    return FuzzOutcome::reject(llvm::toString(module.takeError()));
  if (mlir::failed(mlir::verify(**module)))
    __builtin_trap(); // the reader built IR that does not verify
  return FuzzOutcome::accept();
}
