//===- SafetensorsTest.cpp - Tests for the safetensors reader --*- C++ -*-===//
//
// Checks that every malformed file and checkpoint folder of the corpus in
// test/data/malformed is rejected by the rule it breaks, that the valid files
// read back their known bytes, and that truncated or bit-flipped files are
// either rejected or parsed into a consistent layout, never a crash.
//
//===----------------------------------------------------------------------===//

#include "importers/hf/Safetensors.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace mlir::moec::hf;

namespace {

/// Returns `$MOEC_TEST_DATA/malformed/<rel>`, or an empty string (and a test
/// failure) when the variable is unset.
std::string corpusPath(llvm::StringRef rel) {
  const char *root = std::getenv("MOEC_TEST_DATA");
  if (!root) {
    ADD_FAILURE() << "MOEC_TEST_DATA must point at test/data";
    return "";
  }
  llvm::SmallString<256> path(root);
  llvm::sys::path::append(path, "malformed", rel);
  return std::string(path);
}

/// Reads a whole corpus file into memory.
std::string readCorpusFile(llvm::StringRef rel) {
  auto buffer = llvm::MemoryBuffer::getFile(corpusPath(rel));
  if (!buffer) {
    ADD_FAILURE() << "cannot read " << rel.str();
    return "";
  }
  return (*buffer)->getBuffer().str();
}

/// Parses `bytes` from memory under the name `name`.
llvm::Expected<std::unique_ptr<SafetensorsFile>>
parseBytes(llvm::StringRef bytes, llvm::StringRef name) {
  return SafetensorsFile::fromBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(bytes, name));
}

/// Expects `result` to fail with a message holding `path` and `fragment`.
template <typename T>
void expectRejected(llvm::Expected<T> result, llvm::StringRef path,
                    llvm::StringRef fragment) {
  if (result) {
    ADD_FAILURE() << path.str() << " was accepted; expected an error with \""
                  << fragment.str() << "\"";
    return;
  }
  std::string message = llvm::toString(result.takeError());
  EXPECT_NE(message.find(path.str()), std::string::npos)
      << "message does not name the path: " << message;
  EXPECT_NE(message.find(fragment.str()), std::string::npos)
      << "expected \"" << fragment.str() << "\" in: " << message;
}

/// Checks the invariants a successfully parsed file must satisfy: the
/// tensors tile the data section exactly, sizes match shapes, lookups and
/// byte views agree. Touches every tensor byte so that the sanitizers see
/// any read outside the buffer.
void expectConsistent(const SafetensorsFile &file) {
  uint64_t cursor = 0;
  std::set<std::string> names;
  unsigned checksum = 0;
  for (const TensorInfo &info : file.tensors()) {
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    EXPECT_EQ(info.begin, cursor) << info.name;
    EXPECT_LE(info.begin, info.end) << info.name;
    uint64_t elements = 1;
    for (int64_t dim : info.shape) {
      EXPECT_GE(dim, 0) << info.name;
      elements *= static_cast<uint64_t>(dim);
    }
    EXPECT_EQ(elements, info.numElements) << info.name;
    EXPECT_EQ(info.end - info.begin, elements * dtypeSize(info.dtype))
        << info.name;
    EXPECT_EQ(file.lookup(info.name), &info) << info.name;
    llvm::ArrayRef<uint8_t> bytes = file.bytes(info);
    EXPECT_EQ(bytes.size(), info.end - info.begin) << info.name;
    for (uint8_t byte : bytes)
      checksum += byte;
    cursor = info.end;
  }
  EXPECT_EQ(file.dataOffset() + cursor, file.fileSize());
  (void)checksum;
}

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

