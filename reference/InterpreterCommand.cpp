//===- InterpreterCommand.cpp - The moec-interp command ---------*- C++ -*-===//
//
// Loads a model, runs its forward pass with the reference interpreter and
// prints or dumps the logits. What needs the importers (reading a checkpoint
// folder, opening its weights) comes in through `InterpreterHooks`.
//
//===----------------------------------------------------------------------===//

#include "reference/InterpreterCommand.h"
#include "reference/Npy.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <numeric>

using namespace mlir;
using namespace mlir::moec;
using mlir::moe::formatShape;

FailureOr<OwningOpRef<ModuleOp>>
mlir::moec::loadModel(llvm::StringRef path, llvm::SourceMgr &sourceMgr,
                      MLIRContext *context, const InterpreterHooks &hooks) {
  if (llvm::sys::fs::is_directory(path))
    return hooks.importCheckpoint(path, context);
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> input = openInputFile(path, &error);
  if (!input)
    return emitError(UnknownLoc::get(context)) << error;
  sourceMgr.AddNewSourceBuffer(std::move(input), llvm::SMLoc());
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(sourceMgr, ParserConfig(context));
  if (!module)
    return failure();
  return module;
}

llvm::Expected<std::vector<int64_t>>
mlir::moec::parseIntegerList(llvm::StringRef text) {
  std::vector<int64_t> values;
  llvm::SmallVector<llvm::StringRef> items;
  text.split(items, ',');
  for (llvm::StringRef item : items) {
    int64_t value;
    if (item.trim().getAsInteger(10, value))
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     "expected comma-separated integers, but "
                                     "got '" +
                                         item.trim() + "' in '" + text + "'");
    values.push_back(value);
  }
  return values;
}

namespace {

int fail(const llvm::Twine &message) {
  llvm::WithColor::error(llvm::errs(), "moec-interp") << message << "\n";
  return 1;
}

/// Prints the frequencies of the first `moe.rope` in `func` as JSON.
int printRope(func::FuncOp func) {
  moe::RopeOp rope;
  func.walk([&](moe::RopeOp op) {
    if (!rope)
      rope = op;
  });
  if (!rope)
    return fail("no moe.rope in @" + func.getSymName());
  int64_t dim = rope.getX().getType().getShape().back();
  std::vector<float> freqs = moe::getRopeInverseFrequencies(
      dim, rope.getTheta().convertToDouble(), rope.getScalingAttr());
  llvm::outs() << "{\"dim\": " << dim << ", \"inv_freq\": [";
  llvm::interleaveComma(freqs, llvm::outs(), [](float f) {
    llvm::outs() << llvm::format("%.9g", f);
  });
  llvm::outs() << "], \"cos_sin_scale\": "
               << llvm::format("%.17g",
                               moe::getRopeCosSinScale(rope.getScalingAttr()))
               << "}\n";
  return 0;
}

} // namespace

