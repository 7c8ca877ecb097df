#!/usr/bin/env python3
"""Checks runtime/support checksums and the artifact layout against Python.

1. CRC-32 and SHA-256 of seeded random buffers (every length 0..300, page and
   MiB boundaries, a few MiB) computed by runtime-test-driver must equal
   zlib.crc32 and hashlib.sha256.
2. An artifact written by the C++ writer is parsed here from the byte layout
   of docs/artifact.md (format 2.1) alone: header, 160-byte trailer, section
   table, alignment, the meta digest (hashlib over header, manifest, table
   and trailer start), and, from the manifest decoded by `flatc --json` with
   runtime/artifact/manifest.fbs, every section's SHA-256 and the weights'
   per-block SHA-256 (hashlib).

Usage: check_format.py --driver path/to/runtime-test-driver
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.normpath(os.path.join(HERE, "../../../runtime/artifact/manifest.fbs"))
TRAILER = 160


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check_checksums(driver, tmp):
    rng = random.Random(20240601)
    lengths = list(range(0, 301)) + [4095, 4096, 4097, 65535, 65536,
                                     (1 << 20) - 1, 1 << 20, (1 << 20) + 7,
                                     5 * (1 << 20) + 3]
    paths, blobs = [], []
    for i, n in enumerate(lengths):
        data = rng.randbytes(n)
        path = os.path.join(tmp, f"r{i}.bin")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
        blobs.append(data)
    out = subprocess.run([driver, "hash"] + paths, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    for n, data, line in zip(lengths, blobs, out):
        crc, sha = line.split()
        want_crc = "%08x" % zlib.crc32(data)
        want_sha = hashlib.sha256(data).hexdigest()
        if crc != want_crc or sha != want_sha:
            fail(f"length {n}: got {crc} {sha}, want {want_crc} {want_sha}")
    print(f"checksums: {len(lengths)} random buffers (0 B .. "
          f"{max(lengths)} B) match zlib.crc32 and hashlib.sha256")


def decode_manifest(raw, tmp):
    """The manifest as a dict (flatc --json, every field present)."""
    flatc = shutil.which("flatc")
    if not flatc:
        fail("flatc not found (Debian package flatbuffers-compiler)")
    binary = os.path.join(tmp, "manifest.bin")
    with open(binary, "wb") as f:
        f.write(raw)
    subprocess.run([flatc, "--json", "--strict-json", "--defaults-json",
                    "-o", tmp, SCHEMA, "--", binary], check=True,
                   capture_output=True)
    with open(os.path.join(tmp, "manifest.json")) as f:
        return json.load(f)


def check_artifact(driver, tmp):
    path = os.path.join(tmp, "model.moea")
    subprocess.run([driver, "write-test-model", path, tmp], check=True,
                   capture_output=True)
    data = open(path, "rb").read()
    size = len(data)

    magic, major, minor, reserved = struct.unpack_from("<8sHHI", data, 0)
    if magic != b"MOECART\0" or (major, minor) != (2, 1) or reserved:
        fail(f"header: {magic!r} {major}.{minor} {reserved}")
    trailer = data[size - TRAILER:]
    table_offset, count, entry_size, file_size, end = struct.unpack_from(
        "<QIIQ8s", trailer, 0)
    meta_digest = trailer[32:64]
    signature, public_key = trailer[64:128], trailer[128:160]
    if end != b"MOECEND\0" or file_size != size or entry_size != 64:
        fail(f"trailer: {end!r} size {file_size} vs {size}, entry {entry_size}")
    if table_offset + 64 * count != size - TRAILER or table_offset % 8:
        fail(f"table at {table_offset} with {count} entries")
    if any(signature) or any(public_key):
        fail("an unsigned artifact has non-zero signature fields")

    sections = {}
    spans = []
    for i in range(count):
        kind, flags, ck, res, off, n, align, checksum, name = struct.unpack_from(
            "<IHBBQQII32s", data, table_offset + 64 * i)
        name = name.rstrip(b"\0").decode()
        if ck != 2 or res != 0 or checksum != 0 or flags & ~1:
            fail(f"{name}: checksum kind {ck}, reserved {res} {checksum}, "
                 f"flags {flags}")
        if off % align or off < 16 or off + n > table_offset:
            fail(f"{name}: offset {off} size {n} align {align}")
        sections[name] = (kind, off, n, align)
        spans.append((off, off + n, name))
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if a1 > b0:
            fail(f"sections {an} and {bn} overlap")
    want = {"manifest": 1, "cpu.so": 2, "weights": 3}
    if {k: v[0] for k, v in sections.items()} != want:
        fail(f"sections {sections}")
    if sections["weights"][1] % 4096 or sections["weights"][3] != 4096:
        fail(f"weights not 4 KiB aligned: {sections['weights']}")
    so = data[sections["cpu.so"][1]:][:4]
    if so != b"\x7fELF":
        fail("cpu.so is not an ELF file")

    # The meta digest: header, manifest, table, trailer bytes 0..31.
    _, m_off, m_size, _ = sections["manifest"]
    manifest_bytes = data[m_off:m_off + m_size]
    meta = hashlib.sha256(data[:16] + manifest_bytes +
                          data[table_offset:size - TRAILER] + trailer[:32])
    if meta.digest() != meta_digest:
        fail("meta digest differs")
    print(f"layout: {size} bytes, {count} sections "
          f"({', '.join(f'{k} @{v[1]}+{v[2]}' for k, v in sections.items())}),"
          " meta digest verified with hashlib")

    if manifest_bytes[4:8] != b"MOEM":
        fail(f"manifest file identifier {manifest_bytes[4:8]!r}")
    manifest = decode_manifest(manifest_bytes, tmp)
    records = {r["name"]: r for r in manifest["sections"]}
    if set(records) != set(sections) - {"manifest"}:
        fail(f"section records {sorted(records)} vs table {sorted(sections)}")
    blocks_checked = 0
    for name, (_, off, n, _) in sections.items():
        if name == "manifest":
            continue
        r = records[name]
        body = data[off:off + n]
        digest = bytes(r["sha256"]["bytes"])
        if r["size"] != n:
            fail(f"{name}: recorded size {r['size']} vs {n}")
        if name != "weights":
            if r["block_size"] or r["blocks"] or \
                    hashlib.sha256(body).digest() != digest:
                fail(f"{name}: SHA-256 differs or the section is blocked")
            continue
        block = r["block_size"]
        if block < 4096 or block & (block - 1):
            fail(f"weights block size {block}")
        hashes = [bytes(b["bytes"]) for b in r["blocks"]]
        if len(hashes) != -(-n // block):
            fail(f"{len(hashes)} weight blocks for {n} bytes of {block}")
        for k, h in enumerate(hashes):
            if hashlib.sha256(body[k * block:(k + 1) * block]).digest() != h:
                fail(f"weights block {k}: SHA-256 differs")
            blocks_checked += 1
        if hashlib.sha256(b"".join(hashes)).digest() != digest:
            fail("weights: sha256 is not the SHA-256 of the block digests")
    print(f"sections: {len(records)} SHA-256 records and {blocks_checked} "
          "weight block(s) verified with hashlib")

    for key, value in [("max_tokens", 8), ("targets", ["cpu"])]:
        if manifest[key] != value:
            fail(f"manifest {key} is {manifest[key]!r}, expected {value!r}")
    kernels = [s["kernel"] for s in manifest["steps"]]
    if kernels != ["moec_test_embed", "moec_test_add", "moec_test_logits"]:
        fail(f"manifest steps {kernels}")
    if manifest["inputs"][0]["index_bound"] != 37:
        fail(f"input {manifest['inputs'][0]}")
    print(f"manifest: decoded by flatc --json ({len(manifest['steps'])} "
          f"steps, {len(manifest['weights'])} weights)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        check_checksums(args.driver, tmp)
        check_artifact(args.driver, tmp)
    print("PASS")


if __name__ == "__main__":
    main()
