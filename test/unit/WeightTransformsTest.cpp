//===- WeightTransformsTest.cpp - moe.weight on the host --------*- C++ -*-===//
//
// `readWeight` through an in-memory `WeightSource`: the interface is all the
// reference interpreter and the weight folder need to read weights, so a
// fake one exercises stacking, transposition, expert slices and the errors
// without a checkpoint.
//
//===----------------------------------------------------------------------===//

#include "dialects/WeightTransforms.h"
#include "dialects/MoEDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/StringMap.h"

#include <gtest/gtest.h>

#include <string>

using namespace mlir;
using namespace mlir::moec;

namespace {

/// Tensors by name, each one byte per element, whatever file is asked for.
class MemorySource : public WeightSource {
public:
  llvm::Error read(moe::TensorRefAttr ref, Type element,
                   ArrayRef<int64_t> shape,
                   std::vector<uint8_t> &into) override {
    auto it = tensors.find(ref.getName());
    if (it == tensors.end())
      return makeWeightError(ref, "not in memory");
    into.insert(into.end(), it->second.begin(), it->second.end());
    return llvm::Error::success();
  }
  llvm::StringMap<std::vector<uint8_t>> tensors;
};

class WeightTransformsTest : public ::testing::Test {
protected:
  WeightTransformsTest() {
    context.loadDialect<moe::MoEDialect, func::FuncDialect>();
  }

  /// The first `moe.weight` of `ir`, a module kept alive by the fixture.
  moe::WeightOp parseWeight(const std::string &ir) {
    module = parseSourceString<ModuleOp>(ir, &context);
    moe::WeightOp weight;
    if (module)
      module->walk([&](moe::WeightOp op) { weight = op; });
    return weight;
  }

  MLIRContext context;
  OwningOpRef<ModuleOp> module;
};

TEST_F(WeightTransformsTest, StacksAndTransposesExpertByExpert) {
  moe::WeightOp weight = parseWeight(R"mlir(
    func.func @f() -> tensor<2x3x2xi8> {
      %w = moe.weight [#moe.tensor_ref<"m.safetensors", "e0">,
                       #moe.tensor_ref<"m.safetensors", "e1">]
          stored tensor<2x3xi8> {transforms = [#moe.stack, #moe.transpose]}
          : tensor<2x3x2xi8>
      return %w : tensor<2x3x2xi8>
    })mlir");
  ASSERT_TRUE(weight);
  MemorySource source;
  source.tensors["e0"] = {1, 2, 3, 4, 5, 6};
  source.tensors["e1"] = {7, 8, 9, 10, 11, 0xff};
  FailureOr<SmallVector<HostTensor, 2>> whole = readWeight(weight, source);
  ASSERT_TRUE(succeeded(whole));
  ASSERT_EQ(whole->size(), 1u);
  EXPECT_EQ(ArrayRef<int64_t>((*whole)[0].shape), ArrayRef<int64_t>({2, 3, 2}));
  EXPECT_EQ((*whole)[0].bytes,
            (std::vector<uint8_t>{1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 0xff}));
  // Expert 1 alone, without the leading dimension; i8 is sign-extended.
  FailureOr<SmallVector<HostTensor, 2>> slice = readWeight(weight, source, 1);
  ASSERT_TRUE(succeeded(slice));
  EXPECT_EQ(ArrayRef<int64_t>((*slice)[0].shape), ArrayRef<int64_t>({3, 2}));
  EXPECT_EQ(decodeIntegers((*slice)[0]),
            (std::vector<int64_t>{7, 10, 8, 11, 9, -1}));
}

TEST_F(WeightTransformsTest, SourceErrorsNameTheTensorAndItsFile) {
  moe::WeightOp weight = parseWeight(R"mlir(
    func.func @f() -> tensor<2xi8> {
      %w = moe.weight [#moe.tensor_ref<"m.safetensors", "missing">]
          stored tensor<2xi8> : tensor<2xi8>
      return %w : tensor<2xi8>
    })mlir");
  ASSERT_TRUE(weight);
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  MemorySource source;
  EXPECT_TRUE(failed(readWeight(weight, source)));
  EXPECT_NE(message.find("tensor 'missing' of 'm.safetensors': not in memory"),
            std::string::npos)
      << message;
}

TEST_F(WeightTransformsTest, BooleansDecodeAsZeroOrOne) {
  HostTensor t;
  t.shape = {3};
  t.elementType = IntegerType::get(&context, 1);
  t.bytes = {0, 1, 2};
  EXPECT_EQ(elementBytes(t.elementType), 1);
  EXPECT_EQ(decodeIntegers(t), (std::vector<int64_t>{0, 1, 1}));
}

} // namespace
