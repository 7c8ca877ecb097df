//===- AbiWrappers.cpp - --moec-cpu-abi-wrappers ----------------*- C++ -*-===//
//
// Gives every kernel of a CPU module the runtime's calling convention
// `void name(void *const *args, int64_t tokens)`: the kernel is renamed and
// made internal, and a wrapper under its name builds the memref descriptors
// from the bare pointers and the token count before calling it.
//
//===----------------------------------------------------------------------===//

#include "codegen/cpu/Passes.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moec::cpu {
#define GEN_PASS_DEF_CPUABIWRAPPERSPASS
#include "codegen/cpu/Passes.h.inc"
} // namespace mlir::moec::cpu

using namespace mlir;
using namespace mlir::moec::cpu;

namespace {

//===----------------------------------------------------------------------===//
// Kernel signature checks
//===----------------------------------------------------------------------===//

/// Checks that `kernel` can be called through the ABI: no results, and
/// memref arguments with an identity layout whose only dynamic dimension is
/// the leading one.
LogicalResult verifyKernelSignature(func::FuncOp kernel) {
  FunctionType type = kernel.getFunctionType();
  if (type.getNumResults() != 0)
    return kernel.emitOpError("expected CPU kernel to have no results, but it "
                              "has ")
           << type.getNumResults();
  for (auto [index, argType] : llvm::enumerate(type.getInputs())) {
    auto memref = dyn_cast<MemRefType>(argType);
    if (!memref)
      return kernel.emitOpError("expected CPU kernel argument #")
             << index << " to be a memref, but got " << argType;
    if (!memref.getLayout().isIdentity())
      return kernel.emitOpError("expected CPU kernel argument #")
             << index << " to have an identity layout, but got " << argType;
    if (!memref.getElementType().isIntOrFloat())
      return kernel.emitOpError("expected CPU kernel argument #")
             << index << " to have integer or float elements, but got "
             << argType;
    for (int64_t dim = 1; dim < memref.getRank(); ++dim)
      if (memref.isDynamicDim(dim))
        return kernel.emitOpError("expected only the leading (token) "
                                  "dimension of CPU kernel argument #")
               << index << " to be dynamic, but got " << argType;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Wrapper construction
//===----------------------------------------------------------------------===//

/// Builds, at `b`'s insertion point, the LLVM memref descriptor `descType`
/// of a row-major memref of type `type` at `base`, taking a dynamic leading
/// size from `tokens`, and casts it to `type`.
Value buildMemRef(OpBuilder &b, Location loc, MemRefType type,
                  LLVM::LLVMStructType descType, Value base, Value tokens) {
  Type i64 = b.getI64Type();
  auto constant = [&](int64_t value) -> Value {
    return LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(value));
  };
  Value desc = LLVM::PoisonOp::create(b, loc, descType);
  // Allocated and aligned pointer are both the base; the offset is zero.
  desc = LLVM::InsertValueOp::create(b, loc, desc, base, ArrayRef<int64_t>{0});
  desc = LLVM::InsertValueOp::create(b, loc, desc, base, ArrayRef<int64_t>{1});
  desc = LLVM::InsertValueOp::create(b, loc, desc, constant(0),
                                     ArrayRef<int64_t>{2});
  int64_t rank = type.getRank();
  int64_t stride = 1;
  for (int64_t dim = rank - 1; dim >= 0; --dim) {
    Value size =
        type.isDynamicDim(dim) ? tokens : constant(type.getDimSize(dim));
    desc = LLVM::InsertValueOp::create(b, loc, desc, size,
                                       ArrayRef<int64_t>{3, dim});
    // Only dimension 0 may be dynamic, so every stride is static.
    desc = LLVM::InsertValueOp::create(b, loc, desc, constant(stride),
                                       ArrayRef<int64_t>{4, dim});
    if (dim > 0)
      stride *= type.getDimSize(dim);
  }
  return UnrealizedConversionCastOp::create(b, loc, type, desc).getResult(0);
}

/// Renames `kernel` to `<name>.impl`, makes it internal, and creates the ABI
/// wrapper `<name>(args, tokens)` before it.
LogicalResult wrapKernel(func::FuncOp kernel, SymbolTable &symbols,
                         const LLVMTypeConverter &converter) {
  if (failed(verifyKernelSignature(kernel)))
    return failure();
  MLIRContext *ctx = kernel.getContext();
  Location loc = kernel.getLoc();
  std::string name = kernel.getSymName().str();
  std::string implName = name + kKernelImplSuffix.str();
  if (symbols.lookup(implName))
    return kernel.emitOpError("cannot wrap CPU kernel `")
           << name << "`: symbol `" << implName << "` already exists";

  // The kernel itself becomes an internal detail of the shared object.
  if (failed(symbols.rename(kernel, StringAttr::get(ctx, implName))))
    return failure();
  kernel.setPrivate();
  kernel->setAttr("llvm.linkage",
                  LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));

  OpBuilder b(kernel);
  auto ptrType = LLVM::LLVMPointerType::get(ctx);
  auto wrapperType =
      FunctionType::get(ctx, {ptrType, b.getI64Type()}, TypeRange{});
  auto wrapper = func::FuncOp::create(b, loc, name, wrapperType);
  symbols.insert(wrapper);
  Block *entry = wrapper.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value args = entry->getArgument(0);
  Value tokens = entry->getArgument(1);

  SmallVector<Value> operands;
  for (auto [index, argType] :
       llvm::enumerate(kernel.getFunctionType().getInputs())) {
    auto memref = cast<MemRefType>(argType);
    auto descType =
        dyn_cast_or_null<LLVM::LLVMStructType>(converter.convertType(memref));
    if (!descType)
      return kernel.emitOpError("cannot build an LLVM descriptor for CPU "
                                "kernel argument #")
             << index << " of type " << memref;
    // args[index]: the base pointer of the argument.
    Value slot = LLVM::GEPOp::create(
        b, loc, ptrType, ptrType, args,
        ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(index)});
    Value base = LLVM::LoadOp::create(b, loc, ptrType, slot);
    operands.push_back(buildMemRef(b, loc, memref, descType, base, tokens));
  }
  func::CallOp::create(b, loc, kernel, operands);
  func::ReturnOp::create(b, loc);
  return success();
}

} // namespace

Value mlir::moec::cpu::buildAbiMemRef(OpBuilder &b, Location loc,
                                      MemRefType type, Value base,
                                      Value tokens) {
  LLVMTypeConverter converter(b.getContext());
  auto descType = cast<LLVM::LLVMStructType>(converter.convertType(type));
  return buildMemRef(b, loc, type, descType, base, tokens);
}

namespace {

//===----------------------------------------------------------------------===//
// --moec-cpu-abi-wrappers
//===----------------------------------------------------------------------===//

struct CpuAbiWrappersPass
    : mlir::moec::cpu::impl::CpuAbiWrappersPassBase<CpuAbiWrappersPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    // The descriptor layout must be the one finalize-memref-to-llvm uses.
    LLVMTypeConverter converter(&getContext());
    SmallVector<func::FuncOp> kernels;
    for (auto func : module.getOps<func::FuncOp>())
      if (func.isPublic() && !func.isExternal())
        kernels.push_back(func);
    for (func::FuncOp kernel : kernels)
      if (failed(wrapKernel(kernel, symbols, converter)))
        return signalPassFailure();
  }
};

} // namespace
