//===- OnnxDialect.cpp - The onnx import dialect ----------------*- C++ -*-===//
//
// Registers the `onnx` dialect and implements the small helpers of
// `onnx.node` that the legalisation patterns use to read a node's inputs and
// attributes, and the verifier of `onnx.initializer`.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moec::onnx_ir;

#include "importers/onnx/OnnxDialect.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "importers/onnx/OnnxTypes.cpp.inc"

#define GET_OP_CLASSES
#include "importers/onnx/OnnxOps.cpp.inc"

void OnnxDialect::initialize() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "importers/onnx/OnnxTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "importers/onnx/OnnxOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// onnx.node
//===----------------------------------------------------------------------===//

StringRef NodeOp::getCanonicalDomain() {
  StringRef domain = getDomain();
  return domain == "ai.onnx" ? StringRef() : domain;
}

Value NodeOp::getInputOrNull(unsigned index) {
  if (index >= getInputs().size())
    return {};
  Value input = getInputs()[index];
  return input.getDefiningOp<NoneOp>() ? Value() : input;
}

Attribute NodeOp::getNodeAttr(StringRef name) {
  return getNodeAttributes().get(name);
}

std::string NodeOp::describe() {
  StringRef domain = getCanonicalDomain();
  return ("(" + (domain.empty() ? StringRef("ai.onnx") : domain) + ", " +
          getOpType() + ", " + Twine(getOpset()) + ", \"" + getName() + "\")")
      .str();
}

//===----------------------------------------------------------------------===//
// onnx.initializer
//===----------------------------------------------------------------------===//

LogicalResult InitializerOp::verify() {
  bool external = getLocation().has_value();
  if ((getOffset() || getLength() || getChecksum()) && !external)
    return emitOpError("expected `offset`, `length` and `checksum` only with "
                       "a `location`");
  if (external && getValue())
    return emitOpError("expected either `value` or a `location`, not both");
  if (getValue() && getValue()->getType() != getResult().getType())
    return emitOpError("expected `value` of the result type ")
           << getResult().getType() << ", but got " << getValue()->getType();
  return success();
}
