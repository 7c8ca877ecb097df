//===- moec-onnx-read.cpp - Prints an ONNX model as read --------*- C++ -*-===//
//
// Reads an ONNX file and prints the `onnx` dialect image (the reader alone),
// or with --to-moe the `moe` dialect importOnnxFile produces. Lit tests of
// the reader's output and errors use it.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

namespace cl = llvm::cl;

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::opt<std::string> input(cl::Positional, cl::Required,
                             cl::desc("<model.onnx>"));
  cl::opt<bool> toMoE("to-moe", cl::desc("Legalise into the moe dialect"));
  cl::ParseCommandLineOptions(argc, argv, "prints an ONNX model as IR\n");
  mlir::DialectRegistry registry;
  mlir::moec::registerOnnxDialect(registry);
  mlir::MLIRContext context(registry);
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context);
  auto module = toMoE ? mlir::moec::importOnnxFile(input, &context)
                      : mlir::moec::readOnnxFile(input, &context);
  if (mlir::failed(module))
    return 1;
  (*module)->print(llvm::outs());
  llvm::outs() << "\n";
  return 0;
}
