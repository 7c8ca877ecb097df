//===- ArtifactEmitter.cpp - Planned module to a .moea file -----*- C++ -*-===//
//
// Turns the plan of `@forward` into a manifest (buffers from the arena
// offsets, one weight per constant a step reads, one step per planned op
// with its operands then its results as arguments) and writes the artifact
// through the runtime's streaming, atomic `ArtifactWriter`. The runtime's
// `Status` becomes a diagnostic here, once.
//
//===----------------------------------------------------------------------===//

#include "codegen/ArtifactEmitter.h"

#include "codegen/WeightFolder.h"
#include "dialects/MoEDialect.h"
#include "passes/Plan.h"
#include "passes/Roles.h"
#include "runtime/artifact/ArtifactWriter.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace mlir::moec;

namespace rt = ::moec::runtime;
namespace mf = ::moec::runtime::manifest;

namespace {

//===----------------------------------------------------------------------===//
// Types and names
//===----------------------------------------------------------------------===//

/// The manifest dtype of `type`'s elements, or `DType::UNSPECIFIED`.
mf::DType toDType(Type type) {
  Type element = cast<ShapedType>(type).getElementType();
  if (element.isF32())
    return mf::DType::F32;
  if (element.isBF16())
    return mf::DType::BF16;
  if (element.isF16())
    return mf::DType::F16;
  if (isa<Float8E4M3FNType>(element))
    return mf::DType::F8E4M3FN;
  if (isa<Float8E5M2Type>(element))
    return mf::DType::F8E5M2;
  if (element.isInteger(32))
    return mf::DType::I32;
  if (element.isInteger(64))
    return mf::DType::I64;
  if (element.isInteger(8))
    return mf::DType::I8;
  // Booleans are one byte, 0 or 1.
  if (element.isInteger(1))
    return mf::DType::U8;
  return mf::DType::UNSPECIFIED;
}

/// `names` as one pattern: the name when there is one, else the common
/// prefix and suffix of the first and last around `*`, cut at dots
/// (`…experts.*.w1.weight`).
std::string namePattern(ArrayAttr sources) {
  StringRef first = cast<moe::TensorRefAttr>(sources[0]).getName();
  if (sources.size() == 1)
    return first.str();
  StringRef last =
      cast<moe::TensorRefAttr>(sources[sources.size() - 1]).getName();
  size_t prefix = 0;
  while (prefix < first.size() && prefix < last.size() &&
         first[prefix] == last[prefix])
    ++prefix;
  size_t suffix = 0;
  while (suffix < first.size() - prefix && suffix < last.size() - prefix &&
         first[first.size() - 1 - suffix] == last[last.size() - 1 - suffix])
    ++suffix;
  StringRef head = first.take_front(prefix);
  StringRef tail = first.take_back(suffix);
  head = head.take_front(head.rfind('.') + 1);
  size_t dot = tail.find('.');
  tail = dot == StringRef::npos ? StringRef() : tail.drop_front(dot);
  return (head + "*" + tail).str();
}

/// A readable name of the constant `value`: checkpoint names, wrapped in
/// the ops that built it (`quantize(concat(a, b))`), `.scale` for scales.
std::string weightName(Value value) {
  auto result = dyn_cast<OpResult>(value);
  if (!result)
    return "argument";
  Operation *op = result.getOwner();
  std::string scaleSuffix = result.getResultNumber() == 1 ? ".scale" : "";
  return llvm::TypeSwitch<Operation *, std::string>(op)
      .Case([&](moe::WeightOp w) {
        return namePattern(w.getSources()) + scaleSuffix;
      })
      .Case([&](moe::ConcatOp c) {
        std::string text = "concat(";
        for (auto [i, input] : llvm::enumerate(c.getInputs()))
          text += (i ? ", " : "") + weightName(input);
        return text + ")";
      })
      .Case([&](moe::QuantizeOp q) {
        return "quantize(" + weightName(q.getX()) + ")" + scaleSuffix;
      })
      .Case([&](moe::DequantizeOp d) {
        return "dequantize(" + weightName(d.getX()) + ")";
      })
      .Case([&](moe::ReshapeOp r) { return weightName(r.getX()); })
      .Case(
          [&](moe::SliceOp s) { return "slice(" + weightName(s.getX()) + ")"; })
      .Default([](Operation *other) {
        return other->getName().getStringRef().str();
      });
}

//===----------------------------------------------------------------------===//
// Precision per op class
//===----------------------------------------------------------------------===//

/// The precision the weights of type `type` give a computation.
mf::Precision precisionOf(Type type) {
  Type element = cast<ShapedType>(type).getElementType();
  if (element.isF32())
    return mf::Precision::F32;
  if (element.isBF16())
    return mf::Precision::BF16;
  if (isa<Float8E4M3FNType, Float8E5M2Type>(element))
    return mf::Precision::FP8;
  return mf::Precision::UNSPECIFIED;
}

/// The op class of a dense GEMM over `weight`, from the role of the
/// checkpoint tensors behind it.
std::string gemmClass(Value weight) {
  SmallVector<moe::WeightOp> sources = getWeightSources(weight);
  if (sources.empty())
    return "matmul";
  switch (getWeightRole(sources.front())) {
  case Role::embedding:
  case Role::lm_head:
    return "lm_head";
  case Role::mlp_gate:
  case Role::mlp_up:
  case Role::mlp_down:
    return "dense_mlp";
  case Role::shared_gate:
  case Role::shared_up:
  case Role::shared_down:
    return "shared_expert";
  case Role::expert_gate:
  case Role::expert_up:
  case Role::expert_down:
    return "expert_matmul";
  default:
    return isAttentionRole(getWeightRole(sources.front())) ? "attention_proj"
                                                           : "matmul";
  }
}

/// The op class and precision of a step, if it has one worth reporting.
std::optional<std::pair<std::string, mf::Precision>>
classifyPrecision(Operation *op) {
  using Entry = std::optional<std::pair<std::string, mf::Precision>>;
  auto of = [](StringRef name, Value weight) -> Entry {
    return std::make_pair(name.str(), precisionOf(weight.getType()));
  };
  return llvm::TypeSwitch<Operation *, Entry>(op)
      .Case([&](moe::EmbedOp o) { return of("embedding", o.getTable()); })
      .Case([&](moe::RouterOp o) { return of("router", o.getGate()); })
      .Case([&](moe::SigmoidGateOp o) {
        return of("shared_expert_gate", o.getGate());
      })
      .Case([&](moe::RmsNormOp o) { return of("norm", o.getWeight()); })
      .Case([&](moe::AddRmsNormOp o) { return of("norm", o.getWeight()); })
      .Case<moe::AttentionOp, moe::PagedAttentionOp, moe::PagedMlaAttentionOp>(
          [&](auto) {
            return std::make_pair(std::string("attention"), mf::Precision::F32);
          })
      .Case([&](moe::MatmulOp o) { return of(gemmClass(o.getW()), o.getW()); })
      .Case([&](moe::Fp8MatmulOp o) {
        return std::make_pair(gemmClass(o.getW()), mf::Precision::FP8);
      })
      .Case(
          [&](moe::GroupedMatmulOp o) { return of("expert_matmul", o.getW()); })
      .Case([&](moe::Fp8GroupedMatmulOp) {
        return std::make_pair(std::string("expert_matmul"), mf::Precision::FP8);
      })
      .Case([&](moe::MoEOp o) { return of("expert_matmul", o.getGateProj()); })
      .Default([](Operation *) -> Entry { return std::nullopt; });
}

//===----------------------------------------------------------------------===//
// The manifest
//===----------------------------------------------------------------------===//

/// Appends `spec`, a tensor map of a launch of step `step` (the planned
/// `op`), to `launch`: the argument's dtype (operands, then results, as
/// `Step.args`), dims, strides, box and swizzle.
LogicalResult addTensorMap(mf::CudaLaunchT &launch,
                           const cuda::TensorMapSpec &spec, Operation *op,
                           int64_t step) {
  unsigned numArgs = op->getNumOperands() + op->getNumResults();
  if (spec.arg >= numArgs)
    return op->emitError("internal error: a tensor map of step ")
           << step << " names argument " << spec.arg << " of " << numArgs;
  Value value = spec.arg < op->getNumOperands()
                    ? op->getOperand(spec.arg)
                    : op->getResult(spec.arg - op->getNumOperands());
  mf::TensorMapSwizzle swizzle;
  switch (spec.swizzleBytes) {
  case 0:
    swizzle = mf::TensorMapSwizzle::NONE;
    break;
  case 32:
    swizzle = mf::TensorMapSwizzle::SWIZZLE_32B;
    break;
  case 64:
    swizzle = mf::TensorMapSwizzle::SWIZZLE_64B;
    break;
  case 128:
    swizzle = mf::TensorMapSwizzle::SWIZZLE_128B;
    break;
  default:
    return op->emitError("internal error: a tensor map of step ")
           << step << " has a swizzle of " << spec.swizzleBytes << " bytes";
  }
  auto map = std::make_unique<mf::TensorMapT>();
  map->arg = spec.arg;
  map->dtype = toDType(value.getType());
  map->dims.assign(spec.dims.begin(), spec.dims.end());
  map->strides.assign(spec.strides.begin(), spec.strides.end());
  map->box.assign(spec.box.begin(), spec.box.end());
  map->swizzle = swizzle;
  launch.tensor_maps.push_back(std::move(map));
  return success();
}

/// Builds an `ArtifactPlan` from a planned function.
class PlanBuilder {
public:
  PlanBuilder(func::FuncOp func, const ArtifactOptions &options)
      : func(func), options(options) {}

