//===- MoecRun.cpp - The moec-run command line ------------------*- C++ -*-===//
//
// Argument parsing, the top-k printout, .npy input and output and timing of
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
       moec-run MODEL.moea --input NAME=FILE.npy [--input ...] [options]
       moec-run MODEL.moea --info

Runs a compiled moec artifact on a sequence of token ids and prints, for
every position, the K highest-scoring next tokens with their logits; or
runs it on inputs read from .npy files (e.g. the f32 activation of an MoE
block) and prints the shape of every output.

options:
  --tokens LIST        comma-separated token ids, e.g. 1,2,3 (at most the
                       artifact's max tokens; ids must be < its vocabulary)
  --input NAME=FILE    set the model input NAME from a NumPy .npy file
                       (float32, int32 or int64, C order, matching the
                       input's dtype; first dimension = tokens, the others
                       as the manifest says); repeat for every input but
                       `positions` (which defaults to 0 .. T-1); replaces
                       --tokens
  --device DEV         cpu, cuda or auto (default auto: CUDA when the
                       artifact carries CUDA code and a device is usable,
                       else the CPU)
  --threads N          CPU threads for the kernels' parallel loops (default
                       MOEC_NUM_THREADS, else all hardware threads; 1 runs
                       everything on one thread; results do not change)
  --top K              tokens to print per position (default 5; 0 prints none)
  --repeat N           run N times and report the median, min and max run
                       time (default 1)
  --dump-logits FILE   write the logits as a NumPy .npy file, float32 of
                       shape [tokens, vocab]; with --input, output 0
                       whatever its shape (as --dump-output)
  --dump-output FILE   write output 0 as a NumPy .npy file, in its dtype
                       and shape with the token dimension resolved
  --info               print the artifact's manifest summary: versions,
                       model, targets, the CPU code variants and the one
                       this CPU runs, inputs, outputs, buffers, weight
                       bytes, precision per op class, CUDA code and
                       launches, steps and sections;
                       runs too when --tokens or --input is also given
  -h, --help           show this help

environment: MOEC_NUM_THREADS (default threads), MOEC_CPU_FEATURES (mask
the detected CPU features, e.g. x86-64-v2, to run a more portable variant
of the CPU code).

exit status: 0 on success, 1 when loading or running fails (the message
says why), 2 on a usage error.
)";

