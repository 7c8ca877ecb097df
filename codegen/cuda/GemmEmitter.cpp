//===- GemmEmitter.cpp - CUDA C++ for the block-scaled FP8 GEMM -*- C++ -*-===//
//
// A deliberately simple first kernel: one warp per 16x8 output tile, operands
// read straight from global memory (no shared-memory staging or pipelining).
// Targets with FP8 tensor cores use e4m3 `mma.sync` m16n8k32; sm_80 decodes
// e4m3 to bf16 in-kernel and uses bf16 m16n8k16. sm_90 takes the sm_89 path
// until the wgmma/TMA lowering exists. Numerics are unchecked until a GPU run.
//
//===----------------------------------------------------------------------===//

#include "codegen/cuda/GemmEmitter.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir::moec::cuda;

//===----------------------------------------------------------------------===//
// Kernel text pieces
//===----------------------------------------------------------------------===//

// Row-guarded 4-byte load of e4m3 values; rows past `rows` read as zero.
static const char kLoadFp8[] = R"cuda(
__device__ __forceinline__ unsigned int loadFp8x4(const unsigned char *p,
                                                  int row, int rows, int col) {
  if (row >= rows)
    return 0u;
  return *reinterpret_cast<const unsigned int *>(p + (long long)row * K + col);
}

// d += a * b on one 16x8x32 tile; fragments as in the PTX ISA's m16n8k32
// 8-bit layout.
__device__ __forceinline__ void mma(float (&d)[4], const unsigned int (&a)[4],
                                    const unsigned int (&b)[2]) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]),
                 "r"(b[1]));
}
)cuda";

// e4m3 (bias 7, no infinities, 0x7f/0xff NaN) to bf16 bits, and a
// row-guarded load of two decoded values packed low-first.
static const char kLoadBf16[] = R"cuda(
__device__ __forceinline__ unsigned int e4m3ToBf16(unsigned int b) {
  const unsigned int sign = (b & 0x80u) << 8;
  const unsigned int exp = (b >> 3) & 0xFu, man = b & 0x7u;
  if ((b & 0x7Fu) == 0x7Fu)
    return sign | 0x7FC0u;
  if (exp == 0) // subnormal: man * 2^-9, exact in bf16
    return sign | (__float_as_uint((float)man * 0.001953125f) >> 16);
  return sign | ((exp + 120u) << 7) | (man << 4);
}

__device__ __forceinline__ unsigned int loadBf16x2(const unsigned char *p,
                                                   int row, int rows, int col) {
  if (row >= rows)
    return 0u;
  const unsigned char *q = p + (long long)row * K + col;
  return e4m3ToBf16(q[0]) | (e4m3ToBf16(q[1]) << 16);
}

// d += a * b on one 16x8x16 tile; fragments as in the PTX ISA's m16n8k16
// bf16 layout.
__device__ __forceinline__ void mma(float (&d)[4], const unsigned int (&a)[4],
                                    const unsigned int (&b)[2]) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]),
                 "r"(b[1]));
}
)cuda";

// The fragment loads of one MMA step at reduction offset `k`: thread
// (g, t) = (lane / 4, lane % 4) holds rows g and g + 8 of A and column g of B.
static const char kFragmentsFp8[] = R"cuda(
      a[0] = loadFp8x4(x, rowLo, T, k + t * 4);
      a[1] = loadFp8x4(x, rowHi, T, k + t * 4);
      a[2] = loadFp8x4(x, rowLo, T, k + 16 + t * 4);
      a[3] = loadFp8x4(x, rowHi, T, k + 16 + t * 4);
      b[0] = loadFp8x4(w, colB, N, k + t * 4);
      b[1] = loadFp8x4(w, colB, N, k + 16 + t * 4);)cuda";

static const char kFragmentsBf16[] = R"cuda(
      a[0] = loadBf16x2(x, rowLo, T, k + t * 2);
      a[1] = loadBf16x2(x, rowHi, T, k + t * 2);
      a[2] = loadBf16x2(x, rowLo, T, k + 8 + t * 2);
      a[3] = loadBf16x2(x, rowHi, T, k + 8 + t * 2);
      b[0] = loadBf16x2(w, colB, N, k + t * 2);
      b[1] = loadBf16x2(w, colB, N, k + 8 + t * 2);)cuda";