TEST(SafetensorsDType, NamesAndSizes) {
  struct Row {
    const char *name;
    DType dtype;
    uint64_t size;
  };
  const Row rows[] = {
      {"F64", DType::F64, 8},         {"F32", DType::F32, 4},
      {"F16", DType::F16, 2},         {"BF16", DType::BF16, 2},
      {"F8_E4M3", DType::F8_E4M3, 1}, {"F8_E5M2", DType::F8_E5M2, 1},
      {"I64", DType::I64, 8},         {"I32", DType::I32, 4},
      {"I16", DType::I16, 2},         {"I8", DType::I8, 1},
      {"U64", DType::U64, 8},         {"U32", DType::U32, 4},
      {"U16", DType::U16, 2},         {"U8", DType::U8, 1},
      {"BOOL", DType::BOOL, 1},
  };
  for (const Row &row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(parseDType(row.name), row.dtype);
    EXPECT_EQ(dtypeName(row.dtype), row.name);
    EXPECT_EQ(dtypeSize(row.dtype), row.size);
  }
  EXPECT_EQ(parseDType("f32"), std::nullopt);
  EXPECT_EQ(parseDType("F8_E4M3FN"), std::nullopt);
  EXPECT_EQ(parseDType(""), std::nullopt);
}

//===----------------------------------------------------------------------===//
// Malformed corpus
//===----------------------------------------------------------------------===//

struct MalformedCase {
  const char *file;
  const char *fragment;
};

const MalformedCase kMalformedFiles[] = {
    {"empty_file", "file is 0 bytes, shorter than the 8-byte"},
    {"too_short", "file is 5 bytes, shorter than the 8-byte"},
    {"header_len_huge",
     "header length 9223372036854775808 exceeds 100000000 bytes"},
    {"header_len_over_limit", "header length 100000001 exceeds 100000000"},
    {"header_cut", "runs past the end of the file"},
    {"data_cut", "tensor 'a': byte range [0, 8) extends past the end of the "
                 "data section, which has 5 bytes"},
    {"header_len_zero", "header is not valid JSON"},
    {"not_json", "header is not valid JSON"},
    {"json_array", "header must be a JSON object, but it is an array"},
    {"invalid_utf8", "header is not valid UTF-8"},
    {"deep_nesting", "nests JSON deeper than 64 levels"},
    {"entry_not_object", "tensor 'a': entry must be a JSON object"},
    {"unknown_dtype", "tensor 'a': unknown dtype 'F12'"},
    {"dtype_not_string", "dtype must be a string, but it is a number"},
    {"missing_key", "tensor 'a': missing key 'data_offsets'"},
    {"extra_key", "tensor 'a': unexpected key 'offsets_hint'"},
    {"shape_not_array", "shape must be an array of integers"},
    {"negative_dim", "shape dimension 1 is -2, which is negative"},
    {"fractional_dim", "shape dimension 0 is 2.5, not an integer"},
    {"float_literal_dim", "must be an integer literal"},
    {"dim_exceeds_int64",
     "shape dimension 0 is 9223372036854775808, which exceeds the int64"},
    {"element_count_overflow",
     "element count of shape [4294967296, 4294967296, 2] overflows 64 bits"},
    {"byte_size_overflow",
     "byte size of shape [4611686018427387904] of F32 overflows 64 bits"},
    {"size_mismatch", "tensor 'a': byte range [0, 100) holds 100 bytes but "
                      "shape [5, 6] of BF16 needs 60"},
    {"offsets_not_pair",
     "data_offsets must be an array of two integers, but it has 1 element"},
    {"offsets_negative", "data_offsets[0] is -4, which is negative"},
    {"offsets_reversed", "data_offsets begin 8 is greater than end 0"},
    {"offset_exceeds_u64", "data_offsets[1] is"},
    {"duplicate_name", "duplicate tensor name 'a'"},
    {"duplicate_entry_key", "tensor 'a': duplicate key 'dtype'"},
    {"overlap", "tensor 'b': byte range [4, 12) overlaps tensor 'a' at [0, 8)"},
    {"gap", "gap of 4 unused bytes after tensor 'a'"},
    {"gap_at_start", "gap of 4 unused bytes at the start of the data section"},
    {"trailing", "4 trailing bytes after the last tensor"},
    {"metadata_not_object",
     "__metadata__ must be an object of strings, but it is an array"},
    {"metadata_value_not_string",
     "__metadata__ value for key 'version' must be a string"},
};

TEST(SafetensorsMalformed, EachFileFailsItsOwnRule) {
  for (const MalformedCase &c : kMalformedFiles) {
    std::string path =
        corpusPath(std::string("safetensors/") + c.file + ".safetensors");
    SCOPED_TRACE(path);
    expectRejected(SafetensorsFile::open(path), path, c.fragment);
  }
}