int mlir::moec::runInterpreterCommand(const InterpreterCommand &command,
                                      const InterpreterHooks &hooks) {
  DialectRegistry registry;
  hooks.registerDialects(registry);
  MLIRContext context(registry);
  context.loadAllAvailableDialects();
  // The source line is shown; the generic form of the op adds nothing.
  context.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);
  FailureOr<OwningOpRef<ModuleOp>> module =
      loadModel(command.input, sourceMgr, &context, hooks);
  if (failed(module))
    return 1;
  if (command.printRope) {
    auto func = (**module).lookupSymbol<func::FuncOp>(command.function);
    if (!func)
      return fail("no func.func @" + command.function + " in the module");
    return printRope(func);
  }
  llvm::Expected<std::vector<int64_t>> tokens =
      parseIntegerList(command.tokens);
  if (!tokens)
    return fail("--tokens: " + llvm::toString(tokens.takeError()));
  std::vector<int64_t> positions(tokens->size());
  std::iota(positions.begin(), positions.end(), 0);
  if (!command.positions.empty()) {
    llvm::Expected<std::vector<int64_t>> parsed =
        parseIntegerList(command.positions);
    if (!parsed)
      return fail("--positions: " + llvm::toString(parsed.takeError()));
    positions = std::move(*parsed);
  }
  InterpreterOptions options;
  options.checkpointDir = command.checkpoint;
  options.dumpRoutingDir = command.dumpRouting;
  options.pinRoutingDir = command.pinRouting;
  options.openWeights = hooks.openWeights;
  FailureOr<InterpTensor> logits =
      runForward(**module, command.function, *tokens, positions, options);
  if (failed(logits))
    return 1;
  if (!command.dumpLogits.empty()) {
    if (llvm::Error error = writeNpy(command.dumpLogits, *logits))
      return fail(llvm::toString(std::move(error)));
    return 0;
  }
  // Without --dump-logits: the shape and each row's argmax.
  llvm::outs() << "logits " << formatShape(logits->shape) << "\n";
  if (logits->isInteger() || logits->shape.size() != 2)
    return 0;
  int64_t vocab = logits->shape[1];
  for (int64_t t = 0; t < logits->shape[0]; ++t) {
    const float *row = logits->floats.data() + t * vocab;
    int64_t best = std::max_element(row, row + vocab) - row;
    llvm::outs() << "token " << t << ": argmax " << best << " (logit "
                 << llvm::format("%.6g", vocab ? row[best] : 0.0f) << ")\n";
  }
  return 0;
}

int mlir::moec::interpreterMain(int argc, char **argv,
                                const InterpreterHooks &hooks) {
  namespace cl = llvm::cl;
  llvm::InitLLVM init(argc, argv);
  InterpreterCommand c;
  cl::opt<std::string, true> input(cl::Positional, cl::Required,
                                   cl::desc("<checkpoint folder | model.mlir>"),
                                   cl::location(c.input));
  cl::opt<std::string, true> tokens(
      "tokens", cl::location(c.tokens), cl::value_desc("ids"),
      cl::desc("Comma-separated token ids, e.g. 1,17,42"));
  cl::opt<std::string, true> positions(
      "positions", cl::location(c.positions), cl::value_desc("positions"),
      cl::desc("Comma-separated positions (default: 0..T-1)"));
  cl::opt<std::string, true> checkpoint(
      "checkpoint", cl::location(c.checkpoint), cl::value_desc("dir"),
      cl::desc("Checkpoint folder the weights are read from (default: the "
               "module's moe.checkpoint attribute)"));
  cl::opt<std::string, true> dump(
      "dump-logits", cl::location(c.dumpLogits), cl::value_desc("file.npy"),
      cl::desc("Write the first result as a .npy file, float32 (integer "
               "results: int32/int64); default: print each row's argmax"));
  cl::opt<std::string, true> function("function", cl::location(c.function),
                                      cl::init("forward"),
                                      cl::desc("The func.func to run"));
  cl::opt<std::string, true> dumpRouting(
      "dump-routing", cl::location(c.dumpRouting), cl::value_desc("dir"),
      cl::desc("Write the N-th routing decision's input, selection scores "
               "and chosen experts to <dir>/route<N>.{x,scores,indices}.npy"));
  cl::opt<std::string, true> pinRouting(
      "pin-routing", cl::location(c.pinRouting), cl::value_desc("dir"),
      cl::desc("Route the N-th routing decision on <dir>/route<N>.x.npy "
               "(from --dump-routing) instead of its input; the experts "
               "still read the input"));
  cl::opt<bool, true> rope(
      "print-rope", cl::location(c.printRope),
      cl::desc("Print the inverse frequencies and cos/sin scale of the first "
               "moe.rope as JSON instead of running the model"));
  cl::ParseCommandLineOptions(
      argc, argv,
      "moec-interp: the naive f32 reference interpreter of moe-dialect IR\n\n"
      "  This is a TEST ORACLE for the importers and passes (see\n"
      "  docs/interpreter.md), not moec's CPU path, which is MLIR -> LLVM\n"
      "  code generation. It evaluates each op with plain loops in f32 and\n"
      "  reads the weights from the checkpoint the module names.\n");
  return runInterpreterCommand(c, hooks);
}
