//===- FuzzModelConfig.cpp - Fuzz the config.json parser ------------------===//
//
// `fuzz-model-config`: the input is the text of a Hugging Face `config.json`,
// parsed and validated by `parseModelConfig`. An accepted config of modest
// size also has its expected tensor list built, which walks every layer and
// expert the config describes.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "importers/hf/ModelConfig.h"

#include <algorithm>

using namespace mlir::moec::hf;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  llvm::Expected<ModelConfig> config = parseModelConfig(text, "config.json");
  if (!config)
    return FuzzOutcome::reject(llvm::toString(config.takeError()));

  // A valid config may describe 2^16 expert instances (kMaxExpertInstances);
  // listing their tensors would make one input take seconds, so only small
  // models are listed.
  int64_t instances =
      config->numLayers * std::max<int64_t>(config->numExperts, 1);
  if (instances <= 4096) {
    std::vector<ExpectedTensor> tensors = expectedTensors(*config);
    for (const ExpectedTensor &tensor : tensors)
      if (tensor.scaleFor.empty())
        (void)isQuantizableWeight(*config, tensor.name);
  }
  for (int64_t layer = -1; layer <= config->numLayers; ++layer)
    (void)config->isMoELayer(layer);
  return FuzzOutcome::accept();
}
