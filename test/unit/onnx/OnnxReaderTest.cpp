//===- OnnxReaderTest.cpp - Tests for the ONNX reader -----------*- C++ -*-===//
//
// Builds ONNX models with the protobuf classes, writes them (and external
// data files, symbolic and hard links, FIFOs) to a temporary folder, and
// checks that the reader rejects every escape and malformed input with a
// message naming the file and the tensor or node (a FIFO or a device without
// blocking or reading it), reads valid data back, maps tensors and types
// faithfully, and that legalisation of malformed nodes fails cleanly.
//
//===----------------------------------------------------------------------===//

#include "importers/onnx/OnnxReader.h"
#include "importers/onnx/OnnxDialect.h"
#include "importers/onnx/OnnxImporter.h"
#include "test/unit/FifoWatchdog.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include "gtest/gtest.h"

#include <onnx/onnx_pb.h>

#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <future>
#include <string>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

using namespace mlir;
using namespace mlir::moec;
using ::moec::test::returnsWithoutBlocking;

namespace {

//===----------------------------------------------------------------------===//
// Model building
//===----------------------------------------------------------------------===//

/// Adds a float tensor type with `dims` (-1 for a symbolic dimension).
void setTensorType(onnx::ValueInfoProto *info, const std::string &name,
                   int32_t elemType, std::vector<int64_t> dims) {
  info->set_name(name);
  auto *tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elemType);
  auto *shape = tensor->mutable_shape();
  for (int64_t d : dims) {
    auto *dim = shape->add_dim();
    if (d < 0)
      dim->set_dim_param("T");
    else
      dim->set_dim_value(d);
  }
}

/// `y = MatMul(x, w)` with `x: [T, 4]` and a 4x4 f32 initializer `w` of 64
/// bytes whose data `configure` places.
onnx::ModelProto makeModel() {
  onnx::ModelProto model;
  model.set_ir_version(10);
  model.add_opset_import()->set_version(21);
  onnx::GraphProto *graph = model.mutable_graph();
  graph->set_name("g");
  setTensorType(graph->add_input(), "x", onnx::TensorProto::FLOAT, {-1, 4});
  setTensorType(graph->add_output(), "y", onnx::TensorProto::FLOAT, {-1, 4});
  onnx::TensorProto *w = graph->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(4);
  w->add_dims(4);
  std::string raw(64, '\0');
  for (int i = 0; i < 64; ++i)
    raw[i] = static_cast<char>(i);
  w->set_raw_data(raw);
  onnx::NodeProto *node = graph->add_node();
  node->set_op_type("MatMul");
  node->set_name("mm");
  node->add_input("x");
  node->add_input("w");
  node->add_output("y");
  return model;
}

/// Moves `tensor`'s data to external data with the given entries.
void makeExternal(onnx::TensorProto *tensor,
                  std::vector<std::pair<std::string, std::string>> entries) {
  tensor->clear_raw_data();
  tensor->set_data_location(onnx::TensorProto::EXTERNAL);
  for (auto &[key, value] : entries) {
    auto *entry = tensor->add_external_data();
    entry->set_key(key);
    entry->set_value(value);
  }
}

/// A fresh temporary folder, removed at the end of the test.
class OnnxReaderTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("onnx-reader", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  std::string path(llvm::StringRef rel) const {
    llvm::SmallString<256> full(dir);
    llvm::sys::path::append(full, rel);
    return std::string(full);
  }

  void writeFile(llvm::StringRef rel, const std::string &bytes) const {
    std::ofstream out(path(rel), std::ios::binary);
    out << bytes;
  }

  /// Writes `model` as `model.onnx` and returns its path.
  std::string writeModel(const onnx::ModelProto &model,
                         llvm::StringRef rel = "model.onnx") const {
    std::string bytes;
    EXPECT_TRUE(model.SerializeToString(&bytes));
    writeFile(rel, bytes);
    return path(rel);
  }

  /// 64 bytes 0..63 after `pad` bytes of padding.
  static std::string weightBytes(size_t pad = 0) {
    std::string bytes(pad, 'p');
    for (int i = 0; i < 64; ++i)
      bytes.push_back(static_cast<char>(i));
    return bytes;
  }

  /// The error of loading the model at `file`, or "" when it loads.
  static std::string loadError(const std::string &file,
                               const OnnxReaderOptions &options = {}) {
    auto model = OnnxModel::load(file, options);
    if (model)
      return "";
    return llvm::toString(model.takeError());
  }

  /// Writes `model` and expects loading it to fail with `fragment` in the
  /// message, which must also name the file.
  void expectRejected(const onnx::ModelProto &model, llvm::StringRef fragment) {
    std::string file = writeModel(model);
    std::string error = loadError(file);
    EXPECT_NE(error.find(fragment.str()), std::string::npos)
        << "expected '" << fragment.str() << "' in: " << error;
    EXPECT_NE(error.find(file), std::string::npos)
        << "the message does not name the file: " << error;
  }

  llvm::SmallString<128> dir;
};

