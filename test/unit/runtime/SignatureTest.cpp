//===- SignatureTest.cpp - Signed artifacts and the signature policy ------===//
//
// Issue 13's acceptance: an artifact signed through `ArtifactWriter` with a
// fixed PEM key loads when that key is trusted; a flipped weight byte is
// refused at the first run that uses it, a flipped manifest byte at load
// (also with the meta digest recomputed: then the signature fails); an
// unsigned artifact, or one signed by another key, is refused under a
// require-signature policy. Through the C API and `Artifact::open`.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/capi/moec.h"
#include "runtime/support/Ed25519.h"

#include <gtest/gtest.h>

using namespace moec::runtime;
using namespace moec::runtime::test;

namespace {

const char *const kPrivatePem = kTestPrivatePem;
const char *const kPublicPem = kTestPublicPem;

class SignatureTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!ed25519Available().isOk())
      GTEST_SKIP() << ed25519Available().message();
    so = readFile(MOEC_TEST_KERNELS_SO);
    ASSERT_GT(so.size(), 1000u) << MOEC_TEST_KERNELS_SO;
    model = TestModel::random(13);
    StatusOr<Ed25519Seed> seed = parseEd25519PrivateKey(kPrivatePem, "k");
    ASSERT_TRUE(seed.isOk()) << seed.status().toString();
    StatusOr<Ed25519PublicKey> pub = parseEd25519PublicKey(kPublicPem, "k");
    ASSERT_TRUE(pub.isOk()) << pub.status().toString();
    publicKey = *pub;
    model.signingSeed = *seed;
    signedPath = dir.file("signed.moea");
    ASSERT_TRUE(model.write(signedPath, so).isOk());
  }

  // Loads `path` through the C API, trusting `kPublicPem` and requiring a
  // signature.
  moec_status loadTrusted(const std::string &path, moec_model **m) {
    const char *keys[] = {kPublicPem};
    moec_load_options o = {};
    o.device = "cpu";
    o.trusted_keys = keys;
    o.trusted_key_count = 1;
    o.require_signature = 1;
    return moec_model_load_with_options(path.c_str(), &o, m);
  }

  // Where weight `id` starts in the file.
  uint64_t weightFileOffset(uint32_t id) {
    auto artifact = Artifact::open(signedPath);
    if (!artifact.isOk() || !(*artifact)->findWeight(id)) {
      ADD_FAILURE() << "no weight " << id;
      return 0;
    }
    return (*artifact)->findSection("weights")->offset +
           (*artifact)->findWeight(id)->offset();
  }

  TempDir dir;
  TestModel model;
  std::vector<uint8_t> so;
  Ed25519PublicKey publicKey = {};
  std::string signedPath;
};

TEST_F(SignatureTest, SignedArtifactLoadsAndRunsWithItsKeyTrusted) {
  auto artifact = Artifact::open(signedPath);
  ASSERT_TRUE(artifact.isOk()) << artifact.status().toString();
  EXPECT_EQ((*artifact)->signatureCheck(), SignatureCheck::kVerified);
  EXPECT_EQ((*artifact)->signerPublicKey(), publicKey);
  EXPECT_NE((*artifact)->summary().find(
                "signed:    by " + toHex(publicKey.data(), 32) + " (verified)"),
            std::string::npos)
      << (*artifact)->summary();

  moec_model *m = nullptr;
  ASSERT_EQ(loadTrusted(signedPath, &m), MOEC_OK) << moec_last_error();
  std::vector<int32_t> tokens = {3, 1, 4, 1, 5};
  ASSERT_EQ(moec_model_run(m, tokens.data(), int64_t(tokens.size())), MOEC_OK)
      << moec_last_error();
  const float *logits = nullptr;
  int64_t rows = 0, cols = 0;
  ASSERT_EQ(moec_model_logits(m, &logits, &rows, &cols), MOEC_OK);
  std::vector<float> want = model.reference(tokens);
  ASSERT_EQ(size_t(rows * cols), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(logits[i], want[i], 1e-5 * (1 + std::abs(want[i]))) << i;
  moec_model_free(m);
}

TEST_F(SignatureTest, SigningDoesNotChangeTheMetaDigest) {
  // The signature is over the meta digest, which must therefore not cover
  // it: the same artifact unsigned has the same digest and zero fields.
  TestModel unsignedModel = model;
  unsignedModel.signingSeed.reset();
  std::string path = dir.file("unsigned.moea");
  ASSERT_TRUE(unsignedModel.write(path, so).isOk());
  auto a = Artifact::open(signedPath);
  auto b = Artifact::open(path);
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_EQ((*a)->metaDigest(), (*b)->metaDigest());
  EXPECT_EQ((*b)->signatureCheck(), SignatureCheck::kUnsigned);
  EXPECT_EQ((*b)->signature(), decltype((*b)->signature()){});
  // The signature is Ed25519 over the documented message.
  std::array<uint8_t, kSignedMessageSize> message =
      signedMessage((*a)->metaDigest());
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(message.data())),
            "moec-artifact-2 signature");
  EXPECT_TRUE(ed25519Verify(publicKey, message.data(), message.size(),
                            (*a)->signature())
                  .isOk());
}