TEST(SafetensorsMalformed, OffsetBeyondU64IsNamed) {
  std::string path = corpusPath("safetensors/offset_exceeds_u64.safetensors");
  expectRejected(SafetensorsFile::open(path), path, "exceeds 64 bits");
}

TEST(SafetensorsMalformed, TableCoversTheWholeCorpus) {
  // A case added to make_corpus.py must also get a row above.
  std::set<std::string> listed;
  for (const MalformedCase &c : kMalformedFiles)
    listed.insert(std::string(c.file) + ".safetensors");
  std::set<std::string> onDisk;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(corpusPath("safetensors"), ec), end;
       it != end && !ec; it.increment(ec))
    onDisk.insert(llvm::sys::path::filename(it->path()).str());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(listed, onDisk);
  EXPECT_GE(onDisk.size(), 20u);
}

TEST(SafetensorsMalformed, MissingFile) {
  std::string path = corpusPath("safetensors/does_not_exist.safetensors");
  expectRejected(SafetensorsFile::open(path), path, "cannot open");
}

const MalformedCase kMalformedCheckpoints[] = {
    {"shard_missing", "cannot use shard 'model-00002-of-00002.safetensors': "},
    {"shard_dotdot", "shard name '../../valid/known.safetensors' escapes the "
                     "folder with '..'"},
    {"shard_absolute", "is an absolute path"},
    {"shard_subdir", "contains a path separator"},
    {"tensor_missing_from_shard",
     "tensor 'ghost': weight_map places it in shard "
     "'model-00001-of-00002.safetensors', but"},
    {"tensor_not_in_weight_map", "tensor 'b' is not listed in the weight_map"},
    {"tensor_in_two_shards",
     "tensor 'b' is stored in two shards, 'model-00001-of-00002.safetensors' "
     "and 'model-00002-of-00002.safetensors'"},
    {"weight_map_not_object", "'weight_map' must be an object mapping tensor "
                              "names to shard file names, but it is an array"},
    {"weight_map_missing", "missing key 'weight_map'"},
    {"weight_map_empty", "'weight_map' lists no tensors"},
    {"weight_map_value_not_string",
     "tensor 'c': weight_map entry must be a string"},
    {"duplicate_in_weight_map", "duplicate tensor name 'a' in weight_map"},
    {"metadata_not_object", "'metadata' must be an object, but it is a string"},
    {"index_not_json", "model.safetensors.index.json: index is not valid JSON"},
    {"index_not_object", "must be a JSON object, but it is an array"},
    {"shard_malformed", "4 trailing bytes after the last tensor"},
    {"no_safetensors", "no *.safetensors file and no "
                       "model.safetensors.index.json"},
    {"several_without_index",
     "several *.safetensors files ('model-00001-of-00002.safetensors', "
     "'model-00002-of-00002.safetensors') but no"},
};

TEST(SafetensorsMalformed, EachCheckpointFailsItsOwnRule) {
  for (const MalformedCase &c : kMalformedCheckpoints) {
    std::string dir = corpusPath(std::string("index/") + c.file);
    SCOPED_TRACE(dir);
    expectRejected(Checkpoint::open(dir), dir, c.fragment);
  }
}

TEST(SafetensorsMalformed, CheckpointErrorsNameTheShard) {
  std::string dir = corpusPath("index/shard_missing");
  expectRejected(Checkpoint::open(dir), dir + "/model-00002-of-00002",
                 "No such file");
  dir = corpusPath("index/shard_malformed");
  expectRejected(Checkpoint::open(dir), dir + "/model-00002-of-00002",
                 "trailing");
}

TEST(SafetensorsMalformed, CheckpointTableCoversTheWholeCorpus) {
  std::set<std::string> listed;
  for (const MalformedCase &c : kMalformedCheckpoints)
    listed.insert(c.file);
  std::set<std::string> onDisk;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(corpusPath("index"), ec), end;
       it != end && !ec; it.increment(ec))
    onDisk.insert(llvm::sys::path::filename(it->path()).str());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(listed, onDisk);
}

