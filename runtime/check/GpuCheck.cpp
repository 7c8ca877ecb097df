//===- GpuCheck.cpp - GPU acceptance checks over artifacts ------*- C++ -*-===//
//
// For every `*.moea` in a folder: (a) CPU vs GPU on seeded random inputs
// when it carries both (the outputs, and every step alone on the CPU's
// activations), (b) GPU logits vs `NAME.logits.npy` for the ids in
// `NAME.tokens.txt`, (c) with --bench, launch times of device-filled
// artifacts at the counts in `NAME.bench.txt`, with TFLOP/s, GB/s and the
// ratio to the HBM and FP8 floors. Everything goes to stdout and, with
// --out, to gpu-check.log and gpu-check.md there.
//
//===----------------------------------------------------------------------===//

#include "runtime/check/GpuCheck.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/cpu/CpuExecutor.h"
#include "runtime/cuda/CudaExecutor.h"
#include "runtime/fp8/Fp8.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <type_traits>

namespace moec::runtime {

namespace {

const char kUsage[] =
    R"(usage: gpu-check [--bench] [--out DIR] [options] ARTIFACT_DIR

Checks every *.moea in ARTIFACT_DIR on the GPU:
  (a) artifacts with cpu and CUDA code: CPU vs GPU outputs on seeded random
      inputs (bound: diff <= 2e-2 when any op class is fp8, else rel-L2 <=
      1e-3); and per step: every step alone on the CPU's arena, its results
      compared (f32/bf16: rel-L2 <= 1e-4, FP8 GEMMs 1e-3; fp8: rel-L2 <=
      1e-1 and >= 99% equal codes; integers exactly);
  (b) NAME.moea with NAME.tokens.txt and NAME.logits.npy beside it: GPU
      logits vs the reference (fp8: diff <= 2e-2; bf16: rel-L2 <= 1e-2;
      f32: rel-L2 <= 1e-4);
  (c) with --bench, artifacts with device-filled weights and NAME.bench.txt
      (one token count per line): median launch time, TFLOP/s, GB/s and the
      ratio to the HBM-bandwidth and FP8-peak floors.

options:
  --bench            run (c)
  --out DIR          also write DIR/gpu-check.log and DIR/gpu-check.md
  --iters N          timed runs per token count (default 20)
  --warmup N         untimed runs first (default 3)
  --hbm-tbps X       HBM bandwidth of the floor (default 4.8, H200)
  --fp8-tflops X     dense FP8 peak of the floor (default 1979, H200)
  --per-step         (a) also checks every step alone (default)
  --no-per-step      (a) compares the outputs only
  --sync-steps       synchronise after every step (names a faulting kernel)
  --tokens N[,N...]  token counts of (a), each at most the artifact's
                     max_tokens (default 1,7,32)
  --device N         CUDA device ordinal (default 0)
  -h, --help         show this help

exit status: 0 all checks passed, 1 a check failed, 2 usage error, 77 no
CUDA device (skip).
)";

struct Options {
  std::string dir, out;
  bool bench = false, syncSteps = false, perStep = true;
  int iters = 20, warmup = 3, device = 0;
  double hbmTBps = 4.8, fp8Tflops = 1979;
  std::vector<int64_t> tokens = {1, 7, 32}; // (a)
};

/// Everything printed, kept for the log and the markdown report.
struct Report {
  std::string log, markdown;
  int failures = 0;
  void line(const std::string &text) {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
    log += text + "\n";
  }
  void fail(const std::string &text) {
    ++failures;
    line("FAIL " + text);
  }
};

std::string fmt(const char *format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

bool fileExists(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Parses all of `text` as a number in [lo, hi].
template <typename T>
bool parseNumber(const std::string &text, T lo, T hi, T &out) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || errno || *end || v < double(lo) || v > double(hi) ||
      (std::is_integral_v<T> && v != std::floor(v)))
    return false;
  out = T(v);
  return true;
}

//===----------------------------------------------------------------------===//
// Numbers
//===----------------------------------------------------------------------===//

/// `bytes` of `dtype` as doubles.
std::vector<double> toDoubles(const uint8_t *data, uint64_t bytes,
                              manifest::DType dtype) {
  uint64_t size = dtypeSize(dtype), n = bytes / size;
  std::vector<double> out(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t *p = data + i * size;
    switch (dtype) {
    case manifest::DType::F32: {
      float f;
      std::memcpy(&f, p, 4);
      out[i] = f;
      break;
    }
    case manifest::DType::BF16:
      out[i] = fp8::bf16ToFloat(uint16_t(p[0] | p[1] << 8));
      break;
    case manifest::DType::F16:
      out[i] = fp8::halfToFloat(uint16_t(p[0] | p[1] << 8));
      break;
    case manifest::DType::F8E4M3FN:
      out[i] = fp8::e4m3fnToFloat(p[0]);
      break;
    case manifest::DType::F8E5M2:
      out[i] = fp8::e5m2ToFloat(p[0]);
      break;
    case manifest::DType::I32: {
      int32_t v;
      std::memcpy(&v, p, 4);
      out[i] = v;
      break;
    }
    case manifest::DType::I64: {
      int64_t v;
      std::memcpy(&v, p, 8);
      out[i] = double(v);
      break;
    }
    case manifest::DType::I8:
      out[i] = int8_t(p[0]);
      break;
    default:
      out[i] = p[0];
      break;
    }
  }
  return out;
}

/// rel-L2, max-abs and DESIGN.md §4's diff of `x` against the reference `y`.
struct Compare {
  double relL2 = 0, maxAbs = 0, diff = 0;
  bool finite = true;
};

Compare compare(const std::vector<double> &x, const std::vector<double> &y) {
  Compare c;
  double err = 0, ref = 0, xy = 0, sq = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i]))
      c.finite = false;
    double d = x[i] - y[i];
    err += d * d;
    ref += y[i] * y[i];
    xy += x[i] * y[i];
    sq += x[i] * x[i] + y[i] * y[i];
    c.maxAbs = std::max(c.maxAbs, std::fabs(d));
  }
  c.relL2 = ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
  c.diff = sq > 0 ? 1 - 2 * xy / sq : 0;
  return c;
}

