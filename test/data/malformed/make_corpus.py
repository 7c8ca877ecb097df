#!/usr/bin/env python3
# ===- make_corpus.py - Writes the safetensors test corpus ----------------=== #
#
# Writes the files that test/unit/hf/SafetensorsTest.cpp reads: one small
# malformed .safetensors file per validation rule, broken sharded checkpoint
# folders, and valid files with known contents. Plain Python 3 stdlib only, so
# it runs anywhere; the output is deterministic and committed.
#
#   python3 test/data/malformed/make_corpus.py   # rewrites the corpus in place
#
# ===----------------------------------------------------------------------=== #

import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))

# Rows of README.md: (path relative to ROOT, what it breaks or holds).
README_ROWS = []


def header_bytes(header, pad=True):
    """Encodes a header the way the reference writer does: compact JSON,
    padded with spaces to a multiple of 8 bytes."""
    if isinstance(header, (bytes, bytearray)):
        text = bytes(header)
    else:
        text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if pad:
        text += b" " * (-len(text) % 8)
    return text


def safetensors(header, data=b"", header_len=None, pad=True):
    """Returns a whole file: u64 little-endian header length, header, data.
    `header_len` overrides the length field."""
    text = header_bytes(header, pad)
    length = len(text) if header_len is None else header_len
    return struct.pack("<Q", length) + text + data


