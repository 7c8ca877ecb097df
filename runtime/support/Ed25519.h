//===- Ed25519.h - Ed25519 signatures through libsodium ---------*- C++ -*-===//
//
// An artifact carries native code, so a deployment may require it to be
// signed (DESIGN.md §6). The runtime must not gain a link-time dependency for
// that: libsodium is loaded with dlopen on first use, like the CUDA driver,
// and its absence is "unavailable" — a policy that requires signatures then
// fails closed. Keys are read in the PEM forms `openssl genpkey -algorithm
// ed25519` and `openssl pkey -pubout` write, or as 64 hex digits.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_SUPPORT_ED25519_H
#define MOEC_RUNTIME_SUPPORT_ED25519_H

#include "runtime/support/Status.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace moec::runtime {

/// An Ed25519 public key (RFC 8032, 32 bytes).
using Ed25519PublicKey = std::array<uint8_t, 32>;
/// An Ed25519 private key seed (RFC 8032, 32 bytes).
using Ed25519Seed = std::array<uint8_t, 32>;
/// An Ed25519 signature (64 bytes).
using Ed25519Signature = std::array<uint8_t, 64>;

/// Whether Ed25519 can be used: success once libsodium is loaded, else
/// kUnavailable naming the library and why. The library is
/// `libsodium.so.23`, or `$MOEC_CRYPTO_LIBRARY` when set (the only
/// environment knob; tests point it at a missing file).
Status ed25519Available();

/// Signs `size` bytes at `message` with the key whose seed is `seed`.
StatusOr<Ed25519Signature> ed25519Sign(const Ed25519Seed &seed,
                                       const void *message, size_t size);

/// The public key of the private key whose seed is `seed`.
StatusOr<Ed25519PublicKey> ed25519PublicKeyOf(const Ed25519Seed &seed);

/// Checks `signature` of `size` bytes at `message` under `key`: success, a
/// kCorrupt "signature does not verify", or kUnavailable.
Status ed25519Verify(const Ed25519PublicKey &key, const void *message,
                     size_t size, const Ed25519Signature &signature);

/// Parses a private key: PEM "PRIVATE KEY" holding PKCS#8 Ed25519. `path`
/// names the key in messages.
StatusOr<Ed25519Seed> parseEd25519PrivateKey(const std::string &text,
                                             const std::string &path);

/// Parses a public key: PEM "PUBLIC KEY" holding an Ed25519
/// SubjectPublicKeyInfo, or 64 hex digits. `path` names it in messages.
StatusOr<Ed25519PublicKey> parseEd25519PublicKey(const std::string &text,
                                                 const std::string &path);

/// Reads a key file (a regular file of at most 64 KiB) into a string.
StatusOr<std::string> readKeyFile(const std::string &path);

/// Lower-case hex of `size` bytes at `data`.
std::string toHex(const uint8_t *data, size_t size);

} // namespace moec::runtime

#endif // MOEC_RUNTIME_SUPPORT_ED25519_H
