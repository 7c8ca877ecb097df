#!/usr/bin/env python3
"""FP8 ops, weight transforms and routing of moec-interp against numpy.

The HF models only reach `moe.dequantize`; this covers the rest of the FP8
surface of the interpreter on real checkpoint data (test/data/
deepseek_v3-fp8-tiny): `moe.quantize` (1x128 blocks, with and without pow2
scales), `moe.fp8_matmul` over one and two K blocks with partial edge blocks,
`moe.weight` with `#moe.quantize` and `#moe.transpose` (on bf16 and on stored
FP8 weights, whose scales transpose too), and the routed path router (k = E,
so that no selection is involved) -> dispatch -> fp8_grouped_matmul ->
combine. Every quantized input is exact (bf16 embeddings), so the numpy
reference (ml_dtypes casts) quantizes to the same codes and only the
summation order differs.

Routing (DESIGN.md §3) is checked on a hand-made checkpoint whose rows make
ties, NaN, +-Inf and all-equal logits: softmax and sigmoid, the correction
bias, group-limited selection (top2_sum and max), renormalisation, the
scaling factor and appended shared experts. Indices must be equal (ties to
the lower index, NaN ranked last, always distinct and in range), weights
equal to 1e-6. Exits non-zero on any failure.

Usage: check_interp_ops.py --interp path/to/moec-interp
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np

F32 = np.float32
TOKENS = [1, 17, 42, 99, 128, 7, 200, 3, 250, 64, 5]
REF = '#moe.tensor_ref<"model.safetensors", "{}">'
W_BLOCK = "#moe.block_scale<format = e4m3fn, block = [128, 128]>"
A_BLOCK = "#moe.block_scale<format = e4m3fn, block = [1, 128]>"
A_POW2 = "#moe.block_scale<format = e4m3fn, block = [1, 128], pow2 = true>"
SIG = "(%tokens: tensor<?xi32>, %positions: tensor<?xi32>)"
EMBED = (
    "    %table = moe.weight [{}] stored tensor<320x128xbf16> : "
    "tensor<320x128xbf16>\n"
    "    %x = moe.embed %table, %tokens : tensor<320x128xbf16>, tensor<?xi32>"
    " -> tensor<?x128xf32>\n"
).format(REF.format("model.embed_tokens.weight"))


def fp8_weight(name, shape, scale_shape, transforms=""):
    """A `moe.weight` of a stored FP8 tensor and its scales."""
    return (
        "moe.weight [{r}] stored tensor<{s}xf8E4M3FN> scales [{rs}] "
        "{{stored_scheme = {b}{t}}}".format(
            r=REF.format(name),
            s="x".join(map(str, shape)),
            rs=REF.format(name + "_scale_inv"),
            b=W_BLOCK,
            t=", transforms = [" + transforms + "]" if transforms else "",
        )
    )


MODULE = """module attributes {{moe.checkpoint = "{ckpt}"}} {{
  // x (K = 128) and [x, x[:, :64]] (K = 192, two K blocks, the second
  // partial) through fp8_matmul with stored FP8 weights.
  func.func @matmul{sig} -> tensor<?x320xf32> {{
{embed}    %xq, %xs = moe.quantize %x {{scheme = {a}}} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
    %gq, %gs = {gate} : tensor<192x128xf8E4M3FN>, tensor<2x1xf32>
    %g = moe.fp8_matmul %xq, %xs, %gq, %gs {{act_scheme = {a}, weight_scheme = {w}}} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<192x128xf8E4M3FN>, tensor<2x1xf32> -> tensor<?x192xf32>
    %head = moe.slice %x {{offset = 0 : i64}} : tensor<?x128xf32> -> tensor<?x64xf32>
    %x2 = moe.concat %x, %head : tensor<?x128xf32>, tensor<?x64xf32> -> tensor<?x192xf32>
    %x2q, %x2s = moe.quantize %x2 {{scheme = {p}}} : tensor<?x192xf32> -> tensor<?x192xf8E4M3FN>, tensor<?x2xf32>
    %dq, %ds = {down} : tensor<128x192xf8E4M3FN>, tensor<1x2xf32>
    %d = moe.fp8_matmul %x2q, %x2s, %dq, %ds {{act_scheme = {p}, weight_scheme = {w}}} : tensor<?x192xf8E4M3FN>, tensor<?x2xf32>, tensor<128x192xf8E4M3FN>, tensor<1x2xf32> -> tensor<?x128xf32>
    %r = moe.concat %g, %d : tensor<?x192xf32>, tensor<?x128xf32> -> tensor<?x320xf32>
    return %r : tensor<?x320xf32>
  }}
  // bf16 lm_head quantized while streaming (3 row blocks, the last
  // partial), and a stored FP8 weight transposed with its scales.
  func.func @weights{sig} -> tensor<512x128xf32> {{
    %q, %s = moe.weight [{head}] stored tensor<320x128xbf16> {{transforms = [#moe.quantize<{w}>]}} : tensor<320x128xf8E4M3FN>, tensor<3x1xf32>
    %a = moe.dequantize %q, %s {{scheme = {w}}} : tensor<320x128xf8E4M3FN>, tensor<3x1xf32> -> tensor<320x128xf32>
    %dq, %ds = {down_t} : tensor<192x128xf8E4M3FN>, tensor<2x1xf32>
    %d = moe.dequantize %dq, %ds {{scheme = {w}}} : tensor<192x128xf8E4M3FN>, tensor<2x1xf32> -> tensor<192x128xf32>
    %r = moe.concat %a, %d {{dim = 0 : i64}} : tensor<320x128xf32>, tensor<192x128xf32> -> tensor<512x128xf32>
    return %r : tensor<512x128xf32>
  }}
  // bf16 lm_head transposed, then quantized with pow2 scales.
  func.func @transposed{sig} -> tensor<128x320xf32> {{
    %q, %s = moe.weight [{head}] stored tensor<320x128xbf16> {{transforms = [#moe.transpose, #moe.quantize<{wp}>]}} : tensor<128x320xf8E4M3FN>, tensor<1x3xf32>
    %t = moe.dequantize %q, %s {{scheme = {wp}}} : tensor<128x320xf8E4M3FN>, tensor<1x3xf32> -> tensor<128x320xf32>
    return %t : tensor<128x320xf32>
  }}
  // Every token to all 16 experts (k = E, softmax, no renormalisation).
  func.func @grouped{sig} -> tensor<?x48xf32> {{
{embed}    %gate = moe.weight [{router}] stored tensor<16x128xbf16> : tensor<16x128xbf16>
    %w, %i = moe.router %x, %gate {{routing = #moe.routing<scoring = softmax, k = 16>}} : tensor<?x128xf32>, tensor<16x128xbf16> -> tensor<?x16xf32>, tensor<?x16xi32>
    %rows, %offsets, %pos = moe.dispatch %x, %i : tensor<?x128xf32>, tensor<?x16xi32> -> tensor<?x128xf32>, tensor<17xi32>, tensor<?xi32>
    %rq, %rs = moe.quantize %rows {{scheme = {a}}} : tensor<?x128xf32> -> tensor<?x128xf8E4M3FN>, tensor<?x1xf32>
    %eq, %es = moe.weight [{experts}] stored tensor<48x128xf8E4M3FN> scales [{expert_scales}] {{stored_scheme = {w}, transforms = [#moe.stack]}} : tensor<16x48x128xf8E4M3FN>, tensor<16x1x1xf32>
    %y = moe.fp8_grouped_matmul %rq, %rs, %offsets, %eq, %es {{act_scheme = {a}, weight_scheme = {w}}} : tensor<?x128xf8E4M3FN>, tensor<?x1xf32>, tensor<17xi32>, tensor<16x48x128xf8E4M3FN>, tensor<16x1x1xf32> -> tensor<?x48xf32>
    %r = moe.combine %y, %pos, %w : tensor<?x48xf32>, tensor<?xi32>, tensor<?x16xf32> -> tensor<?x48xf32>
    return %r : tensor<?x48xf32>
  }}
}}
"""


def read_safetensors(path):
    """name -> float32 array (F8_E4M3 decoded, BF16 widened)."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            values = bits.view(F32)
        elif info["dtype"] == "F8_E4M3":
            values = np.frombuffer(raw, ml_dtypes.float8_e4m3fn).astype(F32)
        elif info["dtype"] == "F32":
            values = np.frombuffer(raw, "<f4")
        else:
            continue
        out[name] = values.reshape(info["shape"])
    return out


def quantize(x, br, bc, pow2=False):
    """DESIGN.md §4 block quantization: decoded FP8 values and scales."""
    rows, cols = x.shape
    nr, nc = -(-rows // br), -(-cols // bc)
    q = np.zeros_like(x, dtype=F32)
    s = np.zeros((nr, nc), F32)
    for i in range(nr):
        for j in range(nc):
            block = x[i * br : (i + 1) * br, j * bc : (j + 1) * bc]
            scale = F32(max(F32(np.max(np.abs(block))), F32(1e-4)) / F32(448))
            if pow2:
                m, e = np.frexp(scale)
                scale = F32(np.ldexp(F32(1), e - 1 if m == 0.5 else e))
            s[i, j] = scale
            y = np.clip(block / scale, -448, 448).astype(ml_dtypes.float8_e4m3fn)
            q[i * br : (i + 1) * br, j * bc : (j + 1) * bc] = y.astype(F32)
    return q, s


def dequantize(q, s, br=128, bc=128):
    scale = np.repeat(np.repeat(s, br, axis=0), bc, axis=1)
    return (q * scale[: q.shape[0], : q.shape[1]]).astype(F32)


def fp8_matmul(xq, xs, wq, ws, bn=128, bk=128):
    """Per K block: FP8 products summed, then times both scales."""
    k = xq.shape[1]
    acc = np.zeros((xq.shape[0], wq.shape[0]), np.float64)
    for kb in range(-(-k // bk)):
        part = xq[:, kb * bk : (kb + 1) * bk].astype(np.float64) @ wq[
            :, kb * bk : (kb + 1) * bk
        ].T.astype(np.float64)
        wscale = np.repeat(ws[:, kb], bn)[: wq.shape[0]]
        acc += part * xs[:, kb : kb + 1] * wscale[None, :]
    return acc


def reference(name, t):
    x = t["model.embed_tokens.weight"][TOKENS]
    if name == "matmul":
        xq, xs = quantize(x, 1, 128)
        g = fp8_matmul(
            xq,
            xs,
            t["model.layers.0.mlp.gate_proj.weight"],
            t["model.layers.0.mlp.gate_proj.weight_scale_inv"],
        )
        x2q, x2s = quantize(np.concatenate([x, x[:, :64]], axis=1), 1, 128, True)
        d = fp8_matmul(
            x2q,
            x2s,
            t["model.layers.0.mlp.down_proj.weight"],
            t["model.layers.0.mlp.down_proj.weight_scale_inv"],
        )
        return np.concatenate([g, d], axis=1)
    if name == "weights":
        a = dequantize(*quantize(t["lm_head.weight"], 128, 128))
        d = dequantize(
            t["model.layers.0.mlp.down_proj.weight"],
            t["model.layers.0.mlp.down_proj.weight_scale_inv"],
        ).T
        return np.concatenate([a, d], axis=0)
    if name == "transposed":
        head_t = np.ascontiguousarray(t["lm_head.weight"].T)
        return dequantize(*quantize(head_t, 128, 128, True))
    # grouped: softmax over all experts, sum_e p_e * expert_e(x).
    logits = x.astype(np.float64) @ t["model.layers.1.mlp.gate.weight"].T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    xq, xs = quantize(x, 1, 128)
    out = np.zeros((len(TOKENS), 48))
    for e in range(16):
        prefix = "model.layers.1.mlp.experts.%d.gate_proj.weight" % e
        y = fp8_matmul(xq, xs, t[prefix], t[prefix + "_scale_inv"])
        out += p[:, e : e + 1] * y
    return out


# ===------------------------------------------------------------------------===#
# Routing edge cases
# ===------------------------------------------------------------------------===#

NAN, INF = float("nan"), float("inf")
# Token rows: plain with ties, all NaN, all zero (every logit ties), +Inf
# (logits +-Inf and Inf * 0 = NaN), and a row without ties.
ROUTER_X = np.array(
    [[1, 0], [NAN, 0], [0, 0], [INF, 0], [-2, 0.5]], dtype=F32
)
ROUTER_GATE = np.array(
    [[1, 0], [1, 0], [0.5, 0], [0.5, 0], [2, 0], [-1, 1], [0, 0], [2, 0]],
    dtype=F32,
)
ROUTER_BIAS = np.array([0, 0.1, 0, 0, -0.5, 0, 0.2, 0], dtype=F32)
# name -> (routing attribute, with bias, shared experts, parameters)
ROUTINGS = {
    "softmax": ("scoring = softmax, k = 3", False, 0, ("softmax", 3, 1, 1, None, False, 1.0)),
    "sigmoid_groups": (
        "scoring = sigmoid, k = 3, n_group = 4, topk_group = 2, "
        "group_score = top2_sum, norm_topk_prob = true, routed_scaling_factor = 2.5",
        True, 0, ("sigmoid", 3, 4, 2, "top2_sum", True, 2.5),
    ),
    "softmax_max": (
        "scoring = softmax, k = 2, n_group = 2, topk_group = 1, "
        "group_score = max, norm_topk_prob = true",
        False, 0, ("softmax", 2, 2, 1, "max", True, 1.0),
    ),
    "all_shared": ("scoring = sigmoid, k = 8", False, 2, ("sigmoid", 8, 1, 1, None, False, 1.0)),
}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def order(values):
    """Indices best first: higher first, NaN last, ties to the lower index."""
    return np.argsort(-values, kind="stable")


def route(x, gate, bias, scoring, k, n_group, topk_group, group_score, norm, rsf):
    """DESIGN.md §3, written from the text, in f32."""
    tokens, experts = x.shape[0], gate.shape[0]
    logits = np.zeros((tokens, experts), F32)
    for h in range(x.shape[1]):
        logits = logits + x[:, h : h + 1] * gate[None, :, h]
    weights = np.zeros((tokens, k), F32)
    indices = np.zeros((tokens, k), np.int64)
    for t in range(tokens):
        row = logits[t]
        if scoring == "softmax":
            top = F32(-INF)
            for value in row:  # a max that skips NaN, as a running compare
                top = value if top < value else top
            e = np.exp(row - top)
            total = F32(0)
            for value in e:
                total = F32(total + value)
            scores = e / total
        else:
            scores = F32(1) / (F32(1) + np.exp(-row))
        sel = scores + bias if bias is not None else scores.copy()
        if n_group > 1:
            size = experts // n_group
            group_scores = np.zeros(n_group, F32)
            for g in range(n_group):
                members = sel[g * size : (g + 1) * size]
                best = order(members)
                group_scores[g] = (
                    members[best[0]] + members[best[1]]
                    if group_score == "top2_sum"
                    else members[best[0]]
                )
            kept = order(group_scores)[:topk_group]
            for g in range(n_group):
                if g not in kept:
                    sel[g * size : (g + 1) * size] = -INF
        chosen = order(sel)[:k]
        w = scores[chosen]
        if norm:
            total = F32(0)
            for value in w:
                total = F32(total + value)
            w = w / (total + F32(1e-20))
        weights[t] = w * F32(rsf)
        indices[t] = chosen
    return weights, indices


def routing_module(ckpt):
    funcs = []
    for name, (attr, with_bias, shared, _) in ROUTINGS.items():
        k = int(attr.split("k = ")[1].split(",")[0]) + shared
        bias = " bias %b" if with_bias else ""
        bias_type = ", tensor<8xf32>" if with_bias else ""
        extra = ", shared_experts = %d : i64" % shared if shared else ""
        for result, index in (("w", 0), ("i", 1)):
            ret = ("%w", "tensor<?x%dxf32>" % k) if index == 0 else ("%i", "tensor<?x%dxi32>" % k)
            funcs.append(
                """  func.func @{r}_{n}{sig} -> {rt} {{
    %table = moe.weight [{e}] stored tensor<5x2xf32> : tensor<5x2xf32>
    %x = moe.embed %table, %tokens : tensor<5x2xf32>, tensor<?xi32> -> tensor<?x2xf32>
    %g = moe.weight [{g}] stored tensor<8x2xf32> : tensor<8x2xf32>
    %b = moe.weight [{bi}] stored tensor<8xf32> : tensor<8xf32>
    %w, %i = moe.router %x, %g{bias} {{routing = #moe.routing<{a}>{extra}}} : tensor<?x2xf32>, tensor<8x2xf32>{bt} -> tensor<?x{k}xf32>, tensor<?x{k}xi32>
    return {rv} : {rt}
  }}
""".format(r=result, n=name, sig=SIG, rt=ret[1], rv=ret[0], k=k,
           e=REF.format("embed"), g=REF.format("gate"), bi=REF.format("bias"),
           bias=bias, bt=bias_type, a=attr, extra=extra))
    return 'module attributes {moe.checkpoint = "%s"} {\n%s}\n' % (ckpt, "".join(funcs))


def check_routing(interp, tmp):
    ckpt = os.path.join(tmp, "router-ckpt")
    os.makedirs(ckpt)
    write_safetensors(os.path.join(ckpt, "model.safetensors"),
                      {"embed": ROUTER_X, "gate": ROUTER_GATE, "bias": ROUTER_BIAS})
    path = os.path.join(tmp, "router.mlir")
    with open(path, "w") as f:
        f.write(routing_module(ckpt))
    failures = []
    for name, (_, with_bias, shared, params) in ROUTINGS.items():
        got = {}
        for result in ("w", "i"):
            out = os.path.join(tmp, "%s_%s.npy" % (result, name))
            proc = subprocess.run(
                [interp, path, "--function", "%s_%s" % (result, name),
                 "--tokens", "0,1,2,3,4", "--dump-logits", out],
                capture_output=True, text=True)
            if proc.returncode != 0:
                print("router %s: moec-interp failed\n%s" % (name, proc.stderr))
                break
            got[result] = np.load(out)
        if len(got) != 2:
            failures.append("router " + name)
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            w, i = route(
                ROUTER_X, ROUTER_GATE, ROUTER_BIAS if with_bias else None, *params
            )
        experts = ROUTER_GATE.shape[0]
        if shared:
            tokens = ROUTER_X.shape[0]
            w = np.concatenate([w, np.ones((tokens, shared), F32)], axis=1)
            extra = np.arange(experts, experts + shared)
            i = np.concatenate([i, np.tile(extra, (tokens, 1))], axis=1)
        valid = all(
            len(set(row)) == len(row) and all(0 <= e < experts + shared for e in row)
            for row in got["i"].tolist()
        )
        ok = (
            valid
            and got["i"].shape == i.shape
            and np.array_equal(got["i"], i)
            and np.allclose(got["w"], w, rtol=1e-6, atol=0, equal_nan=True)
        )
        print("router %-15s indices %s  %s" % (name, got["i"].tolist(), "ok" if ok else "FAIL"))
        if not ok:
            print("  expected indices %s\n  weights %s\n  expected %s"
                  % (i.tolist(), got["w"].tolist(), w.tolist()))
            failures.append("router " + name)
    return failures


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interp", required=True, help="moec-interp binary")
    parser.add_argument(
        "--data",
        default=os.path.join(os.path.dirname(__file__), "..", "data"),
        help="folder holding deepseek_v3-fp8-tiny",
    )
    parser.add_argument("--tol", type=float, default=1e-5, help="max rel-L2")
    args = parser.parse_args()

    ckpt = os.path.abspath(os.path.join(args.data, "deepseek_v3-fp8-tiny"))
    tensors = read_safetensors(os.path.join(ckpt, "model.safetensors"))
    experts = ["model.layers.1.mlp.experts.%d.gate_proj.weight" % e for e in range(16)]
    module = MODULE.format(
        ckpt=ckpt,
        sig=SIG,
        embed=EMBED,
        a=A_BLOCK,
        p=A_POW2,
        w=W_BLOCK,
        wp=W_BLOCK.replace(">", ", pow2 = true>"),
        gate=fp8_weight("model.layers.0.mlp.gate_proj.weight", [192, 128], [2, 1]),
        down=fp8_weight("model.layers.0.mlp.down_proj.weight", [128, 192], [1, 2]),
        down_t=fp8_weight(
            "model.layers.0.mlp.down_proj.weight", [128, 192], [1, 2], "#moe.transpose"
        ),
        head=REF.format("lm_head.weight"),
        router=REF.format("model.layers.1.mlp.gate.weight"),
        experts=", ".join(REF.format(n) for n in experts),
        expert_scales=", ".join(REF.format(n + "_scale_inv") for n in experts),
    )
    failures = []
    with tempfile.TemporaryDirectory(prefix="moec-interp-ops-") as tmp:
        path = os.path.join(tmp, "fp8_ops.mlir")
        with open(path, "w") as f:
            f.write(module)
        for name in ["matmul", "weights", "transposed", "grouped"]:
            out = os.path.join(tmp, name + ".npy")
            proc = subprocess.run(
                [args.interp, path, "--function", name, "--dump-logits", out,
                 "--tokens", ",".join(map(str, TOKENS))],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print("@%s: moec-interp failed\n%s" % (name, proc.stderr))
                failures.append(name)
                continue
            got = np.load(out).astype(np.float64)
            want = reference(name, tensors)
            ok = got.shape == want.shape
            rel = float("inf")
            if ok:
                rel = np.linalg.norm(got - want) / np.linalg.norm(want)
                ok = bool(np.all(np.isfinite(got))) and rel <= args.tol
            print(
                "@%-8s shape %s  rel-L2 %.3e  %s"
                % (name, got.shape, rel, "ok" if ok else "FAIL")
            )
            if not ok:
                failures.append(name)
    with tempfile.TemporaryDirectory(prefix="moec-router-") as tmp:
        failures += check_routing(args.interp, tmp)
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
