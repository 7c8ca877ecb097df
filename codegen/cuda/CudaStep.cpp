//===- CudaStep.cpp - Step contexts, dispatch and fused quantization ------===//
//
// The shared half of the CUDA emitters: building a step's parameter list
// from the plan, dispatching an op to its emitter family, and the row
// quantization kernel that every op with a fused `quantize` scheme appends.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/CudaStep.h"

#include "dialects/MoEDialect.h"
#include "passes/Plan.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::moec;
using namespace mlir::moec::cuda;

//===----------------------------------------------------------------------===//
// GridExtent, StepArg
//===----------------------------------------------------------------------===//

int64_t GridExtent::at(int64_t tokens) const {
  int64_t n = constant;
  if (perToken != 0)
    n += llvm::divideCeil(tokens * perToken, divisor);
  return std::max<int64_t>(n, 1);
}

StringRef StepArg::elementCType() const {
  Type element = type.getElementType();
  if (element.isF32())
    return "float";
  if (element.isBF16())
    return "moec_bf16";
  if (isa<Float8E4M3FNType>(element))
    return "moec_fp8";
  if (element.isInteger(32))
    return "int";
  if (element.isInteger(64))
    return "long long";
  if (element.isInteger(8))
    return "unsigned char";
  if (element.isInteger(1))
    return "bool";
  return "";
}

std::string StepArg::declaration() const {
  return llvm::formatv("{0}{1} *__restrict__ {2}", isResult ? "" : "const ",
                       elementCType(), name)
      .str();
}

int64_t StepArg::rowElements() const {
  int64_t n = 1;
  for (int64_t d : type.getShape().drop_front(type.getRank() > 0 ? 1 : 0))
    n *= d;
  return n;
}

bool StepArg::isPerToken() const {
  return type.getRank() > 0 && type.isDynamicDim(0);
}

//===----------------------------------------------------------------------===//
// StepContext
//===----------------------------------------------------------------------===//

FailureOr<StepContext> StepContext::create(Operation *op, int64_t maxTokens,
                                           const CudaCodegenOptions &options) {
  StepContext ctx;
  ctx.op = op;
  ctx.options = options;
  std::optional<int64_t> step = getStepIndex(op);
  if (!step)
    return op->emitError("not a planned step (no `moe.step`)");
  ctx.step = *step;
  ctx.maxTokens = maxTokens;
  ctx.kernelName = (kStepKernelPrefix + Twine(*step)).str();
  SmallVector<Value> values(op->getOperands());
  values.append(op->result_begin(), op->result_end());
  for (auto [i, v] : llvm::enumerate(values)) {
    StepArg arg;
    arg.value = v;
    arg.type = dyn_cast<RankedTensorType>(v.getType());
    if (!arg.type)
      return ctx.fail("expected ranked tensor operands and results"), failure();
    for (int64_t d = 1; d < arg.type.getRank(); ++d)
      if (arg.type.isDynamicDim(d))
        return ctx.fail("only the leading dimension may be dynamic"), failure();
    arg.rowsPerToken = getRowsPerToken(v);
    arg.isResult = i >= op->getNumOperands();
    arg.isWeight = !arg.isResult && isPlannedConstant(v);
    arg.name = "a" + std::to_string(i);
    if (arg.elementCType().empty())
      return ctx.fail(Twine("unsupported element type of argument ") +
                      Twine(i)),
             failure();
    ctx.args.push_back(std::move(arg));
  }
  return ctx;
}

const StepArg &StepContext::arg(Value value) const {
  for (const StepArg &a : args)
    if (a.value == value)
      return a;
  llvm_unreachable("not an operand or result of the step");
}

std::string StepContext::kernel(StringRef suffix) const {
  if (suffix.empty())
    return kernelName;
  return (kernelName + "_" + suffix).str();
}

std::string StepContext::parameterList(unsigned tensorMaps) const {
  std::string list;
  for (const StepArg &a : args)
    list += a.declaration() + ", ";
  list += "void *__restrict__ workspace, long long tokens";
  for (unsigned j = 0; j < tensorMaps; ++j)
    list += ", const __grid_constant__ moec_tensor_map tm" + std::to_string(j);
  return list;
}

unsigned StepContext::indexOf(const StepArg &arg) const {
  assert(&arg >= args.begin() && &arg < args.end() && "not an argument");
  return unsigned(&arg - args.begin());
}

InFlightDiagnostic StepContext::fail(const Twine &message) const {
  return op->emitError() << "cannot emit CUDA for step " << step << ": "
                         << message;
}

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

