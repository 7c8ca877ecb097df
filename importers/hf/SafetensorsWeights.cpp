//===- SafetensorsWeights.cpp - moe.weight data from safetensors -*- C++
//-*-===//
//
// Looks up, checks and copies checkpoint tensors for `moe.weight`.
//
//===----------------------------------------------------------------------===//

#include "importers/hf/SafetensorsWeights.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/Support/Path.h"

#include <optional>

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::hf;
using mlir::moe::formatShape;

namespace {

/// The safetensors dtype that stores elements of `type`, if any.
std::optional<DType> storedDType(Type type) {
  if (type.isF32())
    return DType::F32;
  if (type.isF64())
    return DType::F64;
  if (type.isBF16())
    return DType::BF16;
  if (type.isF16())
    return DType::F16;
  if (isa<Float8E4M3FNType>(type))
    return DType::F8_E4M3;
  if (isa<Float8E5M2Type>(type))
    return DType::F8_E5M2;
  if (type.isInteger(64))
    return DType::I64;
  if (type.isInteger(32))
    return DType::I32;
  if (type.isInteger(8))
    return DType::I8;
  if (type.isInteger(1))
    return DType::BOOL;
  return std::nullopt;
}

/// `dims` without its size-1 dimensions.
SmallVector<int64_t, 4> withoutOnes(ArrayRef<int64_t> dims) {
  SmallVector<int64_t, 4> kept;
  llvm::copy_if(dims, std::back_inserter(kept),
                [](int64_t d) { return d != 1; });
  return kept;
}

} // namespace

llvm::Expected<std::unique_ptr<SafetensorsWeightSource>>
SafetensorsWeightSource::open(llvm::StringRef dir) {
  llvm::Expected<std::unique_ptr<Checkpoint>> checkpoint =
      Checkpoint::open(dir);
  if (!checkpoint)
    return checkpoint.takeError();
  return std::make_unique<SafetensorsWeightSource>(std::move(*checkpoint));
}

llvm::Error SafetensorsWeightSource::read(moe::TensorRefAttr ref, Type element,
                                          ArrayRef<int64_t> shape,
                                          std::vector<uint8_t> &into) {
  auto error = [&](const llvm::Twine &message) {
    return makeWeightError(ref, message);
  };
  TensorRef found = checkpoint->lookup(ref.getName());
  if (!found)
    return error("not found in checkpoint '" + checkpoint->dir() + "'");
  llvm::StringRef file = llvm::sys::path::filename(found.file->path());
  if (file != ref.getFile())
    return error("the checkpoint stores it in '" + file + "'");
  std::optional<DType> dtype = storedDType(element);
  // Signless `i8` holds `u8` codes too (`#moe.block_scale<format = u8>`).
  bool bytes = dtype == DType::I8 && found.info->dtype == DType::U8;
  if (!dtype || (*dtype != found.info->dtype && !bytes)) {
    std::string typeName;
    llvm::raw_string_ostream(typeName) << element;
    return error("stored as " + dtypeName(found.info->dtype) +
                 ", but the IR expects " + typeName);
  }
  if (withoutOnes(found.info->shape) != withoutOnes(shape))
    return error("stored with shape " + formatShape(found.info->shape) +
                 ", but the IR expects " + formatShape(shape));
  ArrayRef<uint8_t> data = found.file->bytes(*found.info);
  into.insert(into.end(), data.begin(), data.end());
  return llvm::Error::success();
}