  FailureOr<ArtifactPlan> build();

private:
  FailureOr<uint32_t> addBuffer(Value value, const std::string &name);
  FailureOr<uint32_t> addWeight(Value value, Operation *user);
  LogicalResult addArgument(mf::StepT &step, Value operand, Operation *user);
  void pairScale(Value data, Value scale, ArrayRef<int64_t> block);
  LogicalResult addInputsAndOutputs();
  LogicalResult addKvCache(BlockArgument arg);
  bool isKvCache(BlockArgument arg) {
    return static_cast<bool>(func.getArgAttr(
        arg.getArgNumber(), moe::MoEDialect::getKvCacheAttrName()));
  }

  func::FuncOp func;
  const ArtifactOptions &options;
  int64_t maxTokens = 0;
  int64_t arenaBytes = 0;
  ArtifactPlan plan;
  llvm::DenseMap<Value, uint32_t> bufferIds, weightIds, kvCacheIds;
};

FailureOr<uint32_t> PlanBuilder::addBuffer(Value value,
                                           const std::string &name) {
  Value root = getBufferRoot(value);
  if (auto it = bufferIds.find(root); it != bufferIds.end())
    return it->second;
  std::optional<int64_t> offset = getBufferOffset(root);
  auto type = dyn_cast<RankedTensorType>(root.getType());
  mf::DType dtype = type ? toDType(type) : mf::DType::UNSPECIFIED;
  int64_t rows = getRowsPerToken(root);
  std::optional<int64_t> bytes =
      type ? getPlannedBytes(type, rows, maxTokens) : std::nullopt;
  Operation *owner = root.getDefiningOp();
  // Whole-function diagnostics name the function by location only: attached
  // to the op, they would print all of it.
  auto diag = [&]() {
    return owner ? owner->emitOpError()
                 : emitError(root.getLoc())
                       << "argument #"
                       << cast<BlockArgument>(root).getArgNumber() << " ";
  };
  if (!offset)
    return diag() << "has a value without a `moe.buffers` offset; plan the "
                     "function again (--moec-plan-buffers)";
  if (dtype == mf::DType::UNSPECIFIED || !bytes)
    return diag() << "has a value of type " << root.getType()
                  << ", which the artifact cannot hold";
  if (*offset < 0 || *offset % kBufferAlignment != 0 ||
      *offset + *bytes > arenaBytes)
    return diag() << "has a buffer at offset " << *offset << " of " << *bytes
                  << " bytes, outside the " << arenaBytes
                  << "-byte arena; plan the function again";

  uint32_t id = uint32_t(plan.manifest.buffers.size());
  auto buffer = std::make_unique<mf::BufferT>();
  buffer->id = id;
  buffer->name = name;
  buffer->dtype = dtype;
  uint64_t elements = 1;
  for (int64_t d : type.getShape().drop_front(type.isDynamicDim(0) ? 1 : 0))
    elements *= uint64_t(d);
  if (type.getRank() > 0 && type.isDynamicDim(0))
    rt::setElementsPerToken(*buffer, elements * uint64_t(rows));
  else
    rt::setFixedElements(*buffer, elements);
  buffer->offset = uint64_t(*offset);
  buffer->bytes = uint64_t(*bytes);
  plan.manifest.buffers.push_back(std::move(buffer));
  bufferIds[root] = id;
  return id;
}

FailureOr<uint32_t> PlanBuilder::addWeight(Value value, Operation *user) {
  if (auto it = weightIds.find(value); it != weightIds.end())
    return it->second;
  auto type = cast<RankedTensorType>(value.getType());
  mf::DType dtype = toDType(type);
  std::optional<int64_t> elementBytes = getElementBytes(type);
  if (dtype == mf::DType::UNSPECIFIED || !elementBytes ||
      !type.hasStaticShape() ||
      llvm::any_of(type.getShape(), [](int64_t d) { return d <= 0; }))
    return user->emitOpError("reads a weight of type ")
           << type << ", which the artifact cannot hold";
  uint32_t id = uint32_t(plan.manifest.weights.size());
  auto weight = std::make_unique<mf::WeightT>();
  weight->id = id;
  weight->name = weightName(value);
  weight->dtype = dtype;
  weight->shape.assign(type.getShape().begin(), type.getShape().end());
  uint64_t bytes = uint64_t(type.getNumElements()) * uint64_t(*elementBytes);
  uint64_t offset = llvm::alignTo(plan.weightsSectionBytes, kBufferAlignment);
  weight->offset = offset;
  weight->bytes = bytes;
  plan.manifest.weights.push_back(std::move(weight));
  plan.weightsSectionBytes = offset + bytes;
  plan.weights.push_back(value);
  weightIds[value] = id;
  return id;
}

LogicalResult PlanBuilder::addArgument(mf::StepT &step, Value operand,
                                       Operation *user) {
  if (isPlannedConstant(operand)) {
    FailureOr<uint32_t> id = addWeight(operand, user);
    if (failed(id))
      return failure();
    step.args.emplace_back(mf::ArgumentKind::WEIGHT, *id);
    return success();
  }
  if (auto it = kvCacheIds.find(operand); it != kvCacheIds.end()) {
    step.args.emplace_back(mf::ArgumentKind::KV_CACHE, it->second);
    return success();
  }
  auto it = bufferIds.find(getBufferRoot(operand));
  if (it == bufferIds.end())
    return user->emitOpError("reads a value that no earlier step or argument "
                             "defines; plan the function again");
  step.args.emplace_back(mf::ArgumentKind::BUFFER, it->second);
  return success();
}

/// Records that the weight of `data` is block-scaled by the weight of
/// `scale` (when both are weights of the artifact and it is not yet known).
void PlanBuilder::pairScale(Value data, Value scale, ArrayRef<int64_t> block) {
  auto d = weightIds.find(data), s = weightIds.find(scale);
  if (d == weightIds.end() || s == weightIds.end())
    return;
  mf::WeightT &weight = *plan.manifest.weights[d->second];
  if (weight.scale)
    return;
  weight.scale = s->second;
  // Block shapes cover the trailing dimensions only.
  ArrayRef<int64_t> covered =
      block.take_back(std::min(block.size(), weight.shape.size()));
  weight.block_shape.assign(covered.begin(), covered.end());
}

/// Records KV cache argument `arg` (`[?, P, H, D]`) as a pool of the
/// manifest's `kv_cache`, whose geometry comes from the page table.
LogicalResult PlanBuilder::addKvCache(BlockArgument arg) {
  auto type = cast<RankedTensorType>(arg.getType());
  mf::DType dtype = toDType(type);
  if (dtype != mf::DType::F32 && dtype != mf::DType::BF16)
    return emitError(arg.getLoc(), "KV cache argument #")
           << arg.getArgNumber() << " has elements of type "
           << type.getElementType() << "; the runtime keeps f32 or bf16";
  int64_t layer = -1;
  for (Operation *user : arg.getUsers()) {
    if (auto paged = dyn_cast<moe::PagedAttentionOp>(user))
      layer = paged.getLayer();
    if (auto paged = dyn_cast<moe::PagedMlaAttentionOp>(user))
      layer = paged.getLayer();
  }
  if (layer < 0)
    return emitError(arg.getLoc(), "KV cache argument #")
           << arg.getArgNumber()
           << " is not read by a moe.paged_attention or "
              "moe.paged_mla_attention";
  mf::ManifestT &m = plan.manifest;
  if (!m.kv_cache) {
    m.kv_cache = std::make_unique<mf::KvCacheT>();
    m.kv_cache->page_tokens = type.getDimSize(1);
  }
  auto tensor = std::make_unique<mf::KvCacheTensorT>();
  auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "moe.name");
  tensor->name =
      name ? name.str() : "kv_cache" + std::to_string(arg.getArgNumber());
  tensor->layer = layer;
  tensor->dtype = dtype;
  tensor->page_shape.assign(type.getShape().begin() + 1, type.getShape().end());
  kvCacheIds[arg] = uint32_t(m.kv_cache->tensors.size());
  m.kv_cache->tensors.push_back(std::move(tensor));
  return success();
}

