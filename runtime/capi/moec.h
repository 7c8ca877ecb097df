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

/** Frees `model` (NULL is ignored). Free its generator first. */
void moec_model_free(moec_model *model);

/* ------------------------------------------------------------------------
 * Generation (artifacts compiled with `moec --kv-cache`; docs/generation.md)
 *
 * A generator owns the model's KV cache while it exists: it sizes the cache
 * from its budget, batches the sequences added to it (continuous batching,
 * chunked prefill, shared prompt prefixes), runs one step per
 * `moec_generator_step` and samples each sequence's next token. While a
 * generator exists, `moec_model_run` and `moec_model_run_tokens` on its
 * model fail (they would overwrite the cache); free it first.
 *
 * Threads: one thread drives (`moec_generator_step`, `_free`); `_add`,
 * `_cancel` and `_unfinished` are safe from any thread at any time, and
 * take effect at the next step.
 * --------------------------------------------------------------------- */

typedef struct moec_generator moec_generator;

/** Options of `moec_generator_create`; zero fields take the defaults. */
typedef struct moec_generator_options {
  /** Bytes of KV cache; 0: room for `max_sequences` sequences of up to
   *  4096 positions, at most 4 GiB. */
  int64_t cache_bytes;
  /** Sequences one step may hold; 0 (or more) is the artifact's
   *  `--max-sequences`. */
  int64_t max_sequences;
  /** Rows one step may compute (the prefill chunk); 0 (or more) is the
   *  artifact's `--max-tokens`. */
  int64_t max_tokens_per_step;
} moec_generator_options;

/** How one sequence is sampled and when it stops. Zero-initialise it: all
 *  zero is greedy decoding up to the context length, stopping at the
 *  model's EOS ids. */
typedef struct moec_sampling {
  /** 0: greedy (argmax); else the logits are divided by it. */
  float temperature;
  /** Keep the k most likely tokens; 0 is off. */
  int32_t top_k;
  /** Keep the smallest set of tokens with this probability mass; 0 (or 1)
   *  is off. */
  float top_p;
  /** Drop tokens less likely than min_p times the most likely; 0 is off. */
  float min_p;
  /** HF repetition penalty; 0 (or 1) is off. */
  float repetition_penalty;
  /** OpenAI presence and frequency penalties, in [-2, 2]; 0 is off. */
  float presence_penalty;
  float frequency_penalty;
  /** The sequence's random stream: its tokens depend only on the seed,
   *  whatever else is batched with it. */
  uint64_t seed;
  /** Tokens to generate at most; 0: up to the context length. */
  int64_t max_new_tokens;
  /** Nonzero: go on through the model's EOS ids. */
  int ignore_eos;
  /** `stop_token_count` more ids that end the sequence. */
  const int32_t *stop_token_ids;
  int64_t stop_token_count;
} moec_sampling;

/** Why a sequence ended. Values are stable. */
typedef enum moec_finish {
  MOEC_FINISH_NONE = 0,      /**< still generating */
  MOEC_FINISH_EOS = 1,       /**< generated an EOS id */
  MOEC_FINISH_STOP = 2,      /**< generated a stop token */
  MOEC_FINISH_LENGTH = 3,    /**< reached max_new_tokens or the context */
  MOEC_FINISH_CANCELLED = 4, /**< moec_generator_cancel */
  MOEC_FINISH_ERROR = 5      /**< failed; `error` says why */
} moec_finish;

/** What one step did to one sequence: a new token, an ending, or both. */
typedef struct moec_generation_event {
  int64_t sequence;
  /** The new token, or -1. */
  int32_t token;
  moec_finish finish;
  /** When `finish` is MOEC_FINISH_ERROR, why (else ""); valid until the
   *  next step. */
  const char *error;
  /** With a token: the vocabulary's logits it was sampled from (before
   *  any sampling processor), valid until the next step; else NULL. */
  const float *logits;
} moec_generation_event;

/** Creates a generator over `model` (whose artifact must keep a KV cache)
 *  and allocates its cache. NULL `options` means all zero. */
moec_status moec_generator_create(moec_model *model,
                                  const moec_generator_options *options,
                                  moec_generator **generator);

/** Any thread: queues a sequence generating from the `n` token ids of
 *  `prompt` (NULL `sampling` means all zero) and stores its id in
 *  `*sequence`. Ids outside the vocabulary, a prompt that leaves no room in
 *  the context, or bad sampling values are MOEC_INVALID_ARGUMENT. */
moec_status moec_generator_add(moec_generator *generator, const int32_t *prompt,
                               int64_t n, const moec_sampling *sampling,
                               int64_t *sequence);

/** Any thread: cancels `sequence`; a later step reports it
 *  MOEC_FINISH_CANCELLED. Unknown or finished ids are ignored. */
void moec_generator_cancel(moec_generator *generator, int64_t sequence);

/** Any thread: sequences added and not yet finished. */
int64_t moec_generator_unfinished(const moec_generator *generator);

/** Driving thread: runs one step and stores its `*count` events in
 *  `*events` (valid until the next step or free; none when nothing was
 *  queued). A sequence's own failure is an event; an error return means
 *  the model failed and the generator cannot go on. */
moec_status moec_generator_step(moec_generator *generator,
                                const moec_generation_event **events,
                                int64_t *count);

/** Driving thread: rows computed so far, those of prefill and of decode,
 *  and the seconds spent running the model. */
moec_status moec_generator_stats(const moec_generator *generator,
                                 int64_t *prefill_rows, int64_t *decode_rows,
                                 double *run_seconds);

/** Frees `generator` (NULL is ignored); its model can run again. */
void moec_generator_free(moec_generator *generator);

/** The message of the last failed call on this thread ("" if none). */
const char *moec_last_error(void);

/** A short name of `status` ("ok", "corrupt artifact", ...). */
const char *moec_status_string(moec_status status);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOEC_RUNTIME_CAPI_MOEC_H */
