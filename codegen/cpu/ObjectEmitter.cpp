//===- ObjectEmitter.cpp - CPU kernels to a shared object -------*- C++ -*-===//
//
// MLIR → LLVM dialect (`--moec-cpu-lower-to-llvm`) → LLVM IR → -O3 for the
// target CPU → PIC object (TargetMachine) → shared object (lld's ELF driver,
// linked as a library). The object must not reference anything outside
// itself: `memcpy`/`memmove`/`memset`, which LLVM may call on its own, are
// defined in the module (hidden), and any other undefined symbol is an error.
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/ObjectEmitter.h"

#include "codegen/cpu/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "lld/Common/Driver.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Analysis/TargetLibraryInfo.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Triple.h"

#include <memory>
#include <mutex>

LLD_HAS_DRIVER(elf)

using namespace mlir;
using namespace mlir::moec::cpu;

namespace {

//===----------------------------------------------------------------------===//
// MLIR → LLVM IR
//===----------------------------------------------------------------------===//

/// Names of the kernels, i.e. the symbols the shared object exports: the
/// public functions with a body, which `--moec-cpu-abi-wrappers` wraps.
llvm::StringSet<> exportedKernels(ModuleOp kernels) {
  llvm::StringSet<> names;
  for (auto func : kernels.getOps<func::FuncOp>())
    if (func.isPublic() && !func.isExternal())
      names.insert(func.getSymName());
  return names;
}

/// Lowers a clone of `kernels` to the LLVM dialect and translates it.
std::unique_ptr<llvm::Module> lowerToLLVMIR(ModuleOp kernels,
                                            llvm::LLVMContext &llvmContext) {
  MLIRContext *ctx = kernels.getContext();
  DialectRegistry registry;
  registerCpuCodegenDialects(registry);
  ctx->appendDialectRegistry(registry);

  OwningOpRef<ModuleOp> module(kernels.clone());
  PassManager pm(ctx, ModuleOp::getOperationName());
  buildCpuLowerToLLVMPipeline(pm);
  if (failed(pm.run(*module))) {
    kernels.emitError("lowering the CPU kernels to the LLVM dialect failed");
    return nullptr;
  }
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext, "moec_cpu_kernels");
  if (!llvmModule)
    kernels.emitError("translating the CPU kernels to LLVM IR failed");
  return llvmModule;
}

/// Defines `memcpy`, `memmove` and `memset` in `module` as hidden byte
/// loops, so that calls LLVM introduces (loop idioms, large copies) resolve
/// inside the shared object. `no-builtins` keeps LLVM from turning the loops
/// back into calls to themselves.
void defineMemoryBuiltins(llvm::Module &module) {
  llvm::LLVMContext &ctx = module.getContext();
  llvm::Type *ptr = llvm::PointerType::getUnqual(ctx);
  llvm::Type *i8 = llvm::Type::getInt8Ty(ctx);
  llvm::Type *i32 = llvm::Type::getInt32Ty(ctx);
  llvm::Type *size = llvm::Type::getInt64Ty(ctx);

  enum class Kind { Copy, Move, Set };
  auto define = [&](llvm::StringRef name, Kind kind) {
    llvm::Type *second = kind == Kind::Set ? i32 : ptr;
    auto *type = llvm::FunctionType::get(ptr, {ptr, second, size}, false);
    llvm::Function *func = module.getFunction(name);
    if (func && !func->isDeclaration())
      return;
    if (!func)
      func = llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage,
                                    name, module);
    func->setVisibility(llvm::GlobalValue::HiddenVisibility);
    func->addFnAttr("no-builtins");
    func->addFnAttr(llvm::Attribute::NoUnwind);
    llvm::Value *dst = func->getArg(0), *src = func->getArg(1),
                *count = func->getArg(2);

    llvm::BasicBlock *entry = llvm::BasicBlock::Create(ctx, "entry", func);
    llvm::BasicBlock *loop = llvm::BasicBlock::Create(ctx, "loop", func);
    llvm::BasicBlock *exit = llvm::BasicBlock::Create(ctx, "exit", func);
    llvm::IRBuilder<> b(entry);
    // memmove copies backwards when the destination is above the source.
    llvm::Value *backwards =
        kind == Kind::Move ? b.CreateICmpUGT(dst, src) : b.getFalse();
    b.CreateCondBr(b.CreateICmpEQ(count, b.getInt64(0)), exit, loop);

    b.SetInsertPoint(loop);
    llvm::PHINode *i = b.CreatePHI(size, 2);
    i->addIncoming(b.getInt64(0), entry);
    llvm::Value *at = b.CreateSelect(
        backwards, b.CreateSub(b.CreateSub(count, i), b.getInt64(1)), i);
    llvm::Value *byte = kind == Kind::Set
                            ? b.CreateTrunc(src, i8)
                            : b.CreateLoad(i8, b.CreateGEP(i8, src, at));
    b.CreateStore(byte, b.CreateGEP(i8, dst, at));
    llvm::Value *next = b.CreateAdd(i, b.getInt64(1));
    i->addIncoming(next, loop);
    b.CreateCondBr(b.CreateICmpEQ(next, count), exit, loop);

    b.SetInsertPoint(exit);
    b.CreateRet(dst);
  };
  define("memcpy", Kind::Copy);
  define("memmove", Kind::Move);
  define("memset", Kind::Set);
}

