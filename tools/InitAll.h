//===- InitAll.h - Register everything moec tools use -----------*- C++ -*-===//
//
// One place that lists the dialects and passes the moec tools load, so that
// `moec`, `moec-opt` and the tests see the same set.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TOOLS_INITALL_H
#define MOEC_TOOLS_INITALL_H

#include "codegen/cpu/Passes.h"
#include "dialects/MoEDialect.h"
#include "passes/Passes.h"
#include "passes/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::moec {

/// Adds every dialect a moec module may contain to `registry`.
inline void registerAllMoecDialects(DialectRegistry &registry) {
  registry.insert<moe::MoEDialect, func::FuncDialect>();
  cpu::registerCpuCodegenDialects(registry);
}

/// Registers the moec passes and pipelines, plus the upstream cleanups
/// (canonicalize, cse) used between phases, with the global registry.
inline void registerAllMoecPasses() {
  registerCanonicalizerPass();
  registerCSEPass();
  registerMoecPasses();
  registerMoecPipelines();
  cpu::registerCpuCodegenPasses();
}

} // namespace mlir::moec

#endif // MOEC_TOOLS_INITALL_H