TEST(SafetensorsMalformed, CheckpointFolderMissing) {
  std::string dir = corpusPath("index/does_not_exist");
  expectRejected(Checkpoint::open(dir), dir, "does not exist");
  std::string file = corpusPath("valid/known.safetensors");
  expectRejected(Checkpoint::open(file), file, "not a folder");
}

//===----------------------------------------------------------------------===//
// Hostile but well-formed files: limits that scale with what a text describes
//===----------------------------------------------------------------------===//

/// A safetensors image whose header is `header` and whose data section has
/// `dataBytes` zero bytes.
std::string safetensorsImage(llvm::StringRef header, size_t dataBytes = 0) {
  std::string image(8, '\0');
  llvm::support::endian::write64le(image.data(), header.size());
  image += header.str();
  image.append(dataBytes, '\0');
  return image;
}

/// `count` scalar F32 tensor entries `"t<i>"` tiling `4 * count` data bytes,
/// without the braces.
std::string scalarEntries(size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i)
    out += (i ? "," : "") + ("\"t" + std::to_string(i)) +
           "\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[" +
           std::to_string(4 * i) + "," + std::to_string(4 * i + 4) + "]}";
  return out;
}

TEST(SafetensorsLimits, HeaderLargerThanItsTensorsNeedIsRefusedUnparsed) {
  // Two tensors and 3 MiB of metadata: valid JSON, but far more text than
  // two tensors can need.
  std::string pad(3 << 20, 'x');
  std::string header =
      "{\"__metadata__\":{\"pad\":\"" + pad + "\"}," + scalarEntries(2) + "}";
  expectRejected(parseBytes(safetensorsImage(header, 8), "padded"), "padded",
                 "header is " + std::to_string(header.size()) +
                     " bytes for 2 tensors; at most 1049088 bytes are "
                     "accepted (256 per tensor plus 1048576)");
  // The same padding inside one tensor entry is refused for that entry.
  std::string big = "{\"a\":{\"dtype\":\"F32\",\"shape\":[" +
                    std::string(70000, '1') + "],\"data_offsets\":[0,4]}," +
                    scalarEntries(4000) + "}";
  expectRejected(parseBytes(safetensorsImage(big, 4 * 4001), "wide"), "wide",
                 "tensor 'a': entry is 70047 bytes of JSON, more than the "
                 "65536 accepted");
}

TEST(SafetensorsLimits, TooManyTensorsAreRefusedBeforeAnyIsParsed) {
  size_t count = kMaxTensors + 1;
  std::string header = "{" + scalarEntries(count) + "}";
  expectRejected(parseBytes(safetensorsImage(header, 4 * count), "many"),
                 "many",
                 "header lists 524289 tensors, more than the 524288 a "
                 "checkpoint may have");
}

TEST(SafetensorsLimits, ManySmallTensorsWithinTheLimitsParse) {
  size_t count = 20000;
  std::string header = "{" + scalarEntries(count) + "}";
  auto file = parseBytes(safetensorsImage(header, 4 * count), "ok");
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_EQ((*file)->tensors().size(), count);
  EXPECT_NE((*file)->lookup("t19999"), nullptr);
}

TEST(SafetensorsLimits, StructureErrorsBetweenEntriesAreCaught) {
  struct Case {
    const char *header;
    const char *fragment;
  } cases[] = {
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},}",
       "header is not valid JSON: expected a string key at offset"},
      {"{\"a\" {}}", "expected ':' after a key"},
      {"{\"a\":{\"dtype\":\"F32\"", "a bracket is not closed"},
      {"{\"a\":1 2}", "header is not valid JSON"},
      {"{\"a\":{}} x", "text follows the object"},
      {"{\"a\":", "expected a value"},
      {"{\"a\\q\":{}}", "header is not valid JSON"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.header);
    expectRejected(parseBytes(safetensorsImage(c.header, 4), "s"), "s",
                   c.fragment);
  }
}