//===----------------------------------------------------------------------===//
// External data
//===----------------------------------------------------------------------===//

TEST_F(OnnxReaderTest, ExternalDataUnderTheModelFolderReadsBack) {
  ASSERT_FALSE(llvm::sys::fs::create_directory(path("weights")));
  writeFile("weights/w.bin", weightBytes(16));
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "./weights/w.bin"},
                {"offset", "16"},
                {"length", "64"},
                {"checksum", "abc"}});
  auto loaded = OnnxModel::load(writeModel(model));
  ASSERT_TRUE(static_cast<bool>(loaded)) << llvm::toString(loaded.takeError());
  auto bytes = (*loaded)->readTensorData("w");
  ASSERT_TRUE(static_cast<bool>(bytes)) << llvm::toString(bytes.takeError());
  EXPECT_EQ(std::string(bytes->begin(), bytes->end()), weightBytes());

  MLIRContext context;
  auto module = (*loaded)->toIR(&context);
  ASSERT_TRUE(static_cast<bool>(module)) << llvm::toString(module.takeError());
  onnx_ir::InitializerOp init;
  (*module)->walk([&](onnx_ir::InitializerOp op) { init = op; });
  ASSERT_TRUE(init);
  EXPECT_EQ(init.getLocation(), "./weights/w.bin");
  EXPECT_EQ(init.getOffset(), 16);
  EXPECT_EQ(init.getLength(), 64);
  EXPECT_EQ(init.getChecksum(), "abc");
  EXPECT_FALSE(init.getValue());
}

TEST_F(OnnxReaderTest, ExternalDataWithoutLengthRunsToTheEnd) {
  writeFile("w.bin", weightBytes(8));
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}, {"offset", "8"}});
  EXPECT_EQ(loadError(writeModel(model)), "");
}

TEST_F(OnnxReaderTest, ExternalDataRejectsAbsolutePath) {
  writeFile("w.bin", weightBytes());
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", path("w.bin")}});
  expectRejected(model, "initializer 'w': external data location '" +
                            path("w.bin") +
                            "' is an absolute path; it must be relative to "
                            "the model's folder");
}

TEST_F(OnnxReaderTest, ExternalDataRejectsDotDot) {
  writeFile("w.bin", weightBytes());
  for (const char *location : {"../w.bin", "sub/../../w.bin", "sub/../w.bin"}) {
    ASSERT_FALSE(llvm::sys::fs::create_directories(path("sub")));
    onnx::ModelProto model = makeModel();
    makeExternal(model.mutable_graph()->mutable_initializer(0),
                 {{"location", location}});
    expectRejected(model, std::string("external data location '") + location +
                              "' contains '..'; it must stay inside the "
                              "model's folder");
  }
}

TEST_F(OnnxReaderTest, ExternalDataRejectsSymbolicLinks) {
  writeFile("real.bin", weightBytes());
  ASSERT_EQ(::symlink("real.bin", path("link.bin").c_str()), 0);
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "link.bin"}});
  expectRejected(model, "location 'link.bin': 'link.bin' is a symbolic link, "
                        "which is not allowed");

  // A linked folder on the way is refused as well.
  ASSERT_FALSE(llvm::sys::fs::create_directory(path("data")));
  writeFile("data/w.bin", weightBytes());
  ASSERT_EQ(::symlink("data", path("alias").c_str()), 0);
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "alias/w.bin"}});
  model.mutable_graph()->mutable_initializer(0)->clear_external_data();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "alias/w.bin"}});
  expectRejected(model, "location 'alias/w.bin': 'alias' is a symbolic link");
}