struct Options {
  std::string model;
  std::vector<int32_t> tokens;
  bool haveTokens = false;
  std::string device = "auto";
  std::string dumpLogits;
  std::string dumpOutput;
  // --input NAME=FILE pairs, in command-line order.
  std::vector<std::pair<std::string, std::string>> inputs;
  int64_t repeat = 1;
  int64_t threads = 0;
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
    } else if (arg == "--input") {
      size_t eq = std::string::npos;
      if (next(v))
        eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
        return usageError("--input needs NAME=FILE.npy, e.g. --input "
                          "x=activations.npy");
      o.inputs.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (arg == "--device") {
      if (!next(v) || (v != "cpu" && v != "cuda" && v != "auto"))
        return usageError("--device must be cpu, cuda or auto");
      o.device = v;
    } else if (arg == "--dump-logits") {
      if (!next(v) || v.empty())
        return usageError("--dump-logits needs a file name");
      o.dumpLogits = v;
    } else if (arg == "--dump-output") {
      if (!next(v) || v.empty())
        return usageError("--dump-output needs a file name");
      o.dumpOutput = v;
    } else if (arg == "--threads") {
      if (!next(v) || !parseInt(v, 1, 4096, o.threads))
        return usageError("--threads needs a count in [1, 4096]");
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
  if (o.haveTokens && !o.inputs.empty())
    return usageError("--tokens and --input exclude each other");
  if (!o.haveTokens && o.inputs.empty() && !o.info)
    return usageError("--tokens or --input is required (or --info)");
  return 0;
}

int fail(const char *what, moec_status status) {
  std::fprintf(stderr, "moec-run: %s failed (%s): %s\n", what,
               moec_status_string(status), moec_last_error());
  return 1;
}

// The .npy descr of `dtype` ("" when NumPy has no such type).
std::string npyDescr(moec_dtype dtype) {
  switch (dtype) {
  case MOEC_DTYPE_F32:
    return "<f4";
  case MOEC_DTYPE_F16:
    return "<f2";
  case MOEC_DTYPE_I32:
    return "<i4";
  case MOEC_DTYPE_I64:
    return "<i8";
  case MOEC_DTYPE_I8:
    return "|i1";
  case MOEC_DTYPE_U8:
    return "|u1";
  default:
    return "";
  }
}

const char *dtypeLabel(moec_dtype dtype) {
  switch (dtype) {
  case MOEC_DTYPE_F32:
    return "float32";
  case MOEC_DTYPE_BF16:
    return "bfloat16";
  case MOEC_DTYPE_F16:
    return "float16";
  case MOEC_DTYPE_F8E4M3FN:
    return "float8_e4m3fn";
  case MOEC_DTYPE_F8E5M2:
    return "float8_e5m2";
  case MOEC_DTYPE_I32:
    return "int32";
  case MOEC_DTYPE_I64:
    return "int64";
  case MOEC_DTYPE_I8:
    return "int8";
  case MOEC_DTYPE_U8:
    return "uint8";
  }
  return "unknown";
}

std::string shapeText(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") +
            (shape[i] == -1 ? std::string("T") : std::to_string(shape[i]));
  return text + "]";
}

bool writeNpy(const std::string &path, const std::string &descr,
              const std::vector<int64_t> &shape, const void *data,
              size_t bytes) {
  // Python's tuple spelling: "()", "(3,)", "(3, 4)".
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i)
    dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1)
    dims += ",";
  std::string dict = "{'descr': '" + descr +
                     "', 'fortran_order': False, 'shape': (" + dims + "), }";
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
            std::fwrite(data, 1, bytes, f) == bytes;
  return std::fclose(f) == 0 && ok;
}

//===----------------------------------------------------------------------===//
// --input: .npy files checked against the manifest
//===----------------------------------------------------------------------===//

/// An input read from a .npy file.
struct NpyArray {
  moec_dtype dtype = MOEC_DTYPE_F32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> data;
  /// The model input it is for.
  int64_t index = 0;
};

// The value of `key` in the .npy header dict `header` (up to the next ','
// outside parentheses, or '}'), trimmed; "" when absent.
std::string npyField(const std::string &header, const std::string &key) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos)
    return "";
  at = header.find(':', at);
  if (at == std::string::npos)
    return "";
  size_t end = ++at;
  for (int depth = 0; end < header.size(); ++end) {
    char c = header[end];
    depth += c == '(' ? 1 : c == ')' ? -1 : 0;
    if (depth == 0 && (c == ',' || c == '}'))
      break;
  }
  std::string value = header.substr(at, end - at);
  value.erase(0, value.find_first_not_of(" "));
  value.erase(value.find_last_not_of(" ") + 1);
  return value;
}

