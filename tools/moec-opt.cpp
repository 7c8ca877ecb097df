//===- moec-opt.cpp - moec optimizer driver ---------------------*- C++ -*-===//
//
// `mlir-opt` for the `moe` dialect: parses, verifies, runs passes and
// pipelines and prints IR. It is what the lit tests drive.
//
//===----------------------------------------------------------------------===//

#include "tools/InitAll.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::moec::registerAllMoecDialects(registry);
  mlir::moec::registerAllMoecPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "moec optimizer driver: runs moe-dialect passes\n",
      registry));
}
