"""Hostile but well-formed inputs cost little and end fast (issue #12).

Runs the real tools on inputs made to cost memory or time: 100 MB headers
and indexes of valid JSON, a 100 GB tensor claim, a DeepSeek config whose
multi-token-prediction layers inflate the tensor list, and /dev/zero or a
FIFO wherever a path is taken (checkpoint shard, single file, index,
config.json, ONNX model, ONNX external data, artifact, `moec-run --input`).
Each case must fail with its own clear message, not by a signal, leave no
output file behind, end within --max-seconds, and raise the tool's peak RSS
by less than --max-extra-mb over a no-op run of the same tool (`moec --version`,
`moec-run --help`).
Peak RSS is the child's own (wait4), so cases do not mask each other.

Prints one line per case: wall seconds, peak RSS and its excess over the
no-op run.
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time


def measure(argv, timeout):
    """Runs `argv`; returns (exit status, stderr, seconds, peak RSS in MB).
    A run past `timeout` is killed and reported as a hang."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return None, "hang: killed after %.0f s" % timeout, timeout, 0
        time.sleep(0.005)
    seconds = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    return status, err, seconds, usage.ru_maxrss / 1024.0


def safetensors(path, header, data=b""):
    text = json.dumps(header, separators=(",", ":")) if not isinstance(
        header, (str, bytes)) else header
    if isinstance(text, str):
        text = text.encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)


def write_many_entries(f, count, value):
    """Writes `"t<i>":<value>` members joined by commas, in chunks."""
    chunk = []
    for i in range(count):
        chunk.append('"t%d":%s' % (i, value(i)))
        if len(chunk) == 65536:
            f.write(",".join(chunk).encode())
            f.write(b",")
            chunk = []
    f.write(",".join(chunk).encode())


