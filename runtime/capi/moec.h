/*===- moec.h - C API of the moec runtime --------------------------*- C -*-===*
 *
 * Load a compiled `.moea` artifact, run it on token ids, read its logits.
 * Every function returns a `moec_status`; on failure `moec_last_error()`
 * holds the message (per thread). A model is not thread-safe: use one
 * model per thread or serialise calls. Pure C89-compatible declarations.
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
  MOEC_INTERNAL = 8
} moec_status;

/** A loaded model bound to one device. */
typedef struct moec_model moec_model;

/** Loads and verifies the artifact at `path` for `device`: "cpu", "cuda"
 *  or "auto" (CUDA when available, else CPU; NULL means "auto"). On success
 *  stores a new model in `*model`, else leaves it NULL. */
moec_status moec_model_load(const char *path, const char *device,
                            moec_model **model);

/** Runs the model on `n` token ids (1 <= n <= max tokens). */
moec_status moec_model_run(moec_model *model, const int32_t *tokens, int64_t n);

/** The logits of the last run: `*rows` (the tokens of that run) x `*cols`
 *  (the vocabulary) row-major floats, valid until the next run or free. */
moec_status moec_model_logits(const moec_model *model, const float **data,
                              int64_t *rows, int64_t *cols);

/** The device the model runs on ("cpu" or "cuda"). */
const char *moec_model_device(const moec_model *model);

/** The largest token count `moec_model_run` accepts. */
int64_t moec_model_max_tokens(const moec_model *model);

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
