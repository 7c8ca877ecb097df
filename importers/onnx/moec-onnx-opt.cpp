//===- moec-onnx-opt.cpp - Runs the ONNX importer's passes ------*- C++ -*-===//
//
// `mlir-opt` with the `onnx` and `moe` dialects and the ONNX importer's
// passes: the lit tests run the legalisation patterns on text IR with it.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxImporter.h"
#include "importers/onnx/OnnxPatterns.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::moec::registerOnnxDialect(registry);
  mlir::moec::registerOnnxPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "moec ONNX importer passes on text IR\n", registry));
}