def build_cases(tmp, data, onnx):
    """Returns [(name, tool, argv tail, expected message fragment)]."""
    config = os.path.join(data, "deepseek_v3-tiny", "config.json")
    cases = []
    name = input_name(os.environ["MOEC_HOSTILE_MOEC_RUN"], onnx)

    def folder(name):
        path = os.path.join(tmp, name)
        os.makedirs(path)
        shutil.copy(config, path)
        return path

    # A 100 MB header of valid JSON: padding in __metadata__.
    d = folder("header_padding")
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", 100_000_000))
        f.write(b'{"__metadata__":{"pad":"')
        for _ in range(99):
            f.write(b"x" * 1_000_000)
        f.write(b"x" * (1_000_000 - 27) + b'"}}')
    cases.append(("100 MB header, padding", "moec", [d],
                  "bytes for 0 tensors; at most"))

    # A ~100 MB header of valid JSON: 1.6 million small entries.
    d = folder("header_entries")
    path = os.path.join(d, "model.safetensors")
    count = 1_600_000
    with open(path + ".body", "wb") as f:
        f.write(b"{")
        write_many_entries(
            f, count, lambda i: '{"dtype":"U8","shape":[0],'
            '"data_offsets":[0,0]}')
        f.write(b"}")
    size = os.path.getsize(path + ".body")
    with open(path, "wb") as out, open(path + ".body", "rb") as f:
        out.write(struct.pack("<Q", size))
        shutil.copyfileobj(f, out)
    os.remove(path + ".body")
    cases.append(("%d MB header, %d entries" % (size // 1_000_000, count),
                  "moec", [d], "tensors, more than the 524288"))

    # A ~100 MB index of valid JSON.
    d = folder("index_entries")
    path = os.path.join(d, "model.safetensors.index.json")
    with open(path, "wb") as f:
        f.write(b'{"weight_map":{')
        write_many_entries(f, 2_100_000,
                           lambda i: '"model-00001-of-00001.safetensors"')
        f.write(b"}}")
    size = os.path.getsize(path)
    cases.append(("%d MB index, 2.1M entries" % (size // 1_000_000), "moec",
                  [d], "tensors, more than the 524288"))

    # A 100 GB tensor claimed by a 200-byte file.
    d = folder("claim_100gb")
    safetensors(os.path.join(d, "model.safetensors"),
                {"w": {"dtype": "F32", "shape": [25_000_000_000],
                       "data_offsets": [0, 100_000_000_000]}})
    cases.append(("100 GB tensor claim", "moec", [d],
                  "extends past the end of the data section"))

    # DeepSeek-V3 with multi-token-prediction layers inflating the tensors.
    d = folder("mtp_config")
    with open(config) as f:
        cfg = json.load(f)
    cfg["num_nextn_predict_layers"] = 4000
    cfg["n_routed_experts"] = 256
    cfg["num_experts_per_tok"] = 8
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    shutil.copy(os.path.join(data, "deepseek_v3-tiny", "model.safetensors"), d)
    cases.append(("MTP config, 4000 next-n layers", "moec", [d],
                  "num_nextn_predict_layers"))

    # Just inside the bound on layers x experts: parsed, then refused by the
    # checkpoint's missing tensors, after building the whole tensor list.
    d = folder("expert_bound")
    cfg["num_hidden_layers"] = 3
    cfg["num_nextn_predict_layers"] = 1
    cfg["n_routed_experts"] = 16384
    cfg["first_k_dense_replace"] = 0
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    shutil.copy(os.path.join(data, "deepseek_v3-tiny", "model.safetensors"), d)
    cases.append(("config at the 2^16 expert bound", "moec", [d],
                  "required by config.json"))

    def special(kind, path):
        if kind == "fifo":
            os.mkfifo(path)
        else:
            os.symlink("/dev/zero", path)

    for kind, what in (("fifo", "is a FIFO, not a regular file"),
                       ("zero", "is a character device, not a regular file")):
        label = "FIFO" if kind == "fifo" else "/dev/zero"
        d = folder("shard_" + kind)
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"weight_map": {"w": "model-00001-of-00001.safetensors"}},
                      f)
        special(kind, os.path.join(d, "model-00001-of-00001.safetensors"))
        cases.append((label + " as a shard", "moec", [d], what))

        d = folder("index_" + kind)
        special(kind, os.path.join(d, "model.safetensors.index.json"))
        cases.append((label + " as the index", "moec", [d], what))

        d = folder("config_" + kind)
        os.remove(os.path.join(d, "config.json"))
        special(kind, os.path.join(d, "config.json"))
        cases.append((label + " as config.json", "moec", [d], what))

        path = os.path.join(tmp, "model_%s.onnx" % kind)
        special(kind, path)
        cases.append((label + " as the ONNX model", "moec", [path], what))

        path = os.path.join(tmp, "artifact_%s.moea" % kind)
        special(kind, path)
        cases.append((label + " as the artifact", "moec-run",
                      [path, "--tokens", "1"], what))

        cases.append((label + " as --input", "moec-run",
                      [onnx, "--input", name + "=" + os.path.join(
                          tmp, "input_%s.npy" % kind)], what))
        special(kind, os.path.join(tmp, "input_%s.npy" % kind))

    # A FIFO as ONNX external data (a link is refused by rule already).
    ext = os.path.join(tmp, "external")
    os.makedirs(ext)
    if make_external_onnx(ext):
        special("fifo", os.path.join(ext, "weights.bin"))
        cases.append(("FIFO as ONNX external data", "moec",
                      [os.path.join(ext, "model.onnx")],
                      "is a FIFO, not a regular file"))
    return cases


def make_external_onnx(folder):
    """A one-node ONNX model whose initializer lives in weights.bin."""
    try:
        import numpy as np
        import onnx
        from onnx import helper, numpy_helper, TensorProto
    except ImportError:
        print("skip: no onnx module for the external-data case")
        return False
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", 4])],
        [w])
    model = helper.make_model(graph)
    onnx.save_model(model, os.path.join(folder, "model.onnx"),
                    save_as_external_data=True, location="weights.bin",
                    size_threshold=0)
    os.remove(os.path.join(folder, "weights.bin"))
    return True