TEST(ShardIndex, ParsesAndSortsTheWeightMap) {
  auto index = parseShardIndex(
      "{\"metadata\":{\"total_size\":8},\"weight_map\":{\"b\":\"s2\","
      "\"a\":\"s1\",\"c\\u0041\":\"s1\"}}",
      "idx.json");
  ASSERT_TRUE(bool(index)) << llvm::toString(index.takeError());
  ShardIndex want = {{"a", "s1"}, {"b", "s2"}, {"cA", "s1"}};
  EXPECT_EQ(*index, want);
}

TEST(ShardIndex, HostileIndexesAreRefusedCheaply) {
  std::string pad(3 << 20, ' ');
  expectRejected(
      parseShardIndex("{\"weight_map\":{\"a\":\"s\"}" + pad + "}", "idx.json"),
      "idx.json", "index is 3145752 bytes for 1 tensor");
  expectRejected(
      parseShardIndex("{\"junk\":\"" + pad + "\",\"weight_map\":{\"a\":\"s\"}}",
                      "idx.json"),
      "idx.json", "'junk' is 3145730 bytes of JSON, more than the 1048576");
  std::string many = "{\"weight_map\":{";
  for (size_t i = 0; i <= kMaxTensors; ++i)
    many += (i ? ",\"" : "\"") + std::to_string(i) + "\":\"s\"";
  many += "}}";
  expectRejected(parseShardIndex(many, "idx.json"), "idx.json",
                 "index lists 524289 tensors, more than the 524288");
  expectRejected(parseShardIndex("{\"weight_map\":{\"a\":\"s\"},"
                                 "\"weight_map\":{}}",
                                 "idx.json"),
                 "idx.json", "duplicate key 'weight_map'");
  expectRejected(
      parseShardIndex("{\"weight_map\":{\"a\":{\"x\":1}}}", "idx.json"),
      "idx.json",
      "tensor 'a': weight_map entry must be a string (a shard "
      "file name), but it is an object");
}

/// A sharded checkpoint folder whose one shard is whatever `makeShard`
/// puts at `<dir>/s.safetensors`.
class NonRegularShard : public ::testing::Test {
protected:
  void SetUp() override {
    llvm::SmallString<128> dir;
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moec-shard", dir));
    root = std::string(dir);
    std::string index = root + "/model.safetensors.index.json";
    std::FILE *f = std::fopen(index.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("{\"weight_map\":{\"a\":\"s.safetensors\"}}", f);
    std::fclose(f);
    shard = root + "/s.safetensors";
  }
  void TearDown() override {
    std::remove(shard.c_str());
    std::remove((root + "/model.safetensors.index.json").c_str());
    std::remove((root + "/model.safetensors").c_str());
    llvm::sys::fs::remove(root);
  }
  std::string root, shard;
};

TEST_F(NonRegularShard, DevZeroThroughALinkIsRefusedUnread) {
  ASSERT_EQ(::symlink("/dev/zero", shard.c_str()), 0);
  expectRejected(Checkpoint::open(root), shard,
                 "is a character device, not a regular file");
  // The single-file layout takes the same path.
  std::remove((root + "/model.safetensors.index.json").c_str());
  ASSERT_EQ(::symlink("/dev/zero", (root + "/model.safetensors").c_str()), 0);
  std::remove(shard.c_str());
  auto single = Checkpoint::open(root);
  EXPECT_FALSE(bool(single));
  if (!single)
    llvm::consumeError(single.takeError());
}

TEST_F(NonRegularShard, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo(shard.c_str(), 0600), 0);
  expectRejected(Checkpoint::open(root), shard,
                 "is a FIFO, not a regular file");
}

TEST_F(NonRegularShard, FifoIndexIsRefusedWithoutBlocking) {
  std::string index = root + "/model.safetensors.index.json";
  std::remove(index.c_str());
  ASSERT_EQ(::mkfifo(index.c_str(), 0600), 0);
  expectRejected(Checkpoint::open(root), index,
                 "is a FIFO, not a regular file");
}

//===----------------------------------------------------------------------===//
// Valid files
//===----------------------------------------------------------------------===//