TEST_F(OnnxReaderTest, ExternalDataRejectsHardLinks) {
  writeFile("w.bin", weightBytes());
  ASSERT_EQ(::link(path("w.bin").c_str(), path("other.bin").c_str()), 0);
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}});
  expectRejected(model, "location 'w.bin' has 2 hard links; a file with more "
                        "than one name is not allowed");
}

TEST_F(OnnxReaderTest, ExternalDataRejectsOffsetPastEnd) {
  writeFile("w.bin", weightBytes());
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}, {"offset", "32"}, {"length", "64"}});
  expectRejected(model, "external data offset 32 + length 64 is past the end "
                        "of 'w.bin' (64 bytes)");
  model.mutable_graph()->mutable_initializer(0)->clear_external_data();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}, {"offset", "100"}});
  expectRejected(model, "external data offset 100 is past the end of 'w.bin' "
                        "(64 bytes)");
  model.mutable_graph()->mutable_initializer(0)->clear_external_data();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"},
                {"offset", "9223372036854775807"},
                {"length", "9223372036854775807"}});
  expectRejected(model, "is past the end of 'w.bin'");
}

TEST_F(OnnxReaderTest, ExternalDataRejectsLengthMismatch) {
  writeFile("w.bin", weightBytes(36));
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}, {"length", "60"}});
  expectRejected(model, "initializer 'w': external data length 60 does not "
                        "match the 64 bytes the tensor's type needs");
  // Without a length the rest of the file (100 bytes) is the tensor.
  model.mutable_graph()->mutable_initializer(0)->clear_external_data();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}});
  expectRejected(model, "external data length 100 does not match the 64 bytes");
}

TEST_F(OnnxReaderTest, ExternalDataRejectsUnknownAndRepeatedKeys) {
  writeFile("w.bin", weightBytes());
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}, {"compression", "zstd"}});
  expectRejected(model, "external data has the unknown key 'compression'; "
                        "only location, offset, length and checksum are "
                        "allowed");
  model.mutable_graph()->mutable_initializer(0)->clear_external_data();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}, {"offset", "0"}, {"offset", "8"}});
  expectRejected(model, "external data key 'offset' appears twice");
}

TEST_F(OnnxReaderTest, ExternalDataRejectsBadNumbersAndLocations) {
  writeFile("w.bin", weightBytes());
  for (const char *offset : {"-1", "0x10", "", "1e3", "99999999999999999999"}) {
    onnx::ModelProto model = makeModel();
    makeExternal(model.mutable_graph()->mutable_initializer(0),
                 {{"location", "w.bin"}, {"offset", offset}});
    expectRejected(model, std::string("external data offset '") + offset +
                              "' is not a non-negative decimal integer below "
                              "2^63");
  }
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0), {});
  expectRejected(model, "initializer 'w': external data has no location");
  model.mutable_graph()->mutable_initializer(0)->clear_external_data();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "missing.bin"}});
  expectRejected(model, "location 'missing.bin': cannot open 'missing.bin': No "
                        "such file or directory");
  ASSERT_FALSE(llvm::sys::fs::create_directory(path("folder")));
  model.mutable_graph()->mutable_initializer(0)->clear_external_data();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "folder"}});
  expectRejected(model, "location 'folder' is a folder, not a regular file");
  model.mutable_graph()->mutable_initializer(0)->clear_external_data();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "sub\\w.bin"}});
  expectRejected(model, "contains a backslash");
  // Data both embedded and external is contradictory.
  model.mutable_graph()->mutable_initializer(0)->set_raw_data(weightBytes());
  expectRejected(model, "initializer 'w' has both raw_data and external data");
}

TEST_F(OnnxReaderTest, ExternalDataFifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo(path("w.bin").c_str(), 0600), 0) << std::strerror(errno);
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}});
  std::string file = writeModel(model);
  std::string error =
      returnsWithoutBlocking(path("w.bin"), [&] { return loadError(file); });
  EXPECT_EQ(error, "'" + file +
                       "': initializer 'w': external data location 'w.bin' "
                       "is a FIFO, not a regular file");
}

