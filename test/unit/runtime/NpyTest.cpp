//===- NpyTest.cpp - The .npy reader ----------------------------*- C++ -*-===//
//
// `parseNpy` on hand-built images: every dtype and format version, then one
// case per way a header can be wrong (bad magic, truncation, sizes that do
// not match, shapes that overflow or claim far more than the file holds),
// and byte mutations that must never crash. `readNpyFile` on files, FIFOs
// and devices, each of which must be answered at once with a clear message.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"
#include "test/unit/FifoWatchdog.h"

#include "runtime/support/Npy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <future>
#include <sys/stat.h>
#include <unistd.h>

using namespace moec::runtime;
using namespace moec::runtime::test;
using ::moec::test::returnsWithoutBlocking;

namespace {

/// The header dict NumPy writes for `descr` and `shape` (a Python tuple).
std::string dictFor(const std::string &descr, const std::string &shape) {
  return "{'descr': '" + descr +
         "', 'fortran_order': False, 'shape': " + shape + ", }";
}

/// A .npy image of format `major`.0 with header `dict` (padded with spaces
/// and a newline to a multiple of 64, as NumPy does) and `dataBytes` bytes
/// of data.
std::vector<uint8_t> npyImage(const std::string &dict, size_t dataBytes,
                              int major = 1) {
  size_t lengthBytes = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((8 + lengthBytes + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
  for (size_t i = 0; i < lengthBytes; ++i)
    out.push_back(uint8_t(header.size() >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < dataBytes; ++i)
    out.push_back(uint8_t(i * 37 + 11));
  return out;
}

/// The message of parsing `image` as "x.npy", or "" when it parsed.
std::string parseError(const std::vector<uint8_t> &image) {
  StatusOr<NpyArray> array = parseNpy(image.data(), image.size(), "x.npy");
  if (array.isOk())
    return "";
  EXPECT_EQ(array.status().code(), StatusCode::kInvalidArgument);
  return array.status().message();
}

//===----------------------------------------------------------------------===//
// parseNpy: valid images
//===----------------------------------------------------------------------===//

TEST(NpyTest, ParsesEveryDtypeAndVersion) {
  struct Case {
    const char *descr;
    NpyDtype dtype;
    size_t size;
  };
  const Case cases[] = {{"<f4", NpyDtype::kF32, 4}, {"<f2", NpyDtype::kF16, 2},
                        {"<i4", NpyDtype::kI32, 4}, {"<i8", NpyDtype::kI64, 8},
                        {"|i1", NpyDtype::kI8, 1},  {"|u1", NpyDtype::kU8, 1}};
  for (const Case &c : cases) {
    for (int major : {1, 2, 3}) {
      std::vector<uint8_t> image =
          npyImage(dictFor(c.descr, "(2, 3)"), 6 * c.size, major);
      StatusOr<NpyArray> array = parseNpy(image.data(), image.size(), "x.npy");
      ASSERT_TRUE(array.isOk())
          << c.descr << " v" << major << ": " << array.status().toString();
      EXPECT_EQ(array->dtype, c.dtype);
      EXPECT_EQ(array->descr, c.descr);
      EXPECT_EQ(npyDtypeSize(array->dtype), c.size);
      EXPECT_EQ(array->shape, (std::vector<int64_t>{2, 3}));
      ASSERT_EQ(array->data.size(), 6 * c.size);
      // The data is the image's tail, byte for byte.
      EXPECT_EQ(std::memcmp(array->data.data(),
                            image.data() + image.size() - 6 * c.size,
                            6 * c.size),
                0);
    }
  }
}

TEST(NpyTest, ParsesScalarsEmptyArraysAndKeyOrders) {
  std::vector<uint8_t> image = npyImage(dictFor("<f4", "()"), 4);
  StatusOr<NpyArray> scalar = parseNpy(image.data(), image.size(), "x.npy");
  ASSERT_TRUE(scalar.isOk()) << scalar.status().toString();
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->data.size(), 4u);

  image = npyImage(dictFor("<i8", "(0, 5)"), 0);
  StatusOr<NpyArray> empty = parseNpy(image.data(), image.size(), "x.npy");
  ASSERT_TRUE(empty.isOk()) << empty.status().toString();
  EXPECT_EQ(empty->shape, (std::vector<int64_t>{0, 5}));
  EXPECT_TRUE(empty->data.empty());

  // Any key order, double quotes, no trailing comma, "(3, 4,)".
  image = npyImage(R"({"shape": (3, 4,), "fortran_order": False,
                       "descr": "<i4"})",
                   48);
  StatusOr<NpyArray> reordered = parseNpy(image.data(), image.size(), "x.npy");
  ASSERT_TRUE(reordered.isOk()) << reordered.status().toString();
  EXPECT_EQ(reordered->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(reordered->dtype, NpyDtype::kI32);
}

//===----------------------------------------------------------------------===//
// parseNpy: malformed images
//===----------------------------------------------------------------------===//

TEST(NpyTest, BadMagicIsRefused) {
  std::vector<uint8_t> image = npyImage(dictFor("<f4", "(2,)"), 8);
  image[1] = 'n';
  EXPECT_EQ(parseError(image), "x.npy: not a NumPy .npy file (bad magic)");
  EXPECT_EQ(parseError({'P', 'K', 3, 4}),
            "x.npy: not a NumPy .npy file (bad magic)");
  image = npyImage(dictFor("<f4", "(2,)"), 8);
  image[6] = 4;
  EXPECT_EQ(parseError(image), "x.npy: unsupported .npy version 4.0 "
                               "(expected 1.0, 2.0 or 3.0)");
}

TEST(NpyTest, TruncatedHeaderIsRefused) {
  std::vector<uint8_t> image = npyImage(dictFor("<f4", "(2,)"), 8);
  EXPECT_EQ(parseError({}), "x.npy: truncated .npy header: the file has 0 "
                            "bytes, too few for the magic and version");
  EXPECT_EQ(parseError(std::vector<uint8_t>(image.begin(), image.begin() + 9)),
            "x.npy: truncated .npy header: the file has 9 bytes, too few for "
            "the header length");
  EXPECT_EQ(parseError(std::vector<uint8_t>(image.begin(), image.begin() + 40)),
            "x.npy: truncated .npy header: it claims 118 bytes from offset "
            "10, but the file has 40 bytes");
  // Every shorter prefix is refused, with a message naming the file.
  for (size_t n = 0; n < image.size(); ++n) {
    std::string message =
        parseError(std::vector<uint8_t>(image.begin(), image.begin() + n));
    EXPECT_EQ(message.rfind("x.npy: ", 0), 0u) << n << ": " << message;
  }
}

TEST(NpyTest, DataSizeMustMatchTheShape) {
  EXPECT_EQ(parseError(npyImage(dictFor("<f4", "(3,)"), 8)),
            "x.npy: holds 8 data bytes, but shape (3,) of float32 needs 12");
  EXPECT_EQ(parseError(npyImage(dictFor("<i8", "(2, 2)"), 33)),
            "x.npy: holds 33 data bytes, but shape (2, 2) of int64 needs 32");
}

TEST(NpyTest, ShapeOverflowIsRefused) {
  // 2^32 x 2^32 elements of 4 bytes: the byte count overflows 64 bits.
  EXPECT_EQ(parseError(npyImage(dictFor("<f4", "(4294967296, 4294967296)"), 0)),
            "x.npy: shape (4294967296, 4294967296) of float32 needs more "
            "than 2^63 data bytes");
  // 2^62 int64 elements: 2^65 bytes.
  EXPECT_EQ(parseError(npyImage(dictFor("<i8", "(4611686018427387904,)"), 0)),
            "x.npy: shape (4611686018427387904,) of int64 needs more than "
            "2^63 data bytes");
  // A dimension that does not fit in int64.
  EXPECT_EQ(parseError(npyImage(dictFor("<f4", "(99999999999999999999,)"), 0)),
            "x.npy: .npy header: key 'shape': dimension 0 exceeds 2^63-1");
  EXPECT_EQ(parseError(npyImage(dictFor("<f4", "(3, -1)"), 0)),
            "x.npy: .npy header: key 'shape': dimension 1 is not a "
            "non-negative integer (at byte 54)");
}

TEST(NpyTest, HugeClaimedShapeInATinyFileIsRefusedBeforeAllocating) {
  // 4 PB claimed, 16 bytes present: refused by the size check, not by
  // running out of memory.
  std::vector<uint8_t> image =
      npyImage(dictFor("<f4", "(1000000000, 1000000)"), 16);
  EXPECT_EQ(parseError(image), "x.npy: holds 16 data bytes, but shape "
                               "(1000000000, 1000000) of float32 needs "
                               "4000000000000000");
  TempDir dir;
  ASSERT_TRUE(writeFile(dir.file("huge.npy"), image));
  StatusOr<NpyArray> read = readNpyFile(dir.file("huge.npy"));
  ASSERT_FALSE(read.isOk());
  EXPECT_EQ(read.status().message(),
            dir.file("huge.npy") + ": holds 16 data bytes, but shape "
                                   "(1000000000, 1000000) of float32 needs "
                                   "4000000000000000");
}

TEST(NpyTest, HeaderGrammarErrorsNameTheKey) {
  struct Case {
    std::string dict;
    const char *message; // after "x.npy: .npy header: "
  };
  const Case cases[] = {
      {"[]", "does not start with '{'"},
      {"{'descr': '<f4', 'shape': (2,)}", "key 'fortran_order' is missing"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
       "unknown key 'x' (expected 'descr', 'fortran_order' and 'shape')"},
      {"{'descr': '<f4', 'descr': '<f4'}", "key 'descr' appears twice"},
      {dictFor("<f8", "(1,)"),
       "key 'descr': dtype '<f8' is not supported (expected little-endian "
       "float32 '<f4', float16 '<f2', int32 '<i4', int64 '<i8', int8 '|i1' "
       "or uint8 '|u1')"},
      {dictFor(">f4", "(1,)"),
       "key 'descr': dtype '>f4' is not supported (expected little-endian "
       "float32 '<f4', float16 '<f2', int32 '<i4', int64 '<i8', int8 '|i1' "
       "or uint8 '|u1')"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
       "key 'descr': structured dtypes are not supported"},
      {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}",
       "key 'fortran_order': Fortran-order arrays are not supported (save a "
       "C-order array)"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2)}",
       "key 'shape': (2) is not a tuple (a 1-d shape is written (2,))"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [2]}",
       "key 'shape': expected a tuple at byte 50"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x",
       "has bytes after the closing '}'"},
      {"{'descr': '<f4' 'fortran_order': False}",
       "expected ',' or '}' after the value of 'descr'"},
      {"{'descr: '<f4'}", "expected ':' after the key 'descr: '"},
  };
  for (const Case &c : cases)
    EXPECT_EQ(parseError(npyImage(c.dict, 4)),
              std::string("x.npy: .npy header: ") + c.message)
        << c.dict;
}

