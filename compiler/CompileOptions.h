//===- CompileOptions.h - The options of one moec compilation ---*- C++ -*-===//
//
// One options struct per phase, each declaring its flags once in
// `bindOptions` (IREE's `Pipelines/Options.h`): the input, the pipeline
// (fusion, FP8 policy, planning; passes/Pipelines.h), the target backends
// (codegen/TargetBackend.h) and the output. `moec` binds `CompileOptions` to
// its command line; library callers fill it and call `compileToArtifact`.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_COMPILER_COMPILEOPTIONS_H
#define MOEC_COMPILER_COMPILEOPTIONS_H

#include "codegen/TargetBackend.h"
#include "passes/OptionsBinder.h"
#include "passes/Pipelines.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mlir::moec {

/// The overview `moec --help` prints above the options.
inline constexpr llvm::StringLiteral kMoecOverview =
    "moec: compiles Mixture-of-Experts language models into one deployable "
    "artifact\n\n"
    "The input is a Hugging Face checkpoint folder (config.json + "
    "*.safetensors, sharded\nor not; model types deepseek_v3, mixtral, "
    "qwen3_moe, qwen2_moe), an ONNX model, or a\n`.mlir` file in the form "
    "of any phase (see --from).\n\n"
    "  moec path/to/checkpoint -o model.moea       compile to an artifact "
    "(run it with moec-run)\n"
    "  moec path/to/checkpoint --compile-to=import   print the imported "
    "graph\n"
    "  moec model.mlir --compile-to=moe      print the canonical graph\n";

/// What is read: the model and the phase it is in.
struct InputOptions {
  /// A Hugging Face checkpoint folder, an `.onnx` file or a `.mlir` file.
  std::string path;
  /// The phase a `.mlir` input is already in (`--from`).
  std::string fromPhase = "import";
  /// Verify the IR after every pass, not only between phases.
  bool verifyEach = true;

  /// Declares the positional input, `--from` and `--verify-each`.
  void bindOptions(OptionsBinder &binder);
};

/// What is written: an artifact, or the IR of one phase.
struct OutputOptions {
  /// The phase to stop after and print (`--compile-to`); empty to write an
  /// artifact.
  std::string compileTo;
  /// The file to write (`-o`); "-" is standard output, for IR only.
  std::string path = "-";
  /// The Ed25519 private key (PEM) to sign the artifact with (`--sign`).
  std::optional<std::string> signingKeyFile;
  /// Benchmark artifacts: store no weights; the runtime fills them on the GPU
  /// from this seed (`--bench-device-weights`).
  std::optional<uint64_t> benchDeviceWeights;

  /// Declares `--compile-to`, `-o`, `--sign` and `--bench-device-weights`.
  void bindOptions(OptionsBinder &binder);
};

/// Every option of one compilation, phase by phase.
struct CompileOptions {
  InputOptions input;
  PipelineOptions pipeline;
  TargetOptions targets;
  OutputOptions output;

  /// Declares the options of every phase with `binder`.
  void bindOptions(OptionsBinder &binder) {
    input.bindOptions(binder);
    pipeline.bindOptions(binder);
    targets.bindOptions(binder);
    output.bindOptions(binder);
  }
};

} // namespace mlir::moec

#endif // MOEC_COMPILER_COMPILEOPTIONS_H