LogicalResult PlanBuilder::addInputsAndOutputs() {
  // With a KV cache, the page table's shape is the cache's geometry, and
  // the runtime checks slots and positions against it.
  int64_t maxSequences = 0, maxPositions = 0;
  if (mf::KvCacheT *cache = plan.manifest.kv_cache.get()) {
    for (BlockArgument arg : func.getArguments())
      if (auto name =
              func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "moe.name");
          name && name.getValue() == "page_table") {
        auto type = cast<RankedTensorType>(arg.getType());
        cache->max_sequences = type.getDimSize(0);
        cache->max_pages = type.getDimSize(1);
      }
    if (!cache->max_pages)
      return func.emitOpError("has a KV cache but no `page_table` argument");
    maxSequences = cache->max_sequences;
    maxPositions = cache->max_pages * cache->page_tokens;
  }
  for (BlockArgument arg : func.getArguments()) {
    if (isKvCache(arg))
      continue;
    auto name =
        func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "moe.name");
    auto input = std::make_unique<mf::TensorSpecT>();
    input->name =
        name ? name.str() : "input" + std::to_string(arg.getArgNumber());
    auto type = cast<RankedTensorType>(arg.getType());
    input->dtype = toDType(type);
    for (int64_t d : type.getShape())
      input->shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
    input->buffer = bufferIds.lookup(arg);
    // Token ids index the embedding table: the runtime checks them first.
    for (Operation *user : arg.getUsers())
      if (auto embed = dyn_cast<moe::EmbedOp>(user))
        if (embed.getIds() == arg)
          input->index_bound =
              cast<RankedTensorType>(embed.getTable().getType()).getDimSize(0);
    if (maxSequences && input->name == "slots")
      input->index_bound = maxSequences;
    if (maxPositions && input->name == "positions")
      input->index_bound = maxPositions;
    plan.manifest.inputs.push_back(std::move(input));
  }
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  for (auto [index, value] : llvm::enumerate(ret.getOperands())) {
    if (isPlannedConstant(value) || !bufferIds.count(getBufferRoot(value)))
      return ret.emitOpError("returns a value that is not computed at run "
                             "time: result #")
             << index;
    auto output = std::make_unique<mf::TensorSpecT>();
    output->name = index == 0 ? "logits" : "output" + std::to_string(index);
    auto type = cast<RankedTensorType>(value.getType());
    if (getRowsPerToken(value) != 1)
      return ret.emitOpError("returns rows in expert order: result #") << index;
    output->dtype = toDType(type);
    for (int64_t d : type.getShape())
      output->shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
    output->buffer = bufferIds.lookup(getBufferRoot(value));
    plan.manifest.outputs.push_back(std::move(output));
  }
  return success();
}

