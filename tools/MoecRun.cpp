//===- MoecRun.cpp - The moec-run command line ------------------*- C++ -*-===//
//
// Argument parsing, the top-k printout, checking .npy inputs against the
// manifest, .npy output and timing of `moec-run`. Reading .npy files is
// runtime/support/Npy.h; running goes through the C API
// (runtime/capi/moec.h), so the tool exercises exactly what embedders use;
// `--info` reads the artifact with the C++ reader to show the manifest.
//
//===----------------------------------------------------------------------===//

#include "tools/MoecRun.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/capi/moec.h"
#include "runtime/support/Npy.h"

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
       moec-run MODEL.moea --tokens ID,ID,... --generate N [sampling options]
       moec-run MODEL.moea --prompts FILE --generate N [sampling options]
       moec-run MODEL.moea --input NAME=FILE.npy [--input ...] [options]
       moec-run MODEL.moea --info

Runs a compiled moec artifact on a sequence of token ids and prints, for
every position, the K highest-scoring next tokens with their logits; or
generates up to N new tokens after the prompt (artifacts compiled with
`moec --kv-cache`), greedily unless sampling options are given, printing
the ids as they come, then the time to first token and the prefill and
decode throughput; or runs it on inputs read from .npy files (e.g. the f32
activation of an MoE block) and prints the shape of every output.

