//===- CheckpointFiles.cpp - Checkpoint files an artifact embeds -*- C++
//-*-===//
//
// Reads and validates the generation config, tokenizer and chat template
// files of a checkpoint folder, and parses the generation facts the runtime
// needs (EOS ids, BOS/PAD ids, HF's sampling defaults) into the manifest's
// `Generation` table.
//
//===----------------------------------------------------------------------===//

#include "compiler/CheckpointFiles.h"
#include "importers/hf/ModelConfig.h"
#include "runtime/support/File.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>

using namespace mlir::moec;
namespace mf = ::moec::runtime::manifest;
namespace rt = ::moec::runtime;

namespace {

constexpr uint64_t kMiB = uint64_t(1) << 20;

const EmbeddableFile kEmbeddableFiles[] = {
    {"generation_config.json", 1 * kMiB},
    {"tokenizer.json", 64 * kMiB},
    {"tokenizer_config.json", 1 * kMiB},
    {"special_tokens_map.json", 1 * kMiB},
};

llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(message);
}

/// The bytes of `dir`/`name` (a regular file of at most `maxBytes` holding a
/// JSON object) and the parsed object; std::nullopt when there is no such
/// file.
struct JsonFile {
  std::string bytes;
  llvm::json::Value value = nullptr;
};

llvm::Expected<std::optional<JsonFile>>
readJsonFile(llvm::StringRef dir, llvm::StringRef name, uint64_t maxBytes) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, name);
  rt::StatusOr<rt::RegularFile> file = rt::openRegularFile(path.str().str());
  if (!file.isOk()) {
    if (file.status().code() == rt::StatusCode::kNotFound)
      return std::nullopt;
    return fail(file.status().message());
  }
  if (file->size > maxBytes)
    return fail(path + ": " + llvm::Twine(file->size) +
                " bytes, larger than the " + llvm::Twine(maxBytes / kMiB) +
                " MiB a " + name + " may have");
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getOpenFile(file->fd.get(), path, file->size,
                                      /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fail(path + ": cannot read: " + buffer.getError().message());
  JsonFile json;
  json.bytes = (*buffer)->getBuffer().str();
  if (hf::nestsDeeperThan(json.bytes))
    return fail(path + ": JSON nests deeper than " +
                llvm::Twine(hf::kMaxJsonDepth) + " levels");
  llvm::Expected<llvm::json::Value> value = llvm::json::parse(json.bytes);
  if (!value)
    return fail(path +
                ": not valid JSON: " + llvm::toString(value.takeError()));
  if (!value->getAsObject())
    return fail(path + ": not valid JSON for " + name +
                ": the top level is not an object");
  json.value = std::move(*value);
  return std::optional<JsonFile>(std::move(json));
}

/// Parses the generation facts of `generation` (may be null) falling back to
/// `config` for the token ids, in [0, vocab) when `vocab` > 0.
class GenerationParser {
public:
  GenerationParser(llvm::StringRef dir, const llvm::json::Object *generation,
                   const llvm::json::Object &config, int64_t vocab)
      : dir(dir), generation(generation), config(config), vocab(vocab) {}

  llvm::Expected<std::optional<mf::GenerationT>> parse() {
    mf::GenerationT g;
    if (llvm::Error error = parseEos(g.eos_token_ids))
      return std::move(error);
    if (llvm::Error error = parseTokenId("bos_token_id", g.bos_token_id))
      return std::move(error);
    if (llvm::Error error = parseTokenId("pad_token_id", g.pad_token_id))
      return std::move(error);
    if (const llvm::json::Value *v = find("do_sample", false)) {
      if (!v->getAsBoolean())
        return bad("do_sample", "must be true or false");
      g.do_sample = *v->getAsBoolean();
    }
    if (llvm::Error error = parseNumber(
            "temperature", g.temperature,
            [](double t) { return std::isfinite(t) && t >= 0; },
            "must be finite and >= 0"))
      return std::move(error);
    if (llvm::Error error = parseNumber(
            "top_p", g.top_p, [](double p) { return p > 0 && p <= 1; },
            "must be in (0, 1]"))
      return std::move(error);
    if (llvm::Error error = parseNumber(
            "repetition_penalty", g.repetition_penalty,
            [](double r) { return std::isfinite(r) && r > 0; },
            "must be finite and > 0"))
      return std::move(error);
    if (const llvm::json::Value *v = find("top_k", false)) {
      std::optional<int64_t> k = v->getAsInteger();
      if (!k || *k < 0)
        return bad("top_k", "must be an integer >= 0");
      g.top_k = *k;
    }
    if (g.eos_token_ids.empty() && !g.bos_token_id && !g.pad_token_id &&
        !g.do_sample && !g.temperature && !g.top_k && !g.top_p &&
        !g.repetition_penalty)
      return std::nullopt;
    return std::optional<mf::GenerationT>(std::move(g));
  }

private:
  /// The non-null value of `key` in generation_config.json, else (for token
  /// ids, `fromConfig`) in config.json; records where it came from.
  const llvm::json::Value *find(llvm::StringRef key, bool fromConfig) {
    source = "generation_config.json";
    if (generation)
      if (const llvm::json::Value *v = generation->get(key);
          v && v->kind() != llvm::json::Value::Null)
        return v;
    source = "config.json";
    if (fromConfig)
      if (const llvm::json::Value *v = config.get(key);
          v && v->kind() != llvm::json::Value::Null)
        return v;
    return nullptr;
  }

