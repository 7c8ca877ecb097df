//===- ModelTesting.h - Test hooks of the C API -----------------*- C++ -*-===//
//
// C++-only hooks into a `moec_model` for the runtime's own tests, e.g. to
// hold one thread inside a run so that the one-thread-at-a-time check of
// moec.h can be tested without depending on timing. Not part of the C API;
// embedders never need it.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_CAPI_MODELTESTING_H
#define MOEC_RUNTIME_CAPI_MODELTESTING_H

#include "runtime/capi/moec.h"

#include <functional>

namespace moec::runtime {

/// Makes every later `moec_model_run` and `moec_model_run_tokens` on `model`
/// call `hook` after the model is marked busy and before its kernels run;
/// an empty `hook` removes it. Set it while no other thread uses `model`.
void setModelRunHookForTesting(moec_model *model, std::function<void()> hook);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_CAPI_MODELTESTING_H