TEST_F(OnnxReaderTest, ExternalDataDeviceIsRefused) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to create a device node (mknod)";
  // The character device of /dev/zero (1, 5), inside the model's folder.
  if (::mknod(path("w.bin").c_str(), S_IFCHR | 0600, makedev(1, 5)) != 0)
    GTEST_SKIP() << "mknod is not permitted here: " << std::strerror(errno);
  onnx::ModelProto model = makeModel();
  makeExternal(model.mutable_graph()->mutable_initializer(0),
               {{"location", "w.bin"}});
  expectRejected(model, "initializer 'w': external data location 'w.bin' is "
                        "a character device, not a regular file");
}

TEST_F(OnnxReaderTest, ExternalDataEscapesInSubgraphsAreRejected) {
  writeFile("w.bin", weightBytes());
  onnx::ModelProto model = makeModel();
  onnx::NodeProto *node = model.mutable_graph()->add_node();
  node->set_op_type("If");
  node->set_name("branch");
  node->add_input("x");
  node->add_output("z");
  onnx::AttributeProto *attr = node->add_attribute();
  attr->set_name("then_branch");
  attr->set_type(onnx::AttributeProto::GRAPH);
  onnx::GraphProto *body = attr->mutable_g();
  body->set_name("then");
  *body->add_initializer() = model.graph().initializer(0);
  makeExternal(body->mutable_initializer(0), {{"location", "../w.bin"}});
  expectRejected(model, "initializer 'w' of subgraph 'then': external data "
                        "location '../w.bin' contains '..'");
}

//===----------------------------------------------------------------------===//
// Malformed files and models
//===----------------------------------------------------------------------===//

TEST_F(OnnxReaderTest, RejectsFilesThatAreNotModels) {
  writeFile("garbage.onnx", std::string("\xff\xff\xff\xff garbage", 13));
  EXPECT_NE(loadError(path("garbage.onnx"))
                .find("is not a valid ONNX model: the protobuf is truncated "
                      "or corrupt"),
            std::string::npos);
  writeFile("empty.onnx", "");
  EXPECT_NE(loadError(path("empty.onnx")).find("is empty, not an ONNX model"),
            std::string::npos);
  EXPECT_NE(loadError(path("missing.onnx")).find("cannot open"),
            std::string::npos);
  OnnxReaderOptions small;
  small.maxFileBytes = 16;
  EXPECT_NE(loadError(writeModel(makeModel()), small)
                .find("bytes; ONNX files are limited to 16"),
            std::string::npos);
}

TEST_F(OnnxReaderTest, ModelFileMustBeARegularFile) {
  // A FIFO would block open(2) and read(2), /dev/zero would be read without
  // end: both are refused before a byte is read.
  std::string fifo = path("pipe.onnx");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  EXPECT_EQ(returnsWithoutBlocking(fifo, [&] { return loadError(fifo); }),
            "'" + fifo + "': is a FIFO, not a regular file");
  if (::access("/dev/zero", R_OK) == 0)
    EXPECT_EQ(loadError("/dev/zero"),
              "'/dev/zero': is a character device, not a regular file");
  EXPECT_EQ(loadError(dir.str().str()),
            "'" + dir.str().str() + "': is a folder, not a regular file");
  EXPECT_EQ(loadError(path("missing.onnx")),
            "'" + path("missing.onnx") +
                "': cannot open: No such file or directory");
}

TEST_F(OnnxReaderTest, RejectsNestingBeyondTheLimit) {
  onnx::ModelProto model = makeModel();
  onnx::GraphProto *graph = model.mutable_graph();
  for (int depth = 0; depth < 8; ++depth) {
    onnx::NodeProto *node = graph->add_node();
    node->set_op_type("If");
    onnx::AttributeProto *attr = node->add_attribute();
    attr->set_name("then_branch");
    attr->set_type(onnx::AttributeProto::GRAPH);
    graph = attr->mutable_g();
  }
  OnnxReaderOptions options;
  options.maxNesting = 12;
  EXPECT_NE(loadError(writeModel(model), options)
                .find("nests messages deeper than 12 levels"),
            std::string::npos);
}

