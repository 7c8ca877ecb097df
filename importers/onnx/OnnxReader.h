//===- OnnxReader.h - Validated ONNX model reader ---------------*- C++ -*-===//
//
// The first layer of the ONNX importer: parses a ModelProto with size and
// nesting limits, validates everything that sizes an allocation or names a
// file (tensor shapes, byte sizes, external data), and turns the graph into
// the `onnx` dialect without interpreting any operator.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_ONNX_ONNXREADER_H
#define MOEC_IMPORTERS_ONNX_ONNXREADER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBufferRef.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace mlir::moec {

/// Limits the reader applies before it allocates anything.
struct OnnxReaderOptions {
  /// The largest model file read (protobuf's own limit is 2 GiB; larger
  /// models keep their weights in external data).
  uint64_t maxFileBytes = uint64_t(2) << 30;
  /// The deepest message nesting the protobuf parser accepts.
  int maxNesting = 64;
  /// The largest tensor (in bytes) whose values the IR carries inline.
  uint64_t inlineBytes = 1024;
  /// The largest byte size any one tensor may claim (1 TiB).
  uint64_t maxTensorBytes = uint64_t(1) << 40;
};

/// A parsed and validated ONNX model.
class OnnxModel {
public:
  /// Reads and validates the model at `path`. Every error names the file and
  /// the tensor, node or value concerned.
  static llvm::Expected<std::unique_ptr<OnnxModel>>
  load(llvm::StringRef path, const OnnxReaderOptions &options = {});

  /// Validates the model image in `buffer` with the same checks and limits
  /// as `load`; the buffer identifier stands in for the path in messages and
  /// external data is looked up next to it. The bytes are not kept.
  static llvm::Expected<std::unique_ptr<OnnxModel>>
  fromBuffer(llvm::MemoryBufferRef buffer,
             const OnnxReaderOptions &options = {});
  ~OnnxModel();

  /// The path the model was loaded from.
  llvm::StringRef getPath() const;

  /// Builds the `onnx` dialect image of the main graph: a module holding
  /// `func.func @main` with one `onnx.node` per node.
  llvm::Expected<OwningOpRef<ModuleOp>> toIR(MLIRContext *context) const;

  /// The bytes of the initializer or Constant output `name` in ONNX's
  /// little-endian raw layout, read from the model or its external file.
  llvm::Expected<std::vector<char>> readTensorData(llvm::StringRef name) const;

private:
  struct Impl;
  explicit OnnxModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

/// Registers the dialects the reader's output uses (onnx, func) in `context`.
void loadOnnxReaderDialects(MLIRContext &context);

} // namespace mlir::moec

#endif // MOEC_IMPORTERS_ONNX_ONNXREADER_H
