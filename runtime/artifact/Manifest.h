//===- Manifest.h - Manifest helpers and consistency checks -----*- C++ -*-===//
//
// The generated `moec::runtime::manifest` tables (manifest.fbs, read in
// place) and object API (`ManifestT`, built by the writer side), plus what
// the runtime needs around them: the FlatBuffers verifier with its limits,
// dtype sizes and names, and the consistency check that every manifest
// passes before anything uses it (buffers inside the arena, weights inside
// the `weights` section, step arguments that exist, no integer overflow).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_ARTIFACT_MANIFEST_H
#define MOEC_RUNTIME_ARTIFACT_MANIFEST_H

#include "manifest_generated.h"
#include "runtime/support/Checksum.h"
#include "runtime/support/CpuFeatures.h"
#include "runtime/support/Status.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moec::runtime {

//===----------------------------------------------------------------------===//
// Reading and writing the FlatBuffer
//===----------------------------------------------------------------------===//

/// Largest manifest section (FlatBuffers' 2 GiB limit, minus one).
constexpr uint64_t kMaxManifestBytes = (uint64_t(1) << 31) - 1;
/// Deepest nesting of tables the verifier follows (the schema needs 6).
constexpr uint32_t kManifestVerifierMaxDepth = 16;

/// Runs the FlatBuffers verifier over the `size` bytes at `data` (which must
/// stay valid and be 8-byte aligned) and returns the manifest read in place.
/// The verifier checks the file identifier "MOEM", every offset, vector
/// and string bound and every required field, follows at most
/// `kManifestVerifierMaxDepth` levels and visits at most `size / 4 + 16`
/// tables (a table takes at least 4 bytes, so a manifest whose tables share
/// bytes cannot make it loop). Then every non-empty vector of 8-byte
/// elements (`shape`, `block_shape`, `params`, `grid`, `dims`, `strides`,
/// `eos_token_ids`)
/// must be 8-byte aligned, which the verifier of FlatBuffers 2.0.8 does not
/// check. On failure the status is `kCorrupt` and says what was refused.
/// Consistency is `verifyManifest`'s job.
StatusOr<const manifest::Manifest *> readManifest(const uint8_t *data,
                                                  uint64_t size);

/// Serializes `manifest` into a FlatBuffer with the file identifier.
std::vector<uint8_t> packManifest(const manifest::ManifestT &manifest);

/// The text of a FlatBuffers string (empty for null).
inline std::string_view text(const flatbuffers::String *s) {
  return s ? std::string_view(s->c_str(), s->size()) : std::string_view();
}

/// A manifest `Hash` from a SHA-256 digest, and back.
manifest::Hash toHash(const Sha256Digest &digest);
Sha256Digest fromHash(const manifest::Hash &hash);

//===----------------------------------------------------------------------===//
// Field helpers
//===----------------------------------------------------------------------===//

/// Bytes per element of `dtype`; 0 for `DType::UNSPECIFIED` or values this
/// runtime does not know.
uint64_t dtypeSize(manifest::DType dtype);

/// Short spelling of `dtype` ("f32", "bf16", "f8e4m3fn", "i32", ...).
const char *dtypeName(manifest::DType dtype);

/// Short spelling of `precision` ("f32", "bf16", "fp8").
const char *precisionName(manifest::Precision precision);

/// True when buffer `b` holds `elements_per_token` elements per token.
bool isPerToken(const manifest::Buffer &b);
/// Its elements per token, or its fixed element count.
uint64_t bufferElements(const manifest::Buffer &b);
/// Sets `b`'s element count: `count` per token, or `count` in all.
void setElementsPerToken(manifest::BufferT &b, uint64_t count);
void setFixedElements(manifest::BufferT &b, uint64_t count);

/// Bytes of buffer `buffer` that hold data when `tokens` tokens are run
/// (after `verifyManifest`, this cannot overflow for tokens <= max_tokens).
uint64_t bufferBytesAt(const manifest::Buffer &buffer, int64_t tokens);

/// The index of the input named `name` in `manifest.inputs`, or -1.
int findInputIndex(const manifest::Manifest &manifest, std::string_view name);

/// Bytes of one page of KV cache tensor `t` (`page_shape` x element size;
/// `verifyManifest` bounds every extent, so this cannot overflow).
uint64_t kvCacheTensorPageBytes(const manifest::KvCacheTensor &t);

/// "[T, 1024]"-style spelling of a shape (-1 printed as T).
std::string shapeString(const flatbuffers::Vector<int64_t> &shape);
std::string shapeString(const std::vector<int64_t> &shape);

