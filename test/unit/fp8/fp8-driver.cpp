//===- fp8-driver.cpp - Driver for the FP8 bit-exact check ------*- C++ -*-===//
//
// Applies one runtime/fp8 function to every element of a raw little-endian
// input file and writes the raw results, so that check_fp8.py can compare
// them bit for bit against numpy + ml_dtypes. Not a user-facing tool.
//
//   fp8-driver e4m3fn|e5m2         IN OUT   f32 -> u8
//   fp8-driver dec-e4m3fn|dec-e5m2 IN OUT   u8  -> f32
//   fp8-driver bf16|f16            IN OUT   u16 -> f32
//   fp8-driver blocks IN OUT ROWS COLS BR BC POW2
//       f32[ROWS*COLS] -> u8 q[ROWS*COLS] ++ f32 scales ++ f32 dequant(q)
//
//===----------------------------------------------------------------------===//

#include "runtime/fp8/Fp8.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

using namespace moec::runtime::fp8;

namespace {

/// Reads the whole file at `path` into `bytes`; reports and fails otherwise.
bool readFile(const char *path, std::vector<char> &bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fp8-driver: cannot open input '%s'\n", path);
    return false;
  }
  bytes.assign(std::istreambuf_iterator<char>(in),
               std::istreambuf_iterator<char>());
  return true;
}

/// Writes the concatenation of `parts` (pointer, byte size) to `path`.
bool writeFile(const char *path,
               std::initializer_list<std::pair<const void *, size_t>> parts) {
  std::ofstream out(path, std::ios::binary);
  for (auto [data, size] : parts)
    out.write(static_cast<const char *>(data), std::streamsize(size));
  if (!out) {
    std::fprintf(stderr, "fp8-driver: cannot write output '%s'\n", path);
    return false;
  }
  return true;
}

/// Parses the decimal integer `text` into `value`; fails on trailing junk.
bool parseInt(const char *text, int64_t &value) {
  char *end = nullptr;
  errno = 0;
  long long parsed = std::strtoll(text, &end, 10);
  if (errno || end == text || *end) {
    std::fprintf(stderr, "fp8-driver: expected an integer, got '%s'\n", text);
    return false;
  }
  value = parsed;
  return true;
}

/// Reinterprets `bytes` as an array of `T`; fails if the size is not a
/// multiple of `sizeof(T)`.
template <typename T>
bool asArray(const std::vector<char> &bytes, std::vector<T> &values) {
  if (bytes.size() % sizeof(T)) {
    std::fprintf(stderr,
                 "fp8-driver: input size %zu is not a multiple of %zu\n",
                 bytes.size(), sizeof(T));
    return false;
  }
  values.resize(bytes.size() / sizeof(T));
  if (!values.empty())
    std::memcpy(values.data(), bytes.data(), bytes.size());
  return true;
}

/// Maps every element of `bytes` (as `In`) through `fn` and writes the result.
template <typename In, typename Out>
int mapFile(const std::vector<char> &bytes, const char *outPath,
            Out (*fn)(In)) {
  std::vector<In> in;
  if (!asArray(bytes, in))
    return 1;
  std::vector<Out> out(in.size());
  for (size_t i = 0; i < in.size(); ++i)
    out[i] = fn(in[i]);
  return writeFile(outPath, {{out.data(), out.size() * sizeof(Out)}}) ? 0 : 1;
}

/// Runs quantizeBlocks then dequantizeBlocks on a `[rows, cols]` matrix.
int runBlocks(const std::vector<char> &bytes, const char *outPath,
              char **args) {
  int64_t rows, cols, br, bc, pow2;
  if (!parseInt(args[0], rows) || !parseInt(args[1], cols) ||
      !parseInt(args[2], br) || !parseInt(args[3], bc) ||
      !parseInt(args[4], pow2))
    return 1;
  if (rows < 0 || cols < 0 || br <= 0 || bc <= 0) {
    std::fprintf(stderr, "fp8-driver: bad shape or block size\n");
    return 1;
  }
  std::vector<float> src;
  if (!asArray(bytes, src))
    return 1;
  if (int64_t(src.size()) != rows * cols) {
    std::fprintf(stderr, "fp8-driver: expected %lld floats, got %zu\n",
                 (long long)(rows * cols), src.size());
    return 1;
  }
  size_t numScales = size_t(((rows + br - 1) / br) * ((cols + bc - 1) / bc));
  std::vector<uint8_t> q(src.size());
  std::vector<float> scales(numScales), deq(src.size());
  quantizeBlocks(src.data(), rows, cols, br, bc, pow2 != 0, q.data(),
                 scales.data());
  dequantizeBlocks(q.data(), scales.data(), rows, cols, br, bc, deq.data());
  return writeFile(outPath, {{q.data(), q.size()},
                             {scales.data(), scales.size() * sizeof(float)},
                             {deq.data(), deq.size() * sizeof(float)}})
             ? 0
             : 1;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: fp8-driver MODE IN OUT [ROWS COLS BR BC POW2]\n");
    return 2;
  }
  std::string mode = argv[1];
  std::vector<char> bytes;
  if (!readFile(argv[2], bytes))
    return 1;
  const char *out = argv[3];
  if (mode == "e4m3fn")
    return mapFile<float, uint8_t>(bytes, out, floatToE4M3FN);
  if (mode == "e5m2")
    return mapFile<float, uint8_t>(bytes, out, floatToE5M2);
  if (mode == "dec-e4m3fn")
    return mapFile<uint8_t, float>(bytes, out, e4m3fnToFloat);
  if (mode == "dec-e5m2")
    return mapFile<uint8_t, float>(bytes, out, e5m2ToFloat);
  if (mode == "bf16")
    return mapFile<uint16_t, float>(bytes, out, bf16ToFloat);
  if (mode == "f16")
    return mapFile<uint16_t, float>(bytes, out, halfToFloat);
  if (mode == "blocks" && argc == 9)
    return runBlocks(bytes, out, argv + 4);
  std::fprintf(stderr, "fp8-driver: unknown mode or arguments '%s'\n",
               mode.c_str());
  return 2;
}
