//===- MoecRun.cpp - The moec-run command line ------------------*- C++ -*-===//
//
// Argument parsing, the top-k printout, .npy output and timing of
// `moec-run`. Running goes through the C API (runtime/capi/moec.h), so the
// tool exercises exactly what embedders use; `--info` reads the artifact
// with the C++ reader to show the manifest.
//
//===----------------------------------------------------------------------===//

#include "tools/MoecRun.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/capi/moec.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace moec::runtime {

namespace {

const char kUsage[] =
    R"(usage: moec-run MODEL.moea --tokens ID,ID,... [options]
       moec-run MODEL.moea --info

Runs a compiled moec artifact on a sequence of token ids and prints, for
every position, the K highest-scoring next tokens with their logits.

options:
  --tokens LIST        comma-separated token ids, e.g. 1,2,3 (at most the
                       artifact's max tokens; ids must be < its vocabulary)
  --device DEV         cpu, cuda or auto (default auto: CUDA when available,
                       else the CPU; CUDA is not available in this build)
  --top K              tokens to print per position (default 5; 0 prints none)
  --repeat N           run N times and report the median, min and max run
                       time (default 1)
  --dump-logits FILE   write the logits as a NumPy .npy file, float32 of
                       shape [tokens, vocab]
  --info               print the artifact's manifest summary: versions,
                       model, targets, inputs, outputs, buffers, weight
                       bytes, precision per op class, steps and sections;
                       runs too when --tokens is also given
  -h, --help           show this help

exit status: 0 on success, 1 when loading or running fails (the message
says why), 2 on a usage error.
)";

struct Options {
  std::string model;
  std::vector<int32_t> tokens;
  bool haveTokens = false;
  std::string device = "auto";
  std::string dumpLogits;
  int64_t repeat = 1;
  int64_t top = 5;
  bool info = false;
  bool help = false;
};

int usageError(const std::string &message) {
  std::fprintf(stderr, "moec-run: %s\n(run moec-run --help for usage)\n",
               message.c_str());
  return 2;
}

bool parseInt(const std::string &text, int64_t lo, int64_t hi, int64_t &value) {
  if (text.empty())
    return false;
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return false;
  value = v;
  return true;
}

bool parseTokens(const std::string &text, std::vector<int32_t> &tokens) {
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    int64_t id;
    if (!parseInt(text.substr(start, comma - start), 0, INT32_MAX, id))
      return false;
    tokens.push_back(int32_t(id));
    if (comma == std::string::npos)
      return true;
    start = comma + 1;
  }
}

// Returns 0 when parsed, else the exit code of a usage error.
int parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool inlineValue = false;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
      inlineValue = true;
    }
    auto next = [&](std::string &out) {
      if (inlineValue) {
        out = value;
        return true;
      }
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "-h" || arg == "--help") {
      o.help = true;
    } else if (arg == "--info") {
      o.info = true;
    } else if (arg == "--tokens") {
      if (!next(v) || !parseTokens(v, o.tokens))
        return usageError("--tokens needs a comma-separated list of token "
                          "ids >= 0, e.g. --tokens 1,2,3");
      o.haveTokens = true;
    } else if (arg == "--device") {
      if (!next(v) || (v != "cpu" && v != "cuda" && v != "auto"))
        return usageError("--device must be cpu, cuda or auto");
      o.device = v;
    } else if (arg == "--dump-logits") {
      if (!next(v) || v.empty())
        return usageError("--dump-logits needs a file name");
      o.dumpLogits = v;
    } else if (arg == "--repeat") {
      if (!next(v) || !parseInt(v, 1, 1000000, o.repeat))
        return usageError("--repeat needs a count in [1, 1000000]");
    } else if (arg == "--top") {
      if (!next(v) || !parseInt(v, 0, 1 << 20, o.top))
        return usageError("--top needs a count >= 0");
    } else if (arg.rfind("-", 0) == 0 && arg != "-") {
      return usageError("unknown option '" + arg + "'");
    } else if (o.model.empty()) {
      o.model = arg;
    } else {
      return usageError("more than one model given ('" + o.model + "', '" +
                        arg + "')");
    }
  }
  if (o.help)
    return 0;
  if (o.model.empty())
    return usageError("no model given");
  if (!o.haveTokens && !o.info)
    return usageError("--tokens is required (or --info)");
  return 0;
}