def input_name(moec_run, artifact):
    """The name of the artifact's first input, from `moec-run --info`."""
    info = subprocess.run([moec_run, artifact, "--info"], check=True,
                          capture_output=True, text=True).stdout
    match = re.search(r"^inputs:\n\s+(\S+):", info, re.MULTILINE)
    if not match:
        sys.exit("no inputs in moec-run --info:\n" + info)
    return match.group(1)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--make-cases":
        # Child mode: write the inputs, print the cases as JSON. The files
        # are made here so that the measuring parent stays small: a forked
        # child's peak RSS starts at its parent's.
        _, _, tmp, data, artifact = sys.argv
        json.dump(build_cases(tmp, data, artifact), sys.stdout)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moec", required=True)
    parser.add_argument("--moec-run", required=True)
    parser.add_argument("--data", required=True, help="test/data")
    parser.add_argument("--max-seconds", type=float, default=2.0)
    parser.add_argument("--max-extra-mb", type=float, default=300.0)
    args = parser.parse_args()
    tools = {"moec": args.moec, "moec-run": args.moec_run}
    failures = []
    total = 0
    with tempfile.TemporaryDirectory(prefix="moec-hostile-") as tmp:
        # An artifact for the --input cases: the ONNX MoE block with input x.
        artifact = os.path.join(tmp, "block.moea")
        subprocess.run([args.moec, os.path.join(args.data, "onnx",
                                                "moe_contrib.onnx"),
                        "-o", artifact, "--precision=f32"], check=True,
                       capture_output=True)
        os.environ["MOEC_HOSTILE_MOEC_RUN"] = args.moec_run
        baseline = {}
        for name, noop in (("moec", "--version"), ("moec-run", "--help")):
            status, err, _, rss = measure([tools[name], noop], 30)
            if status != 0:
                sys.exit("%s %s failed: %s" % (name, noop, err))
            baseline[name] = rss
            print("no-op %s %s: peak RSS %.0f MB" % (name, noop, rss))
        cases = json.loads(subprocess.run(
            [sys.executable, __file__, "--make-cases", tmp, args.data,
             artifact], check=True, capture_output=True, text=True).stdout)
        for label, tool, tail, fragment in cases:
            out = os.path.join(tmp, "out.moea")
            argv = [tools[tool]] + tail + (["-o", out] if tool == "moec"
                                           else [])
            status, err, seconds, rss = measure(argv, 30)
            total += 1
            extra = rss - baseline[tool]
            first = err.strip().splitlines()[0] if err.strip() else ""
            print("%-34s %6.2f s  peak %6.0f MB (+%5.0f)  %s" %
                  (label, seconds, rss, extra, first[:150]))
            problems = []
            if status is None:
                problems.append(err)
            elif os.WIFSIGNALED(status):
                problems.append("killed by signal %d" % os.WTERMSIG(status))
            elif os.WEXITSTATUS(status) == 0:
                problems.append("succeeded")
            if fragment not in err:
                problems.append("message lacks %r" % fragment)
            if seconds > args.max_seconds:
                problems.append("took %.2f s > %.1f s" % (seconds,
                                                         args.max_seconds))
            if extra > args.max_extra_mb:
                problems.append("peak RSS +%.0f MB > %.0f MB" %
                                (extra, args.max_extra_mb))
            left = [f for f in os.listdir(tmp) if f.startswith("out.moea")]
            if left:
                problems.append("left output behind: %s" % left)
            if problems:
                failures.append("%s: %s\n  stderr: %s" %
                                (label, "; ".join(problems), err.strip()[:600]))
    for failure in failures:
        print("FAIL " + failure)
    print("hostile inputs: %d passed, %d failed" %
          (total - len(failures), len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
