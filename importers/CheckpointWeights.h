//===- CheckpointWeights.h - The importers' weight source -------*- C++ -*-===//
//
// Opens what the `moe.weight` ops of an imported module read: the ONNX
// models their references name and, for any other reference, the folder's
// safetensors checkpoint. The tools pass `openCheckpointWeights` to the
// artifact writer and the reference interpreter.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_CHECKPOINTWEIGHTS_H
#define MOEC_IMPORTERS_CHECKPOINTWEIGHTS_H

#include "dialects/WeightSource.h"

namespace mlir::moec {

/// The weights the `moe.weight` ops under `root` name in the checkpoint
/// folder `dir`: a reference to a `.onnx` file reads that model's
/// initializers (`OnnxWeightSource`), any other reference the folder's
/// safetensors files (`hf::SafetensorsWeightSource`). Every file is opened
/// and validated here, so that a missing or broken checkpoint fails before
/// any tensor is read. A `WeightSourceOpener`.
llvm::Expected<std::unique_ptr<WeightSource>>
openCheckpointWeights(llvm::StringRef dir, Operation *root);

} // namespace mlir::moec

#endif // MOEC_IMPORTERS_CHECKPOINTWEIGHTS_H
