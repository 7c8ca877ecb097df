//===- Format.cpp - Byte layout of the artifact container -------*- C++ -*-===//
//
// Encoders and decoders of the header, section table entries and trailer,
// and the section kind/name rules. Decoding never fails: range and
// consistency checks are the reader's job (Artifact.cpp), with the file name
// in every message.
//
//===----------------------------------------------------------------------===//

#include "runtime/artifact/Format.h"

namespace moec::runtime {

bool isKnownSectionKind(uint32_t kind) {
  return kind >= uint32_t(SectionKind::kManifest) && kind <= kLastSectionKind;
}

const char *sectionKindName(uint32_t kind) {
  switch (SectionKind(kind)) {
  case SectionKind::kManifest:
    return "manifest";
  case SectionKind::kCpuSharedObject:
    return "cpu.so";
  case SectionKind::kWeights:
    return "weights";
  case SectionKind::kKernelsCu:
    return "kernels.cu";
  case SectionKind::kCubin:
    return "cubin";
  case SectionKind::kEmbeddedFile:
    return "file";
  }
  return "unknown";
}

namespace {

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

// "cubin.sm_<digits>" with an optional trailing 'a' (sm_90a).
bool isCubinName(std::string_view name) {
  constexpr std::string_view prefix = "cubin.sm_";
  if (name.substr(0, prefix.size()) != prefix)
    return false;
  std::string_view arch = name.substr(prefix.size());
  if (!arch.empty() && arch.back() == 'a')
    arch.remove_suffix(1);
  if (arch.empty() || arch.size() > 4)
    return false;
  for (char c : arch)
    if (c < '0' || c > '9')
      return false;
  return true;
}

} // namespace

bool isCpuSharedObjectName(std::string_view name) {
  return name == "cpu.so" || (name.size() > kCpuSharedObjectPrefix.size() &&
                              name.substr(0, kCpuSharedObjectPrefix.size()) ==
                                  kCpuSharedObjectPrefix);
}

bool isEmbeddedFileName(std::string_view name) {
  return name.size() > kEmbeddedFilePrefix.size() &&
         name.substr(0, kEmbeddedFilePrefix.size()) == kEmbeddedFilePrefix;
}

std::string checkSectionNameSyntax(std::string_view name) {
  if (name.empty())
    return "the name is empty";
  if (name.size() > kMaxSectionNameLength)
    return "the name is longer than 31 characters";
  for (char c : name)
    if (!isNameChar(c))
      return "the name has a character outside [A-Za-z0-9._-]";
  return "";
}

std::string checkSectionKindName(uint32_t kind, std::string_view name) {
  if (!isKnownSectionKind(kind)) {
    for (uint32_t known = uint32_t(SectionKind::kManifest);
         known <= kLastSectionKind; ++known)
      if (checkSectionKindName(known, name).empty())
        return std::string("the name '") + std::string(name) +
               "' is reserved for kind " + std::to_string(known) + " (" +
               sectionKindName(known) + ")";
    return "";
  }
  if (SectionKind(kind) == SectionKind::kCubin)
    return isCubinName(name) ? ""
                             : "a cubin section must be named 'cubin.sm_<NN>' "
                               "or 'cubin.sm_<NN>a'";
  if (SectionKind(kind) == SectionKind::kCpuSharedObject)
    return isCpuSharedObjectName(name)
               ? ""
               : "a cpu.so section must be named 'cpu.so' or "
                 "'cpu.so.<variant>'";
  if (SectionKind(kind) == SectionKind::kEmbeddedFile)
    return isEmbeddedFileName(name) ? ""
                                    : "an embedded file's section must be "
                                      "named 'file.<name>'";
  if (name != sectionKindName(kind))
    return std::string("a ") + sectionKindName(kind) +
           " section must be named '" + sectionKindName(kind) + "'";
  return "";
}

std::string checkSectionName(uint32_t kind, std::string_view name) {
  std::string problem = checkSectionNameSyntax(name);
  return problem.empty() ? checkSectionKindName(kind, name) : problem;
}

void encodeHeader(uint8_t *out, uint16_t major, uint16_t minor) {
  std::memcpy(out, kArtifactMagic, 8);
  storeLE<uint16_t>(out + 8, major);
  storeLE<uint16_t>(out + 10, minor);
  storeLE<uint32_t>(out + 12, 0);
}

void encodeSectionEntry(uint8_t *out, const SectionEntry &entry) {
  storeLE<uint32_t>(out + 0, entry.kind);
  storeLE<uint16_t>(out + 4, entry.flags);
  out[6] = entry.checksumKind;
  out[7] = entry.reserved;
  storeLE<uint64_t>(out + 8, entry.offset);
  storeLE<uint64_t>(out + 16, entry.size);
  storeLE<uint32_t>(out + 24, entry.alignment);
  storeLE<uint32_t>(out + 28, entry.checksum);
  std::memcpy(out + 32, entry.name, 32);
}

SectionEntry decodeSectionEntry(const uint8_t *in) {
  SectionEntry entry;
  entry.kind = loadLE<uint32_t>(in + 0);
  entry.flags = loadLE<uint16_t>(in + 4);
  entry.checksumKind = in[6];
  entry.reserved = in[7];
  entry.offset = loadLE<uint64_t>(in + 8);
  entry.size = loadLE<uint64_t>(in + 16);
  entry.alignment = loadLE<uint32_t>(in + 24);
  entry.checksum = loadLE<uint32_t>(in + 28);
  std::memcpy(entry.name, in + 32, 32);
  return entry;
}

void encodeTrailer(uint8_t *out, const Trailer &trailer) {
  storeLE<uint64_t>(out + 0, trailer.tableOffset);
  storeLE<uint32_t>(out + 8, trailer.sectionCount);
  storeLE<uint32_t>(out + 12, trailer.entrySize);
  storeLE<uint64_t>(out + 16, trailer.fileSize);
  std::memcpy(out + 24, trailer.magic, 8);
  std::memcpy(out + kTrailerDigestOffset, trailer.digest.data(), 32);
  std::memcpy(out + kTrailerSignatureOffset, trailer.signature.data(),
              kSignatureSize);
  std::memcpy(out + kTrailerPublicKeyOffset, trailer.signerPublicKey.data(),
              kPublicKeySize);
}

std::array<uint8_t, kSignedMessageSize>
signedMessage(const Sha256Digest &metaDigest) {
  std::array<uint8_t, kSignedMessageSize> message = {};
  // sizeof includes the terminating NUL, which is part of the domain.
  std::memcpy(message.data(), kSignatureDomain, sizeof(kSignatureDomain));
  std::memcpy(message.data() + sizeof(kSignatureDomain), metaDigest.data(),
              metaDigest.size());
  return message;
}

Trailer decodeTrailer(const uint8_t *in) {
  Trailer trailer;
  trailer.tableOffset = loadLE<uint64_t>(in + 0);
  trailer.sectionCount = loadLE<uint32_t>(in + 8);
  trailer.entrySize = loadLE<uint32_t>(in + 12);
  trailer.fileSize = loadLE<uint64_t>(in + 16);
  std::memcpy(trailer.magic, in + 24, 8);
  std::memcpy(trailer.digest.data(), in + kTrailerDigestOffset, 32);
  std::memcpy(trailer.signature.data(), in + kTrailerSignatureOffset,
              kSignatureSize);
  std::memcpy(trailer.signerPublicKey.data(), in + kTrailerPublicKeyOffset,
              kPublicKeySize);
  return trailer;
}

} // namespace moec::runtime