bool hasPrecision(const manifest::Manifest &m, manifest::Precision p) {
  for (const manifest::PrecisionEntry *e : *m.precision())
    if (e->precision() == p)
      return true;
  return false;
}

/// Seeded random inputs for `tokens` tokens: ids in [0, index_bound),
/// other integers in [0, tokens), floats in U[-1, 1]; `positions` is left
/// to its default.
Status setRandomInputs(Executor &ex, int64_t tokens, uint32_t seed) {
  const manifest::Manifest &m = ex.artifact().manifest();
  std::mt19937 rng(seed);
  for (int i = 0; i < int(m.inputs()->size()); ++i) {
    const manifest::TensorSpec &spec = *m.inputs()->Get(uint32_t(i));
    if (text(spec.name()) == "positions")
      continue;
    const manifest::Buffer &b = *ex.artifact().findBuffer(spec.buffer());
    uint64_t bytes = bufferBytesAt(b, tokens), size = dtypeSize(spec.dtype());
    std::vector<uint8_t> data(static_cast<size_t>(bytes));
    int64_t bound = spec.index_bound() ? spec.index_bound() : tokens;
    std::uniform_int_distribution<int64_t> ids(0, bound - 1);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (uint64_t e = 0; e < bytes / size; ++e) {
      uint8_t *p = data.data() + e * size;
      switch (spec.dtype()) {
      case manifest::DType::I32: {
        int32_t v = int32_t(ids(rng));
        std::memcpy(p, &v, 4);
        break;
      }
      case manifest::DType::I64: {
        int64_t v = ids(rng);
        std::memcpy(p, &v, 8);
        break;
      }
      case manifest::DType::F32: {
        float v = uniform(rng);
        std::memcpy(p, &v, 4);
        break;
      }
      case manifest::DType::BF16: {
        float v = uniform(rng);
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        uint16_t h = uint16_t(bits >> 16);
        std::memcpy(p, &h, 2);
        break;
      }
      default:
        *p = uint8_t(rng() & 0x3f);
        break;
      }
    }
    MOEC_RETURN_IF_ERROR(ex.setInput(i, data.data(), bytes, tokens));
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// (a) CPU vs GPU, (b) references
//===----------------------------------------------------------------------===//

/// Device-filled artifacts larger than this are not run on the CPU.
constexpr uint64_t kMaxCpuFilledBytes = uint64_t(256) << 20;

/// Seed of the random inputs of (a) at `tokens` tokens.
uint32_t inputSeed(int64_t tokens) { return uint32_t(1234 + tokens); }

void checkPerStep(const std::string &name, const std::set<int64_t> &counts,
                  CpuExecutor &cpu, CudaExecutor &gpu, Report &r);

void checkCpuVsGpu(const std::string &name,
                   const std::shared_ptr<const Artifact> &artifact,
                   CudaExecutor &gpu, bool perStep,
                   const std::vector<int64_t> &tokens, Report &r) {
  const manifest::Manifest &m = artifact->manifest();
  auto cpu = CpuExecutor::create(artifact);
  if (!cpu.isOk())
    return r.fail(name + " (a): CPU load: " + cpu.status().message());
  bool fp8 = hasPrecision(m, manifest::Precision::FP8);
  std::set<int64_t> counts;
  for (int64_t t : tokens)
    counts.insert(std::min<int64_t>(t, m.max_tokens()));
  r.markdown += "\n### " + name +
                ": CPU vs GPU\n\n| tokens | output | "
                "rel-L2 | max-abs | diff | bound | result |\n|---|---|---|---|"
                "---|---|---|\n";
  for (int64_t t : counts) {
    for (Executor *ex :
         {static_cast<Executor *>(cpu->get()), static_cast<Executor *>(&gpu)}) {
      Status s = setRandomInputs(*ex, t, inputSeed(t));
      if (s.isOk())
        s = ex->run(t);
      if (!s.isOk())
        return r.fail(strCat(name, " (a) T=", t, " on ", ex->device(), ": ",
                             s.message()));
    }
    for (int o = 0; o < int(m.outputs()->size()); ++o) {
      auto a = (*cpu)->tensor(true, o, t), b = gpu.tensor(true, o, t);
      if (!a.isOk() || !b.isOk())
        return r.fail(name + " (a): reading outputs");
      manifest::DType dtype = a->spec->dtype();
      std::vector<double> ref = toDoubles(a->data, a->bytes, dtype),
                          got = toDoubles(b->data, b->bytes, dtype);
      Compare c = compare(got, ref);
      bool integer =
          dtype == manifest::DType::I32 || dtype == manifest::DType::I64;
      bool pass = c.finite && (integer ? c.maxAbs == 0
                               : fp8   ? c.diff <= 2e-2
                                       : c.relL2 <= 1e-3);
      std::string bound = integer ? "exact"
                          : fp8   ? "diff<=2e-2"
                                  : "relL2<=1e-3";
      std::string line =
          strCat(name, " (a) T=", t, " '", text(a->spec->name()), "': rel-L2 ",
                 fmt("%.3g", c.relL2), " max-abs ", fmt("%.3g", c.maxAbs),
                 " diff ", fmt("%.3g", c.diff), " [", bound, "]");
      r.markdown += strCat("| ", t, " | ", text(a->spec->name()), " | ",
                           fmt("%.3g", c.relL2), " | ", fmt("%.3g", c.maxAbs),
                           " | ", fmt("%.3g", c.diff), " | ", bound, " | ",
                           pass ? "pass" : "**FAIL**", " |\n");
      if (pass)
        r.line("ok   " + line);
      else
        r.fail(line);
    }
  }
  if (perStep)
    checkPerStep(name, counts, **cpu, gpu, r);
}

//===----------------------------------------------------------------------===//
// (a) per step
//===----------------------------------------------------------------------===//

/// The op's name without the dialect ("fp8_matmul"), else the kernel.
std::string opKind(const manifest::Step &s) {
  return std::string(s.op()->size() ? text(s.op()) : text(s.kernel()));
}

bool isFp8Gemm(const manifest::Step &s) {
  std::string_view full = text(s.op());
  std::string_view op = full.substr(full.rfind('.') + 1);
  return op == "fp8_matmul" || op == "fp8_grouped_matmul";
}

/// One result of one step compared: floats by rel-L2 and max-abs, FP8 codes
/// decoded plus the share of equal codes, integers element by element.
/// Elements that are the same non-finite value on both sides (a -inf
/// mask) are equal and left out of the norms; any other non-finite value
/// fails.
struct ResultCompare {
  enum Kind { kFloat, kFp8, kInteger } kind = kFloat;
  double relL2 = 0, maxAbs = 0, equalCodes = 1, bound = 0;
  bool finite = true, pass = true;
  uint64_t elements = 0, mismatches = 0;
  std::string boundText;
};

ResultCompare compareResult(const std::vector<uint8_t> &cpuBytes,
                            const std::vector<uint8_t> &gpuBytes,
                            manifest::DType dtype, bool fp8Gemm) {
  ResultCompare c;
  uint64_t size = dtypeSize(dtype);
  c.elements = size ? cpuBytes.size() / size : 0;
  bool fp8 =
      dtype == manifest::DType::F8E4M3FN || dtype == manifest::DType::F8E5M2;
  bool floating = fp8 || dtype == manifest::DType::F32 ||
                  dtype == manifest::DType::BF16 ||
                  dtype == manifest::DType::F16;
  for (uint64_t e = 0; e < c.elements; ++e)
    if (std::memcmp(&cpuBytes[e * size], &gpuBytes[e * size], size) != 0)
      ++c.mismatches;
  if (!floating) {
    c.kind = ResultCompare::kInteger;
    c.pass = c.mismatches == 0;
    c.boundText = "exact";
    return c;
  }
  std::vector<double> ref = toDoubles(cpuBytes.data(), cpuBytes.size(), dtype),
                      got = toDoubles(gpuBytes.data(), gpuBytes.size(), dtype);
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(ref[i]) || !std::isfinite(got[i])) {
      bool same =
          std::memcmp(&cpuBytes[i * size], &gpuBytes[i * size], size) == 0 ||
          (std::isnan(ref[i]) && std::isnan(got[i]));
      c.finite = c.finite && same;
      continue;
    }
    double d = got[i] - ref[i];
    err += d * d;
    norm += ref[i] * ref[i];
    c.maxAbs = std::max(c.maxAbs, std::fabs(d));
  }
  c.relL2 = norm > 0 ? std::sqrt(err / norm) : std::sqrt(err);
  if (fp8) {
    c.kind = ResultCompare::kFp8;
    c.equalCodes =
        c.elements ? 1.0 - double(c.mismatches) / double(c.elements) : 1.0;
    c.bound = 1e-1;
    c.pass = c.finite && c.relL2 <= c.bound && c.equalCodes >= 0.99;
    c.boundText = "relL2<=1e-1, codes>=99%";
  } else {
    c.bound = fp8Gemm ? 1e-3 : 1e-4;
    c.pass = c.finite && c.relL2 <= c.bound;
    c.boundText = fp8Gemm ? "relL2<=1e-3" : "relL2<=1e-4";
  }
  return c;
}

