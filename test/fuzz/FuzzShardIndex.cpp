//===- FuzzShardIndex.cpp - Fuzz the checkpoint index parser --------------===//
//
// `fuzz-shard-index`: the input is the text of a
// `model.safetensors.index.json`, parsed and validated by `parseShardIndex`.
// An accepted index must come back sorted by tensor name with no name twice.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "importers/hf/Safetensors.h"

using namespace mlir::moec::hf;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  llvm::Expected<ShardIndex> index =
      parseShardIndex(text, "model.safetensors.index.json");
  if (!index)
    return FuzzOutcome::reject(llvm::toString(index.takeError()));
  for (size_t i = 1; i < index->size(); ++i)
    if (!((*index)[i - 1].first < (*index)[i].first))
      __builtin_trap(); // the documented order (sorted, unique) is broken
  return FuzzOutcome::accept();
}
