//===- TargetRegistryTest.cpp - The target backend registry -----*- C++ -*-===//
//
// The registry `--target` goes through: the built-in backends and their
// order, the `sm_90` alias, the errors for unknown names and variants, and
// how a `--target` list becomes selections.
//
//===----------------------------------------------------------------------===//

#include "codegen/TargetBackend.h"

#include "gtest/gtest.h"

using namespace mlir::moec;

namespace {

const TargetRegistry &registry() { return TargetRegistry::get(); }

/// The message of `error`, consumed.
std::string messageOf(llvm::Error error) {
  return llvm::toString(std::move(error));
}

TEST(TargetRegistry, ListsBuiltInBackendsInOrder) {
  EXPECT_EQ(registry().getNames(),
            (std::vector<std::string>{"cpu", "sm_80", "sm_89", "sm_90a"}));
  EXPECT_EQ(registry().describeNames(),
            "cpu, cpu:<variant>, sm_80, sm_89, sm_90a, sm_90 (alias of "
            "sm_90a)");
}

TEST(TargetRegistry, LooksUpBackendsByName) {
  const TargetBackend *cpu = registry().lookup("cpu");
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->getName(), "cpu");
  EXPECT_FALSE(cpu->isGpu());
  EXPECT_TRUE(cpu->hasVariants());
  const TargetBackend *sm89 = registry().lookup("sm_89");
  ASSERT_NE(sm89, nullptr);
  ASSERT_NE(sm89->getCudaTargetInfo(), nullptr);
  EXPECT_EQ(sm89->getCudaTargetInfo()->gpuArchitecture, "sm_89");
  EXPECT_TRUE(sm89->getCudaTargetInfo()->hasFp8TensorCores);
  EXPECT_EQ(registry().lookup("sm_70"), nullptr);
  EXPECT_EQ(registry().lookup("cpu:x86-64-v2"), nullptr);
  EXPECT_EQ(registry().lookup(""), nullptr);
}

TEST(TargetRegistry, Sm90IsAnAliasOfSm90a) {
  const TargetBackend *hopper = registry().lookup("sm_90a");
  ASSERT_NE(hopper, nullptr);
  EXPECT_EQ(registry().lookup("sm_90"), hopper);
  EXPECT_EQ(hopper->getName(), "sm_90a");
  EXPECT_EQ(hopper->getCudaTargetInfo()->gpuArchitecture, "sm_90a");
}

TEST(TargetRegistry, UnknownTargetListsRegisteredNames) {
  for (llvm::StringRef list : {"sm_70", "cpu,tpu", "sm_89:fast"}) {
    llvm::Expected<std::vector<TargetSelection>> targets =
        registry().parseTargets(list);
    ASSERT_FALSE(targets) << list.str();
    std::string name = list.contains("tpu") ? "tpu" : list.str();
    EXPECT_EQ(messageOf(targets.takeError()),
              "unknown target '" + name +
                  "'; expected a comma-separated list of cpu, "
                  "cpu:<variant>, sm_80, sm_89, sm_90a, sm_90 (alias of "
                  "sm_90a)");
  }
  llvm::Expected<std::vector<TargetSelection>> none =
      registry().parseTargets(",,");
  ASSERT_FALSE(none);
  EXPECT_EQ(messageOf(none.takeError()),
            "--target names no target; expected e.g. --target=cpu");
}

TEST(TargetRegistry, UnknownCpuVariantListsTheValidOnes) {
  llvm::Expected<std::vector<TargetSelection>> targets =
      registry().parseTargets("cpu:x86-64-v9");
  ASSERT_FALSE(targets);
  EXPECT_NE(messageOf(targets.takeError())
                .find("unknown CPU variant 'x86-64-v9' in "
                      "--target=cpu:x86-64-v9; expected one of host, "
                      "portable, "),
            std::string::npos);
}

TEST(TargetRegistry, SelectsEachBackendOnceInRegistryOrder) {
  llvm::Expected<std::vector<TargetSelection>> targets =
      registry().parseTargets("sm_90, cpu:portable ,sm_80,sm_90a,cpu:portable");
  ASSERT_TRUE(static_cast<bool>(targets)) << messageOf(targets.takeError());
  ASSERT_EQ(targets->size(), 3u);
  EXPECT_EQ((*targets)[0].backend->getName(), "cpu");
  EXPECT_EQ((*targets)[1].backend->getName(), "sm_80");
  EXPECT_EQ((*targets)[2].backend->getName(), "sm_90a");
  // The CPU backend orders and deduplicates its variants when it builds.
  std::string portable = (*targets)[0].variants.front();
  EXPECT_EQ((*targets)[0].variants,
            (std::vector<std::string>{portable, portable}));
  EXPECT_TRUE((*targets)[2].variants.empty());
}

TEST(TargetRegistry, PlainCpuSelectsPortableAndHostVariants) {
  llvm::Expected<std::vector<TargetSelection>> targets =
      registry().parseTargets("cpu");
  ASSERT_TRUE(static_cast<bool>(targets)) << messageOf(targets.takeError());
  ASSERT_EQ(targets->size(), 1u);
  llvm::Expected<std::vector<std::string>> portable =
      (*targets)[0].backend->resolveVariants(llvm::StringRef("portable"));
  llvm::Expected<std::vector<std::string>> host =
      (*targets)[0].backend->resolveVariants(llvm::StringRef("host"));
  ASSERT_TRUE(portable && host);
  EXPECT_EQ((*targets)[0].variants,
            (std::vector<std::string>{portable->front(), host->front()}));
}

TEST(TargetRegistry, CpuBackendBuildsItsLoweringPipeline) {
  mlir::MLIRContext context;
  mlir::OpPassManager cpu(mlir::ModuleOp::getOperationName());
  registry().lookup("cpu")->buildLoweringPipeline(cpu);
  EXPECT_GT(cpu.size(), 5u);
  // The CUDA backends emit CUDA C++ without passes (yet).
  mlir::OpPassManager sm89(mlir::ModuleOp::getOperationName());
  registry().lookup("sm_89")->buildLoweringPipeline(sm89);
  EXPECT_EQ(sm89.size(), 0u);
}

TEST(TargetRegistry, HelpDescribesEveryBackendAndAlias) {
  std::string help = registry().describeBackends();
  for (llvm::StringRef line : {"  cpu: ", "  sm_80: ", "  sm_89: ",
                               "  sm_90a: ", "  sm_90: compiled as sm_90a\n"})
    EXPECT_NE(help.find(line.str()), std::string::npos) << line.str();
}

} // namespace
