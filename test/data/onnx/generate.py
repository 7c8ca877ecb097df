#!/usr/bin/env python3
# ===- generate.py - tiny ONNX MoE models for moec's importer tests ----------===#
#
# Builds small, seeded ONNX models with onnx.helper + numpy: MoE blocks in
# onnxruntime's contrib form (com.microsoft.MoE, QMoE with fp8, int8 and
# int4 weights and DeepSeek routing computed in the graph), in plain standard ops
# (softmax and sigmoid routers), a 2-layer decoder, a decoder layer on
# [batch, seq] inputs with com.microsoft.RotaryEmbedding, two models of
# standard ops that no pattern raises (imported op by op), and a model of
# unsupported ops. Beside each model it saves the outputs on a fixed random input (*.npz).
#
# ===-------------------------------------------------------------------------===#
"""Regenerates the ONNX test models under test/data/onnx/.

Usage (from the repository root, with the project's .venv):
    .venv/bin/python test/data/onnx/generate.py

Reference outputs come from onnxruntime on the CPU. Every MoE layer is also
checked against `moe_reference`, an independent numpy version of `moe.moe`
(DESIGN.md §3) with the routing the importer is expected to produce. The one
model without an onnxruntime reference is the fp8 QMoE: onnxruntime's CPU
build has no fp8 QMoE kernel, so its saved output is `moe_reference` on the
dequantized fp8 weights (the same function matched onnxruntime on the int8
QMoE model, which has the same graph).
"""

import os
import sys

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 21
IR_VERSION = 10
MAX_BYTES = 1 << 20
NEG_INF = float("-inf")


