//===- MoEPlan.td - The plan of the planned phase ----------*- tablegen -*-===//
//
// The attributes `--moec-plan-buffers` writes and codegen reads: a function's
// arena (`moe.plan`), each step's launch index (`moe.step`), where each value
// lives (`moe.buffers`) and which ops are folded constants (`moe.constant`).
// The dialect verifies them (MoEPlan.cpp, docs/planning.md).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PLAN_TD
#define MOE_PLAN_TD

include "dialects/MoEDialect.td"

/// A list of integers printed `[0, 512]`.
class MoE_PlanListParameter<string desc>
    : ArrayRefParameter<"int64_t", desc> {
  let parser = [{ [&]() -> ::mlir::FailureOr<::llvm::SmallVector<int64_t>> {
    ::llvm::SmallVector<int64_t> values;
    if ($_parser.parseCommaSeparatedList(
            ::mlir::AsmParser::Delimiter::Square, [&]() {
              return $_parser.parseInteger(values.emplace_back());
            }))
      return ::mlir::failure();
    return values;
  }() }];
  let printer = [{ $_printer << "[";
    ::llvm::interleaveComma($_self, $_printer);
    $_printer << "]" }];
}

/// A `MoE_PlanListParameter` that may be absent (empty).
class MoE_OptionalPlanListParameter<string desc>
    : MoE_PlanListParameter<desc> {
  let defaultValue = cppStorageType # "()";
  let comparator = cppType # "($_lhs) == " # cppType # "($_rhs)";
}

def MoE_PlanAttr : MoE_Attr<"Plan", "plan"> {
  let summary = "the arena of a planned function";
  let description = [{
    On a planned function as `moe.plan`: the arena holds every activation at
    `max_tokens` tokens in `arena_bytes` bytes. The verifier checks that
    every step, reshape and argument of the function carries a consistent
    plan (docs/planning.md).

    ```mlir
    func.func @forward(...) attributes {
        moe.plan = #moe.plan<arena_bytes = 191488, max_tokens = 128>}
    ```
  }];
  let parameters = (ins "int64_t":$arena_bytes, "int64_t":$max_tokens);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def MoE_StepAttr : MoE_Attr<"Step", "step"> {
  let summary = "the launch index of a planned op";
  let description = [{
    On an op of a planned function as `moe.step`: the op runs as kernel
    `moec_step_<index>`. The steps of a function are numbered 0 to n-1 in
    block order.

    ```mlir
    %0 = moe.embed %w, %arg0 {moe.step = #moe.step<0>, ...}
    ```
  }];
  let parameters = (ins "int64_t":$index);
  let assemblyFormat = "`<` $index `>`";
  let genVerifyDecl = 1;
}

def MoE_BuffersAttr : MoE_Attr<"Buffers", "buffers"> {
  let summary = "where the values of an op or argument live in the arena";
  let description = [{
    As `moe.buffers`, one entry per result on a step, the operand's offset on
    a `moe.reshape` (which aliases it), and one entry on a function argument.
    `offsets` are byte offsets into the arena, multiples of 128.
    `rows_per_token` (absent: 1 for every result) is how many rows per token
    a value whose leading dimension is `?` holds (`k` for what
    `moe.dispatch` produces).

    ```mlir
    #moe.buffers<offsets = [1024]>
    #moe.buffers<offsets = [99328, 0, 164864], rows_per_token = [2, 1, 2]>
    ```
  }];
  let parameters = (ins
    MoE_PlanListParameter<"arena offset of each value">:$offsets,
    MoE_OptionalPlanListParameter<"rows per token of each value">:
        $rows_per_token
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Rows per token of entry `index` (1 when `rows_per_token` is absent).
    int64_t getRowsPerToken(unsigned index) const {
      return getRowsPerToken().empty() ? 1 : getRowsPerToken()[index];
    }
  }];
}

#endif // MOE_PLAN_TD
