//===- FuzzNpy.cpp - Fuzz the .npy reader ---------------------------------===//
//
// `fuzz-npy`: the input is a whole `.npy` file, parsed by `parseNpy` (the
// reader behind `moec-run --input`). An accepted array must hold exactly the
// bytes its dtype and shape need.
//
//===----------------------------------------------------------------------===//

#include "FuzzTarget.h"

#include "runtime/support/Npy.h"

using namespace moec::runtime;

moec::fuzz::FuzzOutcome moec::fuzz::runFuzzInput(const uint8_t *data,
                                                 size_t size) {
  StatusOr<NpyArray> array = parseNpy(data, size, "fuzz.npy");
  if (!array.isOk())
    return FuzzOutcome::reject(array.status().toString());
  const NpyArray &a = array.value();
  uint64_t bytes = npyDtypeSize(a.dtype);
  for (int64_t dim : a.shape) {
    if (dim < 0)
      __builtin_trap(); // a negative dimension got through
    // Wraps only when some dimension is 0, which makes the product 0 anyway.
    bytes *= uint64_t(dim);
  }
  if (bytes != a.data.size())
    __builtin_trap(); // the data does not match the header
  return FuzzOutcome::accept();
}