/// Up to four mismatching tokens (rows of an integer result), "token 3: cpu
/// [1 4] gpu [1 5]", rows cut at 16 elements.
std::string mismatchingTokens(const std::vector<uint8_t> &cpuBytes,
                              const std::vector<uint8_t> &gpuBytes,
                              const manifest::Buffer &b) {
  uint64_t size = dtypeSize(b.dtype()), n = cpuBytes.size() / size;
  bool perToken = isPerToken(b);
  uint64_t row = perToken && bufferElements(b) ? bufferElements(b)
                                               : std::max<uint64_t>(n, 1);
  std::vector<double> ref = toDoubles(cpuBytes.data(), cpuBytes.size(),
                                      b.dtype()),
                      got = toDoubles(gpuBytes.data(), gpuBytes.size(),
                                      b.dtype());
  std::string out;
  int shown = 0;
  for (uint64_t r = 0; r * row < n && shown < 4; ++r) {
    uint64_t begin = r * row, end = std::min(n, begin + row);
    if (std::memcmp(&cpuBytes[begin * size], &gpuBytes[begin * size],
                    (end - begin) * size) == 0)
      continue;
    auto list = [&](const std::vector<double> &v) {
      std::string text;
      for (uint64_t e = begin; e < end && e < begin + 16; ++e)
        text += strCat(e == begin ? "" : " ", int64_t(v[e]));
      return "[" + text + (end - begin > 16 ? " ...]" : "]");
    };
    out += strCat(shown++ ? "; " : "", perToken ? "token " : "elements ",
                  perToken ? strCat(r) : std::string("all"), ": cpu ",
                  list(ref), " gpu ", list(got));
  }
  return out;
}

