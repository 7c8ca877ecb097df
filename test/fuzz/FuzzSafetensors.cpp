//===- FuzzSafetensors.cpp - Fuzz the safetensors reader ------------------===//
//
// `fuzz-safetensors`: the input is a whole `.safetensors` file, validated by
// `SafetensorsFile::fromBuffer`. An accepted file has every tensor looked up
// by name and its first and last byte read, so that a range the validation
// got wrong shows up as an AddressSanitizer report.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "importers/hf/Safetensors.h"

using namespace mlir::moec::hf;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  // No copy: the reader keeps the buffer only while the file lives.
  llvm::StringRef bytes(reinterpret_cast<const char *>(data), size);
  auto file = SafetensorsFile::fromBuffer(llvm::MemoryBuffer::getMemBuffer(
      bytes, "fuzz.safetensors", /*RequiresNullTerminator=*/false));
  if (!file)
    return FuzzOutcome::reject(llvm::toString(file.takeError()));

  unsigned sum = 0;
  for (const TensorInfo &info : (*file)->tensors()) {
    if ((*file)->lookup(info.name) == nullptr)
      __builtin_trap(); // every listed tensor must be found by its name
    llvm::ArrayRef<uint8_t> tensor = (*file)->bytes(info);
    if (!tensor.empty())
      sum += tensor.front() + tensor.back();
  }
  for (const auto &[key, value] : (*file)->metadata())
    sum += key.size() + value.size();
  // Keeps the reads above from being optimised away.
  asm volatile("" : : "r"(sum));
  return FuzzOutcome::accept();
}