options:
  --tokens LIST        comma-separated token ids, e.g. 1,2,3 (at most the
                       artifact's max tokens; ids must be < its vocabulary)
  --input NAME=FILE    set the model input NAME from a NumPy .npy file, a
                       regular file (float32, float16, int32, int64, int8
                       or uint8, little-endian, C order, matching the
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
                       whatever its shape (as --dump-output); with
                       --generate, [sequences, N, vocab]: the logits each
                       generated token was sampled from (zeros after a
                       sequence's end)
  --dump-output FILE   write output 0 as a NumPy .npy file, in its dtype
                       and shape with the token dimension resolved
  --verify LEVEL       default or full (also --verify=full): what loading
                       checks. default: header, table, manifest and code
                       sections, and each 16 MiB weight block when a run
                       (or the GPU upload) first uses it, so loading reads
                       no weight byte; full: every weight block at load
  --trusted-key FILE   accept only artifacts signed by this Ed25519 public
                       key (PEM from `openssl pkey -pubout`, or 64 hex
                       digits); repeat to trust several keys. Unsigned or
                       otherwise signed artifacts are refused, and so is
                       every artifact when libsodium (libsodium.so.23) is
                       unavailable
  --generate N         generate up to N tokens after the prompt (--tokens,
                       or every line of --prompts) with the KV cache
  --prompts FILE       generate for every line of FILE (token ids separated
                       by commas or spaces; blank lines skipped) at once,
                       batched; prints each sequence's ids when it ends
  --temperature T      sample at temperature T (default 0: greedy)
  --top-k K, --top-p P, --min-p P, --repetition-penalty R
                       the usual sampling filters (default off)
  --seed S             a sequence's random stream (default 0; sequence i
                       of --prompts uses S + i)
  --ignore-eos         go on through the model's EOS ids
  --cache-mb MB        KV cache budget in MiB (default: room for every
                       sequence of a step up to 4096 positions, at most
                       4 GiB)
  --max-sequences N    sequences per step (default: the artifact's)
  --max-tokens-per-step N
                       rows per step, so the prefill chunk (default: the
                       artifact's --max-tokens)
  --info               print the artifact's manifest summary: versions,
                       signer (and whether the signature verifies),
                       model, targets, the CPU code variants and the one
                       this CPU runs, inputs, outputs, buffers, weight
                       bytes, precision per op class, CUDA code and
                       launches, steps, the generation facts (EOS ids,
                       sampling defaults), the embedded checkpoint files
                       and sections;
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
  std::string verify = "default";
  std::string dumpLogits;
  std::string dumpOutput;
  // --input NAME=FILE pairs, in command-line order.
  std::vector<std::pair<std::string, std::string>> inputs;
  // --trusted-key files, in command-line order.
  std::vector<std::string> trustedKeys;
  int64_t repeat = 1;
  int64_t threads = 0;
  int64_t top = 5;
  bool info = false;
  bool help = false;
  // Generation: --generate N (-1: off), --prompts, sampling and sizing.
  int64_t generate = -1;
  std::string promptsFile;
  double temperature = 0, topP = 0, minP = 0, repetitionPenalty = 0;
  int64_t topK = 0, seed = 0, cacheMb = 0, maxSequences = 0,
          maxTokensPerStep = 0;
  bool ignoreEos = false;
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

bool parseDouble(const std::string &text, double lo, double hi, double &value) {
  if (text.empty())
    return false;
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0' || !(v >= lo && v <= hi))
    return false;
  value = v;
  return true;
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
    } else if (arg == "--trusted-key") {
      if (!next(v) || v.empty())
        return usageError("--trusted-key needs a public key file");
      o.trustedKeys.push_back(v);
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
    } else if (arg == "--verify" || arg.rfind("--verify=", 0) == 0) {
      if (arg != "--verify")
        v = arg.substr(9);
      else if (!next(v))
        v.clear();
      if (v != "default" && v != "full")
        return usageError("--verify must be default or full");
      o.verify = v;
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
    } else if (arg == "--generate") {
      if (!next(v) || !parseInt(v, 1, INT32_MAX, o.generate))
        return usageError("--generate needs a token count >= 1");
    } else if (arg == "--prompts") {
      if (!next(o.promptsFile))
        return usageError("--prompts needs a file name");
    } else if (arg == "--temperature") {
      if (!next(v) || !parseDouble(v, 0, 1e6, o.temperature))
        return usageError("--temperature needs a value >= 0");
    } else if (arg == "--top-k") {
      if (!next(v) || !parseInt(v, 0, INT32_MAX, o.topK))
        return usageError("--top-k needs a count >= 0");
    } else if (arg == "--top-p") {
      if (!next(v) || !parseDouble(v, 0, 1, o.topP) || o.topP == 0)
        return usageError("--top-p needs a value in (0, 1]");
    } else if (arg == "--min-p") {
      if (!next(v) || !parseDouble(v, 0, 1, o.minP))
        return usageError("--min-p needs a value in [0, 1]");
    } else if (arg == "--repetition-penalty") {
      if (!next(v) || !parseDouble(v, 0, 1e6, o.repetitionPenalty) ||
          o.repetitionPenalty == 0)
        return usageError("--repetition-penalty needs a value > 0");
    } else if (arg == "--seed") {
      if (!next(v) || !parseInt(v, 0, INT64_MAX, o.seed))
        return usageError("--seed needs an integer >= 0");
    } else if (arg == "--ignore-eos") {
      o.ignoreEos = true;
    } else if (arg == "--cache-mb") {
      if (!next(v) || !parseInt(v, 1, int64_t(1) << 30, o.cacheMb))
        return usageError("--cache-mb needs a size in MiB >= 1");
    } else if (arg == "--max-tokens-per-step") {
      if (!next(v) || !parseInt(v, 1, INT32_MAX, o.maxTokensPerStep))
        return usageError("--max-tokens-per-step needs a count >= 1");
    } else if (arg == "--max-sequences") {
      if (!next(v) || !parseInt(v, 1, 1 << 20, o.maxSequences))
        return usageError("--max-sequences needs a count >= 1");
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
  if (!o.promptsFile.empty() && (o.haveTokens || !o.inputs.empty()))
    return usageError("--prompts excludes --tokens and --input");
  if (!o.promptsFile.empty() && o.generate < 0)
    return usageError("--prompts needs --generate N");
  if (o.generate >= 0 && o.haveTokens == !o.promptsFile.empty())
    return usageError("--generate needs --tokens or --prompts");
  if (o.generate >= 0 && (o.repeat != 1 || !o.dumpOutput.empty()))
    return usageError("--generate excludes --repeat and --dump-output");
  // Sizing and sampling only apply to generation: refuse them rather than
  // ignore them.
  bool sampling = o.temperature != 0 || o.topK != 0 || o.topP != 0 ||
                  o.minP != 0 || o.repetitionPenalty != 0 || o.seed != 0 ||
                  o.ignoreEos;
  if ((o.maxTokensPerStep || o.cacheMb || o.maxSequences || sampling) &&
      o.generate < 0)
    return usageError("--max-tokens-per-step, --cache-mb, --max-sequences "
                      "and the sampling options need --generate");
  if (!o.haveTokens && o.inputs.empty() && o.promptsFile.empty() && !o.info)
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

/// An input read from a .npy file, for the model input `index`.
struct InputArray {
  NpyArray array;
  moec_dtype dtype = MOEC_DTYPE_F32;
  int64_t index = 0;
};

// The C API's dtype of a .npy element type.
moec_dtype toMoecDtype(NpyDtype dtype) {
  switch (dtype) {
  case NpyDtype::kF32:
    return MOEC_DTYPE_F32;
  case NpyDtype::kF16:
    return MOEC_DTYPE_F16;
  case NpyDtype::kI32:
    return MOEC_DTYPE_I32;
  case NpyDtype::kI64:
    return MOEC_DTYPE_I64;
  case NpyDtype::kI8:
    return MOEC_DTYPE_I8;
  case NpyDtype::kU8:
    return MOEC_DTYPE_U8;
  }
  return MOEC_DTYPE_F32;
}

// Reads every --input file into `arrays` and checks it against the model's
// input of that name; stores the token count in `tokens`. Returns 0, or 1
// after printing why not.
int readInputs(moec_model *model, const Options &o,
               std::vector<InputArray> &arrays, int64_t &tokens) {
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
    // readNpyFile refuses FIFOs and devices without blocking, and checks the
    // size the header implies against the file before reading the data;
    // its messages start with the path.
    StatusOr<NpyArray> read = readNpyFile(path);
    if (!read.isOk()) {
      std::fprintf(stderr, "moec-run: --input %s: %s\n", name.c_str(),
                   read.status().message().c_str());
      return 1;
    }
    InputArray input;
    input.array = std::move(read).value();
    input.dtype = toMoecDtype(input.array.dtype);
    input.index = index;
    const std::vector<int64_t> &shape = input.array.shape;
    std::vector<int64_t> want(dims, dims + rank);
    std::string why;
    if (input.dtype != dtype)
      why = std::string("is ") + dtypeLabel(input.dtype) + ", but input '" +
            name + "' is " + dtypeLabel(dtype);
    if (why.empty() &&
        (shape.size() != want.size() || want.empty() || want[0] != -1))
      why = "has shape " + shapeText(shape) + ", but input '" + name +
            "' has shape " + shapeText(want) +
            " (the first dimension is the tokens)";
    for (size_t d = 1; why.empty() && d < want.size(); ++d)
      if (shape[d] != want[d])
        why = "has shape " + shapeText(shape) + ", but input '" + name +
              "' has shape " + shapeText(want) + ": dimension " +
              std::to_string(d) + " differs";
    if (why.empty() && tokens != 0 && shape[0] != tokens)
      why = "has " + std::to_string(shape[0]) +
            " tokens (first dimension), but an earlier --input has " +
            std::to_string(tokens);
    if (!why.empty()) {
      std::fprintf(stderr, "moec-run: --input %s: %s: %s\n", name.c_str(),
                   path.c_str(), why.c_str());
      return 1;
    }
    tokens = shape[0];
    arrays.push_back(std::move(input));
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

// The prompts of --prompts: one per non-blank line, ids separated by
// commas or white space.
bool readPrompts(const std::string &path,
                 std::vector<std::vector<int32_t>> &prompts) {
  FILE *file = std::fopen(path.c_str(), "r");
  if (!file) {
    std::fprintf(stderr, "moec-run: cannot read %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
  std::string line;
  int64_t lineNumber = 0;
  bool ok = true;
  for (int c = 0; ok && c != EOF;) {
    line.clear();
    while ((c = std::fgetc(file)) != EOF && c != '\n')
      line += char(c);
    ++lineNumber;
    for (char &ch : line)
      if (ch == ',' || ch == '\t' || ch == '\r')
        ch = ' ';
    std::vector<int32_t> ids;
    size_t start = line.find_first_not_of(' ');
    while (start != std::string::npos) {
      size_t end = line.find(' ', start);
      int64_t id;
      if (!parseInt(line.substr(start, end - start), 0, INT32_MAX, id)) {
        std::fprintf(stderr, "moec-run: %s:%lld: '%s' is not a token id\n",
                     path.c_str(), (long long)lineNumber,
                     line.substr(start, end - start).c_str());
        ok = false;
        break;
      }
      ids.push_back(int32_t(id));
      start = line.find_first_not_of(' ', end);
    }
    if (!ids.empty())
      prompts.push_back(std::move(ids));
  }
  std::fclose(file);
  if (ok && prompts.empty()) {
    std::fprintf(stderr, "moec-run: %s holds no prompt\n", path.c_str());
    return false;
  }
  return ok;
}

const char *finishName(moec_finish finish) {
  switch (finish) {
  case MOEC_FINISH_NONE:
    return "none";
  case MOEC_FINISH_EOS:
    return "eos";
  case MOEC_FINISH_STOP:
    return "stop token";
  case MOEC_FINISH_LENGTH:
    return "length";
  case MOEC_FINISH_CANCELLED:
    return "cancelled";
  case MOEC_FINISH_ERROR:
    return "error";
  }
  return "?";
}

// Generates for --tokens or every --prompts line and reports throughput.
// Returns the exit code.
int runGeneration(moec_model *model, const Options &o) {
  std::vector<std::vector<int32_t>> prompts;
  if (o.promptsFile.empty())
    prompts.push_back(o.tokens);
  else if (!readPrompts(o.promptsFile, prompts))
    return 1;
  moec_generator_options options = {};
  options.cache_bytes = o.cacheMb << 20;
  options.max_sequences = o.maxSequences;
  options.max_tokens_per_step = o.maxTokensPerStep;
  const char *name = nullptr;
  moec_dtype dtype;
  const int64_t *dims = nullptr;
  int64_t rank = 0;
  if (moec_model_tensor_info(model, 1, 0, &name, &dtype, &dims, &rank) !=
          MOEC_OK ||
      rank != 2)
    return fail("reading the logits' shape", MOEC_INVALID_ARGUMENT);
  int64_t vocab = dims[1];
  // --dump-logits: [sequences, N, vocab].
  std::vector<float> dumped;
  if (!o.dumpLogits.empty())
    dumped.assign(size_t(prompts.size()) * size_t(o.generate) * size_t(vocab),
                  0.0f);
  moec_generator *generator = nullptr;
  moec_status status = moec_generator_create(model, &options, &generator);
  if (status != MOEC_OK)
    return fail("starting generation", status);
  struct Sequence {
    std::vector<int32_t> output;
    moec_finish finish = MOEC_FINISH_NONE;
    std::string error;
  };
  std::vector<Sequence> sequences(prompts.size());
  std::vector<int64_t> ids;
  for (size_t i = 0; i < prompts.size(); ++i) {
    moec_sampling sampling = {};
    sampling.temperature = float(o.temperature);
    sampling.top_k = int32_t(o.topK);
    sampling.top_p = float(o.topP);
    sampling.min_p = float(o.minP);
    sampling.repetition_penalty = float(o.repetitionPenalty);
    sampling.seed = uint64_t(o.seed) + i;
    sampling.max_new_tokens = o.generate;
    sampling.ignore_eos = o.ignoreEos;
    int64_t id = 0;
    status = moec_generator_add(generator, prompts[i].data(),
                                int64_t(prompts[i].size()), &sampling, &id);
    if (status != MOEC_OK) {
      std::fprintf(stderr, "moec-run: prompt %zu: %s\n", i + 1,
                   moec_last_error());
      moec_generator_free(generator);
      return 1;
    }
    ids.push_back(id);
  }
  std::printf("model: %s on %s, %zu sequence%s, up to %lld new tokens each\n",
              o.model.c_str(), deviceLabel(model).c_str(), prompts.size(),
              prompts.size() == 1 ? "" : "s", (long long)o.generate);
  std::fflush(stdout);

  // Steps that computed prompt rows count as prefill time, the others as
  // decode time.
  bool streaming = o.promptsFile.empty();
  double prefillMs = 0, decodeMs = 0, firstTokenMs = -1;
  int64_t prefillRows = 0, decodeTokens = 0, lastPrefill = 0, lastDecode = 0;
  auto start = std::chrono::steady_clock::now();
  while (moec_generator_unfinished(generator) > 0) {
    auto stepStart = std::chrono::steady_clock::now();
    const moec_generation_event *events = nullptr;
    int64_t count = 0;
    status = moec_generator_step(generator, &events, &count);
    if (status != MOEC_OK) {
      moec_generator_free(generator);
      return fail("generating", status);
    }
    double ms = msSince(stepStart);
    int64_t prefill = 0, decode = 0;
    double seconds = 0;
    moec_generator_stats(generator, &prefill, &decode, &seconds);
    if (prefill > lastPrefill) {
      prefillMs += ms;
      prefillRows += prefill - lastPrefill;
    } else {
      decodeMs += ms;
      decodeTokens += decode - lastDecode;
    }
    lastPrefill = prefill;
    lastDecode = decode;
    for (int64_t e = 0; e < count; ++e) {
      const moec_generation_event &event = events[e];
      size_t index = size_t(std::find(ids.begin(), ids.end(), event.sequence) -
                            ids.begin());
      if (index >= sequences.size())
        continue;
      Sequence &seq = sequences[index];
      if (event.token >= 0) {
        if (firstTokenMs < 0)
          firstTokenMs = msSince(start);
        if (!dumped.empty() && event.logits &&
            int64_t(seq.output.size()) < o.generate)
          std::memcpy(dumped.data() +
                          (index * size_t(o.generate) + seq.output.size()) *
                              size_t(vocab),
                      event.logits, size_t(vocab) * sizeof(float));
        seq.output.push_back(event.token);
        if (streaming) {
          std::printf("%s%d", seq.output.size() == 1 ? "" : " ", event.token);
          std::fflush(stdout);
        }
      }
      if (event.finish != MOEC_FINISH_NONE) {
        seq.finish = event.finish;
        seq.error = event.error;
        if (!streaming) {
          std::printf("[%zu]", index + 1);
          for (int32_t token : seq.output)
            std::printf(" %d", token);
          std::printf("  (%s)\n", finishName(seq.finish));
        }
      }
    }
  }
  double totalMs = msSince(start);
  moec_generator_free(generator);
  if (streaming)
    std::printf("\nfinish: %s, %zu tokens\n", finishName(sequences[0].finish),
                sequences[0].output.size());
  int code = 0;
  for (size_t i = 0; i < sequences.size(); ++i)
    if (sequences[i].finish == MOEC_FINISH_ERROR) {
      std::fprintf(stderr, "moec-run: sequence %zu failed: %s\n", i + 1,
                   sequences[i].error.c_str());
      code = 1;
    }
  std::printf("time to first token: %.3f ms\n", firstTokenMs);
  std::printf("prefill: %lld tokens in %.3f ms (%.1f tokens/s)\n",
              (long long)prefillRows, prefillMs,
              prefillMs > 0 ? prefillRows * 1e3 / prefillMs : 0.0);
  std::printf("decode: %lld tokens in %.3f ms (%.1f tokens/s)\n",
              (long long)decodeTokens, decodeMs,
              decodeMs > 0 ? decodeTokens * 1e3 / decodeMs : 0.0);
  std::printf("total: %.3f ms\n", totalMs);
  if (!dumped.empty()) {
    int64_t shape0 = int64_t(prompts.size());
    if (!writeNpy(o.dumpLogits, "<f4", {shape0, o.generate, vocab},
                  dumped.data(), dumped.size() * sizeof(float))) {
      std::fprintf(stderr, "moec-run: cannot write %s: %s\n",
                   o.dumpLogits.c_str(), std::strerror(errno));
      return 1;
    }
    std::printf("logits: %s (float32 [%lld, %lld, %lld])\n",
                o.dumpLogits.c_str(), (long long)shape0, (long long)o.generate,
                (long long)vocab);
  }
  return code;
}

// Runs the model `o.repeat` times on the --input files, prints every
// output's shape and dumps output 0 when asked. Returns the exit code.
int runOnInputs(moec_model *model, const Options &o,
                std::vector<double> &times) {
  std::vector<InputArray> arrays;
  int64_t tokens = 0;
  if (int code = readInputs(model, o, arrays, tokens))
    return code;
  for (int64_t r = 0; r < o.repeat; ++r) {
    // Inputs are set anew for every run: the arena reuses their memory.
    auto start = std::chrono::steady_clock::now();
    for (const InputArray &input : arrays) {
      moec_status status = moec_model_set_input(
          model, input.index, input.dtype, input.array.data.data(),
          int64_t(input.array.data.size()), tokens);
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

  bool full = o.verify == "full";
  std::vector<const char *> keyFiles;
  for (const std::string &file : o.trustedKeys)
    keyFiles.push_back(file.c_str());
  moec_load_options loadOptions = {};
  loadOptions.device = o.device.c_str();
  loadOptions.verify = full ? MOEC_VERIFY_FULL : MOEC_VERIFY_DEFAULT;
  loadOptions.trusted_key_files = keyFiles.data();
  loadOptions.trusted_key_file_count = int64_t(keyFiles.size());
  loadOptions.require_signature = !keyFiles.empty();
  if (o.info) {
    OpenOptions options;
    options.verify = full ? VerifyLevel::kFull : VerifyLevel::kDefault;
    for (const std::string &file : o.trustedKeys) {
      StatusOr<Ed25519PublicKey> key = [&]() -> StatusOr<Ed25519PublicKey> {
        MOEC_ASSIGN_OR_RETURN(std::string text, readKeyFile(file));
        return parseEd25519PublicKey(text, file);
      }();
      if (!key.isOk()) {
        std::fprintf(stderr, "moec-run: %s\n", key.status().toString().c_str());
        return 1;
      }
      options.signatures.trustedKeys.push_back(*key);
    }
    options.signatures.requireSignature = !o.trustedKeys.empty();
    auto openStart = std::chrono::steady_clock::now();
    StatusOr<std::unique_ptr<Artifact>> artifact =
        Artifact::open(o.model, options);
    double openMs = msSince(openStart);
    if (!artifact.isOk()) {
      std::fprintf(stderr, "moec-run: %s\n",
                   artifact.status().toString().c_str());
      return 1;
    }
    std::fputs((*artifact)->summary().c_str(), stdout);
    std::printf("opened and verified (--verify=%s) in %.3f ms\n",
                o.verify.c_str(), openMs);
    if (!o.haveTokens && o.inputs.empty())
      return 0;
  }

  auto loadStart = std::chrono::steady_clock::now();
  moec_model *model = nullptr;
  moec_status status =
      moec_model_load_with_options(o.model.c_str(), &loadOptions, &model);
  if (status != MOEC_OK)
    return fail("loading the model", status);
  if (o.threads > 0)
    moec_model_set_threads(model, int(o.threads));
  double loadMs = msSince(loadStart);

  if (o.generate >= 0) {
    int code = runGeneration(model, o);
    moec_model_free(model);
    std::printf("load: %.3f ms\n", loadMs);
    return code;
  }
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