TEST_F(SignatureTest, FlippedWeightByteIsRefusedAtTheFirstRunThatUsesIt) {
  std::vector<uint8_t> bytes = readFile(signedPath);
  // Weight 11 is the bias, used by every run.
  bytes[weightFileOffset(11) + 5] ^= 0x10;
  std::string path = dir.file("weight-flipped.moea");
  ASSERT_TRUE(writeFile(path, bytes));
  moec_model *m = nullptr;
  // Loading reads no weight byte; the signature and manifest are intact.
  ASSERT_EQ(loadTrusted(path, &m), MOEC_OK) << moec_last_error();
  int32_t token = 2;
  EXPECT_EQ(moec_model_run(m, &token, 1), MOEC_CORRUPT);
  EXPECT_NE(std::string(moec_last_error()).find("the weights are corrupted"),
            std::string::npos)
      << moec_last_error();
  moec_model_free(m);
}

TEST_F(SignatureTest, FlippedManifestByteIsRefusedAtLoad) {
  auto artifact = Artifact::open(signedPath);
  ASSERT_TRUE(artifact.isOk());
  const SectionInfo *manifest = (*artifact)->findSection("manifest");
  std::vector<uint8_t> bytes = readFile(signedPath);
  bytes[manifest->offset + manifest->size / 2] ^= 0x01;
  std::string path = dir.file("manifest-flipped.moea");
  ASSERT_TRUE(writeFile(path, bytes));
  moec_model *m = nullptr;
  EXPECT_EQ(loadTrusted(path, &m), MOEC_CORRUPT);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(moec_last_error()).find("meta digest mismatch"),
            std::string::npos)
      << moec_last_error();

  // An attacker who also recomputes the meta digest is stopped by the
  // signature, before the manifest is read.
  resealMetaDigest(bytes);
  ASSERT_TRUE(writeFile(path, bytes));
  EXPECT_EQ(loadTrusted(path, &m), MOEC_CORRUPT);
  EXPECT_NE(std::string(moec_last_error()).find("signature does not verify"),
            std::string::npos)
      << moec_last_error();
  // Without a policy it loads (as before signatures), but says so.
  auto loose = Artifact::open(path);
  if (loose.isOk()) {
    EXPECT_EQ((*loose)->signatureCheck(), SignatureCheck::kInvalid);
    EXPECT_NE((*loose)->summary().find("SIGNATURE DOES NOT VERIFY"),
              std::string::npos);
  }
}

TEST_F(SignatureTest, UnsignedArtifactIsRefusedWhenASignatureIsRequired) {
  TestModel unsignedModel = model;
  unsignedModel.signingSeed.reset();
  std::string path = dir.file("unsigned.moea");
  ASSERT_TRUE(unsignedModel.write(path, so).isOk());
  moec_model *m = nullptr;
  EXPECT_EQ(loadTrusted(path, &m), MOEC_UNTRUSTED);
  EXPECT_EQ(std::string(moec_last_error()),
            path + ": is not signed; this runtime requires artifacts signed "
                   "by one of 1 trusted key");
  // Without options it loads as ever.
  ASSERT_EQ(moec_model_load(path.c_str(), "cpu", &m), MOEC_OK);
  moec_model_free(m);
}

TEST_F(SignatureTest, ArtifactSignedByAnUntrustedKeyIsRefused) {
  Ed25519Seed other;
  other.fill(7);
  StatusOr<Ed25519PublicKey> otherKey = ed25519PublicKeyOf(other);
  ASSERT_TRUE(otherKey.isOk());
  TestModel otherModel = model;
  otherModel.signingSeed = other;
  std::string path = dir.file("other.moea");
  ASSERT_TRUE(otherModel.write(path, so).isOk());
  moec_model *m = nullptr;
  EXPECT_EQ(loadTrusted(path, &m), MOEC_UNTRUSTED);
  EXPECT_EQ(std::string(moec_last_error()), path + ": is signed by key " +
                                                toHex(otherKey->data(), 32) +
                                                ", which is not trusted");
  // Trusting it (as 64 hex digits) loads it.
  std::string hex = toHex(otherKey->data(), 32);
  const char *keys[] = {kPublicPem, hex.c_str()};
  moec_load_options o = {};
  o.trusted_keys = keys;
  o.trusted_key_count = 2;
  o.require_signature = 1;
  ASSERT_EQ(moec_model_load_with_options(path.c_str(), &o, &m), MOEC_OK)
      << moec_last_error();
  moec_model_free(m);
}

TEST_F(SignatureTest, BadLoadOptionsAreInvalidArguments) {
  moec_model *m = nullptr;
  moec_load_options o = {};
  o.require_signature = 1;
  EXPECT_EQ(moec_model_load_with_options(signedPath.c_str(), &o, &m),
            MOEC_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moec_last_error()).find("at least one trusted key"),
            std::string::npos);
  const char *keys[] = {"not a key"};
  o.trusted_keys = keys;
  o.trusted_key_count = 1;
  EXPECT_EQ(moec_model_load_with_options(signedPath.c_str(), &o, &m),
            MOEC_INVALID_ARGUMENT);
  EXPECT_NE(std::string(moec_last_error()).find("trusted_keys[0]"),
            std::string::npos)
      << moec_last_error();
  EXPECT_EQ(m, nullptr);
}

} // namespace
