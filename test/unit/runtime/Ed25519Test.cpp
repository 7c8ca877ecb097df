//===- Ed25519Test.cpp - Ed25519 through dlopen'ed libsodium ----*- C++ -*-===//
//
// Signatures against RFC 8032's test vector, keys in the PEM forms OpenSSL
// writes, and every key-parsing refusal.
//
//===----------------------------------------------------------------------===//

#include "TestModel.h"

#include "runtime/support/Ed25519.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace moec::runtime;
using moec::runtime::test::kTestPrivatePem;
using moec::runtime::test::kTestPublicPem;

namespace {

std::vector<uint8_t> fromHex(const std::string &hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(uint8_t(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// RFC 8032 section 7.1, TEST 2 (a one-byte message).
const char *kRfcSeed =
    "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const char *kRfcPublic =
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
const char *kRfcSignature =
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e4"
    "3e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

const char *const kPrivatePem = kTestPrivatePem;
const char *const kPublicPem = kTestPublicPem;

} // namespace

class Ed25519Test : public ::testing::Test {
protected:
  void SetUp() override {
    if (Status s = ed25519Available(); !s.isOk())
      GTEST_SKIP() << s.message();
  }
};

TEST_F(Ed25519Test, MatchesRfc8032) {
  Ed25519Seed seed;
  std::vector<uint8_t> bytes = fromHex(kRfcSeed);
  std::copy(bytes.begin(), bytes.end(), seed.begin());
  StatusOr<Ed25519PublicKey> key = ed25519PublicKeyOf(seed);
  ASSERT_TRUE(key.isOk()) << key.status().toString();
  EXPECT_EQ(toHex(key->data(), key->size()), kRfcPublic);
  const uint8_t message = 0x72;
  StatusOr<Ed25519Signature> signature = ed25519Sign(seed, &message, 1);
  ASSERT_TRUE(signature.isOk());
  EXPECT_EQ(toHex(signature->data(), signature->size()), kRfcSignature);
  EXPECT_TRUE(ed25519Verify(*key, &message, 1, *signature).isOk());

  // One flipped bit anywhere is refused.
  const uint8_t other = 0x73;
  EXPECT_EQ(ed25519Verify(*key, &other, 1, *signature).code(),
            StatusCode::kCorrupt);
  Ed25519Signature bad = *signature;
  bad[17] ^= 4;
  EXPECT_EQ(ed25519Verify(*key, &message, 1, bad).message(),
            "signature does not verify");
}

TEST_F(Ed25519Test, ReadsOpenSslPemKeys) {
  StatusOr<Ed25519Seed> seed = parseEd25519PrivateKey(kPrivatePem, "k.pem");
  ASSERT_TRUE(seed.isOk()) << seed.status().toString();
  StatusOr<Ed25519PublicKey> pem = parseEd25519PublicKey(kPublicPem, "p.pem");
  ASSERT_TRUE(pem.isOk()) << pem.status().toString();
  StatusOr<Ed25519PublicKey> derived = ed25519PublicKeyOf(*seed);
  ASSERT_TRUE(derived.isOk());
  EXPECT_EQ(*derived, *pem);
  // The same key as 64 hex digits.
  StatusOr<Ed25519PublicKey> hex =
      parseEd25519PublicKey(toHex(pem->data(), 32) + "\n", "p.hex");
  ASSERT_TRUE(hex.isOk());
  EXPECT_EQ(*hex, *pem);
}

TEST(Ed25519Keys, MalformedKeysAreRefusedNamingTheFile) {
  struct Case {
    std::string text;
    bool isPrivate;
    const char *fragment;
  } cases[] = {
      {"no key here", true, "k: no PEM 'PRIVATE KEY' block"},
      {kPublicPem, true, "k: no PEM 'PRIVATE KEY' block"},
      {"-----BEGIN PRIVATE KEY-----\nMC4C*AAw\n-----END PRIVATE KEY-----", true,
       "k: the PEM block holds a character outside base64"},
      // An RSA-shaped block: valid base64, wrong DER.
      {"-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\n"
       "-----END PRIVATE KEY-----",
       true, "k: not an Ed25519 private key (RFC 8410)"},
      {kPrivatePem, false, "k: no PEM 'PUBLIC KEY' block"},
      {std::string(63, 'a'), false, "k: no PEM 'PUBLIC KEY' block"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.text);
    Status s = c.isPrivate ? parseEd25519PrivateKey(c.text, "k").status()
                           : parseEd25519PublicKey(c.text, "k").status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(c.fragment), std::string::npos) << s.message();
  }
}
