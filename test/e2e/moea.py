"""A small, independent reader of `.moea` artifacts for tests and tools.

Reads the section table (docs/artifact.md section 1), decodes the manifest
with `protoc --decode`, and lists the function symbols of a cubin (an ELF64
image) so that tests can check what the runtime will look up.
"""
import os
import shutil
import struct
import subprocess

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                     "runtime", "artifact", "manifest.proto")


def read_sections(path):
    """{name: bytes} of every section of the artifact at `path`."""
    data = open(path, "rb").read()
    if data[:8] != b"MOECART\0":
        raise ValueError(f"{path}: not a moec artifact")
    table, count = struct.unpack_from("<QI", data, len(data) - 64)
    sections = {}
    for i in range(count):
        _, _, _, _, off, size, _, _, name = struct.unpack_from(
            "<IHBBQQII32s", data, table + 64 * i)
        sections[name.rstrip(b"\0").decode()] = data[off:off + size]
    return sections


def decode_manifest(manifest_bytes):
    """The manifest in protobuf text format (needs protoc)."""
    protoc = shutil.which("protoc")
    if not protoc:
        raise RuntimeError("protoc not found")
    return subprocess.run(
        [protoc, "-I", os.path.dirname(PROTO), "--decode",
         "moec.runtime.manifest.Manifest", os.path.basename(PROTO)],
        input=manifest_bytes, check=True, capture_output=True).stdout.decode()


def elf_functions(image):
    """Names of the global function symbols of the ELF64 `image`."""
    if image[:4] != b"\x7fELF" or image[4] != 2:
        raise ValueError("not an ELF64 image")
    shoff, = struct.unpack_from("<Q", image, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", image, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", image, shoff + i * shentsize)
               for i in range(shnum)]
    names = set()
    for _, kind, _, _, off, size, link, _, _, entsize in headers:
        if kind != 2:  # SHT_SYMTAB
            continue
        str_off, str_size = headers[link][4], headers[link][5]
        strtab = image[str_off:str_off + str_size]
        for i in range(size // entsize):
            name, info = struct.unpack_from("<IB", image, off + i * entsize)
            if info & 0xF == 2 and info >> 4 == 1:  # STT_FUNC, STB_GLOBAL
                names.add(strtab[name:strtab.index(b"\0", name)].decode())
    return names
