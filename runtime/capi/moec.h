/*===- moec.h - C API of the moec runtime --------------------------*- C -*-===*
 *
 * Load a compiled `.moea` artifact, run it on token ids and read its logits,
 * or set any input, run, and read any output (the generic calls, for models
 * such as an MoE block whose input is an f32 activation). Every function
 * returns a `moec_status`; on failure `moec_last_error()` holds the message
 * (per thread). A model may be used from one thread at a time (see "Threads"
 * below); different models may run on different threads at once. Pure
 * C89-compatible declarations.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOEC_RUNTIME_CAPI_MOEC_H
#define MOEC_RUNTIME_CAPI_MOEC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Result of every call. Values are stable. */
typedef enum moec_status {
  MOEC_OK = 0,
  /** A bad argument: null pointer, unknown device, token count or id out of
   *  range. */
  MOEC_INVALID_ARGUMENT = 1,
  /** The file, an output or a kernel symbol does not exist. */
  MOEC_NOT_FOUND = 2,
  /** The operating system refused to read, map or write a file. */
  MOEC_IO_ERROR = 3,
  /** The artifact is truncated, corrupted or inconsistent. */
  MOEC_CORRUPT = 4,
  /** The artifact's format version is not one this runtime reads. */
  MOEC_UNSUPPORTED_VERSION = 5,
  /** The requested device (or its driver) is not available. */
  MOEC_UNAVAILABLE = 6,
  MOEC_OUT_OF_MEMORY = 7,
  MOEC_INTERNAL = 8,
  /** The artifact is unsigned, or signed by a key that is not trusted, and
   *  the load options require a trusted signature. */
  MOEC_UNTRUSTED = 9
} moec_status;

/** Element type of an input or output. Values are stable and equal the
 *  manifest's `DType` numbers (docs/artifact.md section 3). */
typedef enum moec_dtype {
  MOEC_DTYPE_F32 = 1,
  MOEC_DTYPE_BF16 = 2,
  MOEC_DTYPE_F16 = 3,
  MOEC_DTYPE_F8E4M3FN = 4,
  MOEC_DTYPE_F8E5M2 = 5,
  MOEC_DTYPE_I32 = 6,
  MOEC_DTYPE_I64 = 7,
  MOEC_DTYPE_I8 = 8,
  MOEC_DTYPE_U8 = 9
} moec_dtype;

/** A loaded model bound to one device.
 *
 *  Threads: a model may be used from one thread at a time. A call that runs
 *  the model or reads or changes its inputs and outputs
 *  (`moec_model_run`, `moec_model_run_tokens`, `moec_model_set_input`,
 *  `moec_model_logits`, `moec_model_output`, `moec_model_set_threads`)
 *  while another thread is inside one of these calls on the same model does
 *  not race with it: it returns MOEC_INVALID_ARGUMENT at once, without
 *  waiting, and `moec_last_error()` says "model is already running on
 *  another thread; a model may be used from one thread at a time — load it
 *  once per thread" (the dash is UTF-8). The check catches overlapping calls
 *  only: a sequence of calls (set the inputs, run, read the outputs) from
 *  several threads must still be serialised by the caller, data pointers
 *  from a model are only valid until its next run, and `moec_model_free`
 *  must not overlap any other call on the model. Load the artifact once per
 *  thread to run it on several threads at once. */
typedef struct moec_model moec_model;

/** Loads and verifies the artifact at `path` for `device`: "cpu", "cuda"
 *  or "auto" (NULL means "auto": CUDA when the artifact carries CUDA code
 *  and a device is usable, else the CPU; CUDA failures other than
 *  "unavailable" are reported, not hidden by the fallback). On success
 *  stores a new model in `*model`, else leaves it NULL. Any valid artifact
 *  loads; whether it fits the token calls (`moec_model_run`,
 *  `moec_model_logits`) is checked when they are called. */
moec_status moec_model_load(const char *path, const char *device,
                            moec_model **model);

/** How much of an artifact `moec_model_load_ex` verifies while loading.
 *  Values are stable. */
typedef enum moec_verify {
  /** Header, section table, manifest and the code sections; each 16 MiB
   *  block of weights is verified when a run (or, on a GPU, the upload)
   *  first uses it, so loading reads no weight byte. */
  MOEC_VERIFY_DEFAULT = 0,
  /** All of that and every weight block, at load (reads the whole file). */
  MOEC_VERIFY_FULL = 1
} moec_verify;

/** `moec_model_load` with a verification level: `moec_model_load(p, d, m)`
 *  is `moec_model_load_ex(p, d, MOEC_VERIFY_DEFAULT, m)`. Another `verify`
 *  value is MOEC_INVALID_ARGUMENT. */
moec_status moec_model_load_ex(const char *path, const char *device,
                               moec_verify verify, moec_model **model);

/** Options of `moec_model_load_with_options`. Zero-initialise it
 *  (`moec_load_options o = {0};`), then set what you need: all zero loads
 *  like `moec_model_load(path, NULL, model)`. */
typedef struct moec_load_options {
  /** "cpu", "cuda" or "auto"; NULL means "auto". */
  const char *device;
  /** How much to verify while loading. */
  moec_verify verify;
  /** `trusted_key_count` Ed25519 public keys whose signatures are
   *  accepted, each the text of `openssl pkey -pubout` (PEM "PUBLIC KEY")
   *  or 64 hex digits. */
  const char *const *trusted_keys;
  int64_t trusted_key_count;
  /** `trusted_key_file_count` paths of files holding such keys. */
  const char *const *trusted_key_files;
  int64_t trusted_key_file_count;
  /** Nonzero: refuse an artifact unless it is signed by a trusted key
   *  (MOEC_UNTRUSTED) and its signature verifies (MOEC_CORRUPT); needs at
   *  least one trusted key. With any trusted key, a signed artifact must be
   *  signed by one of them. Checking needs libsodium (libsodium.so.23,
   *  loaded at run time); without it such a load fails closed with
   *  MOEC_UNAVAILABLE. */
  int require_signature;
} moec_load_options;

