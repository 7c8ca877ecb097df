//===- moec.cpp - C API of the moec runtime ---------------------*- C++ -*-===//
//
// The C functions of moec.h over `Artifact` and an `Executor`: device
// selection ("auto" takes CUDA when a device is usable and the artifact
// carries CUDA code, else the CPU), argument checks, the one-thread-at-a-time
// check on each model, and the translation of `Status` into `moec_status`
// plus the thread-local last-error string.
//
//===----------------------------------------------------------------------===//

#include "runtime/capi/moec.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/capi/ModelTesting.h"
#include "runtime/cpu/CpuExecutor.h"
#include "runtime/cuda/CudaExecutor.h"
#include "runtime/generate/Generator.h"

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

using namespace moec::runtime;

struct moec_model {
  std::unique_ptr<Executor> executor;
  // Tokens of the last successful run; 0 before the first.
  int64_t lastTokens = 0;
  // The model takes i64 token ids: the i32 ids are widened on each run.
  bool wideTokens = false;
  // Why the model does not fit `moec_model_run` / `moec_model_logits`
  // (empty when it does); reported when they are called.
  std::string tokensError, logitsError;
  // The resolved shape of each output as last returned by moec_model_output.
  std::vector<std::vector<int64_t>> outputShapes;
  // Held by the call that runs the model or touches its inputs and outputs
  // (`ModelCall`): a second thread's call fails instead of racing with it.
  mutable std::atomic<bool> busy{false};
  // Tests only: called inside every run while `busy` is held.
  std::function<void()> runHookForTesting;
  // The manifest's shape of every input ([0]) and output ([1]), copied
  // out of the file for moec_model_tensor_info.
  std::vector<std::vector<int64_t>> specShapes[2];
  // Set while a moec_generator owns the KV cache.
  std::atomic<bool> generating{false};
};

// moec_finish names FinishReason's values.
static_assert(int(FinishReason::kNone) == MOEC_FINISH_NONE &&
                  int(FinishReason::kEos) == MOEC_FINISH_EOS &&
                  int(FinishReason::kStopToken) == MOEC_FINISH_STOP &&
                  int(FinishReason::kLength) == MOEC_FINISH_LENGTH &&
                  int(FinishReason::kCancelled) == MOEC_FINISH_CANCELLED &&
                  int(FinishReason::kError) == MOEC_FINISH_ERROR,
              "moec_finish and FinishReason differ");

struct moec_generator {
  moec_model *model = nullptr;
  std::unique_ptr<Generator> generator;
  // The model's EOS ids, for requests that do not ignore them.
  std::vector<int32_t> eosIds;
  // The last step's events and their error messages.
  std::vector<moec_generation_event> events;
  std::vector<std::string> errors;
};

namespace {

thread_local std::string lastError;

moec_status toCStatus(StatusCode code) {
  switch (code) {
  case StatusCode::kOk:
    return MOEC_OK;
  case StatusCode::kInvalidArgument:
    return MOEC_INVALID_ARGUMENT;
  case StatusCode::kNotFound:
    return MOEC_NOT_FOUND;
  case StatusCode::kIoError:
    return MOEC_IO_ERROR;
  case StatusCode::kCorrupt:
    return MOEC_CORRUPT;
  case StatusCode::kUnsupportedVersion:
    return MOEC_UNSUPPORTED_VERSION;
  case StatusCode::kUnavailable:
    return MOEC_UNAVAILABLE;
  case StatusCode::kOutOfMemory:
    return MOEC_OUT_OF_MEMORY;
  case StatusCode::kInternal:
    return MOEC_INTERNAL;
  case StatusCode::kUntrusted:
    return MOEC_UNTRUSTED;
  }
  return MOEC_INTERNAL;
}

moec_status report(const Status &status) {
  if (!status.isOk())
    lastError = status.message();
  return toCStatus(status.code());
}

moec_status invalid(const std::string &message) {
  return report(Status(StatusCode::kInvalidArgument, message));
}

const char kModelBusy[] =
    "model is already running on another thread; a model may be used from "
    "one thread at a time \u2014 load it once per thread";

// Marks `model` busy for the scope of one C API call. A model is documented
// as usable from one thread at a time; a call that finds it busy reports
// that instead of running the executor concurrently (which would race on
// the arena, the inputs and the outputs). Never waits: a caller that
// serialises its calls never sees the error.
class ModelCall {
public:
  explicit ModelCall(const moec_model &model) : busy_(model.busy) {
    bool expected = false;
    acquired_ = busy_.compare_exchange_strong(
        expected, true, std::memory_order_acquire, std::memory_order_relaxed);
  }
  ~ModelCall() {
    if (acquired_)
      busy_.store(false, std::memory_order_release);
  }
  ModelCall(const ModelCall &) = delete;
  ModelCall &operator=(const ModelCall &) = delete;

