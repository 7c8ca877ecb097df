//===- Ed25519.cpp - Ed25519 signatures through libsodium -------*- C++ -*-===//
//
// libsodium's three Ed25519 entry points resolved once through dlopen, and
// the two fixed DER shapes of Ed25519 keys (RFC 8410) read from PEM.
//
//===----------------------------------------------------------------------===//

#include "runtime/support/Ed25519.h"
#include "runtime/support/File.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <vector>

namespace moec::runtime {

namespace {

/// libsodium's entry points; never unloaded once loaded.
struct Sodium {
  using InitFn = int (*)();
  using SignFn = int (*)(unsigned char *, unsigned long long *,
                         const unsigned char *, unsigned long long,
                         const unsigned char *);
  using VerifyFn = int (*)(const unsigned char *, const unsigned char *,
                           unsigned long long, const unsigned char *);
  using KeypairFn = int (*)(unsigned char *, unsigned char *,
                            const unsigned char *);
  SignFn sign = nullptr;
  VerifyFn verify = nullptr;
  KeypairFn seedKeypair = nullptr;
  Status status;
};

const Sodium &sodium() {
  static const Sodium loaded = [] {
    Sodium s;
    const char *override = std::getenv("MOEC_CRYPTO_LIBRARY");
    std::string library = override && *override ? override : "libsodium.so.23";
    void *handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *err = dlerror();
      s.status = makeError(StatusCode::kUnavailable,
                           "Ed25519 signatures are unavailable: cannot load ",
                           library, " (", err ? err : "dlopen failed",
                           "); install libsodium23");
      return s;
    }
    auto init = reinterpret_cast<Sodium::InitFn>(dlsym(handle, "sodium_init"));
    s.sign = reinterpret_cast<Sodium::SignFn>(
        dlsym(handle, "crypto_sign_ed25519_detached"));
    s.verify = reinterpret_cast<Sodium::VerifyFn>(
        dlsym(handle, "crypto_sign_ed25519_verify_detached"));
    s.seedKeypair = reinterpret_cast<Sodium::KeypairFn>(
        dlsym(handle, "crypto_sign_ed25519_seed_keypair"));
    if (!init || !s.sign || !s.verify || !s.seedKeypair || init() < 0)
      s.status = makeError(StatusCode::kUnavailable,
                           "Ed25519 signatures are unavailable: ", library,
                           " lacks libsodium's Ed25519 functions");
    return s;
  }();
  return loaded;
}

/// The DER prefix of an RFC 8410 Ed25519 PKCS#8 private key; the 32-byte
/// seed follows.
constexpr uint8_t kPrivatePrefix[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30,
                                      0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
                                      0x04, 0x22, 0x04, 0x20};
/// The DER prefix of an RFC 8410 Ed25519 SubjectPublicKeyInfo; the 32-byte
/// key follows.
constexpr uint8_t kPublicPrefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                     0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/// The DER bytes of the PEM block labelled `label` in `text`.
StatusOr<std::vector<uint8_t>> pemBlock(const std::string &text,
                                        const std::string &label,
                                        const std::string &path) {
  std::string begin = "-----BEGIN " + label + "-----";
  std::string end = "-----END " + label + "-----";
  size_t b = text.find(begin);
  size_t e = b == std::string::npos ? b : text.find(end, b);
  if (e == std::string::npos)
    return makeError(StatusCode::kInvalidArgument, path, ": no PEM '", label,
                     "' block (expected an Ed25519 key as `openssl genpkey "
                     "-algorithm ed25519` writes it)");
  std::vector<uint8_t> out;
  uint32_t bits = 0;
  int count = 0;
  for (size_t i = b + begin.size(); i < e; ++i) {
    char c = text[i];
    if (c == '=' || c == '\n' || c == '\r' || c == ' ' || c == '\t')
      continue;
    int v = base64Value(c);
    if (v < 0)
      return makeError(StatusCode::kInvalidArgument, path,
                       ": the PEM block holds a character outside base64");
    bits = bits << 6 | uint32_t(v);
    if ((count += 6) >= 8) {
      count -= 8;
      out.push_back(uint8_t(bits >> count));
    }
  }
  return out;
}

/// The 32 bytes after `prefix` in `der`, which must be exactly prefix + 32.
template <size_t N>
StatusOr<std::array<uint8_t, 32>>
keyAfter(const std::vector<uint8_t> &der, const uint8_t (&prefix)[N],
         const char *what, const std::string &path) {
  if (der.size() != N + 32 || std::memcmp(der.data(), prefix, N) != 0)
    return makeError(StatusCode::kInvalidArgument, path, ": not an Ed25519 ",
                     what, " (RFC 8410)");
  std::array<uint8_t, 32> key;
  std::memcpy(key.data(), der.data() + N, 32);
  return key;
}

} // namespace