FailureOr<ArtifactPlan> PlanBuilder::build() {
  if (!isPlanned(func))
    return emitError(func.getLoc(), "function @")
           << func.getSymName()
           << " is not planned: run --moec-plan-buffers first (moec "
              "--compile-to=planned)";
  if (!func.getBody().hasOneBlock())
    return emitError(func.getLoc(), "function @")
           << func.getSymName() << " has more than one block";
  maxTokens = getPlan(func).getMaxTokens();
  arenaBytes = getPlan(func).getArenaBytes();
  mf::ManifestT &m = plan.manifest;
  ModuleOp module = func->getParentOfType<ModuleOp>();
  m.compiler_version = options.compilerVersion;
  if (auto type = module ? module->getAttrOfType<StringAttr>("moe.model_type")
                         : StringAttr())
    m.model_type = type.str();
  if (auto dir = module ? module->getAttrOfType<StringAttr>("moe.checkpoint")
                        : StringAttr())
    m.source =
        options.checkpointDir.empty() ? dir.str() : options.checkpointDir;
  m.max_tokens = maxTokens;
  m.arena_bytes = uint64_t(arenaBytes);
  m.targets = options.targets;
  if (const cuda::CudaProgram *program = options.cudaProgram) {
    m.cuda_workspace_bytes = program->workspaceBytes;
    m.nvrtc_version = options.nvrtcVersion;
  }
  if (options.generation)
    m.generation = std::make_unique<mf::GenerationT>(*options.generation);
  if (options.deviceFillSeed) {
    m.weights_device_filled = true;
    m.weights_fill_seed = *options.deviceFillSeed;
  }

  for (BlockArgument arg : func.getArguments()) {
    if (isKvCache(arg)) {
      if (failed(addKvCache(arg)))
        return failure();
      continue;
    }
    auto name =
        func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "moe.name");
    if (failed(
            addBuffer(arg, name ? name.str()
                                : "arg" + std::to_string(arg.getArgNumber()))))
      return failure();
  }

  // Ops that run on the selected rows: `moe.select_rows` and everything
  // computed from its result.
  llvm::DenseSet<Operation *> selected;
  for (Operation &op : func.getBody().front())
    if (isa<moe::SelectRowsOp>(op) ||
        llvm::any_of(op.getOperands(), [&](Value v) {
          return v.getDefiningOp() && selected.contains(v.getDefiningOp());
        }))
      selected.insert(&op);

  // Steps in `moe.step` order, which is program order.
  std::vector<std::pair<std::string, mf::Precision>> precision;
  int64_t expected = 0;
  for (Operation &op : func.getBody().front()) {
    std::optional<int64_t> index = getStepIndex(&op);
    if (!index)
      continue;
    if (*index != expected)
      return op.emitOpError("has `#moe.step<")
             << *index << ">`, but step " << expected
             << " comes next; plan the function again";
    ++expected;
    m.steps.push_back(std::make_unique<mf::StepT>());
    mf::StepT *step = m.steps.back().get();
    step->kernel = getStepKernelName(*index);
    if (const cuda::CudaProgram *program = options.cudaProgram) {
      if (size_t(*index) >= program->launches.size() ||
          program->launches[*index].empty())
        return op.emitError("internal error: step ")
               << *index << " has no CUDA launches";
      for (const cuda::CudaLaunch &launch : program->launches[*index]) {
        step->cuda.push_back(std::make_unique<mf::CudaLaunchT>());
        mf::CudaLaunchT *l = step->cuda.back().get();
        l->kernel = launch.kernel;
        for (const cuda::GridExtent &g : launch.grid)
          l->grid.emplace_back(g.perToken, g.divisor, g.constant);
        l->block.assign(std::begin(launch.block), std::end(launch.block));
        l->shared_bytes = launch.sharedBytes;
        for (const cuda::TensorMapSpec &spec : launch.tensorMaps)
          if (failed(addTensorMap(*l, spec, &op, *index)))
            return failure();
      }
    }
    step->op = op.getName().getStringRef().str();
    step->selected_rows = selected.contains(&op);
    // The contract with the kernel builder: operands, then results.
    for (Value operand : op.getOperands())
      if (failed(addArgument(*step, operand, &op)))
        return failure();
    std::string base =
        "s" + std::to_string(*index) + "." + op.getName().stripDialect().str();
    for (OpResult result : op.getResults()) {
      std::string name =
          op.getNumResults() == 1
              ? base
              : base + "#" + std::to_string(result.getResultNumber());
      FailureOr<uint32_t> id = addBuffer(result, name);
      if (failed(id))
        return failure();
      step->args.emplace_back(mf::ArgumentKind::BUFFER, *id);
    }
    if (auto entry = classifyPrecision(&op);
        entry && entry->second != mf::Precision::UNSPECIFIED &&
        !llvm::is_contained(precision, *entry))
      precision.push_back(*entry);
  }
  for (auto &[opClass, p] : precision) {
    auto entry = std::make_unique<mf::PrecisionEntryT>();
    entry->op_class = opClass;
    entry->precision = p;
    m.precision.push_back(std::move(entry));
  }

  // Block scales: from the GEMMs that read FP8 weights, and from the ops
  // that produce FP8 data together with its scales.
  func.walk([&](Operation *op) {
    if (auto mm = dyn_cast<moe::Fp8MatmulOp>(op))
      pairScale(mm.getW(), mm.getWScale(), mm.getWeightScheme().getBlock());
    else if (auto gmm = dyn_cast<moe::Fp8GroupedMatmulOp>(op))
      pairScale(gmm.getW(), gmm.getWScale(), gmm.getWeightScheme().getBlock());
    else if (auto w = dyn_cast<moe::WeightOp>(op); w && w.getScale())
      pairScale(w.getResult(), w.getScale(), w.getScheme().getBlock());
    else if (auto q = dyn_cast<moe::QuantizeOp>(op))
      pairScale(q.getResult(), q.getScale(), q.getScheme().getBlock());
  });
  if (failed(addInputsAndOutputs()))
    return failure();
  return std::move(plan);
}