/// Per op kind: what the summary table shows.
struct OpSummary {
  int steps = 0, results = 0, failures = 0, unchecked = 0;
  double worstRelL2 = 0, worstMaxAbs = 0, minEqualCodes = 1;
  uint64_t integerMismatches = 0;
  bool anyFloat = false, anyFp8 = false;
};

// Every step alone: the CPU's whole arena is copied to the GPU's, both run
// the step, and every result buffer (stepResultArgs) is compared.
void checkPerStep(const std::string &name, const std::set<int64_t> &counts,
                  CpuExecutor &cpu, CudaExecutor &gpu, Report &r) {
  const Artifact &artifact = cpu.artifact();
  const manifest::Manifest &m = artifact.manifest();
  std::vector<std::vector<int>> results = stepResultArgs(m);
  std::map<std::string, OpSummary> summary;
  std::vector<uint8_t> arena(size_t(m.arena_bytes())), cpuBytes, gpuBytes;
  int failuresBefore = r.failures, checked = 0, compared = 0;
  for (int64_t t : counts) {
    for (Executor *ex :
         {static_cast<Executor *>(&cpu), static_cast<Executor *>(&gpu)})
      if (Status s = setRandomInputs(*ex, t, inputSeed(t)); !s.isOk())
        return r.fail(strCat(name, " (a) per-step T=", t, " on ", ex->device(),
                             ": ", s.message()));
    for (int i = 0; i < int(m.steps()->size()); ++i) {
      const manifest::Step &step = *m.steps()->Get(uint32_t(i));
      std::string kernels;
      for (const manifest::CudaLaunch *l : *step.cuda())
        kernels += (kernels.empty() ? "" : "+") + l->kernel()->str();
      std::string where =
          strCat(name, " (a) T=", t, " step ", i, " ", opKind(step), " (cuda '",
                 kernels, "', cpu '", text(step.kernel()), "')");
      Status s = cpu.readArena(0, arena.size(), arena.data());
      if (s.isOk())
        s = gpu.writeArena(0, arena.size(), arena.data());
      if (s.isOk())
        s = cpu.runStep(i, t);
      if (s.isOk())
        s = gpu.runStep(i, t);
      if (!s.isOk())
        return r.fail(where + ": " + s.message());
      OpSummary &sum = summary[opKind(step)];
      ++checked;
      if (t == *counts.begin()) {
        ++sum.steps;
        sum.unchecked += results[size_t(i)].empty();
      }
      for (size_t k = 0; k < results[size_t(i)].size(); ++k) {
        const manifest::Argument &arg =
            *step.args()->Get(uint32_t(results[size_t(i)][k]));
        const manifest::Buffer &b = *artifact.findBuffer(arg.id());
        uint64_t bytes = bufferBytesAt(b, t);
        cpuBytes.resize(size_t(bytes));
        gpuBytes.resize(size_t(bytes));
        s = cpu.readArena(b.offset(), bytes, cpuBytes.data());
        if (s.isOk())
          s = gpu.readArena(b.offset(), bytes, gpuBytes.data());
        if (!s.isOk())
          return r.fail(where + ": reading results: " + s.message());
        ResultCompare c =
            compareResult(cpuBytes, gpuBytes, b.dtype(), isFp8Gemm(step));
        ++compared;
        ++sum.results;
        if (c.kind == ResultCompare::kInteger) {
          sum.integerMismatches += c.mismatches;
        } else {
          sum.anyFloat = true;
          sum.worstRelL2 = std::max(sum.worstRelL2, c.relL2);
          sum.worstMaxAbs = std::max(sum.worstMaxAbs, c.maxAbs);
          if (c.kind == ResultCompare::kFp8) {
            sum.anyFp8 = true;
            sum.minEqualCodes = std::min(sum.minEqualCodes, c.equalCodes);
          }
        }
        if (c.pass)
          continue;
        ++sum.failures;
        std::string line = strCat(where, " result ", k, " '", text(b.name()),
                                  "' ", dtypeName(b.dtype()), ": ");
        if (c.kind == ResultCompare::kInteger)
          line += strCat(c.mismatches, " of ", c.elements, " elements differ: ",
                         mismatchingTokens(cpuBytes, gpuBytes, b));
        else
          line += strCat(
              "rel-L2 ", fmt("%.3g", c.relL2), " max-abs ",
              fmt("%.3g", c.maxAbs),
              c.kind == ResultCompare::kFp8
                  ? strCat(" codes equal ", fmt("%.2f%%", 100 * c.equalCodes))
                  : std::string(),
              c.finite ? "" : " (non-finite values differ)");
        r.fail(line + " [" + c.boundText + "]");
      }
    }
  }
  int failed = r.failures - failuresBefore;
  r.line(strCat(failed ? "FAIL " : "ok   ", name,
                " (a) per-step: ", int(m.steps()->size()), " steps x ",
                counts.size(), " token counts, ", compared,
                " results compared, ", failed, " failure(s)"));
  r.line(strCat("  ", name, " per-step summary (worst over T = ",
                *counts.begin(), " .. ", *counts.rbegin(), "):"));
  r.line("  op                           steps results   worst-relL2  "
         "worst-maxabs  min-fp8-eq  int-diff  fail");
  r.markdown += strCat("\n### ", name,
                       ": CPU vs GPU per step\n\nEvery step alone on the "
                       "CPU's activations, T in {");
  for (int64_t t : counts)
    r.markdown += strCat(t == *counts.begin() ? "" : ", ", t);
  r.markdown += strCat("}: ", checked, " step runs, ", compared,
                       " results compared, ", failed,
                       " failure(s).\n\n| op | steps | results | worst rel-L2 "
                       "| worst max-abs | min fp8 codes equal | integer "
                       "mismatches | failures |\n|---|---|---|---|---|---|---|"
                       "---|\n");
  for (const auto &[op, sum] : summary) {
    std::string rel = sum.anyFloat ? fmt("%.3g", sum.worstRelL2) : "-";
    std::string abs = sum.anyFloat ? fmt("%.3g", sum.worstMaxAbs) : "-";
    std::string codes =
        sum.anyFp8 ? fmt("%.2f%%", 100 * sum.minEqualCodes) : "-";
    std::string results = strCat(sum.results);
    if (sum.unchecked)
      results += strCat(" (", sum.unchecked, " step(s) without results)");
    char row[256];
    std::snprintf(row, sizeof(row), "  %-28s %5d %7s %13s %13s %11s %9llu %5d",
                  op.c_str(), sum.steps, strCat(sum.results).c_str(),
                  rel.c_str(), abs.c_str(), codes.c_str(),
                  (unsigned long long)sum.integerMismatches, sum.failures);
    r.line(row);
    r.markdown += strCat(
        "| ", op, " | ", sum.steps, " | ", results, " | ", rel, " | ", abs,
        " | ", codes, " | ", sum.integerMismatches, " | ",
        sum.failures ? strCat("**", sum.failures, "**") : std::string("0"),
        " |\n");
  }
  for (const auto &[op, sum] : summary)
    if (sum.unchecked)
      r.line(strCat("note ", name, " (a) per-step: ", sum.unchecked, " ", op,
                    " step(s) have no result buffer first defined there "
                    "(in place?); not compared"));
}