TEST(NpyTest, OversizedHeaderIsRefusedBeforeReadingIt) {
  // A version 2.0 length field of 2^32 - 1.
  std::vector<uint8_t> image = {0x93, 'N', 'U',  'M',  'P',  'Y',
                                2,    0,   0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(parseError(image), "x.npy: .npy header length 4294967295 exceeds "
                               "the limit of 65536 bytes");
}

TEST(NpyTest, MutatedImagesNeverCrash) {
  std::vector<uint8_t> original = npyImage(dictFor("<i4", "(3, 5)"), 60);
  uint32_t state = 2024;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  const char alphabet[] = "0123456789(),:'\"{} -<>|fiuTF\n\xff";
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint8_t> image = original;
    for (int edits = 1 + next() % 3; edits > 0; --edits)
      image[next() % 80] = uint8_t(alphabet[next() % (sizeof(alphabet) - 1)]);
    if (next() % 4 == 0)
      image.resize(next() % image.size());
    StatusOr<NpyArray> array = parseNpy(image.data(), image.size(), "m.npy");
    if (!array.isOk()) {
      EXPECT_EQ(array.status().message().rfind("m.npy: ", 0), 0u)
          << array.status().message();
      continue;
    }
    uint64_t elements = 1;
    for (int64_t d : array->shape)
      elements *= uint64_t(d);
    EXPECT_EQ(array->data.size(), elements * npyDtypeSize(array->dtype));
  }
}

