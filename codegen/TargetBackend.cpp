//===- TargetBackend.cpp - Target backends and their registry ---*- C++ -*-===//
//
// The registry of target backends (`cpu`, the CUDA architectures and their
// aliases), the parsing of `--target` lists against it, and the codegen
// phase's options. The backends themselves live in CpuBackend.cpp and
// CudaBackend.cpp.
//
//===----------------------------------------------------------------------===//

#include "codegen/TargetBackend.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace mlir::moec;

//===----------------------------------------------------------------------===//
// DiagnosedError
//===----------------------------------------------------------------------===//

char DiagnosedError::ID = 0;

void DiagnosedError::log(llvm::raw_ostream &os) const {
  os << "compilation failed (see the diagnostics above)";
}

std::error_code DiagnosedError::convertToErrorCode() const {
  return llvm::inconvertibleErrorCode();
}

llvm::Error mlir::moec::makeDiagnosedError() {
  return llvm::make_error<DiagnosedError>();
}

//===----------------------------------------------------------------------===//
// TargetOptions, TargetCode
//===----------------------------------------------------------------------===//

void TargetOptions::bindOptions(OptionsBinder &binder) {
  namespace cl = llvm::cl;
  // The help lists the registered backends; the CPU's variants are its own.
  static const std::string targetHelp =
      "Comma-separated targets to generate code for (default: cpu):\n" +
      TargetRegistry::get().describeBackends() +
      "CUDA targets need libnvrtc at compile time";
  binder.opt("target", targets, cl::value_desc("list"), cl::desc(targetHelp));
  binder.opt("cuda-tma", cudaTma,
             cl::desc("On sm_90a (sm_90), load the FP8 GEMM's operand tiles "
                      "with TMA (cp.async.bulk.tensor through tensor maps the "
                      "runtime encodes at load) instead of cp.async; the "
                      "kernels for other targets ignore the maps (default: "
                      "on; --cuda-tma=false for the cp.async path "
                      "everywhere)"));
  binder.opt("emit-ptx", emitPtx,
             cl::desc("With --compile-to=codegen: print the PTX NVRTC makes "
                      "for each CUDA target instead of the CUDA C++ source"));
  binder.opt("test-cpu-so", testCpuSharedObject, cl::Hidden,
             cl::value_desc("file"),
             cl::desc("Tests only: embed this file as the artifact's cpu.so "
                      "instead of building the kernels (the artifact will not "
                      "run correctly)"));
}

void TargetCode::addTo(ArtifactOptions &options) const {
  options.targets = targets;
  options.cubins = cubins;
  options.nvrtcVersion = nvrtcVersion;
  options.cudaProgram = cudaProgram ? &*cudaProgram : nullptr;
}

//===----------------------------------------------------------------------===//
// TargetBackend
//===----------------------------------------------------------------------===//

TargetBackend::~TargetBackend() = default;

llvm::Expected<std::vector<std::string>>
TargetBackend::resolveVariants(std::optional<llvm::StringRef> variant) const {
  if (variant)
    return llvm::createStringError("target '" + getName() +
                                   "' has no variants, but got '" + *variant +
                                   "'");
  return std::vector<std::string>();
}

//===----------------------------------------------------------------------===//
// TargetRegistry
//===----------------------------------------------------------------------===//

const TargetRegistry &TargetRegistry::get() {
  static const TargetRegistry registry = [] {
    TargetRegistry r;
    r.add(createCpuBackend());
    for (const cuda::TargetInfo &info : cuda::getCudaTargets())
      r.add(createCudaBackend(info));
    // Hopper's wgmma needs the arch-specific `a` variant; plain `sm_90` is
    // what users write.
    r.addAlias("sm_90", "sm_90a");
    return r;
  }();
  return registry;
}

void TargetRegistry::add(std::unique_ptr<TargetBackend> backend) {
  backends.push_back(std::move(backend));
}

void TargetRegistry::addAlias(llvm::StringRef alias, llvm::StringRef name) {
  aliases.emplace_back(alias.str(), name.str());
}

const TargetBackend *TargetRegistry::lookup(llvm::StringRef name) const {
  for (const auto &[alias, target] : aliases)
    if (alias == name)
      name = target;
  for (const std::unique_ptr<TargetBackend> &backend : backends)
    if (backend->getName() == name)
      return backend.get();
  return nullptr;
}

std::vector<std::string> TargetRegistry::getNames() const {
  std::vector<std::string> names;
  for (const std::unique_ptr<TargetBackend> &backend : backends)
    names.push_back(backend->getName().str());
  return names;
}

std::string TargetRegistry::describeNames() const {
  std::vector<std::string> names;
  for (const std::unique_ptr<TargetBackend> &backend : backends) {
    names.push_back(backend->getName().str());
    if (backend->hasVariants())
      names.push_back((backend->getName() + ":<variant>").str());
  }
  for (const auto &[alias, target] : aliases)
    names.push_back(alias + " (alias of " + target + ")");
  return llvm::join(names, ", ");
}

std::string TargetRegistry::describeBackends() const {
  std::string text;
  for (const std::unique_ptr<TargetBackend> &backend : backends)
    text +=
        ("  " + backend->getName() + ": " + backend->getDescription() + "\n")
            .str();
  for (const auto &[alias, target] : aliases)
    text += "  " + alias + ": compiled as " + target + "\n";
  return text;
}

llvm::Expected<std::vector<TargetSelection>>
TargetRegistry::parseTargets(llvm::StringRef list) const {
  // Variants asked of each backend, indexed like `backends`.
  std::vector<std::optional<std::vector<std::string>>> asked(backends.size());
  llvm::SmallVector<llvm::StringRef> entries;
  list.split(entries, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (llvm::StringRef entry : entries) {
    entry = entry.trim();
    auto [name, variant] = entry.split(':');
    const TargetBackend *backend = lookup(name);
    bool hasSuffix = name.size() != entry.size();
    if (!backend || (hasSuffix && !backend->hasVariants()))
      return llvm::createStringError("unknown target '" + entry +
                                     "'; expected a comma-separated list of " +
                                     describeNames());
    llvm::Expected<std::vector<std::string>> variants =
        backend->resolveVariants(hasSuffix ? std::optional(variant.trim())
                                           : std::nullopt);
    if (!variants)
      return variants.takeError();
    size_t index =
        llvm::find_if(backends,
                      [&](const auto &b) { return b.get() == backend; }) -
        backends.begin();
    if (!asked[index])
      asked[index].emplace();
    llvm::append_range(*asked[index], *variants);
  }
  std::vector<TargetSelection> selections;
  for (auto [backend, variants] : llvm::zip(backends, asked))
    if (variants)
      selections.push_back({backend.get(), *variants});
  if (selections.empty())
    return llvm::createStringError(
        "--target names no target; expected e.g. --target=cpu");
  return selections;
}