/// Reads a little-endian float32 .npy (format 1-3, C order).
bool readNpyF32(const std::string &path, std::vector<double> &values,
                std::vector<int64_t> &shape, std::string &why) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    return why = "not a .npy file", false;
  size_t lengthBytes = bytes[6] == 1 ? 2 : 4, header = 0;
  for (size_t i = 0; i < lengthBytes; ++i)
    header |= size_t(uint8_t(bytes[8 + i])) << (8 * i);
  size_t start = 8 + lengthBytes + header;
  if (start > bytes.size())
    return why = "truncated header", false;
  std::string dict = bytes.substr(8 + lengthBytes, header);
  if (dict.find("'<f4'") == std::string::npos ||
      dict.find("'fortran_order': False") == std::string::npos)
    return why = "not a C-order float32 array", false;
  size_t open = dict.find('(', dict.find("'shape'")),
         close = dict.find(')', open);
  std::stringstream dims(dict.substr(open + 1, close - open - 1));
  std::string dim;
  shape.clear();
  uint64_t count = 1;
  while (std::getline(dims, dim, ','))
    if (dim.find_first_not_of(' ') != std::string::npos) {
      int64_t d = 0;
      dim.erase(0, dim.find_first_not_of(' '));
      if (!parseNumber(dim, int64_t(0), int64_t(1) << 40, d))
        return why = "bad shape", false;
      shape.push_back(d);
      count *= uint64_t(d);
    }
  if (bytes.size() - start != count * 4)
    return why = "data size does not match the shape", false;
  values.resize(size_t(count));
  for (uint64_t i = 0; i < count; ++i) {
    float f;
    std::memcpy(&f, bytes.data() + start + i * 4, 4);
    values[i] = f;
  }
  return true;
}

void checkReference(const std::string &name, const std::string &base,
                    CudaExecutor &gpu, Report &r) {
  const manifest::Manifest &m = gpu.artifact().manifest();
  std::ifstream in(base + ".tokens.txt");
  std::vector<int64_t> ids;
  std::string token;
  while (in >> token) {
    for (char &c : token)
      if (c == ',')
        c = ' ';
    std::stringstream parts(token);
    int64_t id;
    while (parts >> id)
      ids.push_back(id);
  }
  std::vector<double> ref;
  std::vector<int64_t> shape;
  std::string why;
  if (!readNpyF32(base + ".logits.npy", ref, shape, why))
    return r.fail(name + " (b): " + base + ".logits.npy: " + why);
  int64_t t = int64_t(ids.size());
  if (t < 1 || m.inputs()->size() < 1 || shape.size() != 2 || shape[0] != t)
    return r.fail(strCat(name, " (b): ", t, " tokens but reference shape [",
                         shape.empty() ? 0 : shape[0], ", ...]"));
  const manifest::TensorSpec &in0 = *m.inputs()->Get(0);
  std::vector<uint8_t> data(size_t(t) * dtypeSize(in0.dtype()));
  for (int64_t i = 0; i < t; ++i) {
    if (in0.dtype() == manifest::DType::I64) {
      std::memcpy(&data[size_t(i) * 8], &ids[size_t(i)], 8);
    } else {
      int32_t v = int32_t(ids[size_t(i)]);
      std::memcpy(&data[size_t(i) * 4], &v, 4);
    }
  }
  int logits = 0;
  for (uint32_t o = 0; o < m.outputs()->size(); ++o)
    if (text(m.outputs()->Get(o)->name()) == "logits")
      logits = int(o);
  Status s = gpu.setInput(0, data.data(), data.size(), t);
  if (s.isOk())
    s = gpu.run(t);
  auto view = s.isOk() ? gpu.tensor(true, logits, t) : StatusOr<TensorView>(s);
  if (!view.isOk())
    return r.fail(name + " (b): " + view.status().message());
  Compare c =
      compare(toDoubles(view->data, view->bytes, view->spec->dtype()), ref);
  bool fp8 = hasPrecision(m, manifest::Precision::FP8);
  bool bf16 = hasPrecision(m, manifest::Precision::BF16);
  bool pass = c.finite && view->bytes / 4 == ref.size() &&
              (fp8    ? c.diff <= 2e-2
               : bf16 ? c.relL2 <= 1e-2
                      : c.relL2 <= 1e-4);
  std::string bound = fp8 ? "diff<=2e-2" : bf16 ? "relL2<=1e-2" : "relL2<=1e-4";
  std::string line =
      strCat(name, " (b) T=", t, " logits vs reference: rel-L2 ",
             fmt("%.3g", c.relL2), " max-abs ", fmt("%.3g", c.maxAbs), " diff ",
             fmt("%.3g", c.diff), " [", bound, "]");
  r.markdown += strCat("\n### ", name,
                       ": logits vs reference\n\n| tokens | "
                       "rel-L2 | max-abs | diff | bound | result |\n|---|---|"
                       "---|---|---|---|\n| ",
                       t, " | ", fmt("%.3g", c.relL2), " | ",
                       fmt("%.3g", c.maxAbs), " | ", fmt("%.3g", c.diff), " | ",
                       bound, " | ", pass ? "pass" : "**FAIL**", " |\n");
  if (pass)
    r.line("ok   " + line);
  else
    r.fail(line);
}

