// RUN: moec-opt %s --split-input-file --moec-cpu-expand-math | FileCheck %s

// exp2 goes through exp, which becomes a polynomial: no op that libm would implement is left.
// CHECK-LABEL: func.func @exp2(
// CHECK-SAME:      %[[X:.+]]: vector<8xf32>)
// CHECK:         %[[LN2:.+]] = arith.constant dense<0.693147182> : vector<8xf32>
// CHECK:         arith.mulf %[[X]], %[[LN2]] : vector<8xf32>
// CHECK-NOT:     math.{{(exp|exp2|expm1|log|log2|log10|log1p|tanh|erf|powf|sinh|cosh|fma)}}
// CHECK:         return
func.func @exp2(%x: vector<8xf32>) -> vector<8xf32> {
  %0 = math.exp2 %x : vector<8xf32>
  return %0 : vector<8xf32>
}

// -----

// log10 goes through log, which becomes a polynomial, times 1 / ln 10.
// CHECK-LABEL: func.func @log10(
// CHECK-DAG:     %[[INV_LN10:.+]] = arith.constant 0.434294492 : f32
// CHECK-NOT:     math.{{(exp|exp2|expm1|log|log2|log10|log1p|tanh|erf|powf|sinh|cosh|fma)}}
// CHECK:         %[[R:.+]] = arith.mulf %{{.+}}, %[[INV_LN10]] : f32
// CHECK:         return %[[R]]
func.func @log10(%x: f32) -> f32 {
  %0 = math.log10 %x : f32
  return %0 : f32
}

// -----

// fma becomes a contractable multiply-add: fused where the CPU has FMA, never a call to `fmaf`.
// CHECK-LABEL: func.func @fma(
// CHECK-SAME:      %[[A:.+]]: f32, %[[B:.+]]: f32, %[[C:.+]]: f32)
// CHECK:         %[[P:.+]] = arith.mulf %[[A]], %[[B]] fastmath<contract> : f32
// CHECK:         %[[S:.+]] = arith.addf %[[P]], %[[C]] fastmath<contract> : f32
// CHECK-NOT:     math.fma
// CHECK:         return %[[S]]
func.func @fma(%a: f32, %b: f32, %c: f32) -> f32 {
  %0 = math.fma %a, %b, %c : f32
  return %0 : f32
}

// -----

// tanh, erf, powf, sinh on f32 and exp on bf16 (computed in f32) are all expanded.
// CHECK-LABEL: func.func @expanded(
// CHECK-NOT:     math.{{(exp|exp2|expm1|log|log2|log10|log1p|tanh|erf|powf|sinh|cosh|fma)}}
// CHECK:         return
func.func @expanded(%x: vector<4xf32>, %y: vector<4xf32>, %b: bf16) -> (vector<4xf32>, bf16) {
  %0 = math.tanh %x : vector<4xf32>
  %1 = math.erf %0 : vector<4xf32>
  %2 = math.powf %1, %y : vector<4xf32>
  %3 = math.sinh %2 : vector<4xf32>
  %4 = math.exp %b : bf16
  return %3, %4 : vector<4xf32>, bf16
}

// -----

// Functions that are instructions stay for convert-math-to-llvm.
// CHECK-LABEL: func.func @instructions(
// CHECK:         math.sqrt
// CHECK:         math.absf
// CHECK:         math.floor
func.func @instructions(%x: f32) -> f32 {
  %0 = math.sqrt %x : f32
  %1 = math.absf %0 : f32
  %2 = math.floor %1 : f32
  return %2 : f32
}