  /// False when another thread is inside a call on the same model.
  bool acquired() const { return acquired_; }

private:
  std::atomic<bool> &busy_;
  bool acquired_ = false;
};

moec_status busy() { return invalid(kModelBusy); }

const char kModelGenerating[] =
    "model is generating: a moec_generator owns its KV cache; free the "
    "generator before running the model directly";

// Calls the test hook of `model` (inside a run, `busy` held).
void runHook(const moec_model &model) {
  if (model.runHookForTesting)
    model.runHookForTesting();
}

// Binds `artifact` to `device` ("cpu", "cuda" or "auto"). "auto" uses CUDA
// when the artifact carries CUDA code and a device is usable, and falls
// back to the CPU only when CUDA is unavailable (any other CUDA failure is
// reported, not hidden).
StatusOr<std::unique_ptr<Executor>>
createExecutor(std::shared_ptr<const Artifact> artifact,
               const std::string &device) {
  std::string cudaWhy;
  if (device == "cuda" || (device == "auto" && hasCudaCode(*artifact))) {
    StatusOr<std::unique_ptr<CudaExecutor>> cuda =
        CudaExecutor::create(artifact);
    if (cuda.isOk())
      return std::unique_ptr<Executor>(std::move(cuda).value());
    if (device == "cuda")
      return Status(cuda.status().code(),
                    cuda.status().code() == StatusCode::kUnavailable
                        ? strCat("device 'cuda' is unavailable: ",
                                 cuda.status().message(),
                                 " (use --device cpu or auto)")
                        : strCat("device 'cuda': ", cuda.status().message()));
    if (cuda.status().code() != StatusCode::kUnavailable)
      return cuda.status();
    cudaWhy = cuda.status().message();
  }
  StatusOr<std::unique_ptr<CpuExecutor>> cpu = CpuExecutor::create(artifact);
  if (!cpu.isOk()) {
    if (!cudaWhy.empty())
      return Status(cpu.status().code(),
                    strCat("no usable device: cuda: ", cudaWhy,
                           "; cpu: ", cpu.status().message()));
    return cpu.status();
  }
  return std::unique_ptr<Executor>(std::move(cpu).value());
}

// The output that holds logits: the one named "logits", else the first.
int logitsOutput(const manifest::Manifest &m) {
  for (uint32_t i = 0; i < m.outputs()->size(); ++i)
    if (text(m.outputs()->Get(i)->name()) == "logits")
      return int(i);
  return 0;
}

// The manifest's dtype numbers are the C API's (moec.h promises it).
using manifest::DType;
static_assert(int(MOEC_DTYPE_F32) == int(DType::F32) &&
                  int(MOEC_DTYPE_BF16) == int(DType::BF16) &&
                  int(MOEC_DTYPE_F16) == int(DType::F16) &&
                  int(MOEC_DTYPE_F8E4M3FN) == int(DType::F8E4M3FN) &&
                  int(MOEC_DTYPE_F8E5M2) == int(DType::F8E5M2) &&
                  int(MOEC_DTYPE_I32) == int(DType::I32) &&
                  int(MOEC_DTYPE_I64) == int(DType::I64) &&
                  int(MOEC_DTYPE_I8) == int(DType::I8) &&
                  int(MOEC_DTYPE_U8) == int(DType::U8),
              "moec_dtype must match manifest::DType");

// The inputs (or outputs) of `model`'s manifest.
const flatbuffers::Vector<flatbuffers::Offset<manifest::TensorSpec>> &
tensorList(const moec_model &model, bool outputs) {
  const manifest::Manifest &m = model.executor->artifact().manifest();
  return outputs ? *m.outputs() : *m.inputs();
}

// Checks that `index` names an input (or output) of `model`.
Status checkIndex(const moec_model &model, bool outputs, int64_t index,
                  const char *function) {
  int64_t size = tensorList(model, outputs).size();
  if (index < 0 || index >= size)
    return Status(StatusCode::kInvalidArgument,
                  strCat(function, ": index ", index, " is not in [0, ", size,
                         ") (the model has ", size,
                         outputs ? " outputs)" : " inputs)"));
  return Status::ok();
}

// The signature policy of `o`: its keys, text and files, parsed.
StatusOr<SignaturePolicy> signaturePolicyOf(const moec_load_options &o) {
  SignaturePolicy policy;
  policy.requireSignature = o.require_signature != 0;
  if (o.trusted_key_count < 0 || o.trusted_key_file_count < 0 ||
      (o.trusted_key_count > 0 && !o.trusted_keys) ||
      (o.trusted_key_file_count > 0 && !o.trusted_key_files))
    return Status(StatusCode::kInvalidArgument,
                  "moec_model_load: trusted key count is negative or its "
                  "array is null");
  for (int64_t i = 0; i < o.trusted_key_count; ++i) {
    if (!o.trusted_keys[i])
      return Status(StatusCode::kInvalidArgument,
                    strCat("moec_model_load: trusted_keys[", i, "] is null"));
    MOEC_ASSIGN_OR_RETURN(
        Ed25519PublicKey key,
        parseEd25519PublicKey(o.trusted_keys[i],
                              strCat("trusted_keys[", i, "]")));
    policy.trustedKeys.push_back(key);
  }
  for (int64_t i = 0; i < o.trusted_key_file_count; ++i) {
    if (!o.trusted_key_files[i])
      return Status(
          StatusCode::kInvalidArgument,
          strCat("moec_model_load: trusted_key_files[", i, "] is null"));
    MOEC_ASSIGN_OR_RETURN(std::string text,
                          readKeyFile(o.trusted_key_files[i]));
    MOEC_ASSIGN_OR_RETURN(Ed25519PublicKey key,
                          parseEd25519PublicKey(text, o.trusted_key_files[i]));
    policy.trustedKeys.push_back(key);
  }
  if (policy.requireSignature && policy.trustedKeys.empty())
    return Status(StatusCode::kInvalidArgument,
                  "moec_model_load: require_signature needs at least one "
                  "trusted key");
  return policy;
}

} // namespace