/// The known tensors of valid/known.safetensors in offset order, with their
/// bytes written out independently of make_corpus.py.
struct KnownTensor {
  const char *name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

const std::vector<KnownTensor> &knownTensors() {
  static const std::vector<KnownTensor> tensors = {
      {"model.embed.weight",
       DType::F32,
       {2, 3},
       // 1.0, -2.0, 0.5, 3.25, -0.0, 100.0
       {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0,
        0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x50, 0x40,
        0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0xC8, 0x42}},
      {"model.norm.weight",
       DType::BF16,
       {4},
       // 1.0, -1.5, 0.15625, 2.0
       {0x80, 0x3F, 0xC0, 0xBF, 0x20, 0x3E, 0x00, 0x40}},
      {"model.layers.0.mlp.experts.ids",
       DType::I32,
       {3},
       // 7, -1, INT32_MAX
       {0x07, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0x7F}},
      {"model.layers.0.fp8.weight",
       DType::F8_E4M3,
       {2, 2},
       {0x38, 0xB8, 0x7E, 0x00}},
      {"model.empty", DType::F32, {0, 4}, {}},
      {"model.scalar", DType::I32, {}, {0x2A, 0x00, 0x00, 0x00}},
  };
  return tensors;
}

/// Expects `info`, read through `file`, to match `known`.
void expectKnown(const SafetensorsFile &file, const TensorInfo &info,
                 const KnownTensor &known) {
  SCOPED_TRACE(known.name);
  EXPECT_EQ(info.name, known.name);
  EXPECT_EQ(info.dtype, known.dtype);
  EXPECT_EQ(std::vector<int64_t>(info.shape.begin(), info.shape.end()),
            known.shape);
  uint64_t elements = 1;
  for (int64_t dim : known.shape)
    elements *= dim;
  EXPECT_EQ(info.numElements, elements);
  llvm::ArrayRef<uint8_t> bytes = file.bytes(info);
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), known.bytes);
}

TEST(SafetensorsValid, KnownFile) {
  std::string path = corpusPath("valid/known.safetensors");
  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_EQ((*file)->path(), path);

  std::string raw = readCorpusFile("valid/known.safetensors");
  ASSERT_GE(raw.size(), 8u);
  uint64_t headerSize = llvm::support::endian::read64le(raw.data());
  EXPECT_EQ((*file)->dataOffset(), 8 + headerSize);
  EXPECT_EQ((*file)->dataOffset() % 8, 0u);
  EXPECT_EQ((*file)->fileSize(), raw.size());
  EXPECT_EQ((*file)->fileSize(), (*file)->dataOffset() + 52);

  // tensors() is in offset order, not header order.
  llvm::ArrayRef<TensorInfo> tensors = (*file)->tensors();
  ASSERT_EQ(tensors.size(), knownTensors().size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    expectKnown(**file, tensors[i], knownTensors()[i]);
    EXPECT_EQ((*file)->lookup(knownTensors()[i].name), &tensors[i]);
  }
  EXPECT_EQ(tensors[0].begin, 0u);
  EXPECT_EQ(tensors[0].end, 24u);
  EXPECT_EQ(tensors[4].begin, 48u);
  EXPECT_EQ(tensors[4].end, 48u);
  EXPECT_EQ((*file)->lookup("model.missing"), nullptr);
  EXPECT_EQ((*file)->lookup("__metadata__"), nullptr);

  std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"producer", "moec make_corpus.py"}};
  EXPECT_EQ((*file)->metadata(), metadata);
  expectConsistent(**file);
}

TEST(SafetensorsValid, EmptyFile) {
  auto file = SafetensorsFile::open(corpusPath("valid/empty.safetensors"));
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  EXPECT_TRUE((*file)->tensors().empty());
  EXPECT_TRUE((*file)->metadata().empty());
  EXPECT_EQ((*file)->dataOffset(), (*file)->fileSize());
}

/// Builds a file from an unpadded header and `dataSize` bytes of data.
std::string makeFile(llvm::StringRef header, size_t dataSize) {
  std::string out(8, '\0');
  llvm::support::endian::write64le(out.data(), header.size());
  out += header.str();
  for (size_t i = 0; i < dataSize; ++i)
    out.push_back(static_cast<char>(i * 7 + 1));
  return out;
}