// Reads `path` as a C-order float32/int32/int64 .npy; "" on success, else
// why not.
std::string readNpy(const std::string &path, NpyArray &array) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return std::string("cannot open: ") + std::strerror(errno);
  std::vector<unsigned char> bytes;
  unsigned char chunk[65536];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof(chunk), f)) > 0)
    bytes.insert(bytes.end(), chunk, chunk + got);
  bool readError = std::ferror(f);
  std::fclose(f);
  if (readError)
    return "read error";
  static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (bytes.size() < 10 || std::memcmp(bytes.data(), magic, 6) != 0)
    return "not a NumPy .npy file (bad magic)";
  unsigned major = bytes[6];
  size_t lengthBytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3)
    return "unsupported .npy version " + std::to_string(major);
  size_t headerLength = 0;
  for (size_t i = 0; i < lengthBytes && 8 + i < bytes.size(); ++i)
    headerLength |= size_t(bytes[8 + i]) << (8 * i);
  size_t dataStart = 8 + lengthBytes + headerLength;
  if (dataStart > bytes.size())
    return "truncated .npy header";
  std::string header(bytes.begin() + 8 + lengthBytes,
                     bytes.begin() + dataStart);
  std::string descr = npyField(header, "descr");
  if (descr == "'<f4'")
    array.dtype = MOEC_DTYPE_F32;
  else if (descr == "'<i4'")
    array.dtype = MOEC_DTYPE_I32;
  else if (descr == "'<i8'")
    array.dtype = MOEC_DTYPE_I64;
  else
    return "dtype " + (descr.empty() ? std::string("(none)") : descr) +
           " is not supported (expected little-endian float32 '<f4', int32 "
           "'<i4' or int64 '<i8')";
  if (npyField(header, "fortran_order") != "False")
    return "Fortran-order arrays are not supported (save a C-order array)";
  std::string shape = npyField(header, "shape");
  if (shape.size() < 2 || shape.front() != '(' || shape.back() != ')')
    return "bad shape '" + shape + "' in the .npy header";
  array.shape.clear();
  std::string dims = shape.substr(1, shape.size() - 2);
  for (size_t start = 0; start < dims.size();) {
    size_t comma = dims.find(',', start);
    std::string dim = dims.substr(start, comma - start);
    dim.erase(0, dim.find_first_not_of(" "));
    dim.erase(dim.find_last_not_of(" ") + 1);
    int64_t value;
    if (!dim.empty()) {
      if (!parseInt(dim, 0, INT64_MAX, value))
        return "bad shape '" + shape + "' in the .npy header";
      array.shape.push_back(value);
    }
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  uint64_t elements = 1;
  for (int64_t d : array.shape) {
    if (d != 0 && elements > UINT64_MAX / 8 / uint64_t(d))
      return "shape '" + shape + "' is too large";
    elements *= uint64_t(d);
  }
  uint64_t want = elements * (array.dtype == MOEC_DTYPE_I64 ? 8 : 4);
  if (bytes.size() - dataStart != want)
    return "holds " + std::to_string(bytes.size() - dataStart) +
           " data bytes, but shape " + shape + " needs " + std::to_string(want);
  array.data.assign(bytes.begin() + dataStart, bytes.end());
  return "";
}