//===----------------------------------------------------------------------===//
// (c) benchmarks
//===----------------------------------------------------------------------===//

/// The middle of `times` (the upper one of an even count).
double median(std::vector<float> times) {
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

/// What `ms` for `work` amounts to: TFLOP/s, GB/s, and ms over the HBM and
/// FP8 floors (0 where there is no time or no such work).
struct Rates {
  double tflops = 0, gbps = 0, xHbm = 0, xFp8 = 0;
};
Rates ratesOf(const WorkEstimate &work, double ms, const Options &o) {
  Rates rates;
  double seconds = ms * 1e-3;
  double hbmMs = work.bytes / (o.hbmTBps * 1e12) * 1e3;
  double fp8Ms = work.flops / (o.fp8Tflops * 1e12) * 1e3;
  if (seconds > 0) {
    rates.tflops = work.flops / seconds / 1e12;
    rates.gbps = work.bytes / seconds / 1e9;
  }
  rates.xHbm = hbmMs > 0 ? ms / hbmMs : 0;
  rates.xFp8 = fp8Ms > 0 ? ms / fp8Ms : 0;
  return rates;
}

/// `| ms | TFLOP/s | GB/s | x HBM floor | x FP8 floor |` cells.
std::string rateCells(double ms, const Rates &x) {
  return strCat(fmt("%.4f", ms), " | ", fmt("%.2f", x.tflops), " | ",
                fmt("%.1f", x.gbps), " | ", fmt("%.2f", x.xHbm), " | ",
                fmt("%.2f", x.xFp8), " |\n");
}

void bench(const std::string &name, const std::string &base, CudaExecutor &gpu,
           const Options &o, Report &r) {
  const manifest::Manifest &m = gpu.artifact().manifest();
  std::ifstream in(base + ".bench.txt");
  std::vector<int64_t> counts;
  for (std::string line; std::getline(in, line);) {
    line.erase(0, line.find_first_not_of(" \t"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    int64_t count = 0;
    if (line.empty() || line[0] == '#')
      continue;
    if (!parseNumber(line, int64_t(1), int64_t(1) << 31, count))
      return r.fail(name + " (c): " + base + ".bench.txt: bad count '" + line +
                    "'");
    counts.push_back(count);
  }
  r.line(strCat("bench ", name, " on ", gpu.description()));
  r.markdown +=
      strCat("\n### ", name, ": launch time\n\n", gpu.description(),
             "; median of ", o.iters, " runs after ", o.warmup,
             " warm-up runs; floors at ", o.hbmTBps, " TB/s and ", o.fp8Tflops,
             " TFLOP/s.\n\n| tokens | ms | TFLOP/s | "
             "GB/s | x HBM floor | x FP8 floor |\n|---|---|---|---|"
             "---|---|\n");
  r.line("  tokens        ms   TFLOP/s      GB/s  xHBMfloor  xFP8floor");
  // Per token count, the median ms of each step.
  std::vector<std::pair<int64_t, std::vector<double>>> perStep;
  for (int64_t t : counts) {
    if (t > m.max_tokens()) {
      r.fail(strCat(name, " (c): token count ", t, " is not in [1, ",
                    m.max_tokens(), "]"));
      continue;
    }
    Status s = setRandomInputs(gpu, t, uint32_t(99 + t));
    auto times = s.isOk() ? gpu.timeLaunches(t, o.warmup, o.iters)
                          : StatusOr<std::vector<float>>(s);
    if (!times.isOk()) {
      r.fail(strCat(name, " (c) T=", t, ": ", times.status().message()));
      return;
    }
    double ms = median(*times);
    Rates x = ratesOf(estimateWork(m, t), ms, o);
    char row[160];
    std::snprintf(row, sizeof(row), "%8lld %9.4f %9.2f %9.1f %10.2f %10.2f",
                  (long long)t, ms, x.tflops, x.gbps, x.xHbm, x.xFp8);
    r.line(row);
    r.markdown += strCat("| ", t, " | ", rateCells(ms, x));
    perStep.push_back({t, {}});
    auto steps = gpu.timeSteps(t, o.warmup, o.iters);
    if (!steps.isOk()) {
      r.fail(
          strCat(name, " (c) T=", t, " per step: ", steps.status().message()));
      return;
    }
    for (int i = 0; i < int(m.steps()->size()); ++i) {
      std::vector<float> times;
      for (const std::vector<float> &round : *steps)
        times.push_back(round[size_t(i)]);
      perStep.back().second.push_back(median(std::move(times)));
    }
  }
  // Where the time goes: each step alone (e.g. the FP8 grouped GEMMs of the
  // routed experts), timed with events between the steps.
  r.markdown += strCat("\n### ", name,
                       ": per step\n\nMedian ms of each step's launches "
                       "(events between steps).\n\n| tokens | step | op | "
                       "ms | TFLOP/s | GB/s | x HBM floor | x FP8 floor "
                       "|\n|---|---|---|---|---|---|---|---|\n");
  for (const auto &[t, times] : perStep) {
    r.line(strCat("  per step at ", t, " tokens:"));
    for (int i = 0; i < int(m.steps()->size()); ++i) {
      double ms = times[size_t(i)];
      Rates x = ratesOf(estimateStepWork(m, i, t), ms, o);
      std::string op(text(m.steps()->Get(uint32_t(i))->op()).substr(0, 40));
      char row[200];
      std::snprintf(row, sizeof(row),
                    "    %3d %-40s %9.4f %9.2f %9.1f %10.2f %10.2f", i,
                    op.c_str(), ms, x.tflops, x.gbps, x.xHbm, x.xFp8);
      r.line(row);
      r.markdown +=
          strCat("| ", t, " | ", i, " | ", op, " | ", rateCells(ms, x));
    }
  }
}

int parseArgs(int argc, char **argv, Options &o) {
  auto usage = [](const std::string &m) {
    std::fprintf(stderr, "gpu-check: %s\n(run gpu-check --help for usage)\n",
                 m.c_str());
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    bool hasValue = i + 1 < argc;
    if (hasValue)
      v = argv[i + 1];
    bool ok = true;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return -1;
    } else if (a == "--bench") {
      o.bench = true;
      continue;
    } else if (a == "--per-step" || a == "--no-per-step") {
      o.perStep = a == "--per-step";
      continue;
    } else if (a == "--sync-steps") {
      o.syncSteps = true;
      continue;
    } else if (a == "--out") {
      ok = hasValue && !v.empty();
      o.out = v;
    } else if (a == "--iters") {
      ok = hasValue && parseNumber(v, 1, 100000, o.iters);
    } else if (a == "--warmup") {
      ok = hasValue && parseNumber(v, 0, 100000, o.warmup);
    } else if (a == "--device") {
      ok = hasValue && parseNumber(v, 0, 1024, o.device);
    } else if (a == "--tokens") {
      o.tokens.clear();
      ok = hasValue;
      for (size_t b = 0; ok && b <= v.size();) {
        size_t e = std::min(v.find(',', b), v.size());
        int64_t t = 0;
        ok = parseNumber(v.substr(b, e - b), int64_t(1), int64_t(1) << 31, t);
        o.tokens.push_back(t);
        b = e + 1;
      }
    } else if (a == "--hbm-tbps") {
      ok = hasValue && parseNumber(v, 1e-3, 1e6, o.hbmTBps);
    } else if (a == "--fp8-tflops") {
      ok = hasValue && parseNumber(v, 1e-3, 1e9, o.fp8Tflops);
    } else if (a.rfind("-", 0) != 0 && o.dir.empty()) {
      o.dir = a;
      continue;
    } else {
      return usage("unknown or extra argument '" + a + "'");
    }
    if (!ok)
      return usage(a + " needs a valid value");
    ++i;
  }
  if (o.dir.empty())
    return usage("no artifact folder given");
  return 0;
}

} // namespace

std::vector<std::vector<int>> stepResultArgs(const manifest::Manifest &m) {
  std::set<uint32_t> seen;
  for (const manifest::TensorSpec *in : *m.inputs())
    seen.insert(in->buffer());
  const auto &steps = *m.steps();
  std::vector<std::vector<int>> results(steps.size());
  for (uint32_t i = 0; i < steps.size(); ++i) {
    const auto &args = *steps[i]->args();
    auto isBuffer = [&](int k, uint32_t id) {
      const manifest::Argument &a = *args.Get(uint32_t(k));
      return a.kind() == manifest::ArgumentKind::BUFFER && a.id() == id;
    };
    std::vector<int> &out = results[i];
    for (int j = int(args.size()) - 1; j >= 0; --j) {
      const manifest::Argument &a = *args.Get(uint32_t(j));
      if (a.kind() != manifest::ArgumentKind::BUFFER || seen.count(a.id()))
        break;
      bool earlier = false, repeated = false;
      for (int k = 0; k < j; ++k)
        earlier = earlier || isBuffer(k, a.id());
      for (int k : out)
        repeated = repeated || isBuffer(k, a.id());
      if (earlier || repeated)
        break;
      out.insert(out.begin(), j);
    }
    for (const manifest::Argument *a : args)
      if (a->kind() == manifest::ArgumentKind::BUFFER)
        seen.insert(a->id());
  }
  return results;
}

WorkEstimate estimateStepWork(const manifest::Manifest &m, int step,
                              int64_t tokens) {
  WorkEstimate w;
  std::set<uint32_t> scales;
  std::map<uint32_t, const manifest::Weight *> weights;
  std::map<uint32_t, const manifest::Buffer *> buffers;
  for (const manifest::Weight *x : *m.weights()) {
    weights[x->id()] = x;
    if (x->scale())
      scales.insert(*x->scale());
  }
  for (const manifest::Buffer *b : *m.buffers())
    buffers[b->id()] = b;
  {
    const manifest::Step &s = *m.steps()->Get(uint32_t(step));
    bool embedding = text(s.op()).find("embed") != std::string_view::npos;
    // Rows per token from the first [E, N, K] weight's K and the first
    // buffer argument (an operand) that is a multiple of it.
    int64_t rowsPerToken = 1;
    for (const manifest::Argument *a : *s.args()) {
      if (a->kind() != manifest::ArgumentKind::WEIGHT)
        continue;
      const manifest::Weight &x = *weights[a->id()];
      if (x.shape()->size() != 3)
        continue;
      uint64_t k = uint64_t(x.shape()->Get(2));
      for (const manifest::Argument *b : *s.args())
        if (b->kind() == manifest::ArgumentKind::BUFFER) {
          const manifest::Buffer &buf = *buffers[b->id()];
          uint64_t perToken = bufferElements(buf);
          if (isPerToken(buf) && perToken >= k && perToken % k == 0) {
            rowsPerToken = int64_t(perToken / k);
            break;
          }
        }
      break;
    }
    for (const manifest::Argument *a : *s.args()) {
      if (a->kind() == manifest::ArgumentKind::BUFFER) {
        w.bytes += double(bufferBytesAt(*buffers[a->id()], tokens));
        continue;
      }
      const manifest::Weight &x = *weights[a->id()];
      if (scales.count(x.id()))
        continue; // counted with the weight it scales
      double scaleBytes =
          x.scale() ? double(weights[*x.scale()]->bytes()) : 0.0;
      const auto &shape = *x.shape();
      int rank = int(shape.size());
      if (embedding || rank < 2) {
        double rows = rank >= 1 ? double(shape[0]) : 1;
        w.bytes += embedding ? std::min(double(x.bytes()),
                                        double(x.bytes()) / rows * tokens)
                             : double(x.bytes());
        continue;
      }
      double n = double(shape[uint32_t(rank - 2)]),
             k = double(shape[uint32_t(rank - 1)]);
      double experts = rank == 3 ? double(shape[0]) : 1;
      double rows = double(tokens) * (rank == 3 ? rowsPerToken : 1);
      w.flops += 2 * rows * n * k;
      double touched = rank == 3 ? std::min(experts, rows) / experts : 1;
      w.bytes += (double(x.bytes()) + scaleBytes) * touched;
    }
  }
  return w;
}

WorkEstimate estimateWork(const manifest::Manifest &m, int64_t tokens) {
  WorkEstimate w;
  for (int i = 0; i < int(m.steps()->size()); ++i) {
    WorkEstimate step = estimateStepWork(m, i, tokens);
    w.flops += step.flops;
    w.bytes += step.bytes;
  }
  return w;
}

int gpuCheckMain(int argc, char **argv) {
  Options o;
  if (int code = parseArgs(argc, argv, o))
    return code < 0 ? 0 : code;
  if (Status s = cudaDeviceAvailable(); !s.isOk()) {
    std::printf("no CUDA device: %s\n", s.message().c_str());
    return 77;
  }
  std::vector<std::string> names;
  if (DIR *d = opendir(o.dir.c_str())) {
    while (dirent *e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".moea") == 0)
        names.push_back(n);
    }
    closedir(d);
  } else {
    std::fprintf(stderr, "gpu-check: cannot read folder %s: %s\n",
                 o.dir.c_str(), std::strerror(errno));
    return 1;
  }
  std::sort(names.begin(), names.end());
  Report r;
  r.markdown = "# gpu-check " + o.dir + "\n";
  if (names.empty())
    r.fail("no *.moea in " + o.dir);
  CudaOptions cudaOptions;
  cudaOptions.device = o.device;
  cudaOptions.syncEachStep = o.syncSteps;
  for (const std::string &file : names) {
    std::string path = o.dir + "/" + file;
    std::string name = file.substr(0, file.size() - 5);
    std::string base = o.dir + "/" + name;
    auto opened = Artifact::open(path);
    if (!opened.isOk()) {
      r.fail(name + ": " + opened.status().message());
      continue;
    }
    std::shared_ptr<const Artifact> artifact(
        std::move(opened).value().release());
    const manifest::Manifest &m = artifact->manifest();
    if (!hasCudaCode(*artifact)) {
      r.line("skip " + name + ": no CUDA code");
      continue;
    }
    auto gpu = CudaExecutor::create(artifact, cudaOptions);
    if (!gpu.isOk()) {
      r.fail(name + ": GPU load: " + gpu.status().message());
      continue;
    }
    r.line("load " + name + ": " + (*gpu)->description());
    if (!(*gpu)->cacheWarning().empty())
      r.line("warn " + name + ": " + (*gpu)->cacheWarning());
    bool cpu = std::any_of(
        m.targets()->begin(), m.targets()->end(),
        [](const flatbuffers::String *t) { return text(t) == "cpu"; });
    if (cpu &&
        (!m.weights_device_filled() || weightsExtent(m) <= kMaxCpuFilledBytes))
      checkCpuVsGpu(name, artifact, **gpu, o.perStep, o.tokens, r);
    if (fileExists(base + ".tokens.txt") && fileExists(base + ".logits.npy"))
      checkReference(name, base, **gpu, r);
    if (o.bench && m.weights_device_filled() && fileExists(base + ".bench.txt"))
      bench(name, base, **gpu, o, r);
  }
  r.line(r.failures ? strCat("gpu-check: ", r.failures, " failure(s)")
                    : "gpu-check: all checks passed");
  if (!o.out.empty()) {
    ::mkdir(o.out.c_str(), 0755);
    std::ofstream(o.out + "/gpu-check.log") << r.log;
    std::ofstream(o.out + "/gpu-check.md") << r.markdown;
  }
  return r.failures ? 1 : 0;
}

} // namespace moec::runtime