class Graph:
    """Accumulates nodes, initializers and value_info with unique names."""

    def __init__(self, name):
        self.name = name
        self.nodes = []
        self.inits = []
        self.inputs = []
        self.outputs = []
        self.value_info = []
        self.counter = 0
        # Weights of each MoE layer, for the moe-semantics check.
        self.layers = {}

    def fresh(self, hint):
        self.counter += 1
        return f"{hint}_{self.counter}"

    def init(self, name, array):
        if array.dtype == ml_dtypes.float8_e4m3fn:
            tensor = helper.make_tensor(name, TP.FLOAT8E4M3FN, array.shape,
                                        array.view(np.uint8).tobytes(), raw=True)
        else:
            tensor = numpy_helper.from_array(np.array(array, order="C"), name)
        self.inits.append(tensor)
        return name

    def const(self, values, dtype=np.int64, hint="c"):
        return self.init(self.fresh(hint), np.array(values, dtype=dtype))

    def node(self, op, inputs, outputs=1, domain="", name=None, **attrs):
        name = name or self.fresh(op.lower())
        if isinstance(outputs, int):
            outputs = [f"{name}_out{i}" if outputs > 1 else f"{name}_out"
                       for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name,
                                           domain=domain, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def annotate(self, value, dtype, shape):
        """Records the type of a contrib op's output (onnx's shape inference
        does not know com.microsoft ops)."""
        self.value_info.append(helper.make_tensor_value_info(value, dtype, shape))

    def model(self, extra_domains=()):
        graph = helper.make_graph(self.nodes, self.name, self.inputs,
                                  self.outputs, self.inits,
                                  value_info=self.value_info)
        opsets = [helper.make_opsetid("", OPSET)]
        opsets += [helper.make_opsetid(d, 1) for d in extra_domains]
        model = helper.make_model(graph, opset_imports=opsets,
                                  producer_name="moec-test-generator")
        model.ir_version = IR_VERSION
        # Fill value_info for every intermediate, as exporters do.
        return onnx.shape_inference.infer_shapes(model, strict_mode=False)


# ===----------------------------------------------------------------------===#
# Building blocks
# ===----------------------------------------------------------------------===#


def silu(g, a):
    return g.node("Mul", [a, g.node("Sigmoid", [a])])


def swiglu_mlp(g, x, w1, w3, w2, prefix):
    """`w2 · (silu(w1 · x) ⊙ (w3 · x))` with MatMul-layout ([in, out]) weights."""
    gate = g.node("MatMul", [x, w1], name=f"{prefix}.gate")
    up = g.node("MatMul", [x, w3], name=f"{prefix}.up")
    act = g.node("Mul", [silu(g, gate), up], name=f"{prefix}.act")
    return g.node("MatMul", [act, w2], name=f"{prefix}.down")


def rms_norm_decomposed(g, x, weight, eps, prefix):
    """HF's RMSNorm as torch exports it: Pow, ReduceMean, Add, Sqrt, Div, Mul."""
    sq = g.node("Pow", [x, g.const(2.0, np.float32)], name=f"{prefix}.pow")
    mean = g.node("ReduceMean", [sq, g.const([-1])], keepdims=1,
                  name=f"{prefix}.mean")
    var = g.node("Add", [mean, g.const(eps, np.float32)], name=f"{prefix}.add")
    rms = g.node("Sqrt", [var], name=f"{prefix}.sqrt")
    normed = g.node("Div", [x, rms], name=f"{prefix}.div")
    return g.node("Mul", [normed, weight], name=f"{prefix}.scale")


def interleave(gate, up):
    """onnxruntime's fused SwiGLU fc1: rows [g0, u0, g1, u1, ...]."""
    e, i, h = gate.shape
    return np.stack([gate, up], axis=2).reshape(e, 2 * i, h)


def rope_tables(max_pos, dim, theta):
    inv_freq = theta ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    freqs = np.outer(np.arange(max_pos, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


def rope(g, x, cos_u, sin_u, dim, prefix):
    """Rotate-half RoPE on [T, heads, D] as torch exports it."""
    half = dim // 2
    x1 = g.node("Slice", [x, g.const([0]), g.const([half]), g.const([2])],
                name=f"{prefix}.x1")
    x2 = g.node("Slice", [x, g.const([half]), g.const([dim]), g.const([2])],
                name=f"{prefix}.x2")
    rot = g.node("Concat", [g.node("Neg", [x2]), x1], axis=-1,
                 name=f"{prefix}.rot")
    return g.node("Add", [g.node("Mul", [x, cos_u]),
                          g.node("Mul", [rot, sin_u])], name=f"{prefix}.rope")


def repeat_kv(g, t, rep, final_shape):
    """GQA: [Hkv, a, b] -> [Hkv * rep, a, b] (Unsqueeze, Expand, Reshape)."""
    if rep == 1:
        return t
    u = g.node("Unsqueeze", [t, g.const([1])])
    e = g.node("Expand", [u, g.const([1, rep, 1, 1])])
    return g.node("Reshape", [e, g.const(final_shape)])


def attention(g, x, rng, p, hidden, heads, kv_heads, dim, cos_u, sin_u, mask):
    """Causal GQA self-attention over the tokens of one sequence."""
    def weight(name, cols):
        return g.init(f"{p}.{name}.weight",
                      (rng.standard_normal((hidden, cols)) * hidden ** -0.5)
                      .astype(np.float32))
    q = g.node("MatMul", [x, weight("q_proj", heads * dim)], name=f"{p}.q_proj")
    k = g.node("MatMul", [x, weight("k_proj", kv_heads * dim)], name=f"{p}.k_proj")
    v = g.node("MatMul", [x, weight("v_proj", kv_heads * dim)], name=f"{p}.v_proj")
    q = g.node("Reshape", [q, g.const([0, heads, dim])], name=f"{p}.q_heads")
    k = g.node("Reshape", [k, g.const([0, kv_heads, dim])], name=f"{p}.k_heads")
    v = g.node("Reshape", [v, g.const([0, kv_heads, dim])], name=f"{p}.v_heads")
    q = rope(g, q, cos_u, sin_u, dim, f"{p}.q")
    k = rope(g, k, cos_u, sin_u, dim, f"{p}.k")
    qt = g.node("Transpose", [q], perm=[1, 0, 2], name=f"{p}.qt")
    kt = g.node("Transpose", [k], perm=[1, 2, 0], name=f"{p}.kt")
    vt = g.node("Transpose", [v], perm=[1, 0, 2], name=f"{p}.vt")
    rep = heads // kv_heads
    kt = repeat_kv(g, kt, rep, [heads, dim, -1])
    vt = repeat_kv(g, vt, rep, [heads, -1, dim])
    scores = g.node("MatMul", [qt, kt], name=f"{p}.qk")
    scores = g.node("Mul", [scores, g.const(dim ** -0.5, np.float32)],
                    name=f"{p}.scale")
    scores = g.node("Add", [scores, mask], name=f"{p}.mask")
    probs = g.node("Softmax", [scores], axis=-1, name=f"{p}.softmax")
    out = g.node("MatMul", [probs, vt], name=f"{p}.pv")
    out = g.node("Transpose", [out], perm=[1, 0, 2], name=f"{p}.out_t")
    out = g.node("Reshape", [out, g.const([0, heads * dim])], name=f"{p}.merge")
    return g.node("MatMul", [out, weight("o_proj", hidden)], name=f"{p}.o_proj")


def causal_mask(g, ids):
    """[T, T] with -inf above the diagonal: Shape, Concat, ConstantOfShape,
    Trilu."""
    t = g.node("Shape", [ids], name="mask.len")
    tt = g.node("Concat", [t, t], axis=0, name="mask.shape")
    full = g.node("ConstantOfShape", [tt], name="mask.fill",
                  value=helper.make_tensor("v", TP.FLOAT, [1], [NEG_INF]))
    return g.node("Trilu", [full, g.const(1)], upper=1, name="mask.triu")


def router_logits(g, x, rng, p, hidden, experts):
    wg = rng.standard_normal((hidden, experts)).astype(np.float32)
    g.layers.setdefault(p, {})["gate"] = wg.T
    return g.node("MatMul", [x, g.init(f"{p}.gate.weight", wg)],
                  name=f"{p}.router")


def expert_weights(rng, experts, hidden, inter):
    s1, s2 = hidden ** -0.5, inter ** -0.5
    w1 = (rng.standard_normal((experts, inter, hidden)) * s1).astype(np.float32)
    w3 = (rng.standard_normal((experts, inter, hidden)) * s1).astype(np.float32)
    w2 = (rng.standard_normal((experts, hidden, inter)) * s2).astype(np.float32)
    return w1, w3, w2


def contrib_moe(g, x, rng, p, hidden, inter, experts, k):
    """com.microsoft.MoE: softmax top-k, renormalised, interleaved SwiGLU."""
    logits = router_logits(g, x, rng, p, hidden, experts)
    w1, w3, w2 = expert_weights(rng, experts, hidden, inter)
    g.layers[p].update(experts=(w1, w3, w2), scoring="softmax", k=k,
                       norm=True)
    out = g.node("MoE", [x, logits, g.init(f"{p}.fc1", interleave(w1, w3)), "",
                         g.init(f"{p}.fc2", w2)],
                 domain="com.microsoft", name=f"{p}.moe", k=k,
                 activation_type="swiglu", swiglu_fusion=1,
                 normalize_routing_weights=1)
    g.annotate(out, TP.FLOAT, ["T", hidden])
    return out


def standard_moe(g, x, rng, p, hidden, inter, experts, k, scoring, renorm,
                 bias=False, scale=None, mask_form="scatter",
                 pick_form="slice"):
    """A whole MoE layer in standard ops: every expert runs on every token and
    is weighted by a dense [T, E] routing matrix."""
    logits = router_logits(g, x, rng, p, hidden, experts)
    scores = g.node("Softmax" if scoring == "softmax" else "Sigmoid", [logits],
                    name=f"{p}.scores", **({"axis": -1}
                                           if scoring == "softmax" else {}))
    sel = scores
    if bias:
        b = (rng.standard_normal(experts) * 0.5).astype(np.float32)
        g.layers[p]["bias"] = b
        sel = g.node("Add", [scores, g.init(f"{p}.gate.e_score_correction_bias",
                                            b)], name=f"{p}.biased")
    values, indices = g.node("TopK", [sel, g.const([k])], outputs=2, axis=-1,
                             name=f"{p}.topk")
    weights = values
    if bias:
        weights = g.node("GatherElements", [scores, indices], axis=1,
                         name=f"{p}.unbiased")
    if renorm:
        total = g.node("ReduceSum", [weights, g.const([-1])], keepdims=1,
                       name=f"{p}.sum")
        weights = g.node("Div", [weights, total], name=f"{p}.renorm")
    if scale is not None:
        weights = g.node("Mul", [weights, g.const(scale, np.float32)],
                         name=f"{p}.scaling")
    if mask_form == "scatter":
        zeros = g.node("ConstantOfShape", [g.node("Shape", [logits])],
                       name=f"{p}.zeros",
                       value=helper.make_tensor("v", TP.FLOAT, [1], [0.0]))
        dense = g.node("ScatterElements", [zeros, indices, weights], axis=1,
                       name=f"{p}.dense")
    else:
        onehot = g.node("OneHot", [indices, g.const([experts]),
                                   g.const([0.0, 1.0], np.float32)], axis=-1,
                        name=f"{p}.onehot")
        wexp = g.node("Unsqueeze", [weights, g.const([-1])])
        dense = g.node("ReduceSum", [g.node("Mul", [onehot, wexp]),
                                     g.const([1])], keepdims=0,
                       name=f"{p}.dense")
    w1, w3, w2 = expert_weights(rng, experts, hidden, inter)
    g.layers[p].update(experts=(w1, w3, w2), scoring=scoring, k=k, norm=renorm,
                       scale=scale or 1.0)
    total = None
    for e in range(experts):
        ep = f"{p}.experts.{e}"
        y = swiglu_mlp(g, x, g.init(f"{ep}.w1", w1[e].T.copy()),
                       g.init(f"{ep}.w3", w3[e].T.copy()),
                       g.init(f"{ep}.w2", w2[e].T.copy()), ep)
        if pick_form == "slice":
            we = g.node("Slice", [dense, g.const([e]), g.const([e + 1]),
                                  g.const([1])], name=f"{ep}.weight")
        else:
            we = g.node("Unsqueeze", [g.node("Gather", [dense, g.const(e)],
                                             axis=1), g.const([1])],
                        name=f"{ep}.weight")
        y = g.node("Mul", [y, we], name=f"{ep}.weighted")
        total = y if total is None else g.node("Add", [total, y],
                                                name=f"{ep}.sum")
    return total


def deepseek_selection(g, x, rng, p, hidden, experts, n_group, topk_group):
    """DeepSeek-V3 noaux_tc routing in standard ops, as transformers writes it
    (with -inf instead of 0 for the masked groups): returns the selection
    scores (masked, biased) and the unbiased sigmoid scores."""
    logits = router_logits(g, x, rng, p, hidden, experts)
    scores = g.node("Sigmoid", [logits], name=f"{p}.scores")
    b = (rng.standard_normal(experts) * 0.3).astype(np.float32)
    g.layers[p].update(bias=b, scoring="sigmoid", n_group=n_group,
                       topk_group=topk_group)
    sel = g.node("Add", [scores, g.init(f"{p}.gate.e_score_correction_bias", b)],
                 name=f"{p}.biased")
    per = experts // n_group
    grouped = g.node("Reshape", [sel, g.const([0, n_group, per])],
                     name=f"{p}.grouped")
    top2 = g.node("TopK", [grouped, g.const([2])], outputs=2, axis=-1,
                  name=f"{p}.group_top2")[0]
    gscore = g.node("ReduceSum", [top2, g.const([-1])], keepdims=0,
                    name=f"{p}.group_scores")
    gidx = g.node("TopK", [gscore, g.const([topk_group])], outputs=2, axis=-1,
                  name=f"{p}.group_topk")[1]
    zeros = g.node("ConstantOfShape", [g.node("Shape", [gscore])],
                   value=helper.make_tensor("v", TP.FLOAT, [1], [0.0]))
    ones = g.node("ConstantOfShape", [g.node("Shape", [gidx])],
                  value=helper.make_tensor("v", TP.FLOAT, [1], [1.0]))
    gmask = g.node("ScatterElements", [zeros, gidx, ones], axis=1,
                   name=f"{p}.group_mask")
    smask = g.node("Expand", [g.node("Unsqueeze", [gmask, g.const([-1])]),
                              g.const([1, 1, per])])
    smask = g.node("Reshape", [smask, g.const([0, experts])],
                   name=f"{p}.score_mask")
    cond = g.node("Cast", [smask], to=TP.BOOL)
    masked = g.node("Where", [cond, sel, g.const(NEG_INF, np.float32)],
                    name=f"{p}.masked")
    return masked, scores


def quantize_fp8_blocks(w, block):
    """DeepSeek-style block FP8: one f32 scale per block x block tile."""
    e, n, k = w.shape
    bn, bk = -(-n // block), -(-k // block)
    scales = np.zeros((e, bn, bk), np.float32)
    q = np.zeros(w.shape, ml_dtypes.float8_e4m3fn)
    for i in range(bn):
        for j in range(bk):
            tile = w[:, i * block:(i + 1) * block, j * block:(j + 1) * block]
            s = np.maximum(np.abs(tile).max(axis=(1, 2)), 1e-12) / 448.0
            scales[:, i, j] = s
            q[:, i * block:(i + 1) * block, j * block:(j + 1) * block] = (
                tile / s[:, None, None]).astype(ml_dtypes.float8_e4m3fn)
    deq = q.astype(np.float32) * np.repeat(np.repeat(scales, block, 1),
                                           block, 2)[:, :n, :k]
    return q, scales, deq


def quantize_int8_rows(w):
    """onnxruntime's 8-bit QMoE: per-row scale, zero point 128."""
    s = (np.abs(w).max(-1) / 127.0).astype(np.float32)
    q = np.clip(np.round(w / s[..., None]) + 128, 0, 255).astype(np.uint8)
    return q, s, (q.astype(np.float32) - 128) * s[..., None]


def quantize_int4(w, block=0):
    """onnxruntime's 4-bit QMoE: codes 0..15 with zero point 8, two per byte
    along K (element 2j in the low nibble of byte j); one scale per row, or
    per `block` columns of a row."""
    e, n, k = w.shape
    b = block or k
    groups = w.reshape(e, n, k // b, b)
    s = np.maximum(np.abs(groups).max(-1), 1e-12) / 7.0
    q = np.clip(np.round(groups / s[..., None]) + 8, 0, 15).astype(np.uint8)
    deq = ((q.astype(np.float32) - 8) * s[..., None]).reshape(e, n, k)
    q = q.reshape(e, n, k)
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    scales = (s[..., 0] if not block else s).astype(np.float32)
    return packed, scales, deq.astype(np.float32)


def moe_reference(x, layer, experts=None):
    """`moe.moe` per DESIGN.md §3, independent of any graph: what the
    importer's `#moe.routing` claims the layer computes."""
    w1, w3, w2 = experts or layer["experts"]
    logits = x.astype(np.float64) @ layer["gate"].T.astype(np.float64)
    if layer["scoring"] == "softmax":
        scores = np.exp(logits - logits.max(1, keepdims=True))
        scores /= scores.sum(1, keepdims=True)
    else:
        scores = 1 / (1 + np.exp(-logits))
    sel = scores + layer.get("bias", 0.0)
    groups = layer.get("n_group", 1)
    if groups > 1:
        per = sel.shape[1] // groups
        grouped = np.sort(sel.reshape(len(sel), groups, per), axis=-1)
        gscore = grouped[..., -2:].sum(-1)
        keep = np.argsort(-gscore, axis=1, kind="stable")[:, :layer["topk_group"]]
        mask = np.full_like(sel, -np.inf)
        for t in range(len(sel)):
            for grp in keep[t]:
                mask[t, grp * per:(grp + 1) * per] = 0.0
        sel = sel + mask
    k = layer["k"]
    picks = np.argsort(-sel, axis=1, kind="stable")[:, :k]
    out = np.zeros(x.shape, np.float64)
    for t in range(len(x)):
        w = scores[t, picks[t]]
        if layer.get("norm"):
            w = w / (w.sum() + 1e-20)
        w = w * layer.get("scale", 1.0)
        for j, e in enumerate(picks[t]):
            gate, up = w1[e] @ x[t], w3[e] @ x[t]
            out[t] += w[j] * (w2[e] @ (gate / (1 + np.exp(-gate)) * up))
    if "shared" in layer:
        s1, s3, s2 = layer["shared"]
        gate, up = x @ s1.T, x @ s3.T
        out += (gate / (1 + np.exp(-gate)) * up) @ s2.T
    return out


def check_moe_semantics(name, x, layer, y, experts=None, tol=1e-4):
    err = np.abs(moe_reference(x, layer, experts) - y).max()
    assert err < tol, f"{name}: moe.moe semantics differ by {err}"


def qmoe_graph(rng, quant, hidden, inter, experts, k, n_group, topk_group,
               shared_inter, block):
    g = Graph(f"qmoe_{quant}_deepseek")
    g.inputs.append(helper.make_tensor_value_info("x", TP.FLOAT, ["T", hidden]))
    sel, scores = deepseek_selection(g, "x", rng, "mlp", hidden, experts,
                                     n_group, topk_group)
    w1, w3, w2 = expert_weights(rng, experts, hidden, inter)
    fc1 = interleave(w1, w3)
    if quant == "fp8":
        q1, s1, d1 = quantize_fp8_blocks(fc1, block)
        q2, s2, d2 = quantize_fp8_blocks(w2, block)
        attrs = dict(quant_type="fp8", block_size=block)
    elif quant == "int4":
        q1, s1, d1 = quantize_int4(fc1, block)
        q2, s2, d2 = quantize_int4(w2, block)
        attrs = dict(quant_type="int", block_size=block)
    else:
        q1, s1, d1 = quantize_int8_rows(fc1)
        q2, s2, d2 = quantize_int8_rows(w2)
        attrs = dict(quant_type="int")
    inputs = ["x", sel, g.init("mlp.fc1.weight", q1), g.init("mlp.fc1.scales", s1),
              "", g.init("mlp.fc2.weight", q2), g.init("mlp.fc2.scales", s2)]
    inputs += [""] * 7 + [scores]
    routed = g.node("QMoE", inputs, domain="com.microsoft", name="mlp.qmoe",
                    k=k, activation_type="swiglu", swiglu_fusion=1,
                    normalize_routing_weights=1,
                    expert_weight_bits=4 if quant == "int4" else 8, **attrs)
    g.annotate(routed, TP.FLOAT, ["T", hidden])
    deinterleaved = (d1[:, 0::2], d1[:, 1::2], d2)
    routed = g.node("Mul", [routed, g.const(2.5, np.float32)],
                    name="mlp.routed_scaling")
    sw1, sw3, sw2 = expert_weights(rng, 1, hidden, shared_inter)
    g.layers["mlp"].update(experts=(None, None, None), k=k, norm=True,
                           scale=2.5, shared=(sw1[0], sw3[0], sw2[0]))
    shared = swiglu_mlp(g, "x", g.init("mlp.shared.w1", sw1[0].T.copy()),
                        g.init("mlp.shared.w3", sw3[0].T.copy()),
                        g.init("mlp.shared.w2", sw2[0].T.copy()), "mlp.shared")
    g.node("Add", [routed, shared], outputs=["y"], name="mlp.out")
    g.outputs.append(helper.make_tensor_value_info("y", TP.FLOAT, ["T", hidden]))
    return g, deinterleaved, sel


# ===----------------------------------------------------------------------===#
# The models
# ===----------------------------------------------------------------------===#


def block_model(name, body, hidden, domains=()):
    g = Graph(name)
    g.inputs.append(helper.make_tensor_value_info("x", TP.FLOAT, ["T", hidden]))
    y = body(g, "x")
    g.nodes[-1].output[0] = "y"
    g.outputs.append(helper.make_tensor_value_info("y", TP.FLOAT, ["T", hidden]))
    for vi in g.value_info:
        if vi.name == y:
            vi.name = "y"
    return g.model(domains), g.layers


def decoder_model(rng):
    vocab, hidden, heads, kv_heads, dim, max_pos = 64, 32, 4, 2, 8, 16
    inter, experts, k, eps = 16, 4, 2, 1e-6
    g = Graph("decoder_tiny")
    g.inputs.append(helper.make_tensor_value_info("input_ids", TP.INT64, ["T"]))
    g.inputs.append(helper.make_tensor_value_info("position_ids", TP.INT64, ["T"]))
    embed = g.init("embed_tokens.weight",
                   rng.standard_normal((vocab, hidden)).astype(np.float32))
    h = g.node("Gather", [embed, "input_ids"], axis=0, name="embed")
    cos, sin = rope_tables(max_pos, dim, 10000.0)
    cos_u = g.node("Unsqueeze", [g.node("Gather", [g.init("rope.cos", cos),
                                                   "position_ids"], axis=0),
                                 g.const([1])], name="rope.cos_t")
    sin_u = g.node("Unsqueeze", [g.node("Gather", [g.init("rope.sin", sin),
                                                   "position_ids"], axis=0),
                                 g.const([1])], name="rope.sin_t")
    mask = causal_mask(g, "input_ids")

    def norm_weight(name):
        return g.init(name, (1.0 + 0.1 * rng.standard_normal(hidden))
                      .astype(np.float32))

    # Layer 0: decomposed RMSNorm, attention, SimplifiedLayerNormalization,
    # com.microsoft.MoE.
    n = rms_norm_decomposed(g, h, norm_weight("layers.0.input_layernorm.weight"),
                            eps, "layers.0.input_layernorm")
    a = attention(g, n, rng, "layers.0.self_attn", hidden, heads, kv_heads, dim,
                  cos_u, sin_u, mask)
    h = g.node("Add", [h, a], name="layers.0.attn_residual")
    n = g.node("SimplifiedLayerNormalization",
               [h, norm_weight("layers.0.post_attention_layernorm.weight")],
               axis=-1, epsilon=eps, name="layers.0.post_attention_layernorm")
    g.annotate(n, TP.FLOAT, ["T", hidden])
    m = contrib_moe(g, n, rng, "layers.0.mlp", hidden, inter, experts, k)
    # Layer 1: SkipSimplifiedLayerNormalization adds the MoE output to the
    # residual stream and normalises; attention; decomposed RMSNorm;
    # standard-op MoE.
    n, _, _, h = g.node("SkipSimplifiedLayerNormalization",
                        [h, m, norm_weight("layers.1.input_layernorm.weight")],
                        outputs=["layers.1.norm", "", "", "layers.1.residual"],
                        domain="com.microsoft", epsilon=eps,
                        name="layers.1.input_layernorm")
    g.annotate(n, TP.FLOAT, ["T", hidden])
    g.annotate(h, TP.FLOAT, ["T", hidden])
    a = attention(g, n, rng, "layers.1.self_attn", hidden, heads, kv_heads, dim,
                  cos_u, sin_u, mask)
    h = g.node("Add", [h, a], name="layers.1.attn_residual")
    n = rms_norm_decomposed(
        g, h, norm_weight("layers.1.post_attention_layernorm.weight"), eps,
        "layers.1.post_attention_layernorm")
    m = standard_moe(g, n, rng, "layers.1.mlp", hidden, inter, experts, k,
                     "softmax", renorm=True)
    h = g.node("Add", [h, m], name="layers.1.mlp_residual")
    n = g.node("SimplifiedLayerNormalization", [h, norm_weight("norm.weight")],
               axis=-1, epsilon=eps, name="norm")
    g.annotate(n, TP.FLOAT, ["T", hidden])
    lm_head = g.init("lm_head.weight", (rng.standard_normal((hidden, vocab)) *
                                        hidden ** -0.5).astype(np.float32))
    g.node("MatMul", [n, lm_head], outputs=["logits"], name="lm_head")
    g.outputs.append(helper.make_tensor_value_info("logits", TP.FLOAT,
                                                   ["T", vocab]))
    return g.model(["com.microsoft"]), g.layers


def rotary_caches(max_pos, dim, theta):
    """onnxruntime's RotaryEmbedding caches: [max_pos, dim / 2]."""
    inv_freq = theta ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    freqs = np.outer(np.arange(max_pos, dtype=np.float64), inv_freq)
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


def batched_decoder_model(rng):
    """One decoder layer on [batch, seq] inputs as onnxruntime's exporters
    write it: com.microsoft.RotaryEmbedding on [batch, seq, hidden] (q:
    rotate-half over the whole head; k: interleaved, partial over 4 of 8
    channels, another theta), 4-d attention with Transpose(0, 2, 1, 3), a
    mask sized by Shape(start = 1), com.microsoft.MoE on the merged
    [batch * seq, hidden] rows."""
    vocab, hidden, heads, kv_heads, dim, max_pos = 64, 32, 4, 2, 8, 32
    inter, experts, k, eps, k_rotary = 16, 4, 2, 1e-6, 4
    g = Graph("decoder_batched")
    g.inputs.append(helper.make_tensor_value_info("input_ids", TP.INT64,
                                                  ["batch", "seq"]))
    g.inputs.append(helper.make_tensor_value_info("position_ids", TP.INT64,
                                                  ["batch", "seq"]))
    embed = g.init("embed_tokens.weight",
                   rng.standard_normal((vocab, hidden)).astype(np.float32))
    h = g.node("Gather", [embed, "input_ids"], axis=0, name="embed")

    def norm_weight(name):
        return g.init(name, (1.0 + 0.1 * rng.standard_normal(hidden))
                      .astype(np.float32))

    def weight(name, cols):
        return g.init(name, (rng.standard_normal((hidden, cols)) *
                             hidden ** -0.5).astype(np.float32))

    n = g.node("SimplifiedLayerNormalization",
               [h, norm_weight("input_layernorm.weight")], axis=-1,
               epsilon=eps, name="input_layernorm")
    g.annotate(n, TP.FLOAT, ["batch", "seq", hidden])
    q = g.node("MatMul", [n, weight("q_proj.weight", heads * dim)],
               name="q_proj")
    kk = g.node("MatMul", [n, weight("k_proj.weight", kv_heads * dim)],
                name="k_proj")
    v = g.node("MatMul", [n, weight("v_proj.weight", kv_heads * dim)],
               name="v_proj")
    qc, qs = rotary_caches(max_pos, dim, 10000.0)
    q = g.node("RotaryEmbedding", [q, "position_ids",
                                   g.init("q_rotary.cos", qc),
                                   g.init("q_rotary.sin", qs)],
               domain="com.microsoft", name="q_rotary")
    g.annotate(q, TP.FLOAT, ["batch", "seq", heads * dim])
    kc, ks = rotary_caches(max_pos, k_rotary, 500000.0)
    kk = g.node("RotaryEmbedding", [kk, "position_ids",
                                    g.init("k_rotary.cos", kc),
                                    g.init("k_rotary.sin", ks)],
                domain="com.microsoft", name="k_rotary", interleaved=1,
                rotary_embedding_dim=k_rotary, num_heads=kv_heads)
    g.annotate(kk, TP.FLOAT, ["batch", "seq", kv_heads * dim])
    q = g.node("Reshape", [q, g.const([0, 0, heads, dim])], name="q_heads")
    kk = g.node("Reshape", [kk, g.const([0, 0, kv_heads, dim])], name="k_heads")
    v = g.node("Reshape", [v, g.const([0, 0, kv_heads, dim])], name="v_heads")
    qt = g.node("Transpose", [q], perm=[0, 2, 1, 3], name="qt")
    kt = g.node("Transpose", [kk], perm=[0, 2, 3, 1], name="kt")
    vt = g.node("Transpose", [v], perm=[0, 2, 1, 3], name="vt")
    rep = heads // kv_heads
    kt = g.node("Reshape", [g.node("Expand", [
        g.node("Unsqueeze", [kt, g.const([2])]), g.const([1, 1, rep, 1, 1])]),
        g.const([0, heads, dim, -1])])
    vt = g.node("Reshape", [g.node("Expand", [
        g.node("Unsqueeze", [vt, g.const([2])]), g.const([1, 1, rep, 1, 1])]),
        g.const([0, heads, -1, dim])])
    seq = g.node("Shape", ["input_ids"], start=1, name="mask.len")
    full = g.node("ConstantOfShape", [g.node("Concat", [seq, seq], axis=0)],
                  name="mask.fill",
                  value=helper.make_tensor("v", TP.FLOAT, [1], [NEG_INF]))
    mask = g.node("Trilu", [full, g.const(1)], upper=1, name="mask.triu")
    scores = g.node("MatMul", [qt, kt], name="qk")
    scores = g.node("Mul", [scores, g.const(dim ** -0.5, np.float32)],
                    name="scale")
    probs = g.node("Softmax", [g.node("Add", [scores, mask], name="mask")],
                   axis=-1, name="softmax")
    out = g.node("Transpose", [g.node("MatMul", [probs, vt], name="pv")],
                 perm=[0, 2, 1, 3], name="out_t")
    out = g.node("Reshape", [out, g.const([0, 0, heads * dim])], name="merge")
    a = g.node("MatMul", [out, weight("o_proj.weight", hidden)], name="o_proj")
    h = g.node("Add", [h, a], name="attn_residual")
    n = g.node("SimplifiedLayerNormalization",
               [h, norm_weight("post_attention_layernorm.weight")], axis=-1,
               epsilon=eps, name="post_attention_layernorm")
    g.annotate(n, TP.FLOAT, ["batch", "seq", hidden])
    rows = g.node("Reshape", [n, g.const([-1, hidden])], name="rows")
    m = contrib_moe(g, rows, rng, "mlp", hidden, inter, experts, k)
    h = g.node("Add", [h, m], name="mlp_residual")
    lm_head = g.init("lm_head.weight", (rng.standard_normal((hidden, vocab)) *
                                        hidden ** -0.5).astype(np.float32))
    g.node("MatMul", [h, lm_head], outputs=["logits"], name="lm_head")
    g.outputs.append(helper.make_tensor_value_info("logits", TP.FLOAT,
                                                   ["batch", "seq", vocab]))
    return g.model(["com.microsoft"]), g.layers


def std_ops_router_model(rng, hidden, experts, k, heads):
    """A standard-op MoE block written so that no raising pattern applies,
    for the op-by-op legalisation: a centred norm with `Max(var, eps)`,
    a Softmax -> TopK router whose dense routing matrix is built twice
    (ScatterElements of renormalised GatherElements weights, and a
    Where/Equal/Cast mask from ReduceMax of a OneHot), experts as one
    stacked MatMul mixed by ReduceSum, and per-token head mixing: an
    activation x activation MatMul, a Transpose round trip, Sigmoid, Neg,
    Exp and Pow."""
    g = Graph("std_ops_router")
    g.inputs.append(helper.make_tensor_value_info("x", TP.FLOAT, ["T", hidden]))
    f32 = np.float32
    mean = g.node("ReduceMean", ["x", g.const([-1])], keepdims=1, name="norm.mean")
    c = g.node("Sub", ["x", mean], name="norm.centre")
    var = g.node("ReduceMean", [g.node("Pow", [c, g.const(2.0, f32)]),
                                g.const([1])], keepdims=1, name="norm.var")
    den = g.node("Sqrt", [g.node("Max", [var, g.const(1e-5, f32)])])
    gamma = (1.0 + 0.1 * rng.standard_normal(hidden)).astype(f32)
    xn = g.node("Mul", [g.node("Div", [c, den]), g.init("norm.weight", gamma)],
                name="norm.scale")
    # Router: softmax top-k over the logits of the gate.
    wg = rng.standard_normal((hidden, experts)).astype(f32)
    logits = g.node("MatMul", [xn, g.init("mlp.gate.weight", wg)],
                    name="mlp.router")
    probs = g.node("Softmax", [logits], axis=-1, name="mlp.probs")
    _, idx = g.node("TopK", [probs, g.const([k])], outputs=2, axis=-1,
                    name="mlp.topk")
    w = g.node("GatherElements", [probs, idx], axis=1, name="mlp.picked")
    w = g.node("Div", [w, g.node("ReduceSum", [w, g.const([1])], keepdims=1)],
               name="mlp.renorm")
    zeros = g.node("Mul", [probs, g.const(0.0, f32)], name="mlp.zeros")
    dense_a = g.node("ScatterElements", [zeros, idx, w], axis=1,
                     name="mlp.dense_scatter")
    onehot = g.node("OneHot", [idx, g.const(experts),
                               g.const([0.0, 1.0], f32)], axis=-1,
                    name="mlp.onehot")
    chosen = g.node("ReduceMax", [onehot, g.const([1])], keepdims=0,
                    name="mlp.chosen")
    mask = g.node("Equal", [chosen, g.const(1.0, f32)], name="mlp.mask")
    kept = g.node("Where", [mask, probs, g.const(0.0, f32)], name="mlp.kept")
    dense_b = g.node("Div", [kept, g.node("ReduceSum", [kept, g.const([-1])],
                                          keepdims=1)], name="mlp.dense_where")
    maskf = g.node("Cast", [mask], to=TP.FLOAT, name="mlp.maskf")
    dense = g.node("Mul", [g.node("Add", [dense_a, dense_b]),
                           g.node("Mul", [maskf, g.const(0.5, f32)])],
                   name="mlp.dense")
    # Experts: one linear map each, all at once, mixed by the dense weights.
    we = (rng.standard_normal((hidden, experts * hidden)) * hidden ** -0.5)
    ys = g.node("Reshape", [g.node("MatMul", [xn, g.init("mlp.experts.w",
                                                          we.astype(f32))]),
                            g.const([0, experts, hidden])], name="mlp.ys")
    mixed = g.node("ReduceSum", [g.node("Mul", [ys, g.node("Unsqueeze", [
        dense, g.const([-1])])]), g.const([1])], keepdims=0, name="mlp.mix")
    # Per-token head mixing: [T, h, d] x [T, d, h], softmax, times [T, h, d].
    d = hidden // heads
    h = g.node("Reshape", [xn, g.const([0, heads, d])], name="heads.split")
    ht = g.node("Transpose", [h], perm=[0, 2, 1], name="heads.t")
    back = g.node("Transpose", [ht], perm=[0, 2, 1], name="heads.back")
    gram = g.node("MatMul", [back, ht], name="heads.gram")
    p = g.node("Softmax", [g.node("Div", [gram, g.const(d ** 0.5, f32)])],
               axis=-1, name="heads.softmax")
    o = g.node("Reshape", [g.node("MatMul", [p, h], name="heads.mix"),
                           g.const([0, hidden])], name="heads.merge")
    gate = g.node("Sigmoid", [g.node("Neg", [o])], name="heads.gate")
    damp = g.node("Exp", [g.node("Neg", [g.node("Mul", [
        mean, mean])])], name="norm.damp")
    y = g.node("Add", [mixed, g.node("Mul", [g.node("Mul", [o, gate]), damp])],
               outputs=["y"], name="y")
    g.outputs.append(helper.make_tensor_value_info(y, TP.FLOAT, ["T", hidden]))
    return g.model()


def std_ops_elementwise_model():
    """The generic ops' remaining kinds, each on [T, ...] rows: Abs, Log,
    Tanh, Relu, Min, float and integer comparisons, Cast float -> int64 ->
    float (truncation), ReduceMin, ReduceSum over two axes, a 4-d Transpose
    and MatMul. Every term is reduced or broadcast back to [T, 8] and
    summed."""
    g = Graph("std_ops_elementwise")
    g.inputs.append(helper.make_tensor_value_info("x", TP.FLOAT, ["T", 8]))
    f32 = np.float32
    a = g.node("Abs", ["x"])
    l = g.node("Log", [g.node("Add", [a, g.const(1.0, f32)])])
    t = g.node("Tanh", ["x"])
    r = g.node("Relu", ["x"])
    terms = [g.node("Min", [l, t])]
    neg = g.node("Less", ["x", g.const(0.0, f32)])
    terms.append(g.node("Where", [neg, r, l]))
    big = g.node("GreaterOrEqual", [t, g.const(0.1, f32)])
    small = g.node("LessOrEqual", [t, g.const(-0.2, f32)])
    terms.append(g.node("Sub", [g.node("Cast", [big], to=TP.FLOAT),
                                g.node("Cast", [small], to=TP.FLOAT)]))
    trunc = g.node("Cast", [g.node("Mul", ["x", g.const(3.0, f32)])],
                   to=TP.INT64)
    terms.append(g.node("Cast", [trunc], to=TP.FLOAT))
    _, idx = g.node("TopK", ["x", g.const([3])], outputs=2, axis=-1)
    low = g.node("Cast", [g.node("Less", [idx, g.const([4])])], to=TP.FLOAT)
    terms.append(g.node("ReduceSum", [low, g.const([1])], keepdims=1))
    x3 = g.node("Reshape", ["x", g.const([0, 2, 4])])
    terms.append(g.node("ReduceMin", [g.node("Reshape", [g.node(
        "ReduceMin", [x3, g.const([2])], keepdims=1), g.const([0, 2])]),
        g.const([1])], keepdims=1))
    x4 = g.node("Reshape", ["x", g.const([0, 2, 2, 2])])
    s4 = g.node("ReduceSum", [x4, g.const([1, 3])], keepdims=1)  # [T,1,2,1]
    spread = g.node("Mul", [g.node("Reshape", [s4, g.const([0, 2, 1])]),
                            g.const(np.arange(1, 5).reshape(1, 4), f32)])
    terms.append(g.node("Reshape", [spread, g.const([0, 8])]))
    tr = g.node("Transpose", [x4], perm=[0, 2, 3, 1])            # [T,2,2,2]
    mm = g.node("MatMul", [tr, x4])                               # [T,2,2,2]
    terms.append(g.node("Reshape", [mm, g.const([0, 8])]))
    total = terms[0]
    for term in terms[1:]:
        total = g.node("Add", [total, term])
    g.node("Identity", [total], outputs=["y"])
    g.outputs.append(helper.make_tensor_value_info("y", TP.FLOAT, ["T", 8]))
    return g.model()


def unsupported_model():
    """Ops with no moe equivalent, in three domains, to check that the
    importer lists all of them in one error."""
    g = Graph("unsupported")
    g.inputs.append(helper.make_tensor_value_info("x", TP.FLOAT, ["T", 8]))
    a = g.node("Erf", ["x"], name="erf_0")
    b = g.node("Softmax", [a], axis=-1, name="softmax_0")
    c = g.node("Gelu", [b], domain="com.microsoft", name="gelu_0")
    g.annotate(c, TP.FLOAT, ["T", 8])
    g.node("Add", [c, "x"], outputs=["y"], name="residual")
    g.outputs.append(helper.make_tensor_value_info("y", TP.FLOAT, ["T", 8]))
    return g.model(["com.microsoft"])


# ===----------------------------------------------------------------------===#
# Saving and checking
# ===----------------------------------------------------------------------===#


def run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()],
                    session.run(None, feeds)))


def save(name, model, feeds, outputs):
    # onnx's checker does not know onnxruntime's SimplifiedLayerNormalization,
    # which onnxruntime registers in the default domain.
    if not any(n.op_type == "SimplifiedLayerNormalization"
               for n in model.graph.node):
        onnx.checker.check_model(model)
    path = os.path.join(HERE, f"{name}.onnx")
    onnx.save(model, path)
    np.savez(os.path.join(HERE, f"{name}.npz"), **feeds, **outputs)
    for suffix in (".onnx", ".npz"):
        size = os.path.getsize(os.path.join(HERE, name + suffix))
        assert size <= MAX_BYTES, f"{name}{suffix} is {size} bytes"
    for out in outputs.values():
        assert np.all(np.isfinite(out)) and out.std() > 1e-3, name
    print(f"{name}: {os.path.getsize(path)} bytes, outputs "
          + ", ".join(f"{k}{list(v.shape)}" for k, v in outputs.items()))


def check_routing_varies(model, feeds, probe):
    """The routing must differ across tokens, or the test would not tell
    experts apart."""
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    probed.graph.output.append(helper.make_tensor_value_info(probe, TP.INT64,
                                                             None))
    picks = run(probed, feeds)[probe]
    assert len({tuple(sorted(r)) for r in picks.reshape(picks.shape[0], -1)}) > 1


def main():
    rng = np.random.default_rng(2024)
    tokens = 7
    hidden, inter, experts, k = 32, 16, 4, 2
    x = rng.standard_normal((tokens, hidden)).astype(np.float32)
    feeds = {"x": x}

    model, layers = block_model("moe_contrib", lambda g, x_: contrib_moe(
        g, x_, rng, "mlp", hidden, inter, experts, k), hidden, ["com.microsoft"])
    y = run(model, feeds)
    check_moe_semantics("moe_contrib", x, layers["mlp"], y["y"])
    save("moe_contrib", model, feeds, y)

    model, layers = block_model("moe_std_softmax", lambda g, x_: standard_moe(
        g, x_, rng, "mlp", hidden, inter, experts, k, "softmax", renorm=True),
        hidden)
    check_routing_varies(model, feeds, "mlp.topk_out1")
    y = run(model, feeds)
    check_moe_semantics("moe_std_softmax", x, layers["mlp"], y["y"])
    save("moe_std_softmax", model, feeds, y)

    model, layers = block_model("moe_std_sigmoid", lambda g, x_: standard_moe(
        g, x_, rng, "mlp", hidden, inter, experts, k, "sigmoid", renorm=True,
        bias=True, scale=2.5, mask_form="onehot", pick_form="gather"), hidden)
    check_routing_varies(model, feeds, "mlp.topk_out1")
    y = run(model, feeds)
    check_moe_semantics("moe_std_sigmoid", x, layers["mlp"], y["y"])
    save("moe_std_sigmoid", model, feeds, y)

    # QMoE with DeepSeek routing in the graph. The int8 model runs in
    # onnxruntime and checks the semantics; onnxruntime's CPU build has no
    # fp8 QMoE kernel, so the fp8 model's reference is moe_reference on its
    # dequantized weights (the same function that matched onnxruntime).
    shape = dict(hidden=hidden, inter=inter, experts=8, k=2,
                 n_group=4, topk_group=2, shared_inter=16, block=16)
    g8, deq8, sel = qmoe_graph(np.random.default_rng(7), "int8", **shape)
    model8 = g8.model(["com.microsoft"])
    probed = onnx.ModelProto()
    probed.CopyFrom(model8)
    probed.graph.output.append(helper.make_tensor_value_info(sel, TP.FLOAT, None))
    probe = run(probed, feeds)[sel]
    assert np.isinf(probe).any() and np.isfinite(probe).any(), "no group limit"
    y = run(model8, feeds)
    check_moe_semantics("qmoe_int8_deepseek", x, g8.layers["mlp"], y["y"], deq8)
    save("qmoe_int8_deepseek", model8, feeds, y)
    # 4-bit codes with one scale per 16 columns of a row; onnxruntime runs
    # it, and the same numpy reference on its dequantized weights agrees.
    g4, deq4, _ = qmoe_graph(np.random.default_rng(7), "int4", **shape)
    model4 = g4.model(["com.microsoft"])
    y4 = run(model4, feeds)
    check_moe_semantics("qmoe_int4_deepseek", x, g4.layers["mlp"], y4["y"], deq4)
    assert np.abs(y4["y"] - y["y"]).max() > 1e-3, "int4 equals int8?"
    save("qmoe_int4_deepseek", model4, feeds, y4)
    gf, deqf, _ = qmoe_graph(np.random.default_rng(7), "fp8", **shape)
    reference = moe_reference(x, gf.layers["mlp"], deqf).astype(np.float32)
    assert np.abs(reference - y["y"]).max() > 1e-5, "fp8 equals int8?"
    save("qmoe_fp8_deepseek", gf.model(["com.microsoft"]), feeds,
         {"y": reference})

    drng = np.random.default_rng(99)
    model, layers = decoder_model(drng)
    ids = drng.integers(0, 64, size=tokens).astype(np.int64)
    dfeeds = {"input_ids": ids, "position_ids": np.arange(tokens, dtype=np.int64)}
    save("decoder_tiny", model, dfeeds, run(model, dfeeds))

    brng = np.random.default_rng(31)
    model, _ = batched_decoder_model(brng)
    ids = brng.integers(0, 64, size=(1, tokens)).astype(np.int64)
    bfeeds = {"input_ids": ids,
              "position_ids": np.arange(5, 5 + tokens, dtype=np.int64)[None]}
    save("decoder_batched", model, bfeeds, run(model, bfeeds))

    model = std_ops_router_model(np.random.default_rng(5), hidden, 8, 2, 4)
    check_routing_varies(model, feeds, "mlp.topk_out1")
    save("std_ops_router", model, feeds, run(model, feeds))

    model = std_ops_elementwise_model()
    efeeds = {"x": np.random.default_rng(13).standard_normal(
        (tokens, 8)).astype(np.float32)}
    save("std_ops_elementwise", model, efeeds, run(model, efeeds))

    model = unsupported_model()
    ufeeds = {"x": rng.standard_normal((tokens, 8)).astype(np.float32)}
    save("unsupported", model, ufeeds, run(model, ufeeds))


if __name__ == "__main__":
    sys.exit(main())
