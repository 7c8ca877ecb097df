//===- moec-interp.cpp - Reference interpreter of moe IR --------*- C++ -*-===//
//
// Entry point of `moec-interp`, the naive f32 interpreter of `moe`-dialect IR
// used as a test oracle (docs/interpreter.md). The command lives in the
// MoecReference library; this main hands it what comes from the importers:
// the Hugging Face importer and the checkpoint weight reader.
//
//===----------------------------------------------------------------------===//

#include "importers/CheckpointWeights.h"
#include "importers/hf/HFImporter.h"
#include "reference/InterpreterCommand.h"
#include "tools/InitAll.h"

int main(int argc, char **argv) {
  using namespace mlir::moec;
  InterpreterHooks hooks;
  hooks.registerDialects = registerAllMoecDialects;
  hooks.importCheckpoint = hf::importHFCheckpoint;
  hooks.openWeights = openCheckpointWeights;
  return interpreterMain(argc, argv, hooks);
}