//===----------------------------------------------------------------------===//
// emitFp8BlockScaledGemm
//===----------------------------------------------------------------------===//

llvm::Expected<EmittedKernel>
mlir::moec::cuda::emitFp8BlockScaledGemm(llvm::StringRef kernelName,
                                         const Fp8GemmShape &shape,
                                         const TargetInfo &target) {
  const unsigned mmaK = target.mmaShape.k;
  if (shape.n <= 0 || shape.n % 8 != 0 || shape.block <= 0 ||
      shape.block % mmaK != 0 || shape.k <= 0 || shape.k % shape.block != 0)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "kernel '%s': expected N a positive multiple of 8 and K a positive "
        "multiple of the scale block (a multiple of %u), but got N = %lld, "
        "K = %lld, block = %lld",
        kernelName.str().c_str(), mmaK, (long long)shape.n, (long long)shape.k,
        (long long)shape.block);

  EmittedKernel kernel;
  kernel.name = kernelName.str();
  llvm::raw_string_ostream os(kernel.source);
  bool fp8 = target.hasFp8TensorCores;
  os << "// " << kernelName << ": y[T," << shape.n << "] f32 = x[T," << shape.k
     << "] * w[" << shape.n << "," << shape.k << "]^T, e4m3 operands with f32 "
     << "scales per " << shape.block << "-block.\n"
     << "// Emitted by moec for " << target.name << " ("
     << (fp8 ? "e4m3 mma.sync m16n8k32"
             : "e4m3 decoded to bf16, mma.sync "
               "m16n8k16")
     << "); one warp per 16x8 tile of y.\n"
     << "constexpr int N = " << shape.n << ";\n"
     << "constexpr int K = " << shape.k << ";\n"
     << "constexpr int BLOCK = " << shape.block << ";\n"
     << "constexpr int KBLOCKS = K / BLOCK;\n"
     << "constexpr int MMA_K = " << mmaK << ";\n"
     << (fp8 ? kLoadFp8 : kLoadBf16);

  os << R"cuda(
// x: [T, K] e4m3, xScales: [T, KBLOCKS], w: [N, K] e4m3,
// wScales: [ceil(N / BLOCK), KBLOCKS], y: [T, N] f32.
// Grid (N / 8, ceil(T / 16)), 32 threads.
extern "C" __global__ void __launch_bounds__(32) )cuda"
     << kernelName << R"cuda((
    const unsigned char *__restrict__ x, const float *__restrict__ xScales,
    const unsigned char *__restrict__ w, const float *__restrict__ wScales,
    float *__restrict__ y, int T) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  const int rowLo = blockIdx.y * 16 + g, rowHi = rowLo + 8;
  const int colB = blockIdx.x * 8 + g, colC = blockIdx.x * 8 + t * 2;
  float total[4] = {0.f, 0.f, 0.f, 0.f};
  for (int kb = 0; kb < KBLOCKS; ++kb) {
    // Accumulate one scale block in f32, then promote with its scales.
    float partial[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int ks = 0; ks < BLOCK; ks += MMA_K) {
      const int k = kb * BLOCK + ks;
      unsigned int a[4], b[2];)cuda"
     << (fp8 ? kFragmentsFp8 : kFragmentsBf16) << R"cuda(
      mma(partial, a, b);
    }
    // colC and colC + 1 share a scale block: colC is even, BLOCK is even.
    const float sw = wScales[(colC / BLOCK) * KBLOCKS + kb];
    const float sLo = rowLo < T ? xScales[(long long)rowLo * KBLOCKS + kb] : 0.f;
    const float sHi = rowHi < T ? xScales[(long long)rowHi * KBLOCKS + kb] : 0.f;
    total[0] += partial[0] * sLo * sw;
    total[1] += partial[1] * sLo * sw;
    total[2] += partial[2] * sHi * sw;
    total[3] += partial[3] * sHi * sw;
  }
  if (rowLo < T) {
    y[(long long)rowLo * N + colC] = total[0];
    y[(long long)rowLo * N + colC + 1] = total[1];
  }
  if (rowHi < T) {
    y[(long long)rowHi * N + colC] = total[2];
    y[(long long)rowHi * N + colC + 1] = total[3];
  }
}
)cuda";
  return kernel;
}