def write(rel_path, contents, description):
    path = os.path.join(ROOT, rel_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(contents, str):
        contents = contents.encode("utf-8")
    with open(path, "wb") as f:
        f.write(contents)
    if description:
        README_ROWS.append((rel_path, description))


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


# One valid tensor 'a': F32 [2] over 8 bytes.
A = entry("F32", [2], 0, 8)
A_DATA = f32(1.5, -2.0)

# --------------------------------------------------------------------------- #
# Valid files with known contents.
# --------------------------------------------------------------------------- #

# Offsets in tensor order; the header lists them in another order so that the
# reader has to sort. Byte values are spelled out again in the C++ test.
KNOWN_TENSORS = [
    ("model.embed.weight", "F32", [2, 3],
     f32(1.0, -2.0, 0.5, 3.25, -0.0, 100.0)),
    ("model.norm.weight", "BF16", [4],
     struct.pack("<4H", 0x3F80, 0xBFC0, 0x3E20, 0x4000)),
    ("model.layers.0.mlp.experts.ids", "I32", [3],
     struct.pack("<3i", 7, -1, 2147483647)),
    ("model.layers.0.fp8.weight", "F8_E4M3", [2, 2],
     bytes([0x38, 0xB8, 0x7E, 0x00])),
    ("model.empty", "F32", [0, 4], b""),
    ("model.scalar", "I32", [], struct.pack("<i", 42)),
]
KNOWN_HEADER_ORDER = [
    "model.scalar", "model.layers.0.fp8.weight", "model.empty",
    "model.embed.weight", "model.norm.weight",
    "model.layers.0.mlp.experts.ids",
]
KNOWN_METADATA = {"format": "pt", "producer": "moec make_corpus.py"}


def build_file(tensors, metadata=None, order=None):
    """Lays `tensors` [(name, dtype, shape, bytes)] out back to back."""
    entries, data = {}, b""
    for name, dtype, shape, payload in tensors:
        entries[name] = entry(dtype, shape, len(data), len(data) + len(payload))
        data += payload
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in order or [t[0] for t in tensors]:
        header[name] = entries[name]
    return safetensors(header, data)


def write_valid():
    write("valid/known.safetensors",
          build_file(KNOWN_TENSORS, KNOWN_METADATA, KNOWN_HEADER_ORDER),
          "valid: F32/BF16/I32/F8_E4M3 tensors, a 0-element tensor and a "
          "scalar with known bytes; header order differs from offset order")
    write("valid/empty.safetensors", safetensors(b"{}"),
          "valid: header `{}` and no data, a file with no tensors")
    config = json.dumps({"model_type": "moec-test"}) + "\n"
    write("valid/single/config.json", config, None)
    write("valid/single/model.safetensors", build_file(KNOWN_TENSORS),
          "valid checkpoint folder: one model.safetensors, no index")
    first, second = KNOWN_TENSORS[:2], KNOWN_TENSORS[2:]
    shards = ["model-00001-of-00002.safetensors",
              "model-00002-of-00002.safetensors"]
    write("valid/sharded/config.json", config, None)
    write("valid/sharded/" + shards[0], build_file(first),
          "valid sharded checkpoint, shard 1 (embed, norm)")
    write("valid/sharded/" + shards[1], build_file(second),
          "valid sharded checkpoint, shard 2 (the other known tensors)")
    weight_map = {t[0]: shards[0] for t in first}
    weight_map.update({t[0]: shards[1] for t in second})
    total = sum(len(t[3]) for t in KNOWN_TENSORS)
    write("valid/sharded/model.safetensors.index.json",
          json.dumps({"metadata": {"total_size": total},
                      "weight_map": weight_map}, indent=2),
          "valid sharded checkpoint index")


# --------------------------------------------------------------------------- #
# Malformed single files: one rule each.
# --------------------------------------------------------------------------- #


def write_malformed_files():
    def case(name, contents, rule):
        write("safetensors/%s.safetensors" % name, contents, rule)

    valid = safetensors({"a": A}, A_DATA)
    case("empty_file", b"", "file shorter than 8 bytes (0 bytes)")
    case("too_short", b"\x10\x00\x00\x00\x00",
         "file shorter than 8 bytes (5 bytes)")
    case("header_len_huge", safetensors({"a": A}, A_DATA, header_len=2**63),
         "header length 2^63, over the 100000000 limit")
    case("header_len_over_limit",
         safetensors({"a": A}, A_DATA, header_len=100000001),
         "header length 100000001, just over the 100000000 limit")
    case("header_cut", valid[:8 + 20],
         "truncated inside the header: length field points past the end")
    case("data_cut", valid[:-3],
         "truncated inside the data: last tensor extends past the end")
    case("header_len_zero", safetensors(b"", A_DATA),
         "header length 0: empty header is not JSON")
    case("not_json", safetensors(b"this is not json", A_DATA),
         "header is not JSON")
    case("json_array", safetensors([1, 2, 3], A_DATA),
         "header is a JSON array, not an object")
    case("invalid_utf8", safetensors(b'{"a\xff":{}}', A_DATA),
         "header holds an invalid UTF-8 byte")
    case("deep_nesting",
         safetensors(b'{"a":' + b"[" * 100 + b"]" * 100 + b"}", A_DATA),
         "header nests JSON 100 levels deep (limit 64)")
    case("entry_not_object", safetensors({"a": [1, 2]}, A_DATA),
         "tensor entry is an array instead of an object")
    case("unknown_dtype", safetensors({"a": entry("F12", [2], 0, 8)}, A_DATA),
         "unknown dtype F12")
    case("dtype_not_string", safetensors({"a": entry(4, [2], 0, 8)}, A_DATA),
         "dtype is a number")
    case("missing_key",
         safetensors({"a": {"dtype": "F32", "shape": [2]}}, A_DATA),
         "entry lacks data_offsets")
    case("extra_key",
         safetensors({"a": dict(A, offsets_hint=0)}, A_DATA),
         "entry has an unknown key offsets_hint")
    case("shape_not_array",
         safetensors({"a": entry("F32", 2, 0, 8)}, A_DATA),
         "shape is a number, not an array")
    case("negative_dim",
         safetensors({"a": entry("F32", [4, -2], 0, 8)}, A_DATA),
         "shape has a negative dimension")
    case("fractional_dim",
         safetensors({"a": entry("F32", [2.5], 0, 8)}, A_DATA),
         "shape has a non-integer dimension 2.5")
    case("float_literal_dim",
         safetensors(b'{"a":{"dtype":"F32","shape":[2.0],'
                     b'"data_offsets":[0,8]}}', A_DATA),
         "shape dimension written as the float 2.0")
    case("dim_exceeds_int64",
         safetensors({"a": entry("F32", [2**63], 0, 8)}, A_DATA),
         "shape dimension 2^63 does not fit int64")
    case("element_count_overflow",
         safetensors({"a": entry("F32", [2**32, 2**32, 2], 0, 8)}, A_DATA),
         "element count 2^65 overflows u64")
    case("byte_size_overflow",
         safetensors({"a": entry("F32", [2**62], 0, 8)}, A_DATA),
         "element count 2^62 fits but times 4 bytes overflows u64")
    case("size_mismatch",
         safetensors({"a": entry("BF16", [5, 6], 0, 100)}, b"\x00" * 100),
         "byte range of 100 bytes but shape [5, 6] of BF16 needs 60")
    case("offsets_not_pair",
         safetensors({"a": {"dtype": "F32", "shape": [2],
                            "data_offsets": [0]}}, A_DATA),
         "data_offsets has one element")
    case("offsets_negative",
         safetensors({"a": entry("F32", [2], -4, 4)}, A_DATA),
         "data_offsets begin is negative")
    case("offsets_reversed",
         safetensors({"a": entry("F32", [2], 8, 0)}, A_DATA),
         "data_offsets begin 8 > end 0")
    case("offset_exceeds_u64",
         safetensors({"a": entry("F32", [2], 0, 2**64)}, A_DATA),
         "data_offsets end 2^64 does not fit u64")
    case("duplicate_name",
         safetensors(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                     b'"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
                     A_DATA * 2),
         "tensor name a appears twice (a JSON parser would keep one)")
    case("duplicate_entry_key",
         safetensors(b'{"a":{"dtype":"I32","dtype":"F32","shape":[2],'
                     b'"data_offsets":[0,8]}}', A_DATA),
         "entry of a repeats the key dtype")
    case("overlap",
         safetensors({"a": A, "b": entry("F32", [2], 4, 12)}, A_DATA + f32(3)),
         "ranges of a [0,8) and b [4,12) overlap")
    case("gap",
         safetensors({"a": A, "b": entry("F32", [2], 12, 20)},
                     A_DATA + b"\x00" * 12),
         "4 unused bytes between a and b")
    case("gap_at_start",
         safetensors({"a": entry("F32", [2], 4, 12)}, b"\x00" * 4 + A_DATA),
         "data section starts with 4 unused bytes")
    case("trailing", safetensors({"a": A}, A_DATA + b"\xde\xad\xbe\xef"),
         "4 trailing bytes after the last tensor")
    case("metadata_not_object",
         safetensors({"__metadata__": ["pt"], "a": A}, A_DATA),
         "__metadata__ is an array")
    case("metadata_value_not_string",
         safetensors({"__metadata__": {"version": 3}, "a": A}, A_DATA),
         "__metadata__ maps a key to a number")


# --------------------------------------------------------------------------- #
# Malformed checkpoint folders.
# --------------------------------------------------------------------------- #

SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"


def write_checkpoint_cases():
    def shard(names):
        return build_file([(n, "F32", [2], A_DATA) for n in names])

    def folder(name, rule, files, index=None):
        base = "index/%s/" % name
        write(base + "config.json", '{"model_type": "moec-test"}\n', None)
        for file_name, contents in files.items():
            write(base + file_name, contents, None)
        if index is not None:
            if not isinstance(index, (str, bytes)):
                index = json.dumps(index, indent=2)
            write(base + "model.safetensors.index.json", index, None)
        README_ROWS.append((base, rule))

    two_shards = {SHARD1: shard(["a", "b"]), SHARD2: shard(["c"])}
    good_map = {"a": SHARD1, "b": SHARD1, "c": SHARD2}

    folder("shard_missing", "weight_map names a shard file that is absent",
           {SHARD1: shard(["a", "b"])}, {"weight_map": good_map})
    # If the '..' rule were missing, this would open the valid known file.
    folder("shard_dotdot", "shard name starts with ../ (escapes the folder)",
           {}, {"weight_map": {t[0]: "../../valid/known.safetensors"
                               for t in KNOWN_TENSORS}})
    folder("shard_absolute", "shard name is an absolute path", {},
           {"weight_map": {"a": "/tmp/model-00001-of-00001.safetensors"}})
    folder("shard_subdir", "shard name contains a path separator",
           {"sub/" + SHARD1: shard(["a"])}, {"weight_map": {"a": "sub/" + SHARD1}})
    folder("tensor_missing_from_shard",
           "weight_map lists a tensor that its shard does not hold",
           two_shards, {"weight_map": dict(good_map, ghost=SHARD1)})
    folder("tensor_not_in_weight_map",
           "shard 1 holds tensor b, which the weight_map does not list",
           two_shards, {"weight_map": {"a": SHARD1, "c": SHARD2}})
    folder("tensor_in_two_shards", "tensor b is stored in both shards",
           {SHARD1: shard(["a", "b"]), SHARD2: shard(["b", "c"])},
           {"weight_map": good_map})
    folder("weight_map_not_object", "weight_map is an array", two_shards,
           {"weight_map": [["a", SHARD1]]})
    folder("weight_map_missing", "index has no weight_map", two_shards,
           {"metadata": {"total_size": 24}})
    folder("weight_map_empty", "weight_map lists no tensors", two_shards,
           {"weight_map": {}})
    folder("weight_map_value_not_string", "weight_map maps a tensor to 1",
           two_shards, {"weight_map": dict(good_map, c=1)})
    folder("duplicate_in_weight_map", "weight_map lists tensor a twice",
           two_shards,
           '{"weight_map": {"a": "%s", "b": "%s", "a": "%s", "c": "%s"}}'
           % (SHARD1, SHARD1, SHARD2, SHARD2))
    folder("metadata_not_object", "index metadata is a string", two_shards,
           {"metadata": "big", "weight_map": good_map})
    folder("index_not_json", "index file is not JSON", two_shards,
           "weight_map = {a: 1}\n")
    folder("index_not_object", "index file is a JSON array", two_shards,
           "[]\n")
    folder("shard_malformed", "shard 2 has 4 trailing bytes",
           {SHARD1: shard(["a", "b"]), SHARD2: shard(["c"]) + b"\x00" * 4},
           {"weight_map": good_map})
    folder("no_safetensors", "no index and no *.safetensors file", {})
    folder("several_without_index", "two *.safetensors files and no index",
           two_shards)


def write_readme():
    lines = [
        "# Safetensors test corpus",
        "",
        "Written by `make_corpus.py` (Python 3 stdlib only); rerun it after "
        "editing it. Read by",
        "`test/unit/hf/SafetensorsTest.cpp`, which checks that each malformed "
        "case is rejected with",
        "the message of the rule it breaks. A case listed as a folder is a "
        "checkpoint folder opened with",
        "`Checkpoint::open`.",
        "",
        "| path | rule broken / contents |",
        "|---|---|",
    ]
    lines += ["| `%s` | %s |" % row for row in README_ROWS]
    write("README.md", "\n".join(lines) + "\n", None)


def main():
    for sub in ("safetensors", "index", "valid"):
        shutil.rmtree(os.path.join(ROOT, sub), ignore_errors=True)
    write_valid()
    write_malformed_files()
    write_checkpoint_cases()
    write_readme()


if __name__ == "__main__":
    main()
