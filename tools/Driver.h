//===- Driver.h - The moec compiler driver ----------------------*- C++ -*-===//
//
// The command-line driver behind `moec`: reads a model (today: `.mlir`),
// runs the phase pipeline up to `--compile-to` and writes the result.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TOOLS_DRIVER_H
#define MOEC_TOOLS_DRIVER_H

namespace mlir::moec {

/// Runs the `moec` command line; returns the process exit code.
int moecMain(int argc, char **argv);

} // namespace mlir::moec

#endif // MOEC_TOOLS_DRIVER_H
