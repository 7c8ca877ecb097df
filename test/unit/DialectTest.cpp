//===- DialectTest.cpp - C++ API of the moe dialect -------------*- C++ -*-===//
//
// Tests what lit cannot reach easily: building `moe` IR through the C++ API
// (as the importers do), attribute helpers, and the phase names of the
// pipeline.
//
//===----------------------------------------------------------------------===//

#include "dialects/MoEDialect.h"
#include "passes/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::moe;

namespace {

class DialectTest : public ::testing::Test {
protected:
  DialectTest() { context.loadDialect<MoEDialect, func::FuncDialect>(); }
  MLIRContext context;
};

TEST_F(DialectTest, ScaleShapeRoundsPartialBlocksUp) {
  auto scheme = BlockScaleAttr::get(&context, Fp8Format::e4m3fn, {128, 128},
                                    ScalePlacement::row_major, false);
  EXPECT_EQ(scheme.getScaleShape({300, 200}), (SmallVector<int64_t>{3, 2}));
  EXPECT_EQ(scheme.getScaleShape({8, 128, 129}),
            (SmallVector<int64_t>{8, 1, 2}));
  auto act = BlockScaleAttr::get(&context, Fp8Format::e4m3fn, {1, 128},
                                 ScalePlacement::col_major, false);
  EXPECT_EQ(act.getScaleShape({ShapedType::kDynamic, 7168}),
            (SmallVector<int64_t>{ShapedType::kDynamic, 56}));
  EXPECT_TRUE(isa<Float8E4M3FNType>(scheme.getElementType()));
}

TEST_F(DialectTest, InvalidRoutingIsRejectedWithItsMessage) {
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  auto emit = [&] { return emitError(UnknownLoc::get(&context)); };
  auto bad = RoutingAttr::getChecked(
      llvm::function_ref<InFlightDiagnostic()>(emit), &context,
      ScoringFunc::sigmoid, /*k=*/int64_t(4), /*n_group=*/int64_t(4),
      /*topk_group=*/int64_t(5), GroupScore::top2_sum, true,
      llvm::APFloat(2.5));
  EXPECT_FALSE(bad);
  EXPECT_EQ(message, "expected 1 <= `topk_group` <= n_group = 4, but got "
                     "topk_group = 5");
}

TEST_F(DialectTest, BuildsAndVerifiesAnMoELayer) {
  OpBuilder b(&context);
  Location loc = b.getUnknownLoc();
  auto module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module.getBody());
  auto bf16 = b.getBF16Type();
  auto f32 = b.getF32Type();
  int64_t t = ShapedType::kDynamic, h = 64, e = 8, i = 32;
  auto xType = RankedTensorType::get({t, h}, f32);
  auto func = func::FuncOp::create(b, loc, "layer",
                                   b.getFunctionType({xType}, {xType}));
  b.setInsertionPointToEnd(func.addEntryBlock());

  auto weight = [&](StringRef name, ArrayRef<int64_t> shape) {
    auto type = RankedTensorType::get(shape, bf16);
    auto ref = TensorRefAttr::get(&context, "model.safetensors", name);
    return WeightOp::create(b, loc, type, Type(), b.getArrayAttr({ref}),
                            TypeAttr::get(type), b.getArrayAttr({}),
                            ArrayAttr(), BlockScaleAttr(), WeightRoleAttr())
        .getResult();
  };
  Value gate = weight("gate", {e, h});
  Value w1 = weight("w1", {e, i, h}), w3 = weight("w3", {e, i, h});
  Value w2 = weight("w2", {e, h, i});
  auto routing =
      RoutingAttr::get(&context, ScoringFunc::softmax, int64_t(2), int64_t(1),
                       int64_t(1), GroupScore::none, true, llvm::APFloat(1.0));
  Value x = func.getArgument(0);
  auto layer = MoEOp::create(b, loc, xType, x, gate, Value(), w1, w3, w2,
                             Value(), Value(), Value(), Value(), routing);
  func::ReturnOp::create(b, loc, layer.getResult());
  EXPECT_TRUE(succeeded(verify(module)));

  // Swapping the down projection for the up projection breaks its shape.
  layer.getDownProjMutable().assign(w3);
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  EXPECT_TRUE(failed(verify(module)));
  EXPECT_EQ(message, "'moe.moe' op expected `down_proj` of shape [8, 64, 32], "
                     "but got [8, 32, 64]");
  module->erase();
}

TEST(PipelineTest, PhaseNamesRoundTrip) {
  for (llvm::StringRef name :
       {"import", "moe", "fused", "fp8", "planned", "codegen"}) {
    std::optional<mlir::moec::Phase> phase = mlir::moec::parsePhase(name);
    ASSERT_TRUE(phase.has_value()) << name.str();
    EXPECT_EQ(mlir::moec::stringifyPhase(*phase), name);
  }
  EXPECT_FALSE(mlir::moec::parsePhase("artifact").has_value());
}

} // namespace