/** `moec_model_load` with options (NULL `options` means all zero). A bad
 *  key is MOEC_INVALID_ARGUMENT naming it. */
moec_status moec_model_load_with_options(const char *path,
                                         const moec_load_options *options,
                                         moec_model **model);

/** Runs the model on `n` token ids (1 <= n <= max tokens). Needs input 0 to
 *  be i32 or i64 token ids of shape [T]. */
moec_status moec_model_run(moec_model *model, const int32_t *tokens, int64_t n);

/** The logits of the last run: `*rows` (the tokens of that run) x `*cols`
 *  (the vocabulary) row-major floats, valid until the next run or free.
 *  Needs an output named "logits" (else output 0) of f32 [T, vocab]. */
moec_status moec_model_logits(const moec_model *model, const float **data,
                              int64_t *rows, int64_t *cols);

/** The number of inputs (`outputs` 0) or outputs (`outputs` 1) of `model`;
 *  0 for a NULL model. */
int64_t moec_model_tensor_count(const moec_model *model, int outputs);

/** Describes input (`outputs` 0) or output (`outputs` 1) `index`: its
 *  `*name`, `*dtype` and `*rank` dims at `*shape`, where -1 (only as dim 0)
 *  is the token dimension. The pointers stay valid until free. */
moec_status moec_model_tensor_info(const moec_model *model, int outputs,
                                   int64_t index, const char **name,
                                   moec_dtype *dtype, const int64_t **shape,
                                   int64_t *rank);

/** Copies input `index` for a run of `tokens` tokens from `data`: `bytes`
 *  must be exactly the input's size at `tokens` tokens, `dtype` its element
 *  type, and integer ids must be within the input's bound. Set every input
 *  (an input named "positions" excepted, which defaults to 0 .. T-1) before
 *  each `moec_model_run_tokens`. Invalidates the outputs of the last run. */
moec_status moec_model_set_input(moec_model *model, int64_t index,
                                 moec_dtype dtype, const void *data,
                                 int64_t bytes, int64_t tokens);

/** Runs the model for `tokens` tokens (1 <= tokens <= max tokens) on the
 *  inputs given by `moec_model_set_input`. */
moec_status moec_model_run_tokens(moec_model *model, int64_t tokens);

/** Output `index` of the last successful run (of either kind): `*data`
 *  (row-major, valid until the next run or free), `*dtype`, and `*rank`
 *  dims at `*shape` with the token dimension resolved (valid until the next
 *  call of this function for `index`, or free). */
moec_status moec_model_output(moec_model *model, int64_t index,
                              const void **data, moec_dtype *dtype,
                              const int64_t **shape, int64_t *rank);

/** The device the model runs on ("cpu" or "cuda"). */
const char *moec_model_device(const moec_model *model);

/** Sets the threads the CPU kernels spread their parallel loops (the GEMMs)
 *  over, the calling thread included: `threads` <= 0 restores the default,
 *  `MOEC_NUM_THREADS` when set to a positive integer, else the hardware's
 *  concurrency, which `moec_model_load` applies. 1 runs every kernel on the
 *  calling thread. Results are bit-identical for every count. Models on
 *  another device accept and ignore it. */
moec_status moec_model_set_threads(moec_model *model, int threads);

/** The threads set for `model`'s CPU kernels; 0 for a NULL model or
 *  another device. */
int moec_model_threads(const moec_model *model);

/** The artifact section whose CPU code `model` runs: "cpu.so.<variant>"
 *  (the best variant this CPU has the features for; `MOEC_CPU_FEATURES`
 *  can mask features, docs/artifact.md section 5) or "cpu.so"; "" for a
 *  NULL model or another device. */
const char *moec_model_cpu_code(const moec_model *model);

/** The largest token count `moec_model_run` accepts. */
int64_t moec_model_max_tokens(const moec_model *model);

/** The token ids generation stops at, from the checkpoint's
 *  `generation_config.json` (else its `config.json`) as `moec` embedded
 *  them: `*ids` points to `*count` ids (each in [0, vocabulary)), valid
 *  until free; `*count` is 0 and `*ids` NULL when the artifact records
 *  none. */
moec_status moec_model_eos_ids(const moec_model *model, const int64_t **ids,
                               int64_t *count);

/** The bytes of checkpoint file `name` that `moec` embedded in the
 *  artifact ("generation_config.json", "tokenizer.json",
 *  "tokenizer_config.json" with the chat template,
 *  "special_tokens_map.json"), verified at load: `*data` points to `*size`
 *  bytes (not NUL-terminated), valid until free. MOEC_NOT_FOUND when the
 *  artifact has no such file. */
moec_status moec_model_embedded_file(const moec_model *model, const char *name,
                                     const void **data, int64_t *size);

/** Frees `model` (NULL is ignored). */
void moec_model_free(moec_model *model);

/** The message of the last failed call on this thread ("" if none). */
const char *moec_last_error(void);

/** A short name of `status` ("ok", "corrupt artifact", ...). */
const char *moec_status_string(moec_status status);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOEC_RUNTIME_CAPI_MOEC_H */