TEST_F(OnnxReaderTest, TruncatedModelsFailCleanlyAtEveryLength) {
  std::string bytes;
  ASSERT_TRUE(makeModel().SerializeToString(&bytes));
  int rejected = 0;
  for (size_t length = 0; length < bytes.size(); ++length) {
    writeFile("cut.onnx", bytes.substr(0, length));
    auto model = OnnxModel::load(path("cut.onnx"));
    if (!model) {
      std::string error = llvm::toString(model.takeError());
      EXPECT_NE(error.find(path("cut.onnx")), std::string::npos) << error;
      ++rejected;
      continue;
    }
    // A cut at a field boundary parses; building IR must still work.
    MLIRContext context;
    auto module = (*model)->toIR(&context);
    if (!module)
      llvm::consumeError(module.takeError());
  }
  EXPECT_EQ(rejected, static_cast<int>(bytes.size()));
}

TEST_F(OnnxReaderTest, RejectsBadTensors) {
  auto withTensor = [&](auto edit) {
    onnx::ModelProto model = makeModel();
    edit(model.mutable_graph()->mutable_initializer(0));
    return model;
  };
  expectRejected(withTensor([](onnx::TensorProto *t) { t->set_dims(0, -4); }),
                 "initializer 'w' has the negative dimension -4");
  expectRejected(withTensor([](onnx::TensorProto *t) {
                   t->set_dims(0, int64_t(1) << 40);
                   t->set_dims(1, int64_t(1) << 40);
                 }),
                 "initializer 'w' has more elements than fit in 64 bits");
  expectRejected(withTensor([](onnx::TensorProto *t) {
                   t->set_dims(0, int64_t(1) << 40);
                 }),
                 "initializer 'w' claims 17592186044416 bytes; the limit is "
                 "1099511627776");
  expectRejected(withTensor([](onnx::TensorProto *t) {
                   t->set_raw_data(std::string(60, 'x'));
                 }),
                 "initializer 'w' holds 60 bytes of raw_data, but its type "
                 "float[4, 4] needs 64");
  expectRejected(withTensor([](onnx::TensorProto *t) {
                   t->clear_raw_data();
                   t->add_float_data(1.0f);
                 }),
                 "initializer 'w' holds 1 values, but its shape needs 16");
  expectRejected(withTensor([](onnx::TensorProto *t) { t->set_data_type(99); }),
                 "initializer 'w' has the unsupported data type 99");
  expectRejected(withTensor([](onnx::TensorProto *t) {
                   t->set_data_type(22);
                   t->clear_raw_data();
                   t->add_int32_data(1);
                 }),
                 "initializer 'w' stores int4 values outside raw_data");
}

TEST_F(OnnxReaderTest, RejectsBadGraphs) {
  onnx::ModelProto model = makeModel();
  model.mutable_graph()->mutable_node(0)->set_input(1, "nope");
  expectRejected(model, "node 'mm' (MatMul) uses 'nope', which no earlier "
                        "node, initializer or graph input defines");

  model = makeModel();
  *model.mutable_graph()->add_node() = model.graph().node(0);
  model.mutable_graph()->mutable_node(1)->clear_name();
  expectRejected(model, "node #1 (MatMul) defines 'y', which is already "
                        "defined");
  model.mutable_graph()->mutable_node(1)->set_name("again");
  expectRejected(model, "node 'again' (MatMul) defines 'y'");

  model = makeModel();
  model.mutable_graph()->mutable_node(0)->set_domain("com.example");
  expectRejected(model, "node 'mm' (MatMul) is in domain 'com.example', which "
                        "the model does not import (opset_import)");

  model = makeModel();
  *model.mutable_graph()->add_initializer() = model.graph().initializer(0);
  expectRejected(model, "has two initializers named 'w'");

  model = makeModel();
  model.mutable_graph()->mutable_output(0)->set_name("z");
  expectRejected(model, "has the graph output 'z', which nothing defines");

  model = makeModel();
  model.mutable_graph()->add_sparse_initializer();
  expectRejected(model, "has sparse initializers, which are not supported");

  model = makeModel();
  model.set_ir_version(2);
  expectRejected(model, "has IR version 2; at least 3");

  model = makeModel();
  model.clear_graph();
  expectRejected(model, "has no graph");

  model = makeModel();
  onnx::NodeProto *constant = model.mutable_graph()->add_node();
  constant->set_op_type("Constant");
  constant->add_output("c");
  constant->add_attribute()->set_name("value_int");
  constant->add_attribute()->set_name("value_float");
  expectRejected(model, "(Constant) must have exactly one value attribute");

  model = makeModel();
  model.mutable_graph()->mutable_node(0)->add_attribute()->set_name("k");
  model.mutable_graph()->mutable_node(0)->add_attribute()->set_name("k");
  expectRejected(model, "node 'mm' (MatMul) has an unnamed or repeated "
                        "attribute 'k'");
}

