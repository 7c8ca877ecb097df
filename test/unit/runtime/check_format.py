#!/usr/bin/env python3
"""Checks runtime/support checksums and the artifact layout against Python.

1. CRC-32 and SHA-256 of seeded random buffers (every length 0..300, page and
   MiB boundaries, a few MiB) computed by runtime-test-driver must equal
   zlib.crc32 and hashlib.sha256.
2. An artifact written by the C++ writer is parsed here from the byte layout
   of docs/artifact.md alone: header, trailer, section table, alignment,
   per-section CRC-32 (zlib), whole-file SHA-256 (hashlib); the manifest is
   decoded with `protoc --decode` when protoc is installed.

Usage: check_format.py --driver path/to/runtime-test-driver
"""

import argparse
import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.normpath(os.path.join(HERE, "../../../runtime/artifact/manifest.proto"))


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


def check_artifact(driver, tmp):
    path = os.path.join(tmp, "model.moea")
    subprocess.run([driver, "write-test-model", path, tmp], check=True,
                   capture_output=True)
    data = open(path, "rb").read()
    size = len(data)

    magic, major, minor, reserved = struct.unpack_from("<8sHHI", data, 0)
    if magic != b"MOECART\0" or (major, minor) != (1, 0) or reserved:
        fail(f"header: {magic!r} {major}.{minor} {reserved}")
    table_offset, count, entry_size, file_size, end = struct.unpack_from(
        "<QIIQ8s", data, size - 64)
    digest = data[size - 32:]
    if end != b"MOECEND\0" or file_size != size or entry_size != 64:
        fail(f"trailer: {end!r} size {file_size} vs {size}, entry {entry_size}")
    if table_offset + 64 * count != size - 64 or table_offset % 8:
        fail(f"table at {table_offset} with {count} entries")
    if hashlib.sha256(data[:size - 32]).digest() != digest:
        fail("whole-file SHA-256 differs")

    sections = {}
    spans = []
    for i in range(count):
        kind, flags, ck, res, off, n, align, crc, name = struct.unpack_from(
            "<IHBBQQII32s", data, table_offset + 64 * i)
        name = name.rstrip(b"\0").decode()
        if ck != 1 or res != 0 or flags & ~1:
            fail(f"{name}: checksum kind {ck}, reserved {res}, flags {flags}")
        if off % align or off < 16 or off + n > table_offset:
            fail(f"{name}: offset {off} size {n} align {align}")
        if zlib.crc32(data[off:off + n]) != crc:
            fail(f"{name}: CRC-32 differs")
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
    print(f"layout: {size} bytes, {count} sections "
          f"({', '.join(f'{k} @{v[1]}+{v[2]}' for k, v in sections.items())}),"
          " CRC-32s and SHA-256 verified with zlib/hashlib")

    protoc = shutil.which("protoc")
    if not protoc:
        print("manifest: protoc not found, decode skipped")
        return
    _, off, n, _ = sections["manifest"]
    text = subprocess.run(
        [protoc, "-I", os.path.dirname(PROTO), "--decode",
         "moec.runtime.manifest.Manifest", os.path.basename(PROTO)],
        input=data[off:off + n], check=True, capture_output=True).stdout.decode()
    for needle in ["max_tokens: 8", 'targets: "cpu"', 'kernel: "moec_test_embed"',
                   'kernel: "moec_test_logits"', "index_bound: 37"]:
        if needle not in text:
            fail(f"decoded manifest lacks {needle!r}:\n{text}")
    print("manifest: decoded by protoc --decode "
          f"({text.count('steps {')} steps, {text.count('weights {')} weights)")


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