//===----------------------------------------------------------------------===//
// readNpyFile
//===----------------------------------------------------------------------===//

TEST(NpyFileTest, ReadsAFile) {
  TempDir dir;
  std::vector<uint8_t> image = npyImage(dictFor("<f4", "(2, 2)"), 16, 2);
  ASSERT_TRUE(writeFile(dir.file("a.npy"), image));
  StatusOr<NpyArray> array = readNpyFile(dir.file("a.npy"));
  ASSERT_TRUE(array.isOk()) << array.status().toString();
  EXPECT_EQ(array->shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(array->data, std::vector<uint8_t>(image.end() - 16, image.end()));
  // The file's checks are parseNpy's.
  image.pop_back();
  ASSERT_TRUE(writeFile(dir.file("a.npy"), image));
  EXPECT_EQ(readNpyFile(dir.file("a.npy")).status().message(),
            dir.file("a.npy") +
                ": holds 15 data bytes, but shape (2, 2) of float32 needs 16");
  ASSERT_TRUE(writeFile(dir.file("short.npy"), {0x93, 'N', 'U'}));
  EXPECT_EQ(readNpyFile(dir.file("short.npy")).status().message(),
            dir.file("short.npy") + ": truncated .npy header: the file has 3 "
                                    "bytes, too few for the magic and version");
}

TEST(NpyFileTest, MissingFilesAndFoldersAreRefused) {
  TempDir dir;
  StatusOr<NpyArray> missing = readNpyFile(dir.file("absent.npy"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            dir.file("absent.npy") +
                ": cannot open: No such file or directory");
  EXPECT_EQ(readNpyFile(dir.path()).status().message(),
            dir.path() + ": is a folder, not a regular file");
}

TEST(NpyFileTest, FifoIsRefusedWithoutBlocking) {
  TempDir dir;
  std::string fifo = dir.file("input.npy");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  StatusOr<NpyArray> array =
      returnsWithoutBlocking(fifo, [&] { return readNpyFile(fifo); });
  ASSERT_FALSE(array.isOk());
  EXPECT_EQ(array.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(array.status().message(), fifo + ": is a FIFO, not a regular file");
}

TEST(NpyFileTest, DevZeroIsRefusedWithoutReading) {
  if (::access("/dev/zero", R_OK) != 0)
    GTEST_SKIP() << "no readable /dev/zero";
  StatusOr<NpyArray> array = readNpyFile("/dev/zero");
  ASSERT_FALSE(array.isOk());
  EXPECT_EQ(array.status().message(),
            "/dev/zero: is a character device, not a regular file");
}

} // namespace
