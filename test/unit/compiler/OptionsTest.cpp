//===- OptionsTest.cpp - Options bound once, to CLI and pipeline -*- C++
//-*-===//
//
// `CompileOptions` filled from a `moec` command line, and `PipelineOptions`
// filled from a `--moec-pipeline` text and from the command line by the same
// `bindOptions`: both front ends give the same struct, defaults included, and
// a bad choice fails with each front end's wording.
//
//===----------------------------------------------------------------------===//

#include "compiler/CompileOptions.h"

#include "gtest/gtest.h"

using namespace mlir;
using namespace mlir::moec;

namespace {

/// Parses `args` (without the program name) as `moec`'s command line into a
/// fresh `CompileOptions`; the error of `OptionsBinder::store`, if any, goes
/// to `error`.
CompileOptions parseCommandLine(std::vector<const char *> args,
                                std::string *error = nullptr) {
  llvm::cl::ResetCommandLineParser();
  llvm::cl::OptionCategory category("test options");
  CompileOptions options;
  OptionsBinder binder = OptionsBinder::global(category);
  options.bindOptions(binder);
  args.insert(args.begin(), "moec");
  std::string parseErrors;
  llvm::raw_string_ostream errs(parseErrors);
  EXPECT_TRUE(llvm::cl::ParseCommandLineOptions(int(args.size()), args.data(),
                                                "", &errs))
      << parseErrors;
  llvm::Error stored = binder.store();
  if (error)
    *error = stored ? llvm::toString(std::move(stored)) : "";
  else
    EXPECT_FALSE(static_cast<bool>(stored))
        << llvm::toString(std::move(stored));
  return options;
}

/// The pass pipeline options of `PipelineOptions`, as `--moec-pipeline`
/// declares them.
struct TestPipelineOptions : PassPipelineOptions<TestPipelineOptions> {
  PipelineOptions pipeline;
  OptionsBinder binder = OptionsBinder::local(*this);
  TestPipelineOptions() { pipeline.bindOptions(binder); }
};

/// Parses `text` as a pipeline's options into a fresh `PipelineOptions`.
PipelineOptions parsePipelineText(llvm::StringRef text,
                                  std::string *error = nullptr) {
  TestPipelineOptions options;
  EXPECT_TRUE(succeeded(options.parseFromString(text)));
  llvm::Error stored = options.binder.store();
  if (error)
    *error = stored ? llvm::toString(std::move(stored)) : "";
  else
    EXPECT_FALSE(static_cast<bool>(stored))
        << llvm::toString(std::move(stored));
  return options.pipeline;
}

/// Expects `a` and `b` to hold the same pipeline options.
void expectSamePipeline(const PipelineOptions &a, const PipelineOptions &b) {
  EXPECT_EQ(a.foldSharedExperts, b.foldSharedExperts);
  EXPECT_EQ(a.lowerToFp8, b.lowerToFp8);
  EXPECT_EQ(a.fp8.keepLmHead, b.fp8.keepLmHead);
  EXPECT_EQ(a.fp8.keepAttention, b.fp8.keepAttention);
  EXPECT_EQ(a.fp8.keepFirstLayers, b.fp8.keepFirstLayers);
  EXPECT_EQ(a.fp8.keepLastLayers, b.fp8.keepLastLayers);
  EXPECT_EQ(a.fp8.pow2Scales, b.fp8.pow2Scales);
  EXPECT_EQ(a.maxTokens, b.maxTokens);
}

TEST(Options, CommandLineFillsEveryPhase) {
  CompileOptions options = parseCommandLine({"model.mlir",
                                             "--from=fused",
                                             "--verify-each=false",
                                             "--fold-shared-experts",
                                             "--precision=f32",
                                             "--fp8-keep-attention",
                                             "--fp8-keep-lm-head=false",
                                             "--fp8-keep-first-layers=2",
                                             "--fp8-keep-last-layers=3",
                                             "--fp8-pow2-scales",
                                             "--max-tokens=7",
                                             "--target=sm_90,cpu:portable",
                                             "--cuda-tma=false",
                                             "--emit-ptx",
                                             "--test-cpu-so=x.so",
                                             "--compile-to=codegen",
                                             "-o",
                                             "out.txt",
                                             "--sign=key.pem",
                                             "--bench-device-weights=0"});
  EXPECT_EQ(options.input.path, "model.mlir");
  EXPECT_EQ(options.input.fromPhase, "fused");
  EXPECT_FALSE(options.input.verifyEach);
  EXPECT_TRUE(options.pipeline.foldSharedExperts);
  EXPECT_FALSE(options.pipeline.lowerToFp8);
  EXPECT_TRUE(options.pipeline.fp8.keepAttention);
  EXPECT_FALSE(options.pipeline.fp8.keepLmHead);
  EXPECT_EQ(options.pipeline.fp8.keepFirstLayers, 2u);
  EXPECT_EQ(options.pipeline.fp8.keepLastLayers, 3u);
  EXPECT_TRUE(options.pipeline.fp8.pow2Scales);
  EXPECT_EQ(options.pipeline.maxTokens, 7);
  EXPECT_EQ(options.targets.targets, "sm_90,cpu:portable");
  EXPECT_FALSE(options.targets.cudaTma);
  EXPECT_TRUE(options.targets.emitPtx);
  EXPECT_EQ(options.targets.testCpuSharedObject, "x.so");
  EXPECT_EQ(options.output.compileTo, "codegen");
  EXPECT_EQ(options.output.path, "out.txt");
  EXPECT_EQ(options.output.signingKeyFile,
            std::optional<std::string>("key.pem"));
  // A seed of 0 is a seed: the option was given.
  EXPECT_EQ(options.output.benchDeviceWeights, std::optional<uint64_t>(0));
}

TEST(Options, CommandLineDefaultsAreTheStructDefaults) {
  CompileOptions options = parseCommandLine({"model.mlir"});
  CompileOptions defaults;
  EXPECT_EQ(options.input.fromPhase, defaults.input.fromPhase);
  EXPECT_EQ(options.input.verifyEach, defaults.input.verifyEach);
  expectSamePipeline(options.pipeline, defaults.pipeline);
  EXPECT_EQ(options.targets.targets, "cpu");
  EXPECT_TRUE(options.targets.cudaTma);
  EXPECT_EQ(options.output.path, "-");
  EXPECT_FALSE(options.output.signingKeyFile);
  EXPECT_FALSE(options.output.benchDeviceWeights);
}

TEST(Options, PipelineTextAndCommandLineFillTheSameStruct) {
  PipelineOptions fromText = parsePipelineText(
      "fold-shared-experts=true precision=f32 fp8-keep-attention=true "
      "fp8-keep-lm-head=false fp8-keep-first-layers=1 "
      "fp8-keep-last-layers=4 fp8-pow2-scales=true max-tokens=9");
  PipelineOptions fromCommandLine =
      parseCommandLine({"m.mlir", "--fold-shared-experts", "--precision=f32",
                        "--fp8-keep-attention", "--fp8-keep-lm-head=false",
                        "--fp8-keep-first-layers=1", "--fp8-keep-last-layers=4",
                        "--fp8-pow2-scales", "--max-tokens=9"})
          .pipeline;
  EXPECT_FALSE(fromText.lowerToFp8);
  EXPECT_EQ(fromText.fp8.keepLastLayers, 4u);
  EXPECT_EQ(fromText.maxTokens, 9);
  expectSamePipeline(fromText, fromCommandLine);
  // Left out, both keep the struct's defaults.
  expectSamePipeline(parsePipelineText(""), PipelineOptions());
}

TEST(Options, BadChoiceNamesTheOptionOnTheCommandLine) {
  std::string error;
  parseCommandLine({"m.mlir", "--precision=f16"}, &error);
  EXPECT_EQ(error, "unknown precision 'f16' for --precision; expected fp8 or "
                   "f32");
  parsePipelineText("precision=bf16", &error);
  EXPECT_EQ(error, "unknown precision 'bf16'; expected fp8 or f32");
}

} // namespace