TEST(SafetensorsValid, ZeroSizedTensorsBetweenOthers) {
  // Empty tensors at the same offset as a non-empty one sort first.
  std::string bytes = makeFile(R"({"b":{"dtype":"U8","shape":[4],)"
                               R"("data_offsets":[2,6]},)"
                               R"("z":{"dtype":"BOOL","shape":[3,0],)"
                               R"("data_offsets":[2,2]},)"
                               R"("a":{"dtype":"I16","shape":[1],)"
                               R"("data_offsets":[0,2]}})",
                               6);
  auto file = parseBytes(bytes, "mem");
  ASSERT_TRUE(bool(file)) << llvm::toString(file.takeError());
  llvm::ArrayRef<TensorInfo> tensors = (*file)->tensors();
  ASSERT_EQ(tensors.size(), 3u);
  EXPECT_EQ(tensors[0].name, "a");
  EXPECT_EQ(tensors[1].name, "z");
  EXPECT_EQ(tensors[1].numElements, 0u);
  EXPECT_TRUE((*file)->bytes(tensors[1]).empty());
  EXPECT_EQ(tensors[2].name, "b");
  EXPECT_EQ((*file)->bytes(tensors[2])[0], static_cast<uint8_t>(2 * 7 + 1));
  expectConsistent(**file);
}

TEST(SafetensorsValid, InMemoryRejections) {
  struct Row {
    const char *header;
    size_t dataSize;
    const char *fragment;
  };
  const Row rows[] = {
      // Equal after unescaping: still a duplicate.
      {R"({"A":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
       R"("\u0041":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
       2, "duplicate tensor name 'A'"},
      // An empty tensor inside another tensor's range.
      {R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
       R"("e":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})",
       4, "tensor 'e': byte range [2, 2) overlaps tensor 'a'"},
      {R"({"__metadata__":{"k":"v","k":"w"}})", 0,
       "duplicate key 'k' in __metadata__"},
      {R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}} x)", 1,
       "header is not valid JSON"},
      {R"({"a\n":null})", 0, "tensor 'a\\0A': entry must be a JSON object"},
      {R"({"a":{"dtype":"U8","shape":[true],"data_offsets":[0,1]}})", 1,
       "shape dimension 0 must be an integer, but it is a boolean"},
  };
  for (const Row &row : rows) {
    SCOPED_TRACE(row.header);
    expectRejected(parseBytes(makeFile(row.header, row.dataSize), "mem.st"),
                   "mem.st", row.fragment);
  }
}

TEST(SafetensorsValid, SingleFileCheckpoint) {
  std::string dir = corpusPath("valid/single");
  auto checkpoint = Checkpoint::open(dir);
  ASSERT_TRUE(bool(checkpoint)) << llvm::toString(checkpoint.takeError());
  EXPECT_FALSE((*checkpoint)->isSharded());
  ASSERT_EQ((*checkpoint)->files().size(), 1u);
  EXPECT_EQ(llvm::sys::path::filename((*checkpoint)->files()[0]->path()),
            "model.safetensors");
  for (const KnownTensor &known : knownTensors()) {
    TensorRef ref = (*checkpoint)->lookup(known.name);
    ASSERT_TRUE(bool(ref)) << known.name;
    EXPECT_EQ(ref.file, (*checkpoint)->files()[0].get());
    expectKnown(*ref.file, *ref.info, known);
  }
  EXPECT_FALSE(bool((*checkpoint)->lookup("model.missing")));
}