// Reads every --input file into `arrays` and checks it against the model's
// input of that name; stores the token count in `tokens`. Returns 0, or 1
// after printing why not.
int readInputs(moec_model *model, const Options &o,
               std::vector<NpyArray> &arrays, int64_t &tokens) {
  int64_t count = moec_model_tensor_count(model, 0);
  std::vector<bool> given(size_t(count), false);
  tokens = 0;
  for (const auto &[name, path] : o.inputs) {
    int64_t index = 0;
    const char *inputName = nullptr;
    moec_dtype dtype;
    const int64_t *dims = nullptr;
    int64_t rank = 0;
    std::string names;
    for (; index < count; ++index) {
      moec_model_tensor_info(model, 0, index, &inputName, &dtype, &dims, &rank);
      if (name == inputName)
        break;
      names += (names.empty() ? "'" : ", '") + std::string(inputName) + "'";
    }
    if (index == count) {
      std::fprintf(stderr,
                   "moec-run: --input %s: the model has no input '%s' (its "
                   "inputs: %s)\n",
                   name.c_str(), name.c_str(), names.c_str());
      return 1;
    }
    if (given[size_t(index)]) {
      std::fprintf(stderr, "moec-run: --input %s given twice\n", name.c_str());
      return 1;
    }
    given[size_t(index)] = true;
    std::vector<int64_t> want(dims, dims + rank);
    NpyArray array;
    std::string why = readNpy(path, array);
    if (why.empty() && array.dtype != dtype)
      why = std::string("is ") + dtypeLabel(array.dtype) + ", but input '" +
            name + "' is " + dtypeLabel(dtype);
    if (why.empty() &&
        (array.shape.size() != want.size() || want.empty() || want[0] != -1))
      why = "has shape " + shapeText(array.shape) + ", but input '" + name +
            "' has shape " + shapeText(want) +
            " (the first dimension is the tokens)";
    for (size_t d = 1; why.empty() && d < want.size(); ++d)
      if (array.shape[d] != want[d])
        why = "has shape " + shapeText(array.shape) + ", but input '" + name +
              "' has shape " + shapeText(want) + ": dimension " +
              std::to_string(d) + " differs";
    if (why.empty() && tokens != 0 && array.shape[0] != tokens)
      why = "has " + std::to_string(array.shape[0]) +
            " tokens (first dimension), but an earlier --input has " +
            std::to_string(tokens);
    if (!why.empty()) {
      std::fprintf(stderr, "moec-run: --input %s: %s: %s\n", name.c_str(),
                   path.c_str(), why.c_str());
      return 1;
    }
    tokens = array.shape[0];
    array.index = index;
    arrays.push_back(std::move(array));
  }
  for (int64_t index = 0; index < count; ++index) {
    const char *inputName = nullptr;
    moec_dtype dtype;
    const int64_t *dims = nullptr;
    int64_t rank = 0;
    moec_model_tensor_info(model, 0, index, &inputName, &dtype, &dims, &rank);
    if (!given[size_t(index)] && std::string(inputName) != "positions") {
      std::fprintf(stderr,
                   "moec-run: input '%s' (%s %s) is not set: add --input "
                   "%s=FILE.npy\n",
                   inputName, dtypeLabel(dtype),
                   shapeText(std::vector<int64_t>(dims, dims + rank)).c_str(),
                   inputName);
      return 1;
    }
  }
  return 0;
}