//===----------------------------------------------------------------------===//
// Consistency
//===----------------------------------------------------------------------===//

/// What the manifest is checked against: facts from the container.
struct ManifestContext {
  /// Size of the `weights` section; std::nullopt when the file has none.
  std::optional<uint64_t> weightsSectionSize;
  /// Names of all sections in the file.
  std::vector<std::string> sectionNames;
};

/// Lookup tables built while checking a manifest: position of each id in
/// `buffers` / `weights`.
struct ManifestIndex {
  /// Buffer id -> index in `Manifest::buffers`.
  std::unordered_map<uint32_t, int> bufferById;
  /// Weight id -> index in `Manifest::weights`.
  std::unordered_map<uint32_t, int> weightById;
};

/// Alignment every buffer offset and weight offset must have.
constexpr uint64_t kManifestOffsetAlignment = 64;
/// Largest `max_tokens` a manifest may declare.
constexpr int64_t kMaxTokensLimit = (int64_t(1) << 31) - 1;

/// Largest device allocation (weights extent, workspace) a manifest may ask
/// for (256 TiB): beyond it the manifest is wrong.
constexpr uint64_t kMaxDeviceBytes = uint64_t(1) << 48;
/// Most CUDA launches one step may have.
constexpr int kMaxCudaLaunchesPerStep = 64;
/// Most threads per CUDA block (and per block axis).
constexpr uint32_t kMaxCudaBlockThreads = 1024;
/// Largest dynamic shared memory per block a launch may ask for (227 KiB,
/// the sm_90 opt-in maximum).
constexpr uint32_t kMaxCudaSharedBytes = 227 * 1024;
/// Largest grid extent along x, and along y or z.
constexpr int64_t kMaxCudaGridX = (int64_t(1) << 31) - 1;
constexpr int64_t kMaxCudaGridYZ = 65535;
/// Most tensor maps (TMA descriptors) one CUDA launch may pass.
constexpr int kMaxTensorMapsPerLaunch = 8;
/// Most dimensions of a tensor map (cuTensorMapEncodeTiled's limit).
constexpr int kMaxTensorMapRank = 5;
/// Largest box extent of a tensor map along any dimension.
constexpr uint32_t kMaxTensorMapBox = 256;
/// Alignment of the argument (its buffer or weight offset) of a swizzled
/// tensor map: TMA needs a 128-byte aligned global address when swizzling.
constexpr uint64_t kTensorMapSwizzledAlignment = 128;

/// The swizzle span of `swizzle` in bytes: 0 (none), 32, 64 or 128; 0 too
/// for values this runtime does not know.
uint32_t tensorMapSwizzleBytes(manifest::TensorMapSwizzle swizzle);

/// Checks `manifest` for internal consistency and against `context`
/// (docs/artifact.md, "Consistency rules"). On failure the status is
/// `kCorrupt` and its message names the field (e.g. "buffers[3] (id 7,
/// 'x'): offset 128 + 4096 bytes exceeds arena_bytes 2048"). The
/// `sections` records are the container's business (`Artifact::open`).
StatusOr<ManifestIndex> verifyManifest(const manifest::Manifest &manifest,
                                       const ManifestContext &context);

/// The same for a manifest being built: packs it and checks the result.
StatusOr<ManifestIndex> verifyManifest(const manifest::ManifestT &manifest,
                                       const ManifestContext &context);

/// True for a CUDA target name, "sm_<NN>[a]".
bool isCudaTarget(std::string_view target);

/// The entries of `cpu_objects`, in order; none for a file without the field
/// (it is optional: 2.0 files written before it have none).
std::vector<const manifest::CpuObject *>
cpuObjects(const manifest::Manifest &manifest);

/// The CPU code variants of `cpu_objects`, in order, for
/// `selectCpuCodeVariant`; empty for a file with a single `cpu.so`.
std::vector<CpuCodeVariant>
getCpuCodeVariants(const manifest::Manifest &manifest);

/// True when `manifest` lists any CUDA target.
bool hasCudaTarget(const manifest::Manifest &manifest);

/// The end of the last weight (max of offset + bytes): the size of the
/// device (or host-filled) weights region. Valid after `verifyManifest`.
uint64_t weightsExtent(const manifest::Manifest &manifest);

/// One grid axis for `tokens` tokens: max(ceil(tokens * per_token /
/// divisor) + constant, 1). Cannot overflow after `verifyManifest` for
/// tokens <= max_tokens.
int64_t gridExtentAt(const manifest::GridExtent &extent, int64_t tokens);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_ARTIFACT_MANIFEST_H