/// The message of a runtime `Status` as an `llvm::Error`.
llvm::Error toError(const rt::Status &status) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 status.toString());
}

/// Bytes of the distinct checkpoint tensors `func`'s weights read, as the
/// IR declares them stored (the reader checks each against the file).
uint64_t checkpointBytes(func::FuncOp func) {
  llvm::StringSet<> seen;
  uint64_t total = 0;
  auto count = [&](ArrayAttr refs, ArrayRef<int64_t> shape, Type element) {
    uint64_t bytes = uint64_t(element.getIntOrFloatBitWidth() / 8);
    for (int64_t d : shape)
      bytes *= uint64_t(d);
    for (Attribute attr : refs) {
      auto ref = cast<moe::TensorRefAttr>(attr);
      if (seen.insert((ref.getFile() + "/" + ref.getName()).str()).second)
        total += bytes;
    }
  };
  func.walk([&](moe::WeightOp w) {
    RankedTensorType stored = w.getStoredType();
    count(w.getSources(), stored.getShape(), stored.getElementType());
    if (std::optional<ArrayAttr> scales = w.getScaleSources())
      count(*scales, w.getStoredSchemeAttr().getScaleShape(stored.getShape()),
            Float32Type::get(w.getContext()));
  });
  return total;
}

} // namespace