TEST(SafetensorsValid, ShardedCheckpoint) {
  std::string dir = corpusPath("valid/sharded");
  auto checkpoint = Checkpoint::open(dir);
  ASSERT_TRUE(bool(checkpoint)) << llvm::toString(checkpoint.takeError());
  EXPECT_TRUE((*checkpoint)->isSharded());
  EXPECT_EQ((*checkpoint)->dir(), dir);
  ASSERT_EQ((*checkpoint)->files().size(), 2u);

  std::vector<std::string> expectedNames = {
      "model.embed.weight",        "model.empty",
      "model.layers.0.fp8.weight", "model.layers.0.mlp.experts.ids",
      "model.norm.weight",         "model.scalar"};
  EXPECT_EQ(std::vector<std::string>((*checkpoint)->tensorNames().begin(),
                                     (*checkpoint)->tensorNames().end()),
            expectedNames);

  for (const KnownTensor &known : knownTensors()) {
    TensorRef ref = (*checkpoint)->lookup(known.name);
    ASSERT_TRUE(bool(ref)) << known.name;
    bool inFirst = llvm::StringRef(known.name) == "model.embed.weight" ||
                   llvm::StringRef(known.name) == "model.norm.weight";
    EXPECT_EQ(llvm::sys::path::filename(ref.file->path()),
              inFirst ? "model-00001-of-00002.safetensors"
                      : "model-00002-of-00002.safetensors")
        << known.name;
    expectKnown(*ref.file, *ref.info, known);
  }
  EXPECT_FALSE(bool((*checkpoint)->lookup("model.missing")));
}

//===----------------------------------------------------------------------===//
// Robustness sweep
//===----------------------------------------------------------------------===//

TEST(SafetensorsRobustness, EveryTruncationIsRejected) {
  std::string bytes = readCorpusFile("valid/known.safetensors");
  ASSERT_FALSE(bytes.empty());
  for (size_t length = 0; length < bytes.size(); ++length) {
    std::string name = "known[0:" + std::to_string(length) + "]";
    SCOPED_TRACE(name);
    auto file = parseBytes(llvm::StringRef(bytes).take_front(length), name);
    ASSERT_FALSE(bool(file));
    std::string message = llvm::toString(file.takeError());
    EXPECT_NE(message.find(name), std::string::npos) << message;
  }
  // Appending a byte leaves it trailing.
  expectRejected(parseBytes(bytes + '\0', "known+1"), "known+1",
                 "1 trailing byte after the last tensor");
}

/// Parses `bytes`; on success the result must be consistent, on failure the
/// message must name `name`.
void expectRejectedOrConsistent(const std::string &bytes,
                                const std::string &name) {
  auto file = parseBytes(bytes, name);
  if (file) {
    expectConsistent(**file);
    return;
  }
  std::string message = llvm::toString(file.takeError());
  EXPECT_NE(message.find(name), std::string::npos) << message;
}

TEST(SafetensorsRobustness, EveryHeaderBitFlipIsSafe) {
  std::string bytes = readCorpusFile("valid/known.safetensors");
  ASSERT_GE(bytes.size(), 8u);
  uint64_t headerEnd = 8 + llvm::support::endian::read64le(bytes.data());
  ASSERT_LE(headerEnd, bytes.size());
  unsigned accepted = 0;
  for (uint64_t pos = 0; pos < headerEnd; ++pos) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string mutated = bytes;
      mutated[pos] = static_cast<char>(mutated[pos] ^ (1 << bit));
      std::string name =
          "flip@" + std::to_string(pos) + "." + std::to_string(bit);
      SCOPED_TRACE(name);
      auto file = parseBytes(mutated, name);
      if (file) {
        ++accepted;
        expectConsistent(**file);
      } else {
        std::string message = llvm::toString(file.takeError());
        EXPECT_NE(message.find(name), std::string::npos) << message;
      }
    }
  }
  // Flips inside tensor names or metadata values keep the file valid; the
  // sweep must see some of those, or it is not exercising the parser.
  EXPECT_GT(accepted, 0u);
}

TEST(SafetensorsRobustness, EveryHeaderByteReplacedByJsonPunctuation) {
  std::string bytes = readCorpusFile("valid/known.safetensors");
  ASSERT_GE(bytes.size(), 8u);
  uint64_t headerEnd = 8 + llvm::support::endian::read64le(bytes.data());
  ASSERT_LE(headerEnd, bytes.size());
  const char replacements[] = "{}[]\",:\\-0 9e.";
  for (uint64_t pos = 8; pos < headerEnd; ++pos) {
    for (const char *r = replacements; *r; ++r) {
      std::string mutated = bytes;
      mutated[pos] = *r;
      std::string name = "put@" + std::to_string(pos) + "=" + *r;
      SCOPED_TRACE(name);
      expectRejectedOrConsistent(mutated, name);
    }
  }
}

} // namespace
