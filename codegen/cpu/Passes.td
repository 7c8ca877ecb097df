//===- Passes.td - cpu target passes ------------------------*- tablegen -*-===//
//
// The passes of the `cpu` target's lowering to the LLVM dialect (besides the
// upstream conversions): the exported kernel ABI wrappers and the expansion
// of math functions that would otherwise become libm calls. The pipeline
// `--moec-cpu-lower-to-llvm` strings them together with the upstream passes.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_CODEGEN_CPU_PASSES_TD
#define MOEC_CODEGEN_CPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def CpuAbiWrappersPass : Pass<"moec-cpu-abi-wrappers", "ModuleOp"> {
  let summary = "Wrap each public kernel in the runtime's CPU kernel ABI";
  let description = [{
    Every public `func.func` with a body is a kernel whose arguments are
    memrefs with an identity layout and static dimensions except, possibly,
    a leading token dimension `?`. The kernel is renamed `<name>.impl`, made
    private with internal linkage, and a new public function `<name>` with
    the runtime's ABI `(args: !llvm.ptr, tokens: i64)`, i.e. the C function
    `void name(void *const *args, int64_t tokens)`, is created: it loads the
    base pointer of argument `i` from `args[i]`, builds the memref
    descriptor (sizes from the type, the leading `?` from `tokens`,
    row-major strides, offset 0) and calls the kernel.

    ```mlir
    func.func @k(%args: !llvm.ptr, %tokens: i64) {
      %p = llvm.load %args : !llvm.ptr -> !llvm.ptr
      ...
      %x = builtin.unrealized_conversion_cast %desc
          : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)>
          to memref<?x64xf32>
      func.call @k.impl(%x, ...) : (memref<?x64xf32>, ...) -> ()
      return
    }
    ```
  }];
  let dependentDialects = ["func::FuncDialect", "LLVM::LLVMDialect"];
}

def CpuExpandMathPass : Pass<"moec-cpu-expand-math"> {
  let summary = "Expand math functions into arithmetic so that no libm call "
                "remains";
  let description = [{
    The CPU shared object links against nothing, so every `math` op that
    LLVM would turn into a libm call (`exp`, `log`, `tanh`, `erf`, `powf`,
    `sin`, ...) is rewritten into arithmetic: upstream expansions
    (hyperbolic functions, `powf`) and polynomial approximations on f32,
    with f16/bf16 computed in f32, plus `exp2` and `log10` through `exp` and
    `log`. `math.fma` becomes a contractable multiply and add, so that a
    target without FMA does not call `fmaf`. Ops that map to instructions
    (`sqrt`, `absf`, `floor`, ...) are left for `convert-math-to-llvm`.
  }];
  let dependentDialects = ["arith::ArithDialect", "math::MathDialect",
                           "vector::VectorDialect"];
}

def ConvertPlannedToCpuPass : Pass<"moec-convert-planned-to-cpu", "ModuleOp"> {
  let summary = "Build the CPU kernel of every step of a planned function";
  let description = [{
    Runs the cpu target's step conversion (`buildPlannedKernels`) on the
    planned function (`@forward`, else the module's only function): one
    conversion pattern per op, grouped by family
    (`populate<Family>ToCpuPatterns`), builds kernel `moec_step_<i>` for the
    op with `moe.step = #moe.step<i>`; a step op is legal once its kernel
    exists. The planned function is left as it is and the kernels, with the
    GEMM helpers they call, are appended to the module as a nested
    `module @cpu_kernels`, so that tests can check them:

    ```mlir
    module {
      func.func @forward(...) { ... moe.rms_norm ... {moe.step = #moe.step<0>} }
      module @cpu_kernels {
        func.func @moec_step_0(%arg0: memref<?x256xi8>, ...) { scf.for ... }
      }
    }
    ```

    Fails, naming the op and its step, for a step op without a cpu kernel.
  }];
  let options = [
    Option<"cpu", "cpu", "std::string", /*default=*/"\"\"",
           "CPU to compile for: empty for this machine, else one of the "
           "variants (x86-64-v2, x86-64-v3, x86-64-v4 on x86-64)">,
  ];
  let dependentDialects = [
    "arith::ArithDialect", "func::FuncDialect", "LLVM::LLVMDialect",
    "linalg::LinalgDialect", "math::MathDialect", "memref::MemRefDialect",
    "scf::SCFDialect", "vector::VectorDialect"
  ];
}

#endif // MOEC_CODEGEN_CPU_PASSES_TD