extern "C" {

moec_status moec_model_load(const char *path, const char *device,
                            moec_model **model) {
  return moec_model_load_ex(path, device, MOEC_VERIFY_DEFAULT, model);
}

moec_status moec_model_load_ex(const char *path, const char *device,
                               moec_verify verify, moec_model **model) {
  moec_load_options options = {};
  options.device = device;
  options.verify = verify;
  return moec_model_load_with_options(path, &options, model);
}

moec_status moec_model_load_with_options(const char *path,
                                         const moec_load_options *loadOptions,
                                         moec_model **model) {
  if (!model)
    return invalid("moec_model_load: `model` is null");
  *model = nullptr;
  if (!path)
    return invalid("moec_model_load: `path` is null");
  moec_load_options none = {};
  const moec_load_options &o = loadOptions ? *loadOptions : none;
  std::string dev = o.device ? o.device : "auto";
  if (dev != "cpu" && dev != "cuda" && dev != "auto")
    return invalid("unknown device '" + dev + "' (expected cpu, cuda or auto)");
  // A C caller may store any int in the enum field; reading it as the enum
  // type would be undefined for values outside it (UBSan: invalid load).
  static_assert(sizeof(moec_verify) == sizeof(int), "moec_verify is an int");
  int verify;
  std::memcpy(&verify, &o.verify, sizeof(verify));
  if (verify != MOEC_VERIFY_DEFAULT && verify != MOEC_VERIFY_FULL)
    return invalid(
        strCat("moec_model_load: unknown verification level ", verify));

  OpenOptions options;
  options.verify =
      verify == MOEC_VERIFY_FULL ? VerifyLevel::kFull : VerifyLevel::kDefault;
  StatusOr<SignaturePolicy> policy = signaturePolicyOf(o);
  if (!policy.isOk())
    return report(policy.status());
  options.signatures = std::move(policy).value();
  StatusOr<std::unique_ptr<Artifact>> artifact = Artifact::open(path, options);
  if (!artifact.isOk())
    return report(artifact.status());
  const manifest::Manifest &m = (*artifact)->manifest();
  const auto &inputs = *m.inputs();
  const auto &outputs = *m.outputs();
  if (outputs.size() < 1)
    return report(
        makeError(StatusCode::kInvalidArgument, path, ": has no outputs"));
  // Token ids are i32 in the C API; an artifact whose model takes i64 ids
  // (ONNX's input_ids) gets them widened in moec_model_run. Models that do
  // not fit the token calls still load for the generic ones.
  std::string tokensError, logitsError;
  if (inputs.size() < 1 ||
      (inputs[0]->dtype() != DType::I32 && inputs[0]->dtype() != DType::I64) ||
      inputs[0]->shape()->size() != 1 || inputs[0]->shape()->Get(0) != -1)
    tokensError = strCat(path, ": the C API needs input 0 to be i32 or i64 "
                               "token ids of shape [T] (use "
                               "moec_model_set_input)");
  bool wideTokens = inputs.size() > 0 && inputs[0]->dtype() == DType::I64;
  const manifest::TensorSpec &logits = *outputs[uint32_t(logitsOutput(m))];
  if (logits.dtype() != DType::F32 || logits.shape()->size() != 2 ||
      logits.shape()->Get(0) != -1)
    logitsError = strCat(path, ": output '", text(logits.name()),
                         "' is not f32 logits of shape [T, vocab] (use "
                         "moec_model_output)");

  StatusOr<std::unique_ptr<Executor>> executor = createExecutor(
      std::shared_ptr<const Artifact>(std::move(artifact).value().release()),
      dev);
  if (!executor.isOk())
    return report(executor.status());
  auto result = std::make_unique<moec_model>();
  result->executor = std::move(executor).value();
  result->wideTokens = wideTokens;
  result->tokensError = std::move(tokensError);
  result->logitsError = std::move(logitsError);
  result->outputShapes.resize(outputs.size());
  for (const manifest::TensorSpec *t : inputs)
    result->specShapes[0].emplace_back(t->shape()->begin(), t->shape()->end());
  for (const manifest::TensorSpec *t : outputs)
    result->specShapes[1].emplace_back(t->shape()->begin(), t->shape()->end());
  *model = result.release();
  return MOEC_OK;
}

moec_status moec_model_run(moec_model *model, const int32_t *tokens,
                           int64_t n) {
  if (!model)
    return invalid("moec_model_run: `model` is null");
  if (!tokens && n > 0)
    return invalid("moec_model_run: `tokens` is null");
  if (!model->tokensError.empty())
    return invalid(model->tokensError);
  if (model->generating.load())
    return invalid(kModelGenerating);
  ModelCall call(*model);
  if (!call.acquired())
    return busy();
  Executor &ex = *model->executor;
  if (n < 1 || n > ex.maxTokens())
    return invalid("moec_model_run: token count " + std::to_string(n) +
                   " is not in [1, " + std::to_string(ex.maxTokens()) + "]");
  Status status;
  if (model->wideTokens) {
    std::vector<int64_t> wide(tokens, tokens + n);
    status = ex.setInput(0, wide.data(), uint64_t(n) * sizeof(int64_t), n);
  } else {
    status = ex.setInput(0, tokens, uint64_t(n) * sizeof(int32_t), n);
  }
  if (status.isOk()) {
    runHook(*model);
    status = ex.run(n);
  }
  if (!status.isOk()) {
    model->lastTokens = 0;
    return report(status);
  }
  model->lastTokens = n;
  return MOEC_OK;
}

moec_status moec_model_logits(const moec_model *model, const float **data,
                              int64_t *rows, int64_t *cols) {
  if (!model || !data || !rows || !cols)
    return invalid("moec_model_logits: null argument");
  if (!model->logitsError.empty())
    return invalid(model->logitsError);
  ModelCall call(*model);
  if (!call.acquired())
    return busy();
  if (model->lastTokens == 0)
    return invalid("moec_model_logits: the model has not run successfully");
  Executor &ex = *model->executor;
  StatusOr<TensorView> view = ex.tensor(
      true, logitsOutput(ex.artifact().manifest()), model->lastTokens);
  if (!view.isOk())
    return report(view.status());
  *data = reinterpret_cast<const float *>(view->data);
  *rows = view->shape[0];
  *cols = view->shape[1];
  return MOEC_OK;
}

int64_t moec_model_tensor_count(const moec_model *model, int outputs) {
  return model ? tensorList(*model, outputs != 0).size() : 0;
}

moec_status moec_model_tensor_info(const moec_model *model, int outputs,
                                   int64_t index, const char **name,
                                   moec_dtype *dtype, const int64_t **shape,
                                   int64_t *rank) {
  if (!model || !name || !dtype || !shape || !rank)
    return invalid("moec_model_tensor_info: null argument");
  if (Status s =
          checkIndex(*model, outputs != 0, index, "moec_model_tensor_info");
      !s.isOk())
    return report(s);
  const manifest::TensorSpec &spec =
      *tensorList(*model, outputs != 0)[uint32_t(index)];
  const std::vector<int64_t> &dims =
      model->specShapes[outputs != 0][size_t(index)];
  *name = spec.name()->c_str();
  *dtype = moec_dtype(spec.dtype());
  *shape = dims.data();
  *rank = int64_t(dims.size());
  return MOEC_OK;
}

moec_status moec_model_set_input(moec_model *model, int64_t index,
                                 moec_dtype dtype, const void *data,
                                 int64_t bytes, int64_t tokens) {
  if (!model)
    return invalid("moec_model_set_input: `model` is null");
  if (Status s = checkIndex(*model, false, index, "moec_model_set_input");
      !s.isOk())
    return report(s);
  const manifest::TensorSpec &spec =
      *tensorList(*model, false)[uint32_t(index)];
  if (int(dtype) != int(spec.dtype()))
    return invalid(strCat("moec_model_set_input: input '", text(spec.name()),
                          "' is ", dtypeName(spec.dtype()), ", but got ",
                          dtypeName(static_cast<DType>(dtype)),
                          " data (moec_dtype ", int(dtype), ")"));
  if (bytes < 0)
    return invalid(strCat("moec_model_set_input: negative byte count ", bytes));
  ModelCall call(*model);
  if (!call.acquired())
    return busy();
  // The arena may reuse an input's memory for outputs, and outputs read now
  // would no longer match the last run's inputs: they are invalid until the
  // next run.
  model->lastTokens = 0;
  return report(
      model->executor->setInput(int(index), data, uint64_t(bytes), tokens)
          .withPrefix("moec_model_set_input"));
}

moec_status moec_model_run_tokens(moec_model *model, int64_t tokens) {
  if (!model)
    return invalid("moec_model_run_tokens: `model` is null");
  if (model->generating.load())
    return invalid(kModelGenerating);
  ModelCall call(*model);
  if (!call.acquired())
    return busy();
  model->lastTokens = 0;
  runHook(*model);
  Status status = model->executor->run(tokens);
  if (!status.isOk())
    return report(status.withPrefix("moec_model_run_tokens"));
  model->lastTokens = tokens;
  return MOEC_OK;
}

moec_status moec_model_output(moec_model *model, int64_t index,
                              const void **data, moec_dtype *dtype,
                              const int64_t **shape, int64_t *rank) {
  if (!model || !data || !dtype || !shape || !rank)
    return invalid("moec_model_output: null argument");
  if (Status s = checkIndex(*model, true, index, "moec_model_output");
      !s.isOk())
    return report(s);
  ModelCall call(*model);
  if (!call.acquired())
    return busy();
  if (model->lastTokens == 0)
    return invalid("moec_model_output: the model has not run successfully");
  StatusOr<TensorView> view =
      model->executor->tensor(true, int(index), model->lastTokens);
  if (!view.isOk())
    return report(view.status());
  std::vector<int64_t> &stored = model->outputShapes[size_t(index)];
  stored = view->shape;
  *data = view->data;
  *dtype = moec_dtype(view->spec->dtype());
  *shape = stored.data();
  *rank = int64_t(stored.size());
  return MOEC_OK;
}

const char *moec_model_device(const moec_model *model) {
  return model ? model->executor->device() : "";
}

moec_status moec_model_set_threads(moec_model *model, int threads) {
  if (!model)
    return invalid("moec_model_set_threads: `model` is null");
  ModelCall call(*model);
  if (!call.acquired())
    return busy();
  if (std::string(model->executor->device()) == "cpu")
    static_cast<CpuExecutor *>(model->executor.get())->setThreads(threads);
  return MOEC_OK;
}

int moec_model_threads(const moec_model *model) {
  if (!model || std::string(model->executor->device()) != "cpu")
    return 0;
  return static_cast<const CpuExecutor *>(model->executor.get())->threads();
}

const char *moec_model_cpu_code(const moec_model *model) {
  if (!model || std::string(model->executor->device()) != "cpu")
    return "";
  return static_cast<const CpuExecutor *>(model->executor.get())
      ->cpuCode()
      .c_str();
}

int64_t moec_model_max_tokens(const moec_model *model) {
  return model ? model->executor->maxTokens() : 0;
}

moec_status moec_model_eos_ids(const moec_model *model, const int64_t **ids,
                               int64_t *count) {
  if (!model || !ids || !count)
    return invalid("moec_model_eos_ids: null argument");
  const manifest::Generation *g = model->executor->artifact().generation();
  // Verified 8-byte aligned at load (readManifest).
  bool any = g && g->eos_token_ids()->size() != 0;
  *ids = any ? g->eos_token_ids()->data() : nullptr;
  *count = any ? int64_t(g->eos_token_ids()->size()) : 0;
  return MOEC_OK;
}

moec_status moec_model_embedded_file(const moec_model *model, const char *name,
                                     const void **data, int64_t *size) {
  if (!model || !name || !data || !size)
    return invalid("moec_model_embedded_file: null argument");
  const Artifact &artifact = model->executor->artifact();
  ByteSpan file = artifact.embeddedFile(name);
  if (!file.data)
    return report(
        Status(StatusCode::kNotFound,
               strCat(artifact.path(), ": no embedded file '", name, "'")));
  *data = file.data;
  *size = int64_t(file.size);
  return MOEC_OK;
}

void moec_model_free(moec_model *model) { delete model; }

//===----------------------------------------------------------------------===//
// Generation
//===----------------------------------------------------------------------===//

moec_status moec_generator_create(moec_model *model,
                                  const moec_generator_options *options,
                                  moec_generator **generator) {
  if (!model || !generator)
    return invalid("moec_generator_create: null argument");
  *generator = nullptr;
  ModelCall call(*model);
  if (!call.acquired())
    return busy();
  bool expected = false;
  if (!model->generating.compare_exchange_strong(expected, true))
    return invalid("moec_generator_create: the model already has a "
                   "generator; one model serves one generator");
  GeneratorOptions o;
  if (options) {
    o.cacheBytes = options->cache_bytes;
    o.maxSequencesPerStep = options->max_sequences;
    o.maxTokensPerStep = options->max_tokens_per_step;
  }
  StatusOr<std::unique_ptr<Generator>> created =
      Generator::create(*model->executor, o);
  if (!created.isOk()) {
    model->generating.store(false);
    return report(created.status());
  }
  auto g = std::make_unique<moec_generator>();
  g->model = model;
  g->generator = std::move(created).value();
  if (const manifest::Generation *gen =
          model->executor->artifact().generation())
    for (int64_t id : *gen->eos_token_ids())
      g->eosIds.push_back(int32_t(id));
  *generator = g.release();
  return MOEC_OK;
}

moec_status moec_generator_add(moec_generator *generator, const int32_t *prompt,
                               int64_t n, const moec_sampling *sampling,
                               int64_t *sequence) {
  if (!generator || !sequence || (!prompt && n > 0))
    return invalid("moec_generator_add: null argument");
  if (n < 1)
    return invalid("moec_generator_add: the prompt is empty");
  moec_sampling zero = {};
  const moec_sampling &p = sampling ? *sampling : zero;
  if (p.stop_token_count < 0 || (p.stop_token_count > 0 && !p.stop_token_ids))
    return invalid("moec_generator_add: bad stop_token_ids / "
                   "stop_token_count");
  GenerationRequest request;
  request.prompt.assign(prompt, prompt + n);
  SamplingParams &s = request.sampling;
  s.temperature = p.temperature;
  s.topK = p.top_k;
  s.topP = p.top_p == 0.0f ? 1.0f : p.top_p;
  s.minP = p.min_p;
  s.repetitionPenalty =
      p.repetition_penalty == 0.0f ? 1.0f : p.repetition_penalty;
  s.presencePenalty = p.presence_penalty;
  s.frequencyPenalty = p.frequency_penalty;
  s.seed = p.seed;
  StopConditions &stop = request.stop;
  stop.eosTokenIds = generator->eosIds;
  stop.ignoreEos = p.ignore_eos != 0;
  if (p.stop_token_count > 0)
    stop.stopTokenIds.assign(p.stop_token_ids,
                             p.stop_token_ids + p.stop_token_count);
  stop.maxNewTokens = p.max_new_tokens > 0
                          ? p.max_new_tokens
                          : generator->generator->maxContextLength();
  StatusOr<SequenceId> id = generator->generator->add(std::move(request));
  if (!id.isOk())
    return report(id.status().withPrefix("moec_generator_add"));
  *sequence = *id;
  return MOEC_OK;
}

void moec_generator_cancel(moec_generator *generator, int64_t sequence) {
  if (generator)
    generator->generator->cancel(sequence);
}

int64_t moec_generator_unfinished(const moec_generator *generator) {
  return generator ? generator->generator->numUnfinished() : 0;
}

moec_status moec_generator_step(moec_generator *generator,
                                const moec_generation_event **events,
                                int64_t *count) {
  if (!generator || !events || !count)
    return invalid("moec_generator_step: null argument");
  *events = nullptr;
  *count = 0;
  ModelCall call(*generator->model);
  if (!call.acquired())
    return busy();
  StatusOr<std::vector<SequenceUpdate>> updates = generator->generator->step();
  if (!updates.isOk())
    return report(updates.status().withPrefix("moec_generator_step"));
  generator->errors.clear();
  generator->events.clear();
  for (const SequenceUpdate &u : *updates)
    generator->errors.push_back(u.error.isOk() ? "" : u.error.message());
  for (size_t i = 0; i < updates->size(); ++i) {
    const SequenceUpdate &u = (*updates)[i];
    generator->events.push_back({u.id, u.token, moec_finish(int(u.finish)),
                                 generator->errors[i].c_str(), u.logits});
  }
  *events = generator->events.data();
  *count = int64_t(generator->events.size());
  return MOEC_OK;
}

moec_status moec_generator_stats(const moec_generator *generator,
                                 int64_t *prefill_rows, int64_t *decode_rows,
                                 double *run_seconds) {
  if (!generator || !prefill_rows || !decode_rows || !run_seconds)
    return invalid("moec_generator_stats: null argument");
  const GeneratorStats &stats = generator->generator->stats();
  *prefill_rows = stats.prefillRows;
  *decode_rows = stats.decodeRows;
  *run_seconds = stats.runSeconds;
  return MOEC_OK;
}

void moec_generator_free(moec_generator *generator) {
  if (!generator)
    return;
  generator->model->generating.store(false);
  delete generator;
}

const char *moec_last_error(void) { return lastError.c_str(); }

const char *moec_status_string(moec_status status) {
  switch (status) {
  case MOEC_OK:
    return statusCodeName(StatusCode::kOk);
  case MOEC_INVALID_ARGUMENT:
    return statusCodeName(StatusCode::kInvalidArgument);
  case MOEC_NOT_FOUND:
    return statusCodeName(StatusCode::kNotFound);
  case MOEC_IO_ERROR:
    return statusCodeName(StatusCode::kIoError);
  case MOEC_CORRUPT:
    return statusCodeName(StatusCode::kCorrupt);
  case MOEC_UNSUPPORTED_VERSION:
    return statusCodeName(StatusCode::kUnsupportedVersion);
  case MOEC_UNAVAILABLE:
    return statusCodeName(StatusCode::kUnavailable);
  case MOEC_OUT_OF_MEMORY:
    return statusCodeName(StatusCode::kOutOfMemory);
  case MOEC_INTERNAL:
    return statusCodeName(StatusCode::kInternal);
  case MOEC_UNTRUSTED:
    return statusCodeName(StatusCode::kUntrusted);
  }
  return "unknown status";
}

} // extern "C"

void moec::runtime::setModelRunHookForTesting(moec_model *model,
                                              std::function<void()> hook) {
  model->runHookForTesting = std::move(hook);
}