bool writeNpy(const std::string &path, const float *data, int64_t rows,
              int64_t cols) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                     std::to_string(rows) + ", " + std::to_string(cols) +
                     "), }";
  // magic(6) + version(2) + length(2) + dict + padding + '\n' = 64k bytes.
  size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict.push_back('\n');
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return false;
  unsigned char head[10] = {0x93,
                            'N',
                            'U',
                            'M',
                            'P',
                            'Y',
                            1,
                            0,
                            (unsigned char)(dict.size() & 0xFF),
                            (unsigned char)(dict.size() >> 8)};
  bool ok = std::fwrite(head, 1, 10, f) == 10 &&
            std::fwrite(dict.data(), 1, dict.size(), f) == dict.size() &&
            std::fwrite(data, sizeof(float), size_t(rows * cols), f) ==
                size_t(rows * cols);
  return std::fclose(f) == 0 && ok;
}

// Indices of the `k` largest values of `row`, ties to the lower index, NaN
// last.
std::vector<int64_t> topK(const float *row, int64_t cols, int64_t k) {
  std::vector<int64_t> idx(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i)
    idx[size_t(i)] = i;
  k = std::min(k, cols);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int64_t a, int64_t b) {
                      float va = row[a], vb = row[b];
                      if (std::isnan(va) || std::isnan(vb))
                        return !std::isnan(va) && std::isnan(vb);
                      return va > vb || (va == vb && a < b);
                    });
  idx.resize(size_t(k));
  return idx;
}

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - start)
      .count();
}

int fail(const char *what, moec_status status) {
  std::fprintf(stderr, "moec-run: %s failed (%s): %s\n", what,
               moec_status_string(status), moec_last_error());
  return 1;
}

} // namespace

int moecRunMain(int argc, char **argv) {
  Options o;
  if (int code = parseArgs(argc, argv, o))
    return code;
  if (o.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }

  if (o.info) {
    StatusOr<std::unique_ptr<Artifact>> artifact = Artifact::open(o.model);
    if (!artifact.isOk()) {
      std::fprintf(stderr, "moec-run: %s\n",
                   artifact.status().toString().c_str());
      return 1;
    }
    std::fputs((*artifact)->summary().c_str(), stdout);
    if (!o.haveTokens)
      return 0;
  }

  auto loadStart = std::chrono::steady_clock::now();
  moec_model *model = nullptr;
  moec_status status =
      moec_model_load(o.model.c_str(), o.device.c_str(), &model);
  if (status != MOEC_OK)
    return fail("loading the model", status);
  double loadMs = msSince(loadStart);

  int64_t n = int64_t(o.tokens.size());
  std::vector<double> times;
  for (int64_t r = 0; r < o.repeat; ++r) {
    auto start = std::chrono::steady_clock::now();
    status = moec_model_run(model, o.tokens.data(), n);
    if (status != MOEC_OK) {
      moec_model_free(model);
      return fail("running the model", status);
    }
    times.push_back(msSince(start));
  }
  const float *logits = nullptr;
  int64_t rows = 0, cols = 0;
  status = moec_model_logits(model, &logits, &rows, &cols);
  if (status != MOEC_OK) {
    moec_model_free(model);
    return fail("reading the logits", status);
  }

  std::printf("model: %s on %s, %lld tokens, vocabulary %lld\n",
              o.model.c_str(), moec_model_device(model), (long long)n,
              (long long)cols);
  for (int64_t t = 0; t < rows && o.top > 0; ++t) {
    const float *row = logits + t * cols;
    std::printf("position %lld, token %d:", (long long)t, o.tokens[size_t(t)]);
    std::vector<int64_t> best = topK(row, cols, o.top);
    for (size_t j = 0; j < best.size(); ++j)
      std::printf("%s %lld (%.4f)", j ? "," : "", (long long)best[j],
                  row[best[j]]);
    std::printf("\n");
  }
  if (!o.dumpLogits.empty()) {
    if (!writeNpy(o.dumpLogits, logits, rows, cols)) {
      std::fprintf(stderr, "moec-run: cannot write %s: %s\n",
                   o.dumpLogits.c_str(), std::strerror(errno));
      moec_model_free(model);
      return 1;
    }
    std::printf("logits: %s (float32 [%lld, %lld])\n", o.dumpLogits.c_str(),
                (long long)rows, (long long)cols);
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  size_t mid = sorted.size() / 2;
  double median =
      sorted.size() % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  std::printf("load: %.3f ms\n", loadMs);
  std::printf("run: median %.3f ms over %lld run%s (min %.3f ms, max %.3f "
              "ms)\n",
              median, (long long)o.repeat, o.repeat == 1 ? "" : "s",
              sorted.front(), sorted.back());
  moec_model_free(model);
  return 0;
}

} // namespace moec::runtime
