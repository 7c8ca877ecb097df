//===- JsonDepth.h - Keeping hostile JSON off the parser's stack -*- C++
//-*-===//
//
// llvm::json::parse recurses once per nesting level, so a file of a few
// megabytes of `[` overflows the stack. Every reader of checkpoint JSON
// (config.json, safetensors headers and indexes, the files moec embeds in the
// artifact) checks the depth with this one function before parsing.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_IMPORTERS_HF_JSONDEPTH_H
#define MOEC_IMPORTERS_HF_JSONDEPTH_H

#include "llvm/ADT/StringRef.h"

namespace mlir::moec::hf {

/// Deepest JSON nesting accepted. Real checkpoint JSON nests a few levels
/// (a safetensors header three, a tokenizer.json under ten).
constexpr unsigned kMaxJsonDepth = 64;

/// True when the brackets of `text` nest deeper than `limit`, counting only
/// brackets outside strings. Tolerates malformed input: it only has to see
/// what a JSON parser would recurse on.
inline bool nestsDeeperThan(llvm::StringRef text,
                            unsigned limit = kMaxJsonDepth) {
  unsigned depth = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit)
        return true;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return false;
}

} // namespace mlir::moec::hf

#endif // MOEC_IMPORTERS_HF_JSONDEPTH_H
