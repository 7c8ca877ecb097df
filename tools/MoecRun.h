//===- MoecRun.h - The moec-run command line --------------------*- C++ -*-===//
//
// `moec-run`: load an artifact through the C API, run it on token ids (or
// on inputs read from .npy files), print the top tokens per position (or
// the output shapes) and timing, optionally dump the logits or output 0 as
// .npy, or print the manifest summary. Links only the runtime.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TOOLS_MOECRUN_H
#define MOEC_TOOLS_MOECRUN_H

namespace moec::runtime {

/// Runs the moec-run command line; returns the process exit code (0 ok,
/// 1 runtime error, 2 usage error).
int moecRunMain(int argc, char **argv);

} // namespace moec::runtime

#endif // MOEC_TOOLS_MOECRUN_H
