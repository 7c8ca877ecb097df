"""A small, independent reader of `.moea` artifacts for tests and tools.

Reads the section table (docs/artifact.md section 1, format 2.0), decodes
the FlatBuffers manifest into a dict with `flatc --json` (the schema is
runtime/artifact/manifest.fbs), and lists the function symbols of a cubin
(an ELF64 image) so that tests can check what the runtime will look up.
"""
import json
import os
import shutil
import struct
import subprocess
import tempfile

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "runtime", "artifact", "manifest.fbs")
TRAILER_SIZE = 160


def read_sections(path):
    """{name: bytes} of every section of the artifact at `path`."""
    data = open(path, "rb").read()
    if data[:8] != b"MOECART\0":
        raise ValueError(f"{path}: not a moec artifact")
    major, = struct.unpack_from("<H", data, 8)
    if major != 2:
        raise ValueError(f"{path}: format {major}.x, this reader knows 2.x")
    table, count = struct.unpack_from("<QI", data, len(data) - TRAILER_SIZE)
    sections = {}
    for i in range(count):
        _, _, _, _, off, size, _, _, name = struct.unpack_from(
            "<IHBBQQII32s", data, table + 64 * i)
        sections[name.rstrip(b"\0").decode()] = data[off:off + size]
    return sections


def decode_manifest(manifest_bytes):
    """The manifest as a dict, every field present (needs flatc): enums by
    name ("F32"), unions as `<field>_type` plus the table."""
    flatc = shutil.which("flatc")
    if not flatc:
        raise RuntimeError("flatc not found")
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "manifest.bin")
        with open(binary, "wb") as f:
            f.write(manifest_bytes)
        subprocess.run([flatc, "--json", "--strict-json", "--defaults-json",
                        "-o", tmp, SCHEMA, "--", binary],
                       check=True, capture_output=True)
        with open(os.path.join(tmp, "manifest.json")) as f:
            return json.load(f)


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