//===----------------------------------------------------------------------===//
// IR
//===----------------------------------------------------------------------===//

/// Loads and converts `file`, failing the test on errors.
OwningOpRef<ModuleOp> readIR(const std::string &file, MLIRContext &context) {
  auto model = OnnxModel::load(file);
  if (!model) {
    ADD_FAILURE() << llvm::toString(model.takeError());
    return {};
  }
  auto module = (*model)->toIR(&context);
  if (!module) {
    ADD_FAILURE() << llvm::toString(module.takeError());
    return {};
  }
  return std::move(*module);
}

/// The initializer op named `name` in `module`.
onnx_ir::InitializerOp findInitializer(ModuleOp module, llvm::StringRef name) {
  onnx_ir::InitializerOp found;
  module.walk([&](onnx_ir::InitializerOp op) {
    if (op.getTensorName() == name)
      found = op;
  });
  return found;
}

TEST_F(OnnxReaderTest, SmallTensorsAreDecodedFaithfully) {
  onnx::ModelProto model = makeModel();
  onnx::GraphProto *graph = model.mutable_graph();
  auto add = [&](const char *name, int32_t type, std::vector<int64_t> dims) {
    onnx::TensorProto *t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : dims)
      t->add_dims(d);
    return t;
  };
  // int4 packs two values per byte, the first in the low nibble.
  add("i4", 22, {3})->set_raw_data(std::string("\x21\x0f", 2));
  add("b", onnx::TensorProto::BOOL, {3})
      ->set_raw_data(std::string("\1\0\1", 3));
  onnx::TensorProto *i64 = add("i64", onnx::TensorProto::INT64, {2});
  i64->add_int64_data(-5);
  i64->add_int64_data(int64_t(1) << 40);
  onnx::TensorProto *f16 = add("f16", onnx::TensorProto::FLOAT16, {1});
  f16->add_int32_data(0x3c00);
  onnx::TensorProto *s = add("s", onnx::TensorProto::STRING, {2});
  s->add_string_data("a");
  s->add_string_data("bc");

  MLIRContext context;
  OwningOpRef<ModuleOp> module = readIR(writeModel(model), context);
  ASSERT_TRUE(module);
  auto values = [&](llvm::StringRef name) {
    onnx_ir::InitializerOp init = findInitializer(*module, name);
    EXPECT_TRUE(init && init.getValue()) << name.str();
    return init ? cast<DenseElementsAttr>(*init.getValue())
                : DenseElementsAttr();
  };
  std::vector<int64_t> nibbles;
  for (const APInt &v : values("i4").getValues<APInt>())
    nibbles.push_back(v.getSExtValue());
  EXPECT_EQ(nibbles, (std::vector<int64_t>{1, 2, -1}));
  EXPECT_EQ(llvm::to_vector(values("b").getValues<bool>()),
            (SmallVector<bool>{true, false, true}));
  EXPECT_EQ(llvm::to_vector(values("i64").getValues<int64_t>()),
            (SmallVector<int64_t>{-5, int64_t(1) << 40}));
  EXPECT_EQ((*values("f16").value_begin<APFloat>()).convertToDouble(), 1.0);
  auto strings = cast<DenseStringElementsAttr>(values("s"));
  EXPECT_EQ(strings.getRawStringData()[1], "bc");
  // The 64-byte weight is inline; its bytes are the ones written.
  DenseElementsAttr w = values("w");
  EXPECT_EQ(w.getRawData().size(), 64u);
  EXPECT_EQ(w.getRawData()[63], 63);
}