//===----------------------------------------------------------------------===//
// LLVM IR → object
//===----------------------------------------------------------------------===//

/// Creates the TargetMachine for `info` (PIC, optimisation `optLevel`).
std::unique_ptr<llvm::TargetMachine>
createTargetMachine(const CpuTargetInfo &info, unsigned optLevel,
                    std::string &error) {
  initializeNativeCpuTarget();
  llvm::Triple triple(info.triple);
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return nullptr;
  llvm::CodeGenOptLevel level = optLevel == 0   ? llvm::CodeGenOptLevel::None
                                : optLevel == 1 ? llvm::CodeGenOptLevel::Less
                                : optLevel == 2
                                    ? llvm::CodeGenOptLevel::Default
                                    : llvm::CodeGenOptLevel::Aggressive;
  llvm::TargetOptions targetOptions;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, info.cpu, info.features, targetOptions, llvm::Reloc::PIC_,
      std::nullopt, level));
  if (!machine)
    error = "cannot create a target machine for " + info.triple + " (" +
            info.cpu + ")";
  return machine;
}

/// Prepares `module` for `machine`: data layout, triple, CPU attributes on
/// every function, internal linkage for everything but the kernels, and the
/// memory builtins.
void prepareModule(llvm::Module &module, llvm::TargetMachine &machine,
                   const CpuTargetInfo &info,
                   const llvm::StringSet<> &exports) {
  module.setDataLayout(machine.createDataLayout());
  module.setTargetTriple(machine.getTargetTriple());
  defineMemoryBuiltins(module);
  std::string width = std::to_string(info.vectorBits);
  for (llvm::Function &func : module) {
    if (func.isDeclaration())
      continue;
    func.addFnAttr("target-cpu", info.cpu);
    if (!info.features.empty())
      func.addFnAttr("target-features", info.features);
    // Without these, LLVM may split the kernels' explicit 512-bit vectors on
    // CPUs that prefer 256-bit ones.
    func.addFnAttr("min-legal-vector-width", width);
    func.addFnAttr("prefer-vector-width", width);
    func.addFnAttr(llvm::Attribute::NoUnwind);
    if (exports.contains(func.getName()))
      func.setVisibility(llvm::GlobalValue::DefaultVisibility);
    else if (!func.hasHiddenVisibility())
      func.setLinkage(llvm::GlobalValue::InternalLinkage);
  }
}

/// Runs LLVM's default per-module pipeline at `optLevel`.
void optimize(llvm::Module &module, llvm::TargetMachine &machine,
              unsigned optLevel) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = optLevel >= 2;
  tuning.SLPVectorization = optLevel >= 2;
  llvm::PassBuilder builder(&machine, tuning);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = optLevel == 0   ? llvm::OptimizationLevel::O0
                                  : optLevel == 1 ? llvm::OptimizationLevel::O1
                                  : optLevel == 2 ? llvm::OptimizationLevel::O2
                                                  : llvm::OptimizationLevel::O3;
  llvm::ModulePassManager passes =
      optLevel == 0 ? builder.buildO0DefaultPipeline(level)
                    : builder.buildPerModuleDefaultPipeline(level);
  passes.run(module, mam);
}

/// Lowers, optimises and code-generates `kernels` into `out` as an object
/// file or assembly.
LogicalResult emitCode(ModuleOp kernels, const CpuTargetOptions &options,
                       llvm::CodeGenFileType fileType, std::string &out) {
  if (options.optLevel > 3)
    return kernels.emitError("expected a CPU optimisation level 0 to 3, but "
                             "got ")
           << options.optLevel;
  llvm::Expected<CpuTargetInfo> target = getCpuTargetInfo(options);
  if (!target)
    return kernels.emitError("cannot target the CPU: ")
           << llvm::toString(target.takeError());
  const CpuTargetInfo &info = *target;
  std::string error;
  std::unique_ptr<llvm::TargetMachine> machine =
      createTargetMachine(info, options.optLevel, error);
  if (!machine)
    return kernels.emitError("cannot target the CPU: ") << error;

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> module = lowerToLLVMIR(kernels, llvmContext);
  if (!module)
    return failure();
  prepareModule(*module, *machine, info, exportedKernels(kernels));
  optimize(*module, *machine, options.optLevel);
  llvm::raw_string_ostream verifyErrors(error);
  if (llvm::verifyModule(*module, &verifyErrors))
    return kernels.emitError("optimised CPU kernels are invalid LLVM IR: ")
           << error;

  llvm::SmallString<0> buffer;
  llvm::raw_svector_ostream stream(buffer);
  llvm::legacy::PassManager codegen;
  if (machine->addPassesToEmitFile(codegen, stream, nullptr, fileType))
    return kernels.emitError("the CPU target cannot emit this file type");
  codegen.run(*module);
  out.assign(buffer.begin(), buffer.end());
  return success();
}