std::string mlir::moec::getStepKernelName(int64_t index) {
  return (kStepKernelPrefix + llvm::Twine(index)).str();
}

FailureOr<ArtifactPlan>
mlir::moec::buildArtifactPlan(func::FuncOp func,
                              const ArtifactOptions &options) {
  return PlanBuilder(func, options).build();
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

FailureOr<ArtifactSummary>
mlir::moec::emitArtifact(ModuleOp module, ArrayRef<CpuSharedObject> cpuObjects,
                         llvm::StringRef path, const ArtifactOptions &options) {
  auto func = module.lookupSymbol<func::FuncOp>(options.function);
  if (!func)
    return emitError(module.getLoc(), "the module has no function @")
           << options.function;
  FailureOr<ArtifactPlan> plan = buildArtifactPlan(func, options);
  if (failed(plan))
    return failure();
  mf::ManifestT &m = plan->manifest;

  std::string dir = options.checkpointDir;
  if (auto attr = module->getAttrOfType<StringAttr>("moe.checkpoint");
      dir.empty() && attr)
    dir = attr.str();
  // Benchmark artifacts carry no weight bytes, so nothing is read.
  bool storeWeights = !options.deviceFillSeed && !plan->weights.empty();
  if (dir.empty() && storeWeights)
    return emitError(module.getLoc(),
                     "the module needs a checkpoint folder for its weights, "
                     "but has no `moe.checkpoint` attribute");
  std::unique_ptr<WeightSource> source;
  if (storeWeights && !options.openWeights)
    return emitError(module.getLoc(),
                     "the module's weights need a weight reader "
                     "(ArtifactOptions::openWeights)");
  if (storeWeights) {
    llvm::Expected<std::unique_ptr<WeightSource>> opened =
        options.openWeights(dir, func);
    if (!opened)
      return emitError(module.getLoc(), "cannot open checkpoint: ")
             << llvm::toString(opened.takeError());
    source = std::move(*opened);
  }
  m.source_weight_bytes = checkpointBytes(func);

  // One section per CPU variant, and what each needs.
  bool cpu = llvm::is_contained(options.targets, "cpu");
  if (cpu && cpuObjects.empty())
    return emitError(module.getLoc(),
                     "internal error: the `cpu` target has no compiled code");
  std::vector<std::string> cpuSections;
  for (const CpuSharedObject &object : cpuObjects) {
    cpuSections.push_back(std::string(rt::kCpuSharedObjectPrefix) + object.cpu);
    auto entry = std::make_unique<mf::CpuObjectT>();
    entry->section = cpuSections.back();
    entry->cpu = object.cpu;
    entry->features = object.features;
    m.cpu_objects.push_back(std::move(entry));
  }

  // The runtime refuses an inconsistent manifest; find out before writing.
  rt::ManifestContext context;
  bool weightsSection = !options.deviceFillSeed;
  if (weightsSection)
    context.weightsSectionSize = plan->weightsSectionBytes;
  context.sectionNames = {"manifest"};
  llvm::append_range(context.sectionNames, cpuSections);
  if (weightsSection)
    context.sectionNames.push_back("weights");
  if (options.cudaProgram)
    context.sectionNames.push_back("kernels.cu");
  for (const auto &[arch, cubin] : options.cubins)
    context.sectionNames.push_back("cubin." + arch);
  for (const auto &[name, bytes] : options.embeddedFiles)
    context.sectionNames.push_back(std::string(rt::kEmbeddedFilePrefix) + name);
  if (rt::StatusOr<rt::ManifestIndex> index = rt::verifyManifest(m, context);
      !index.isOk())
    return emitError(func.getLoc(),
                     "internal error: the manifest is inconsistent: ")
           << index.status().toString();

  auto fail = [&](llvm::Error error) {
    return emitError(module.getLoc(), "cannot write '")
           << path << "': " << llvm::toString(std::move(error));
  };
  rt::StatusOr<std::unique_ptr<rt::ArtifactWriter>> writer =
      rt::ArtifactWriter::create(path.str());
  if (!writer.isOk())
    return fail(toError(writer.status()));
  rt::Status status;
  if (options.signingSeed)
    status = (*writer)->setSigningKey(*options.signingSeed);
  for (auto [object, section] : llvm::zip_equal(cpuObjects, cpuSections))
    if (status.isOk())
      status = (*writer)->addSection(
          rt::SectionSpec::forKind(rt::SectionKind::kCpuSharedObject, section),
          object.bytes.data(), object.bytes.size());
  if (status.isOk() && options.cudaProgram)
    status = (*writer)->addSection(
        rt::SectionSpec::forKind(rt::SectionKind::kKernelsCu),
        options.cudaProgram->source.data(), options.cudaProgram->source.size());
  for (const auto &[arch, cubin] : options.cubins)
    if (status.isOk())
      status = (*writer)->addSection(
          rt::SectionSpec::forKind(rt::SectionKind::kCubin, "cubin." + arch),
          cubin.data(), cubin.size());
  for (const auto &[name, bytes] : options.embeddedFiles)
    if (status.isOk())
      status = (*writer)->addSection(
          rt::SectionSpec::forKind(rt::SectionKind::kEmbeddedFile,
                                   std::string(rt::kEmbeddedFilePrefix) + name),
          bytes.data(), bytes.size());
  if (!status.isOk())
    return fail(toError(status));

  // One weight at a time, each at its offset, zero padding between them.
  // A weight that cannot be evaluated reports itself on its op; the writer
  // then drops the temp file.
  bool evaluationFailed = false;
  std::unique_ptr<WeightFolder> folder;
  if (source)
    folder = std::make_unique<WeightFolder>(*source);
  if (weightsSection)
    status = (*writer)->addStreamedSection(
        rt::SectionSpec::forKind(rt::SectionKind::kWeights),
        [&](const rt::ArtifactWriter::ChunkSink &sink) -> rt::Status {
          uint64_t position = 0;
          for (auto [index, value] : llvm::enumerate(plan->weights)) {
            const mf::WeightT &weight = *m.weights[index];
            MOEC_RETURN_IF_ERROR(sink.zeros(weight.offset - position));
            uint64_t written = 0;
            rt::Status sinkStatus;
            LogicalResult streamed =
                folder->stream(value, [&](ArrayRef<uint8_t> bytes) {
                  sinkStatus = sink(bytes.data(), bytes.size());
                  written += bytes.size();
                  return success(sinkStatus.isOk());
                });
            if (!sinkStatus.isOk())
              return sinkStatus;
            if (failed(streamed) || written != weight.bytes) {
              if (succeeded(streamed))
                value.getDefiningOp()->emitOpError("folded to ")
                    << written << " bytes, expected " << weight.bytes;
              evaluationFailed = true;
              return rt::Status(rt::StatusCode::kInternal,
                                "weight '" + weight.name +
                                    "' could not be evaluated");
            }
            position = weight.offset + weight.bytes;
          }
          return rt::Status::ok();
        });
  if (!status.isOk()) {
    if (evaluationFailed)
      return emitError(module.getLoc(), "nothing was written to '")
             << path << "'";
    return fail(toError(status));
  }
  status = (*writer)->addManifest(m);
  if (status.isOk())
    status = (*writer)->commit();
  if (!status.isOk())
    return fail(toError(status));

  ArtifactSummary summary;
  summary.steps = int64_t(m.steps.size());
  summary.weights = int64_t(m.weights.size());
  for (const auto &w : m.weights)
    summary.weightBytes += w->bytes;
  summary.checkpointBytes = m.source_weight_bytes;
  summary.arenaBytes = m.arena_bytes;
  summary.maxTokens = m.max_tokens;
  summary.fileBytes = (*writer)->bytesWritten();
  for (const auto &p : m.precision)
    summary.precision.push_back(p->op_class + "=" +
                                rt::precisionName(p->precision));
  return summary;
}
