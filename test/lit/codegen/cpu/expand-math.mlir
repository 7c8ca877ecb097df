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

// -----

// f32 sin and cos are reduced and evaluated in f64 (a three-part π/2, exact for RoPE's long angles) and rounded once; bf16 goes through f32.
// CHECK-LABEL: func.func @sin_cos(
// CHECK-SAME:      %[[X:.+]]: vector<8xf32>, %[[B:.+]]: bf16)
// CHECK-DAG:     arith.constant dense<1.5707963109016418> : vector<8xf64>
// CHECK-DAG:     arith.constant dense<1.5893254712295857E-8> : vector<8xf64>
// CHECK-DAG:     arith.constant dense<6.123233995736766E-17> : vector<8xf64>
// CHECK-NOT:     math.{{(sin|cos)}}
// CHECK:         arith.extf %[[X]] : vector<8xf32> to vector<8xf64>
// CHECK:         math.roundeven %{{.+}} : vector<8xf64>
// CHECK:         %[[S:.+]] = arith.truncf %{{.+}} : vector<8xf64> to vector<8xf32>
// CHECK:         %[[BF:.+]] = arith.extf %[[B]] : bf16 to f32
// CHECK:         arith.extf %[[BF]] : f32 to f64
// CHECK:         math.roundeven %{{.+}} : f64
// CHECK:         %[[C32:.+]] = arith.truncf %{{.+}} : f64 to f32
// CHECK:         %[[C:.+]] = arith.truncf %[[C32]] : f32 to bf16
// CHECK-NOT:     math.{{(sin|cos)}}
// CHECK:         return %[[S]], %[[C]]
func.func @sin_cos(%x: vector<8xf32>, %b: bf16) -> (vector<8xf32>, bf16) {
  %0 = math.sin %x : vector<8xf32>
  %1 = math.cos %b : bf16
  return %0, %1 : vector<8xf32>, bf16
}
