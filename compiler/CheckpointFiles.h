//===- CheckpointFiles.h - Checkpoint files an artifact embeds --*- C++ -*-===//
//
// The files of a Hugging Face checkpoint folder that `moec` copies into the
// artifact for the runtime's callers (generation config, tokenizer, chat
// template), each validated first, and the generation facts (EOS ids,
// sampling defaults) parsed from them into the manifest (docs/artifact.md,
// "Embedded checkpoint files").
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_COMPILER_CHECKPOINTFILES_H
#define MOEC_COMPILER_CHECKPOINTFILES_H

#include "runtime/artifact/Manifest.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mlir::moec {

/// One file `moec` embeds when the checkpoint has it, and its size cap.
struct EmbeddableFile {
  const char *name;
  uint64_t maxBytes;
};

/// The files embedded when present: `generation_config.json`,
/// `tokenizer_config.json` and `special_tokens_map.json` up to 1 MiB,
/// `tokenizer.json` up to 64 MiB.
llvm::ArrayRef<EmbeddableFile> getEmbeddableFiles();

/// What a checkpoint folder adds to its artifact.
struct CheckpointFiles {
  /// (file name, bytes) of each embeddable file present, in
  /// `getEmbeddableFiles` order.
  std::vector<std::pair<std::string, std::string>> files;
  /// The generation facts, when the checkpoint states any.
  std::optional<::moec::runtime::manifest::GenerationT> generation;
};

/// Reads the embeddable files next to `dir`/config.json. Each must be a
/// regular file within its cap holding valid JSON; the generation facts come
/// from generation_config.json, a token id missing there from config.json,
/// and every token id must lie in [0, config.json's `vocab_size`). Errors
/// name the file and the field.
llvm::Expected<CheckpointFiles> readCheckpointFiles(llvm::StringRef dir);

} // namespace mlir::moec

#endif // MOEC_COMPILER_CHECKPOINTFILES_H