Status ed25519Available() { return sodium().status; }

StatusOr<Ed25519Signature> ed25519Sign(const Ed25519Seed &seed,
                                       const void *message, size_t size) {
  const Sodium &s = sodium();
  MOEC_RETURN_IF_ERROR(s.status);
  unsigned char pk[32], sk[64];
  Ed25519Signature signature;
  if (s.seedKeypair(pk, sk, seed.data()) != 0 ||
      s.sign(signature.data(), nullptr,
             static_cast<const unsigned char *>(message), size, sk) != 0)
    return Status(StatusCode::kInternal, "libsodium failed to sign");
  std::memset(sk, 0, sizeof(sk));
  return signature;
}

StatusOr<Ed25519PublicKey> ed25519PublicKeyOf(const Ed25519Seed &seed) {
  const Sodium &s = sodium();
  MOEC_RETURN_IF_ERROR(s.status);
  unsigned char sk[64];
  Ed25519PublicKey key;
  if (s.seedKeypair(key.data(), sk, seed.data()) != 0)
    return Status(StatusCode::kInternal, "libsodium failed to derive a key");
  std::memset(sk, 0, sizeof(sk));
  return key;
}

Status ed25519Verify(const Ed25519PublicKey &key, const void *message,
                     size_t size, const Ed25519Signature &signature) {
  const Sodium &s = sodium();
  MOEC_RETURN_IF_ERROR(s.status);
  if (s.verify(signature.data(), static_cast<const unsigned char *>(message),
               size, key.data()) != 0)
    return Status(StatusCode::kCorrupt, "signature does not verify");
  return Status();
}

StatusOr<Ed25519Seed> parseEd25519PrivateKey(const std::string &text,
                                             const std::string &path) {
  MOEC_ASSIGN_OR_RETURN(std::vector<uint8_t> der,
                        pemBlock(text, "PRIVATE KEY", path));
  return keyAfter(der, kPrivatePrefix, "private key", path);
}

StatusOr<Ed25519PublicKey> parseEd25519PublicKey(const std::string &text,
                                                 const std::string &path) {
  std::string trimmed = text;
  while (!trimmed.empty() && std::strchr(" \t\r\n", trimmed.back()))
    trimmed.pop_back();
  if (trimmed.size() == 64 &&
      trimmed.find_first_not_of("0123456789abcdefABCDEF") ==
          std::string::npos) {
    Ed25519PublicKey key;
    for (size_t i = 0; i < 32; ++i)
      key[i] = uint8_t(std::stoi(trimmed.substr(2 * i, 2), nullptr, 16));
    return key;
  }
  MOEC_ASSIGN_OR_RETURN(std::vector<uint8_t> der,
                        pemBlock(text, "PUBLIC KEY", path));
  return keyAfter(der, kPublicPrefix, "public key", path);
}

StatusOr<std::string> readKeyFile(const std::string &path) {
  MOEC_ASSIGN_OR_RETURN(RegularFile file, openRegularFile(path));
  if (file.size > 64 * 1024)
    return makeError(StatusCode::kInvalidArgument, path, ": is ", file.size,
                     " bytes; a key file is at most 65536");
  std::string text(file.size, '\0');
  MOEC_RETURN_IF_ERROR(
      readExactly(file.fd.get(), path, 0, text.data(), file.size));
  return text;
}

std::string toHex(const uint8_t *data, size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

} // namespace moec::runtime