FailureOr<CudaStep> mlir::moec::cuda::emitCudaStep(const StepContext &ctx) {
  using Emit = FailureOr<CudaStep> (*)(const StepContext &);
  Emit emit =
      llvm::TypeSwitch<Operation *, Emit>(ctx.op)
          .Case<moe::EmbedOp, moe::AddOp, moe::MulOp, moe::SiluMulOp,
                moe::SliceOp, moe::ConcatOp, moe::ExpandOp, moe::QuantizeOp,
                moe::DequantizeOp, moe::SigmoidGateOp>(
              [](auto) { return &emitElementwiseStep; })
          .Case<moe::RmsNormOp, moe::AddRmsNormOp, moe::RopeOp>(
              [](auto) { return &emitNormStep; })
          .Case<moe::RouterOp, moe::DispatchOp, moe::CombineOp>(
              [](auto) { return &emitRoutingStep; })
          .Case<moe::AttentionOp>([](auto) { return &emitAttentionStep; })
          .Case<moe::MatmulOp, moe::Fp8MatmulOp, moe::GroupedMatmulOp,
                moe::Fp8GroupedMatmulOp>([](auto) { return &emitGemmStep; })
          .Case<moe::UnaryOp, moe::BinaryOp, moe::CompareOp, moe::SelectOp,
                moe::CastOp, moe::SoftmaxOp, moe::ReduceOp, moe::TopKOp,
                moe::TransposeOp, moe::BatchMatmulOp, moe::GatherElementsOp,
                moe::ScatterElementsOp, moe::OneHotOp>(
              [](auto) { return &emitGenericStep; })
          .Default([](Operation *) { return Emit(nullptr); });
  if (!emit)
    return ctx.fail("the op has no CUDA kernel"), failure();
  return emit(ctx);
}

//===----------------------------------------------------------------------===//
// Row quantization
//===----------------------------------------------------------------------===//

// One warp per [1, BLOCK] block of one row; the arithmetic of runtime/fp8's
// quantizeBlocks: amax over finite magnitudes (an integer max of the bit
// patterns), scale = max(amax, 1e-4) / 448 (optionally a power of two),
// q = e4m3(x / scale).
static const char kQuantizeRows[] = R"cuda(
template <int COLS, int BLOCK, bool POW2>
__device__ __forceinline__ void moec_quantize_rows(
    const float *__restrict__ x, moec_fp8 *__restrict__ q,
    float *__restrict__ scale, long long rows) {
  constexpr int kBlocks = (COLS + BLOCK - 1) / BLOCK;
  const long long row = blockIdx.x;
  if (row >= rows)
    return;
  const int c0 = blockIdx.y * BLOCK;
  const int c1 = min(c0 + BLOCK, COLS);
  const float *xr = x + row * COLS;
  unsigned int amax = 0u;
  for (int c = c0 + (int)threadIdx.x; c < c1; c += 32) {
    const unsigned int a = __float_as_uint(xr[c]) & 0x7FFFFFFFu;
    amax = max(amax, a < 0x7F800000u ? a : 0u);
  }
  for (int o = 16; o > 0; o >>= 1)
    amax = max(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  const float s = moec_block_scale(__uint_as_float(amax), POW2);
  if (threadIdx.x == 0)
    scale[row * kBlocks + blockIdx.y] = s;
  for (int c = c0 + (int)threadIdx.x; c < c1; c += 32)
    q[row * COLS + c] = moec_float_to_fp8(xr[c] / s);
}
)cuda";

void mlir::moec::cuda::appendQuantizeRows(const StepContext &ctx,
                                          CudaStep &step, const StepArg &x,
                                          const StepArg &q,
                                          const StepArg &scale, int64_t block,
                                          bool pow2, StringRef suffix) {
  step.libraries.push_back({"quantize_rows", kQuantizeRows});
  int64_t cols = x.type.getRank() ? x.type.getShape().back() : 1;
  int64_t rowsPerToken = x.rowsPerToken * (x.rowElements() / cols);
  std::string rows =
      x.isPerToken() ? llvm::formatv("tokens * {0}LL", rowsPerToken).str()
                     : std::to_string(x.type.getNumElements() / cols) + "LL";
  std::string name = ctx.kernel(suffix);
  step.source +=
      llvm::formatv(R"cuda(
extern "C" __global__ void __launch_bounds__(32) {0}({1}) {{
  moec_quantize_rows<{2}, {3}, {4}>({5}, {6}, {7}, {8});
}
)cuda",
                    name, ctx.parameterList(), cols, block,
                    pow2 ? "true" : "false", x.name, q.name, scale.name, rows)
          .str();
  CudaLaunch launch;
  launch.kernel = name;
  launch.grid[0] = x.isPerToken()
                       ? GridExtent::tokens(rowsPerToken)
                       : GridExtent::fixed(x.type.getNumElements() / cols);
  launch.grid[1] = GridExtent::fixed(llvm::divideCeil(cols, block));
  launch.block = {32, 1, 1};
  step.launches.push_back(std::move(launch));
}

LogicalResult mlir::moec::cuda::appendFusedQuantize(const StepContext &ctx,
                                                    CudaStep &step) {
  auto fused = dyn_cast<moe::FusedQuantizeOpInterface>(ctx.op);
  if (!fused || !fused.getQuantizeScheme())
    return success();
  moe::BlockScaleAttr scheme = fused.getQuantizeScheme();
  ArrayRef<int64_t> block = scheme.getBlock();
  if (scheme.getFormat() != moe::Fp8Format::e4m3fn || block.size() != 2 ||
      block[0] != 1 || scheme.getZeroPoint() != 0)
    return ctx.fail("fused quantization must be e4m3fn in [1, B] blocks");
  const StepArg &x = ctx.arg(fused.getQuantizeSource());
  if (!x.type.getElementType().isF32())
    return ctx.fail("fused quantization reads an f32 result");
  appendQuantizeRows(ctx, step, x, ctx.arg(fused.getQuantizedResult()),
                     ctx.arg(fused.getQuantizedScaleResult()), block[1],
                     scheme.getPow2(), "quantize");
  return success();
}