// Writes output 0 of the last run to `path`; 0, or 1 after printing why not.
int dumpOutput(moec_model *model, const std::string &path) {
  const void *data = nullptr;
  moec_dtype dtype;
  const int64_t *dims = nullptr;
  int64_t rank = 0;
  moec_status status = moec_model_output(model, 0, &data, &dtype, &dims, &rank);
  if (status != MOEC_OK)
    return fail("reading output 0", status);
  std::vector<int64_t> shape(dims, dims + rank);
  std::string descr = npyDescr(dtype);
  if (descr.empty()) {
    std::fprintf(stderr,
                 "moec-run: cannot write output 0 as .npy: NumPy has no %s\n",
                 dtypeLabel(dtype));
    return 1;
  }
  size_t bytes = std::stoul(descr.substr(2));
  for (int64_t d : shape)
    bytes *= size_t(d);
  if (!writeNpy(path, descr, shape, data, bytes)) {
    std::fprintf(stderr, "moec-run: cannot write %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::printf("output 0: %s (%s %s)\n", path.c_str(), dtypeLabel(dtype),
              shapeText(shape).c_str());
  return 0;
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

// "cuda", or "cpu (cpu.so.x86-64-v4)": the device and, on the CPU, the code
// variant that runs.
std::string deviceLabel(const moec_model *model) {
  std::string label = moec_model_device(model);
  std::string code = moec_model_cpu_code(model);
  return code.empty() ? label : label + " (" + code + ")";
}

// Runs the model `o.repeat` times on `o.tokens`, prints the top tokens and
// dumps what was asked for. Returns the exit code.
int runOnTokens(moec_model *model, const Options &o,
                std::vector<double> &times) {
  int64_t n = int64_t(o.tokens.size());
  for (int64_t r = 0; r < o.repeat; ++r) {
    auto start = std::chrono::steady_clock::now();
    moec_status status = moec_model_run(model, o.tokens.data(), n);
    if (status != MOEC_OK)
      return fail("running the model", status);
    times.push_back(msSince(start));
  }
  const float *logits = nullptr;
  int64_t rows = 0, cols = 0;
  moec_status status = moec_model_logits(model, &logits, &rows, &cols);
  if (status != MOEC_OK)
    return fail("reading the logits", status);

  std::printf("model: %s on %s, %lld tokens, vocabulary %lld\n",
              o.model.c_str(), deviceLabel(model).c_str(), (long long)n,
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
    if (!writeNpy(o.dumpLogits, "<f4", {rows, cols}, logits,
                  size_t(rows * cols) * sizeof(float))) {
      std::fprintf(stderr, "moec-run: cannot write %s: %s\n",
                   o.dumpLogits.c_str(), std::strerror(errno));
      return 1;
    }
    std::printf("logits: %s (float32 [%lld, %lld])\n", o.dumpLogits.c_str(),
                (long long)rows, (long long)cols);
  }
  return o.dumpOutput.empty() ? 0 : dumpOutput(model, o.dumpOutput);
}

// Runs the model `o.repeat` times on the --input files, prints every
// output's shape and dumps output 0 when asked. Returns the exit code.
int runOnInputs(moec_model *model, const Options &o,
                std::vector<double> &times) {
  std::vector<NpyArray> arrays;
  int64_t tokens = 0;
  if (int code = readInputs(model, o, arrays, tokens))
    return code;
  for (int64_t r = 0; r < o.repeat; ++r) {
    // Inputs are set anew for every run: the arena reuses their memory.
    auto start = std::chrono::steady_clock::now();
    for (const NpyArray &array : arrays) {
      moec_status status = moec_model_set_input(
          model, array.index, array.dtype, array.data.data(),
          int64_t(array.data.size()), tokens);
      if (status != MOEC_OK)
        return fail("setting the inputs", status);
    }
    moec_status status = moec_model_run_tokens(model, tokens);
    if (status != MOEC_OK)
      return fail("running the model", status);
    times.push_back(msSince(start));
  }
  std::printf("model: %s on %s, %lld tokens\n", o.model.c_str(),
              deviceLabel(model).c_str(), (long long)tokens);
  for (int64_t i = 0; i < moec_model_tensor_count(model, 1); ++i) {
    const char *name = nullptr;
    const void *data = nullptr;
    moec_dtype dtype;
    const int64_t *dims = nullptr;
    int64_t rank = 0;
    // The name from the manifest, the resolved shape from the run.
    moec_status status =
        moec_model_tensor_info(model, 1, i, &name, &dtype, &dims, &rank);
    if (status == MOEC_OK)
      status = moec_model_output(model, i, &data, &dtype, &dims, &rank);
    if (status != MOEC_OK)
      return fail("reading the outputs", status);
    std::printf("output %lld: '%s' %s %s\n", (long long)i, name,
                dtypeLabel(dtype),
                shapeText(std::vector<int64_t>(dims, dims + rank)).c_str());
  }
  for (const std::string &path : {o.dumpLogits, o.dumpOutput})
    if (!path.empty())
      if (int code = dumpOutput(model, path))
        return code;
  return 0;
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
    if (!o.haveTokens && o.inputs.empty())
      return 0;
  }

  auto loadStart = std::chrono::steady_clock::now();
  moec_model *model = nullptr;
  moec_status status =
      moec_model_load(o.model.c_str(), o.device.c_str(), &model);
  if (status != MOEC_OK)
    return fail("loading the model", status);
  if (o.threads > 0)
    moec_model_set_threads(model, int(o.threads));
  double loadMs = msSince(loadStart);

  std::vector<double> times;
  int code = o.inputs.empty() ? runOnTokens(model, o, times)
                              : runOnInputs(model, o, times);
  moec_model_free(model);
  if (code)
    return code;
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
  return 0;
}

} // namespace moec::runtime