TEST_F(OnnxReaderTest, ConstantsTypesAndInputsAreMapped) {
  onnx::ModelProto model = makeModel();
  onnx::GraphProto *graph = model.mutable_graph();
  // An input shadowed by an initializer is a default value, not an input.
  setTensorType(graph->add_input(), "w", onnx::TensorProto::FLOAT, {4, 4});
  onnx::NodeProto *constant = graph->add_node();
  constant->set_op_type("Constant");
  constant->set_name("shape");
  constant->add_output("shape_value");
  onnx::AttributeProto *ints = constant->add_attribute();
  ints->set_name("value_ints");
  ints->set_type(onnx::AttributeProto::INTS);
  ints->add_ints(0);
  ints->add_ints(-1);
  onnx::NodeProto *seq = graph->add_node();
  seq->set_op_type("SequenceConstruct");
  seq->set_name("seq");
  seq->add_input("y");
  seq->add_output("s");
  seq->add_output("");
  auto *seqType = graph->add_value_info();
  seqType->set_name("s");
  seqType->mutable_type()
      ->mutable_sequence_type()
      ->mutable_elem_type()
      ->mutable_tensor_type()
      ->set_elem_type(onnx::TensorProto::FLOAT);
  setTensorType(graph->add_output(), "s", onnx::TensorProto::FLOAT, {});
  graph->mutable_output(1)
      ->mutable_type()
      ->mutable_tensor_type()
      ->clear_shape();
  *graph->mutable_output(1)->mutable_type() = seqType->type();

  MLIRContext context;
  OwningOpRef<ModuleOp> module = readIR(writeModel(model), context);
  ASSERT_TRUE(module);
  auto func = cast<func::FuncOp>(module->getBody()->front());
  EXPECT_EQ(func.getNumArguments(), 1u);
  onnx_ir::InitializerOp shape = findInitializer(*module, "shape_value");
  ASSERT_TRUE(shape);
  EXPECT_TRUE(shape.getConstant());
  EXPECT_EQ(
      llvm::to_vector(
          cast<DenseElementsAttr>(*shape.getValue()).getValues<int64_t>()),
      (SmallVector<int64_t>{0, -1}));
  onnx_ir::NodeOp node;
  module->walk([&](onnx_ir::NodeOp op) {
    if (op.getOpType() == "SequenceConstruct")
      node = op;
  });
  ASSERT_TRUE(node);
  EXPECT_EQ(node.getResult(0).getType(),
            onnx_ir::OpaqueType::get(&context, "seq(tensor(float))"));
  EXPECT_TRUE(isa<NoneType>(node.getResult(1).getType()));
  EXPECT_EQ(node.getOpset(), 21);
}

TEST_F(OnnxReaderTest, MalformedNodesAreListedNotCrashedOn) {
  onnx::ModelProto model = makeModel();
  onnx::GraphProto *graph = model.mutable_graph();
  // Arities no operator schema allows: the patterns must not index past
  // what the node has.
  graph->mutable_node(0)->mutable_input()->RemoveLast();
  onnx::NodeProto *topk = graph->add_node();
  topk->set_op_type("TopK");
  topk->set_name("topk");
  topk->add_input("y");
  topk->add_output("v");
  onnx::NodeProto *add = graph->add_node();
  add->set_op_type("Add");
  add->set_name("add");
  add->add_input("v");
  add->add_input("");
  add->add_output("z");
  onnx::NodeProto *softmax = graph->add_node();
  softmax->set_op_type("Softmax");
  softmax->set_name("softmax");
  softmax->add_output("q");
  setTensorType(graph->add_output(), "z", onnx::TensorProto::FLOAT, {-1, 4});
  setTensorType(graph->add_output(), "q", onnx::TensorProto::FLOAT, {-1, 4});

  MLIRContext context;
  std::string messages;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    messages += diag.str();
    return success();
  });
  EXPECT_TRUE(failed(importOnnxFile(writeModel(model), &context)));
  for (const char *listed :
       {"(ai.onnx, MatMul, 21, \"mm\")", "(ai.onnx, TopK, 21, \"topk\")",
        "(ai.onnx, Add, 21, \"add\")", "(ai.onnx, Softmax, 21, \"softmax\")"})
    EXPECT_NE(messages.find(listed), std::string::npos)
        << listed << " missing from: " << messages;
}

} // namespace