/// Fails, naming them, if `object` references symbols it does not define:
/// the shared object has no libraries to resolve them from.
LogicalResult checkSelfContained(ModuleOp kernels, llvm::StringRef object) {
  llvm::Expected<std::unique_ptr<llvm::object::ObjectFile>> file =
      llvm::object::ObjectFile::createObjectFile(
          llvm::MemoryBufferRef(object, "moec_cpu_kernels.o"));
  if (!file)
    return kernels.emitError("cannot read the emitted CPU object: ")
           << llvm::toString(file.takeError());
  std::vector<std::string> undefined;
  for (const llvm::object::SymbolRef &symbol : (*file)->symbols()) {
    llvm::Expected<uint32_t> flags = symbol.getFlags();
    llvm::Expected<llvm::StringRef> name = symbol.getName();
    if (!flags || !name) {
      llvm::consumeError(flags.takeError());
      llvm::consumeError(name.takeError());
      continue;
    }
    // The GOT symbol is defined by the linker itself.
    if ((*flags & llvm::object::SymbolRef::SF_Undefined) && !name->empty() &&
        *name != "_GLOBAL_OFFSET_TABLE_")
      undefined.push_back(("`" + *name + "`").str());
  }
  if (undefined.empty())
    return success();
  return kernels.emitError("CPU kernels need external symbols ")
         << llvm::join(undefined, ", ")
         << ", but the shared object links no libraries (math functions are "
            "approximated only for f16/bf16/f32)";
}

//===----------------------------------------------------------------------===//
// object → shared object (lld)
//===----------------------------------------------------------------------===//

/// Removes a temporary directory and the files in it when destroyed.
class TempDir {
public:
  std::error_code create() {
    return llvm::sys::fs::createUniqueDirectory("moec-cpu", path);
  }
  std::string file(llvm::StringRef name) const {
    llvm::SmallString<128> result(path);
    llvm::sys::path::append(result, name);
    return std::string(result);
  }
  ~TempDir() {
    if (!path.empty())
      llvm::sys::fs::remove_directories(path);
  }

private:
  llvm::SmallString<128> path;
};

/// Links `object` into a shared object with lld's ELF driver.
FailureOr<std::string> linkSharedObject(ModuleOp kernels,
                                        llvm::StringRef object) {
  TempDir dir;
  if (std::error_code ec = dir.create())
    return kernels.emitError("cannot create a temporary directory for "
                             "linking the CPU object: ")
           << ec.message();
  std::string input = dir.file("kernels.o"), output = dir.file("kernels.so");
  {
    std::error_code ec;
    llvm::raw_fd_ostream file(input, ec);
    if (ec)
      return kernels.emitError("cannot write `")
             << input << "`: " << ec.message();
    file << object;
    file.close();
    if (file.has_error())
      return kernels.emitError("cannot write `") << input << "`";
  }

  // `--no-undefined`: every symbol resolves inside the object. No -l: the
  // shared object has no DT_NEEDED entries.
  const char *args[] = {"ld.lld",
                        "-shared",
                        "--no-undefined",
                        "--build-id=none",
                        "--hash-style=gnu",
                        "-z",
                        "noexecstack",
                        "-z",
                        "relro",
                        "-z",
                        "now",
                        "-soname=moec_cpu.so",
                        "-o",
                        output.c_str(),
                        input.c_str()};
  std::string linkerOutput;
  llvm::raw_string_ostream linkerStream(linkerOutput);
  lld::Result result;
  {
    // lld keeps global state per invocation: one link at a time.
    static std::mutex lldMutex;
    std::lock_guard<std::mutex> lock(lldMutex);
    result = lld::lldMain(args, linkerStream, linkerStream,
                          {{lld::Gnu, &lld::elf::link}});
  }
  if (result.retCode != 0)
    return kernels.emitError("lld failed to link the CPU shared object: ")
           << linkerOutput;

  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> bytes =
      llvm::MemoryBuffer::getFile(output, /*IsText=*/false,
                                  /*RequiresNullTerminator=*/false);
  if (!bytes)
    return kernels.emitError("cannot read the linked CPU shared object: ")
           << bytes.getError().message();
  return (*bytes)->getBuffer().str();
}

} // namespace

FailureOr<std::string>
mlir::moec::cpu::emitSharedObject(ModuleOp kernels,
                                  const CpuTargetOptions &options) {
  std::string object;
  if (failed(emitCode(kernels, options, llvm::CodeGenFileType::ObjectFile,
                      object)) ||
      failed(checkSelfContained(kernels, object)))
    return failure();
  return linkSharedObject(kernels, object);
}

FailureOr<std::string>
mlir::moec::cpu::emitAssembly(ModuleOp kernels,
                              const CpuTargetOptions &options) {
  std::string assembly;
  if (failed(emitCode(kernels, options, llvm::CodeGenFileType::AssemblyFile,
                      assembly)))
    return failure();
  return assembly;
}
