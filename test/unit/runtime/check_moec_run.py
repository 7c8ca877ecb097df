#!/usr/bin/env python3
"""End-to-end check of moec-run on the runtime test model.

Writes the test model (real cpu.so from TestKernels.cpp) with
runtime-test-driver, runs moec-run on it, and checks: the dumped .npy logits
against numpy ((embed[tokens] + bias) @ head.T in float32, max relative error
<= 1e-5), the printed top-k ids against numpy's ordering (ties to the lower
id), --input/--dump-output against --tokens, --repeat timing, --info,
--help, --device handling, and that bad input gives the documented exit
codes (1 runtime error, 2 usage error). A FIFO or /dev/zero as --input or
as the model, and a .npy header claiming far more data than the file holds,
must each be refused at once (within the run timeout) with a clear message.

Usage: check_moec_run.py --driver runtime-test-driver --moec-run moec-run
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


# Every command finishes within this many seconds, or it hung.
TIMEOUT_S = 60


def run(cmd, expect_rc):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        fail(f"{' '.join(cmd)}: still running after {TIMEOUT_S} s (it "
             f"blocked or read without end)")
    if p.returncode != expect_rc:
        fail(f"{' '.join(cmd)}: exit {p.returncode}, expected {expect_rc}\n"
             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", required=True)
    parser.add_argument("--moec-run", required=True)
    args = parser.parse_args()
    mr = args.moec_run

    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.moea")
        info = run([args.driver, "write-test-model", model, tmp], 0).stdout
        vocab, hidden, max_tokens = map(int, re.findall(r"\d+", info))
        embed = np.fromfile(os.path.join(tmp, "embed.f32"), np.float32)
        bias = np.fromfile(os.path.join(tmp, "bias.f32"), np.float32)
        head = np.fromfile(os.path.join(tmp, "head.f32"), np.float32)
        embed = embed.reshape(vocab, hidden)
        head = head.reshape(vocab, hidden)

        tokens = [3, 1, 4, 1, 5, 9, 2, 36]
        npy = os.path.join(tmp, "logits.npy")
        out = run([mr, model, "--tokens", ",".join(map(str, tokens)),
                   "--top", "3", "--repeat", "7", "--dump-logits", npy,
                   "--device", "cpu"], 0).stdout
        got = np.load(npy)
        want = (embed[tokens] + bias) @ head.T
        if got.shape != (len(tokens), vocab) or got.dtype != np.float32:
            fail(f"npy has shape {got.shape} dtype {got.dtype}")
        err = np.max(np.abs(got - want) / (1 + np.abs(want)))
        if not err <= 1e-5:
            fail(f"logits differ from numpy: max relative error {err}")
        rows = re.findall(r"position (\d+), token (\d+): (.*)", out)
        if len(rows) != len(tokens):
            fail(f"expected {len(tokens)} positions:\n{out}")
        for pos, tok, rest in rows:
            ids = [int(x) for x in re.findall(r"(\d+) \(", rest)]
            order = sorted(range(vocab), key=lambda v: (-got[int(pos)][v], v))
            if int(tok) != tokens[int(pos)] or ids != order[:3]:
                fail(f"position {pos}: printed {ids}, numpy {order[:3]}")
        if not re.search(r"run: median [\d.]+ ms over 7 runs", out):
            fail(f"no timing line:\n{out}")
        print(f"moec-run: {len(tokens)} tokens, logits match numpy "
              f"(max relative error {err:.2e}), top-3 ids match")

        # --input: the same ids from an int32 .npy, output 0 dumped as is.
        ids = os.path.join(tmp, "ids.npy")
        np.save(ids, np.array(tokens, np.int32))
        dumped = os.path.join(tmp, "output.npy")
        out = run([mr, model, "--input", f"tokens={ids}", "--dump-output",
                   dumped], 0).stdout
        if "output 0: 'logits' float32 [8, 37]" not in out:
            fail(f"--input: no output line:\n{out}")
        if not np.array_equal(np.load(dumped), got):
            fail("--input tokens=ids.npy: output 0 differs from --tokens")
        np.save(ids, np.array(tokens, np.int64))
        err = run([mr, model, "--input", f"tokens={ids}"], 1).stderr
        if "is int64, but input 'tokens' is int32" not in err:
            fail(f"--input with int64 ids: {err}")
        np.save(ids, np.array([tokens], np.int32))
        err = run([mr, model, "--input", f"tokens={ids}"], 1).stderr
        if "has shape [1, 8], but input 'tokens' has shape [T]" not in err:
            fail(f"--input with a 2-d array: {err}")
        err = run([mr, model, "--input", f"x={ids}"], 1).stderr
        if "the model has no input 'x' (its inputs: 'tokens')" not in err:
            fail(f"--input with an unknown name: {err}")
        run([mr, model, "--input", f"tokens={ids}", "--tokens", "1"], 2)
        run([mr, model, "--input", "tokens"], 2)
        print("moec-run: --input and --dump-output match --tokens, bad .npy "
              "files are refused")

        # Files that are not regular files are refused before a byte is
        # read: a FIFO without a writer would block open(2) and read(2),
        # and /dev/zero never ends.
        fifo = os.path.join(tmp, "fifo.npy")
        os.mkfifo(fifo)
        for path, kind in ((fifo, "a FIFO"),
                           ("/dev/zero", "a character device")):
            if not os.path.exists(path):
                continue
            start = time.monotonic()
            err = run([mr, model, "--input", f"tokens={path}"], 1).stderr
            want = f"--input tokens: {path}: is {kind}, not a regular file"
            if want not in err:
                fail(f"--input tokens={path}: {err}")
            err = run([mr, path, "--tokens", "1"], 1).stderr
            if f"{path}: is {kind}, not a regular file" not in err:
                fail(f"model {path}: {err}")
            print(f"moec-run: {path} as --input and as the model refused in "
                  f"{time.monotonic() - start:.2f} s")
        # A header claiming 4 PB in a file of 16 data bytes: refused by the
        # size check before anything is allocated.
        huge = os.path.join(tmp, "huge.npy")
        header = ("{'descr': '<i4', 'fortran_order': False, "
                  "'shape': (1000000000, 1000000), }")
        header += " " * (63 - (10 + len(header)) % 64) + "\n"
        with open(huge, "wb") as f:
            f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                    + header.encode() + bytes(16))
        err = run([mr, model, "--input", f"tokens={huge}"], 1).stderr
        if (f"--input tokens: {huge}: holds 16 data bytes, but shape "
                "(1000000000, 1000000) of int32 needs 4000000000000000"
                not in err):
            fail(f"--input with a huge claimed shape: {err}")
        with open(huge, "wb") as f:
            f.write(b"PK\x03\x04")
        err = run([mr, model, "--input", f"tokens={huge}"], 1).stderr
        if f"{huge}: not a NumPy .npy file (bad magic)" not in err:
            fail(f"--input with a bad magic: {err}")
        print("moec-run: FIFOs, devices and impossible .npy headers are "
              "refused at once")

        out = run([mr, model, "--tokens=7", "--top=0"], 0).stdout
        if "on cpu" not in out or "position" in out:
            fail(f"--device auto / --top 0:\n{out}")

        out = run([mr, model, "--info"], 0).stdout
        for needle in ["format 2.1", "targets:   cpu", "steps:     3",
                       "weights:   3 tensors, 4.7 KiB", "tokens: i32 [T]",
                       f"logits: f32 [T, {vocab}]", "sections:"]:
            if needle not in out:
                fail(f"--info lacks {needle!r}:\n{out}")
        help_text = run([mr, "--help"], 0).stdout
        for flag in ["--tokens", "--device", "--top", "--repeat",
                     "--dump-logits", "--dump-output", "--input", "--info",
                     "--verify", "--help"]:
            if flag not in help_text:
                fail(f"--help does not explain {flag}")

        err = run([mr, model, "--tokens", "1", "--device", "cuda"], 1).stderr
        if "unavailable" not in err:
            fail(f"--device cuda: {err}")
        err = run([mr, model, "--tokens", "1,99"], 1).stderr
        if "element 1 is 99, outside [0, 37)" not in err:
            fail(f"token out of range: {err}")
        err = run([mr, model, "--tokens", ",".join(["1"] * (max_tokens + 1))],
                  1).stderr
        if f"token count {max_tokens + 1} is not in [1, {max_tokens}]" not in err:
            fail(f"too many tokens: {err}")
        for bad in (["--tokens", "1,x"], ["--tokens", ""], [], ["--top", "-1"],
                    ["--tokens", "1", "--device", "tpu"], ["--bogus"],
                    ["--tokens", "1", "--verify=some"], ["--verify"]):
            run([mr, model] + bad, 2)
        run([mr, "--tokens", "1"], 2)

        # A flipped code byte fails every load; a flipped weight byte fails
        # the run that reads it, or the load with --verify=full.
        data = open(model, "rb").read()
        table, count = struct.unpack_from("<QI", data, len(data) - 160)
        offsets = {}
        for i in range(count):
            entry = struct.unpack_from("<IHBBQQII32s", data, table + 64 * i)
            offsets[entry[8].rstrip(b"\0").decode()] = entry[4]
        for section, verify, code in [("cpu.so", [], 1), ("weights", [], 0),
                                      ("weights", ["--verify=full"], 1),
                                      ("weights", ["--verify", "full"], 1)]:
            bad_bytes = bytearray(data)
            bad_bytes[offsets[section] + 100] ^= 0x10
            bad = os.path.join(tmp, "bad.moea")
            open(bad, "wb").write(bad_bytes)
            err = run([mr, bad, "--tokens", "1"] + verify, 1).stderr
            want = f"section '{section}'"
            if "bad.moea: " not in err or "corrupt" not in err or \
                    want not in err or "SHA-256 mismatch" not in err:
                fail(f"corrupt {section} {verify}: {err}")
            result = run([mr, bad, "--info"] + verify, code)
            if code and "bad.moea: " not in result.stderr:
                fail(f"corrupt {section} --info {verify}: {result.stderr}")
            if not code and "opened and verified (--verify=default)" not in \
                    result.stdout:
                fail(f"--info on {section} damage: {result.stdout}")
        print("moec-run: --info, --verify, --help, devices and error exits "
              "behave")

        # The artifact overwritten in place (as `cp new.moea live.moea`
        # does) while moec-run --repeat runs it: a clear error, never a
        # signal. Once truncated (pages past the end would raise SIGBUS),
        # once rewritten at the same size (bytes never verified).
        for how in ("truncated", "same size"):
            live = os.path.join(tmp, "live.moea")
            shutil.copyfile(model, live)
            proc = subprocess.Popen(
                [mr, live, "--tokens", ",".join(map(str, tokens)),
                 "--repeat", "1000000", "--device", "cpu"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
            if proc.poll() is not None:
                fail(f"overwrite ({how}): moec-run ended before the "
                     f"overwrite: {proc.communicate()}")
            with open(live, "r+b") as f:
                if how == "truncated":
                    f.truncate(len(data) // 2)
                else:
                    f.seek(len(data) // 2)
                    f.write(b"\x5a" * 4096)
            try:
                out, err = proc.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                fail(f"overwrite ({how}): moec-run kept running")
            if proc.returncode != 1:
                fail(f"overwrite ({how}): exit {proc.returncode} (a negative "
                     f"value is a signal), expected 1\n{err}")
            if "live.moea: the file was changed in place while in use" not in \
                    err or "renaming it over" not in err:
                fail(f"overwrite ({how}): message: {err}")
        print("moec-run: an artifact overwritten in place during --repeat "
              "ends the run with a clear error")

        check_signatures(args, tmp, model)
    print("PASS")


# A key pair written by `openssl genpkey -algorithm ed25519` and
# `openssl pkey -pubout`, and a second public key nobody signs with.
PRIVATE_PEM = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJUsHJoInxyq9aaFoecsg0+aFGmMwobG9Qtm+dmwiYFH
-----END PRIVATE KEY-----
"""
PUBLIC_PEM = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAD2O7kRpsmQ/P9FhUCTf1kF+fzoXxaMFEgiNyhqBJlQo=
-----END PUBLIC KEY-----
"""
PUBLIC_HEX = "0f63bb911a6c990fcff458540937f5905f9fce85f168c1448223728" \
    "6a049950a"
OTHER_HEX = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def check_signatures(args, tmp, unsigned_model):
    """--trusted-key and --info on signed and unsigned artifacts, and a
    require-signature policy without libsodium (fails closed)."""
    mr = args.moec_run
    key = os.path.join(tmp, "key.pem")
    pub = os.path.join(tmp, "key.pub.pem")
    other = os.path.join(tmp, "other.pub")
    for path, text in ((key, PRIVATE_PEM), (pub, PUBLIC_PEM),
                       (other, OTHER_HEX + "\n")):
        with open(path, "w") as f:
            f.write(text)
    signed = os.path.join(tmp, "signed.moea")
    run([args.driver, "write-test-model", signed, tmp, key], 0)

    out = run([mr, signed, "--info"], 0).stdout
    if f"signed:    by {PUBLIC_HEX} (verified)" not in out:
        fail(f"--info of a signed artifact does not show the signer:\n{out}")
    out = run([mr, unsigned_model, "--info"], 0).stdout
    if "signed:    no" not in out:
        fail(f"--info of an unsigned artifact:\n{out}")

    run([mr, signed, "--trusted-key", pub, "--tokens", "1,2"], 0)
    run([mr, signed, "--trusted-key", other, "--trusted-key", pub,
         "--tokens", "1,2"], 0)
    run([mr, signed, "--trusted-key", pub, "--info"], 0)
    err = run([mr, unsigned_model, "--trusted-key", pub, "--tokens", "1"],
              1).stderr
    if "is not signed; this runtime requires artifacts signed by one of 1 " \
            "trusted key" not in err:
        fail(f"an unsigned artifact under --trusted-key: {err}")
    err = run([mr, signed, "--trusted-key", other, "--tokens", "1"], 1).stderr
    if f"is signed by key {PUBLIC_HEX}, which is not trusted" not in err:
        fail(f"an artifact signed by an untrusted key: {err}")
    err = run([mr, signed, "--trusted-key", key, "--tokens", "1"], 1).stderr
    if "no PEM 'PUBLIC KEY' block" not in err:
        fail(f"a private key as --trusted-key: {err}")
    run([mr, signed, "--trusted-key"], 2)

    # Without libsodium a policy cannot be checked: it fails closed, for
    # the run and for --info. Without a policy the artifact still loads.
    env = dict(os.environ, MOEC_CRYPTO_LIBRARY="/nonexistent/libsodium.so")
    for extra in (["--tokens", "1"], ["--info"]):
        p = subprocess.run([mr, signed, "--trusted-key", pub] + extra,
                           capture_output=True, text=True, timeout=TIMEOUT_S,
                           env=env)
        if p.returncode != 1 or "unavailable" not in p.stderr:
            fail(f"--trusted-key without libsodium ({extra}): exit "
                 f"{p.returncode}, stderr: {p.stderr}")
    p = subprocess.run([mr, signed, "--info", "--tokens", "1"],
                       capture_output=True, text=True, timeout=TIMEOUT_S,
                       env=env)
    if p.returncode != 0 or "(not checked: Ed25519 is unavailable)" \
            not in p.stdout:
        fail(f"a signed artifact without a policy or libsodium: exit "
             f"{p.returncode}\n{p.stdout}{p.stderr}")

    # moec-run must not link libsodium: it is loaded only when needed.
    ldd = shutil.which("ldd")
    if ldd:
        libs = subprocess.run([ldd, mr], capture_output=True,
                              text=True).stdout
        if "sodium" in libs:
            fail(f"moec-run links libsodium:\n{libs}")
    print("moec-run: --trusted-key accepts, refuses unsigned and untrusted "
          "artifacts, and fails closed without libsodium; --info shows the "
          "signer")


if __name__ == "__main__":
    main()
