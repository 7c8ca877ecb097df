//===- CudaProgram.cpp - A planned model as one CUDA translation unit -----===//

#include "codegen/cuda/CudaProgram.h"

#include "codegen/cuda/Nvrtc.h"
#include "codegen/cuda/Prelude.h"
#include "passes/Plan.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::cuda;

static bool isIdentifierChar(char c) { return llvm::isAlnum(c) || c == '_'; }

/// `text` with every kernel name of step `name` (`name` itself, or `name_`
/// followed by a suffix) renamed to start with `to` instead. `moec_step_1`
/// does not match inside `moec_step_12`.
static std::string renameKernels(StringRef text, StringRef name, StringRef to) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t hit = text.find(name, pos);
    if (hit == StringRef::npos)
      break;
    size_t end = hit + name.size();
    bool whole = (hit == 0 || !isIdentifierChar(text[hit - 1])) &&
                 (end == text.size() || text[end] == '_' ||
                  !isIdentifierChar(text[end]));
    out += text.slice(pos, hit).str();
    out += whole ? to.str() : name.str();
    pos = end;
  }
  return out + text.drop_front(pos).str();
}

FailureOr<CudaProgram>
mlir::moec::cuda::buildCudaProgram(ModuleOp planned,
                                   const CudaCodegenOptions &options) {
  auto func = planned.lookupSymbol<func::FuncOp>("forward");
  if (!func) {
    auto funcs = planned.getOps<func::FuncOp>();
    if (!llvm::hasSingleElement(funcs))
      return planned.emitError("expected a function @forward"), failure();
    func = *funcs.begin();
  }
  moe::PlanAttr plan = getPlan(func);
  if (!plan)
    return func.emitError("the function is not planned (run the `planned` "
                          "phase first)"),
           failure();

  CudaProgram program;
  program.source = getCudaPrelude().str();
  llvm::StringMap<StringRef> libraries;
  // The kernel-name-free text of each emitted step -> its kernel name.
  llvm::StringMap<std::string> shapes;
  std::string steps;
  WalkResult walk = func.walk([&](Operation *op) {
    if (!getStepIndex(op))
      return WalkResult::advance();
    FailureOr<StepContext> ctx =
        StepContext::create(op, plan.getMaxTokens(), options);
    if (failed(ctx))
      return WalkResult::interrupt();
    FailureOr<CudaStep> step = emitCudaStep(*ctx);
    if (failed(step))
      return WalkResult::interrupt();
    for (const CudaLibrary &library : step->libraries) {
      auto [it, inserted] = libraries.try_emplace(library.key, library.text);
      if (inserted) {
        program.source += "\n// ---- library " + library.key.str() + " ----";
        program.source += library.text.str();
      } else if (it->second != library.text) {
        op->emitError("internal error: two texts for CUDA library '")
            << library.key << "'";
        return WalkResult::interrupt();
      }
    }
    if (program.launches.size() <= size_t(ctx->step))
      program.launches.resize(ctx->step + 1);
    program.workspaceBytes =
        std::max(program.workspaceBytes, step->workspaceBytes);
    // Steps of the same shape (every layer of a model) get the same text
    // but for their kernel names: launch the first one's kernels instead, so
    // that NVRTC compiles each distinct kernel once.
    std::string key = renameKernels(step->source, ctx->kernelName, "@");
    for (const CudaLaunch &launch : step->launches)
      key += "\n" + renameKernels(launch.kernel, ctx->kernelName, "@");
    auto [first, added] = shapes.try_emplace(key, ctx->kernelName);
    program.launches[ctx->step] = step->launches;
    if (!added) {
      for (CudaLaunch &launch : program.launches[ctx->step])
        launch.kernel =
            renameKernels(launch.kernel, ctx->kernelName, first->second);
      return WalkResult::advance();
    }
    steps += llvm::formatv("\n// ---- step {0}: {1} ----", ctx->step,
                           op->getName().getStringRef())
                 .str();
    steps += step->source;
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  program.source += steps;
  return program;
}

llvm::Expected<std::vector<std::pair<std::string, std::string>>>
mlir::moec::cuda::compileCudaProgram(
    const CudaProgram &program, llvm::ArrayRef<const TargetInfo *> targets) {
  std::vector<std::pair<std::string, std::string>> cubins;
  for (const TargetInfo *target : targets) {
    llvm::Expected<std::string> cubin =
        compileToCubin(program.source, "kernels.cu", *target);
    if (!cubin)
      return cubin.takeError();
    cubins.emplace_back(target->gpuArchitecture.str(), std::move(*cubin));
  }
  return cubins;
}

static std::string describeExtent(const GridExtent &e) {
  if (e.perToken == 0)
    return std::to_string(std::max<int64_t>(e.constant, 1));
  std::string text = "T";
  if (e.perToken != 1)
    text = std::to_string(e.perToken) + "*T";
  if (e.divisor != 1)
    text = "ceil(" + text + "/" + std::to_string(e.divisor) + ")";
  if (e.constant > 0)
    text += "+" + std::to_string(e.constant);
  else if (e.constant < 0)
    text += std::to_string(e.constant);
  return text;
}

/// ` tma(a0 320x128 strides 320 box 64x64 sw64, ...)`, or nothing.
static std::string describeTensorMaps(llvm::ArrayRef<TensorMapSpec> maps) {
  if (maps.empty())
    return "";
  std::string text = " tma(";
  llvm::raw_string_ostream os(text);
  llvm::interleaveComma(maps, os, [&](const TensorMapSpec &m) {
    os << "a" << m.arg << " ";
    llvm::interleave(m.dims, os, "x");
    os << " strides ";
    llvm::interleave(m.strides, os, "x");
    os << " box ";
    llvm::interleave(m.box, os, "x");
    os << " sw" << m.swizzleBytes;
  });
  os << ")";
  return text;
}

std::string mlir::moec::cuda::describeLaunches(const CudaProgram &program) {
  std::string text;
  for (auto [step, launches] : llvm::enumerate(program.launches))
    for (const CudaLaunch &l : launches)
      text +=
          llvm::formatv("// step {0}: {1} grid ({2}, {3}, {4}) block ({5}, "
                        "{6}, {7}) smem {8}{9}\n",
                        step, l.kernel, describeExtent(l.grid[0]),
                        describeExtent(l.grid[1]), describeExtent(l.grid[2]),
                        l.block[0], l.block[1], l.block[2], l.sharedBytes,
                        describeTensorMaps(l.tensorMaps))
              .str();
  if (program.workspaceBytes)
    text +=
        llvm::formatv("// workspace {0} bytes\n", program.workspaceBytes).str();
  return text;
}