  llvm::Error bad(llvm::StringRef field, const llvm::Twine &what) {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, source);
    return fail(path + ": `" + field + "` " + what);
  }

  llvm::Error checkId(llvm::StringRef field, const llvm::json::Value &v,
                      int64_t &out) {
    std::optional<int64_t> id = v.getAsInteger();
    if (!id)
      return bad(field, "must be an integer token id");
    if (*id < 0 || (vocab > 0 && *id >= vocab))
      return bad(field, llvm::Twine(*id) + " is not in [0, " +
                            llvm::Twine(vocab) +
                            ") (config.json's vocab_size)");
    out = *id;
    return llvm::Error::success();
  }

  llvm::Error parseEos(std::vector<int64_t> &ids) {
    const llvm::json::Value *v = find("eos_token_id", true);
    if (!v)
      return llvm::Error::success();
    if (const llvm::json::Array *list = v->getAsArray()) {
      for (const llvm::json::Value &item : *list) {
        int64_t id = 0;
        if (llvm::Error error = checkId("eos_token_id", item, id))
          return error;
        if (!llvm::is_contained(ids, id))
          ids.push_back(id);
      }
      return llvm::Error::success();
    }
    int64_t id = 0;
    if (llvm::Error error = checkId("eos_token_id", *v, id))
      return error;
    ids.push_back(id);
    return llvm::Error::success();
  }

  llvm::Error parseTokenId(llvm::StringRef field,
                           flatbuffers::Optional<int64_t> &out) {
    const llvm::json::Value *v = find(field, true);
    if (!v)
      return llvm::Error::success();
    int64_t id = 0;
    if (llvm::Error error = checkId(field, *v, id))
      return error;
    out = id;
    return llvm::Error::success();
  }

  template <typename Valid>
  llvm::Error parseNumber(llvm::StringRef field,
                          flatbuffers::Optional<double> &out, Valid valid,
                          const char *range) {
    const llvm::json::Value *v = find(field, false);
    if (!v)
      return llvm::Error::success();
    std::optional<double> number = v->getAsNumber();
    if (!number || !valid(*number))
      return bad(field, range);
    out = *number;
    return llvm::Error::success();
  }

  llvm::StringRef dir;
  const llvm::json::Object *generation;
  const llvm::json::Object &config;
  int64_t vocab;
  const char *source = "";
};

} // namespace

llvm::ArrayRef<EmbeddableFile> mlir::moec::getEmbeddableFiles() {
  return kEmbeddableFiles;
}

llvm::Expected<CheckpointFiles>
mlir::moec::readCheckpointFiles(llvm::StringRef dir) {
  CheckpointFiles result;
  const llvm::json::Object *generation = nullptr;
  std::optional<JsonFile> generationFile;
  for (const EmbeddableFile &spec : getEmbeddableFiles()) {
    llvm::Expected<std::optional<JsonFile>> file =
        readJsonFile(dir, spec.name, spec.maxBytes);
    if (!file)
      return file.takeError();
    if (!*file)
      continue;
    result.files.emplace_back(spec.name, (*file)->bytes);
    if (llvm::StringRef(spec.name) == "generation_config.json")
      generationFile = std::move(**file);
  }
  if (generationFile)
    generation = generationFile->value.getAsObject();
  // The importer read config.json already; its token ids and vocab_size are
  // read here again.
  llvm::Expected<std::optional<JsonFile>> config =
      readJsonFile(dir, "config.json", hf::kMaxConfigBytes);
  if (!config)
    return config.takeError();
  llvm::json::Object empty;
  const llvm::json::Object &configObject =
      *config ? *(*config)->value.getAsObject() : empty;
  int64_t vocab = configObject.getInteger("vocab_size").value_or(0);
  llvm::Expected<std::optional<mf::GenerationT>> facts =
      GenerationParser(dir, generation, configObject, vocab).parse();
  if (!facts)
    return facts.takeError();
  result.generation = std::move(*facts);
  return result;
}
