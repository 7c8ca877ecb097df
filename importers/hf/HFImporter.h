//===- HFImporter.h - Hugging Face checkpoint → moe dialect -----*- C++ -*-===//
//
// Turns a Hugging Face checkpoint folder (config.json + *.safetensors) into a
// `moe`-dialect module holding the whole prefill forward pass, after checking
// the config against every tensor's name, dtype and shape. Weight bytes are
// never read: `moe.weight` ops name the tensors.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_HF_HFIMPORTER_H
#define MOEC_IMPORTERS_HF_HFIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

namespace mlir::moec::hf {

/// Imports the checkpoint in folder `dir`. The module holds
/// `func.func @forward(%tokens: tensor<?xi32>, %positions: tensor<?xi32>)
/// -> tensor<?xVxf32>` returning the logits, and records the checkpoint
/// folder and model type as module attributes. Errors are emitted as
/// diagnostics on `context` naming the file and the tensor or field.
FailureOr<OwningOpRef<ModuleOp>> importHFCheckpoint(llvm::StringRef dir,
                                                    MLIRContext *context);

} // namespace mlir::moec::hf

#endif // MOEC_IMPORTERS_HF_HFIMPORTER_H
