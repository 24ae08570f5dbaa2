"""The chain rule on hover (issue 24): for any cell of any activation or weight, ∂loss/∂x as the sum over the ops that
read it of upstream × local, with the pass's numbers (views/chainrule.py, each op's step beside its backward in
core/ops). Every op's step equals its own backward at that cell; every cell's steps add up to the gradient the backward
pass computed (Model.gradients), on nano-gpt, a tiny tied GPT-2 and a tiny Llama (grouped-query attention, rotary,
RMSNorm, a gated MLP, tied embeddings); the softmax's, a weight's and the logits' numbers are the textbook formulas; and
POST /api/chain serves it, computing the backward pass once per input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import llmviz
from conftest import local_client
from llmviz.core.backward import weight_gradient
from llmviz.core.config import PRESETS
from llmviz.core.ops import OPS
from llmviz.serve.limits import Limits
from llmviz.serve.schemas import ChainRule
from llmviz.serve.server import create_app
from llmviz.training.numpy_train import random_model
from llmviz.views.chainrule import chain_rule

TEXT = "CBABBCABBBC"


def tiny(preset: str, **changes):
    cfg = dataclasses.replace(PRESETS[preset], name=f"tiny-{preset}", n_layer=2, n_head=4, n_embd=32, vocab_size=50,
                              n_ctx=16, **changes)
    return random_model(cfg, None)


MODELS = {
    "nano-gpt": lambda: llmviz.load_model("nano-gpt"),
    "gpt2": lambda: tiny("gpt2"),  # tied W_U, biases, GELU, LayerNorm
    "llama": lambda: tiny("smollm-135m", n_kv_head=2, n_inner=48, head_dim=None),  # GQA, rotary, RMSNorm, SiLU gate
}


def make_case(name: str):
    m = MODELS[name]()
    ids = m.encode(TEXT) if m.tokenizer is not None else [1, 5, 7, 3, 9, 2, 4, 8, 5]
    return m, ids, m.run(ids, keep=m.graph.checkpoints()), m.gradients(ids)


@pytest.fixture(scope="module", params=list(MODELS))
def case(request):
    return make_case(request.param)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tied_case(request):
    """The models whose unembedding is the token embedding (nano-gpt's is its own)."""
    return make_case(request.param)


def cells_of(shape, rng, n=4):
    """A few cells of a tensor: its first, its last and random ones."""
    return {tuple(0 for _ in shape), tuple(s - 1 for s in shape)} | {tuple(int(rng.integers(s)) for s in shape)
                                                                      for _ in range(n)}


def rounding(value: float, ref, size: float) -> bool:
    """Whether a step's float64 sum and the backward's float32 number agree within float32 rounding of its terms."""
    return abs(value - float(ref)) <= 2e-6 * float(size) + 1e-7 * abs(float(ref)) + 1e-30


def gradient_of(m, g, name):
    return g.weights[name] if m.graph[name].kind == "weight" else g[name]


def test_every_ops_step_is_its_backward_at_that_cell(case):
    """Op.chain for each input of each op of the graph (its terms g × ∂out/∂x over the output cells that read the cell)
    adds up to that input's gradient from the op's own backward, at the cell; Op.chain_whole, to the sum over the
    steps it takes in (a softmax's max and sum, a norm's mean and scale)."""
    m, _, trace, g = case
    rng, seen = np.random.default_rng(0), set()
    for t in m.graph:
        if t.op is None or t.name not in g.activations:
            continue
        op, inputs = OPS[t.op], [trace[i] for i in t.inputs]
        back = op.backward(g[t.name], trace[t.name], *inputs, **t.attrs)
        for k, name in enumerate(t.inputs):
            if back[k] is None or m.graph[name].kind == "input":
                continue
            seen.add((t.op, k))
            for at in cells_of(np.shape(inputs[k]), rng):
                step = op.chain(k, at, g[t.name], trace[t.name], *inputs, **t.attrs)
                if (t.op, k) == ("ln_scale", 1):  # ∂σ/∂μ = −Σ (x − μ) / (C σ): 0 but for rounding, in both
                    x, mu = inputs[0][at].astype(np.float64), float(inputs[1][at])
                    noise = 1e-5 * abs(float(g[t.name][at])) * np.abs(x - mu).sum() / (len(x) * float(trace[t.name][at]))
                    assert abs(step.value) <= noise and abs(float(back[k][at])) <= noise
                    continue
                assert rounding(step.value, back[k][at], np.abs(step.g * step.d).sum()), \
                    f"{t.op} input {k} ({name}) at {at}: {step.value} against the backward's {back[k][at]}"
                assert step.value == pytest.approx(float((step.g * step.d).sum()), rel=1e-12, abs=1e-300)
        if op.chain_whole is not None:
            before = [q for q in m.graph if q.name in t.inputs[1:] and q.op is not None]
            seen.add((t.op, "whole"))
            for at in cells_of(np.shape(inputs[0]), rng):
                parts = back[0][at] + sum(
                    OPS[q.op].backward(g[q.name], trace[q.name], *[trace[i] for i in q.inputs], **q.attrs)[0][at]
                    for q in before)
                whole = op.chain_whole(at, g[t.name], trace[t.name], *inputs, **t.attrs)
                assert rounding(whole.value, parts, np.abs(whole.g * whole.d).sum()), f"{t.name} at {at}"
    kinds = {op for op, _ in seen}
    assert {"linear", "add", "softmax", "softmax_max", "softmax_sum_exp", "attn_scores", "weighted_sum", "embed"} <= kinds
    if m.config.arch == "llama":
        assert {"rotary", "rms_scale", "rms_normalize", "silu", "mul"} <= kinds
    else:
        assert {"ln_mean", "ln_scale", "ln_normalize", "ln_affine", "gelu"} <= kinds


def test_each_cells_steps_add_up_to_its_gradient(case):
    """For cells of every tensor of the graph with a gradient, the readers' parts add up to Model.gradients' number
    (within float32 rounding of the terms' sizes), and the gradient shown is that float32 number."""
    m, _, trace, g = case
    rng, readers = np.random.default_rng(1), set()
    for name in m.graph.names("activation", "aggregate", "weight"):
        if m.graph[name].kind != "weight" and name not in g.activations:
            continue
        ref = gradient_of(m, g, name)
        for at in cells_of(ref.shape, rng, n=3):
            r = chain_rule(trace, g, name, list(at))
            assert r["gradient"] == float(ref[at])
            assert r["total"] == pytest.approx(sum(p["value"] for p in r["parts"]), rel=1e-12, abs=1e-300)
            assert rounding(r["total"], r["gradient"], sum(p["size"] for p in r["parts"])), \
                f"{name} at {at}: the parts add to {r['total']}, the backward pass gives {r['gradient']}"
            readers |= {p["op"] or "loss" for p in r["parts"]}
            ChainRule.model_validate(r)
    assert "loss" in readers and "linear" in readers


def test_a_softmax_cell_is_p_times_g_minus_sum_p_g(case):
    """A score's step through the softmax: p · (g − Σ p·g), with g = ∂loss/∂p, computed here from the trace and the
    gradients; its terms are g_j · p_j (δ − p_i) over the keys the query sees."""
    _, ids, trace, g = case
    scores, pattern = "blocks.1.attn.hook_attn_scores", "blocks.1.attn.hook_pattern"
    h, i, j = 1, len(ids) - 2, 2
    p, gp = trace[pattern][h, i].astype(np.float64), g[pattern][h, i].astype(np.float64)
    expected = p[j] * (gp[j] - p @ gp)
    r = chain_rule(trace, g, scores, [h, i, j])
    [part] = r["parts"]
    assert part["reader"] == pattern and part["formula"] == "p · (g − Σ p·g)"
    assert part["via"] == ["blocks.1.attn.hook_pattern_max", "blocks.1.attn.hook_pattern_sum_exp"]
    assert part["value"] == pytest.approx(expected, rel=1e-9)
    rows = {x["label"]: x["value"] for x in part["rows"]}
    assert rows == pytest.approx({"p": p[j], "g": gp[j], "Σ p·g": p @ gp}, rel=1e-9)
    assert part["terms"]["count"] == i + 1  # the keys query i sees; the masked ones do not read the score
    for term in part["terms"]["shown"]:
        k = term["at"]["key_pos"]
        assert term["g"] == pytest.approx(gp[k]) and term["d"] == pytest.approx(p[k] * ((k == j) - p[j]))
    assert r["gradient"] == pytest.approx(expected, rel=1e-4, abs=1e-9)
    masked = chain_rule(trace, g, scores, [h, 1, 4])  # a future key: p = 0, no gradient
    assert masked["gradient"] == 0 and masked["parts"][0]["text"].endswith("p = 0 (a masked key), so no gradient")


def test_a_weights_terms_are_its_input_times_the_gradient_at_every_position(case):
    """W[i, j] of a projection is read at every position: Σ_p x[p, i] · g[p, j], x its input, g the gradient of what it
    computes, each position's term listed (the largest first) and the rest added up."""
    m, ids, trace, g = case
    w = "blocks.0.mlp.W_in"
    t = next(t for t in m.graph if w in t.inputs)
    x, gout = trace[t.inputs[0]].astype(np.float64), g[t.name].astype(np.float64)
    i, j = 3, 7
    products = x[:, i] * gout[:, j]
    r = chain_rule(trace, g, w, [i, j])
    [part] = r["parts"]
    assert part["formula"] == "Σ g · x" and part["terms"]["over"] == ["T"] and part["terms"]["count"] == len(ids)
    order = np.argsort(-np.abs(products), kind="stable")[:5]
    assert [s["at"]["pos"] for s in part["terms"]["shown"]] == order.tolist()
    assert [s["product"] for s in part["terms"]["shown"]] == pytest.approx(products[order].tolist(), rel=1e-12)
    assert part["terms"]["rest"] == pytest.approx(products.sum() - products[order].sum(), rel=1e-9, abs=1e-15)
    assert part["value"] == pytest.approx(products.sum(), rel=1e-12)
    assert r["gradient"] == float(g.weights[w][i, j])


def test_a_logits_gradient_is_p_minus_onehot_over_n(case):
    """The loss reads the logits: (p − onehot(target)) / N, the target named; the last position is not scored, and
    the probabilities (computed after the logits) have no gradient."""
    m, ids, trace, g = case
    z = trace["logits"].astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    n, pos = len(ids) - 1, 2
    for v in (ids[pos + 1], (ids[pos + 1] + 1) % m.config.vocab_size):
        r = chain_rule(trace, g, "logits", [pos, v])
        loss = r["parts"][0]
        assert loss["reader"] == "loss" and loss["formula"] == "(p − onehot(target)) / N"
        assert loss["value"] == pytest.approx((p[pos, v] - (v == ids[pos + 1])) / n, rel=1e-9)
        assert r["gradient"] == pytest.approx(loss["value"], rel=1e-5, abs=1e-9)
        assert f"(id {ids[pos + 1]})" in loss["upstream"]
        assert all(q["value"] == 0 for q in r["parts"][1:])  # (no other reader reaches the loss)
    last = chain_rule(trace, g, "logits", [len(ids) - 1, 0])
    assert last["gradient"] == 0 and "does not score" in last["parts"][0]["text"]
    assert f"position {len(ids) - 1} feeds only its own prediction" in last["note"]
    probs = chain_rule(trace, g, "probs", [0, 0])
    assert probs["gradient"] is None and probs["parts"] == [] and "does not depend on this tensor" in probs["note"]
    tokens = chain_rule(trace, g, "tokens", [0])
    assert tokens["gradient"] is None and "no gradient" in tokens["note"]


def test_a_tied_weight_sums_both_uses(tied_case):
    """A tied embedding (GPT-2's, SmolLM's W_U is W_E): the lookup's step and the unembedding's, added, equal the
    gradient of either name; a token the input does not hold gets only the unembedding's."""
    m, ids, trace, g = tied_case
    assert m.config.tied_unembed
    absent = next(v for v in range(m.config.vocab_size) if v not in ids)
    for v in (ids[0], absent):
        r = chain_rule(trace, g, "embed.W_E", [v, 5])
        readers = {p["reader"]: p for p in r["parts"]}
        assert set(readers) == {"hook_embed", "logits"} and readers["logits"]["tied"] == "unembed.W_U"
        assert r["gradient"] == float(g.weights["embed.W_E"][v, 5])
        assert r["total"] == pytest.approx(r["gradient"], rel=1e-4, abs=1e-9)
        u = chain_rule(trace, g, "unembed.W_U", [5, v])
        assert u["gradient"] == r["gradient"] and u["total"] == pytest.approx(r["total"], rel=1e-12)
    assert readers["hook_embed"]["value"] == 0 and "no position" in readers["hook_embed"]["text"]


def test_weight_gradient_is_the_backward_passs_number(case):
    """A weight's gradient from its readers' backward alone (the server's way when it keeps no weight gradients)
    equals Model.gradients' float32 numbers exactly."""
    m, _, trace, g = case
    for name in m.graph.names("weight"):
        np.testing.assert_array_equal(weight_gradient(m.graph, trace, g.activations, name), g.weights[name], err_msg=name)


# ---- POST /api/chain


@pytest.fixture(scope="module")
def nano_model():
    return llmviz.load_model("nano-gpt")


def test_the_api_serves_the_chain_rule_and_computes_the_backward_pass_once(nano_model, monkeypatch):
    calls = []
    real = nano_model.gradients
    monkeypatch.setattr(nano_model, "gradients", lambda *a, **k: calls.append(1) or real(*a, **k))
    client = local_client(create_app([nano_model]))
    g, trace = real(TEXT), nano_model.run(TEXT, keep=nano_model.graph.checkpoints())
    for tensor, index in [("blocks.0.mlp.hook_pre", [3, 17]), ("blocks.1.attn.W_Q", [2, 5, 7]), ("logits", [1, 2])]:
        r = client.post("/api/chain", json={"model": "nano-gpt", "text": TEXT, "tensor": tensor, "index": index})
        assert r.status_code == 200, r.text
        body = ChainRule.model_validate(r.json())
        assert body.model_dump() == ChainRule.model_validate(chain_rule(trace, g, tensor, index)).model_dump()
    assert len(calls) == 1


def test_a_server_that_keeps_no_weight_gradients_computes_a_weights_own(nano_model):
    client = local_client(create_app([nano_model], Limits(cache_mb=1)))  # (nano-gpt's gradients: about 0.8 MB)
    g = nano_model.gradients(TEXT)
    r = client.post("/api/chain", json={"model": "nano-gpt", "text": TEXT, "tensor": "blocks.1.mlp.W_out", "index": [9, 4]})
    assert r.status_code == 200, r.text
    assert r.json()["gradient"] == float(g.weights["blocks.1.mlp.W_out"][9, 4])


@pytest.mark.parametrize("body,message", [
    ({"text": TEXT, "tensor": "blocks.9.mlp.hook_pre", "index": [0, 0]}, "unknown tensor 'blocks.9.mlp.hook_pre'"),
    ({"text": TEXT, "tensor": "blocks.0.mlp.hook_pre", "index": [11, 0]}, "index [11, 0] is outside blocks.0.mlp.hook_pre"),
    ({"text": TEXT, "tensor": "blocks.0.mlp.hook_pre", "index": [1]}, "whose axes are pos (0 to 10), d_mlp (0 to 191)"),
    ({"text": "C", "tensor": "logits", "index": [0, 0]}, "a loss needs at least two tokens"),
])
def test_the_api_refuses_a_cell_it_cannot_explain_with_a_detail(nano_model, body, message):
    client = local_client(create_app([nano_model]))
    r = client.post("/api/chain", json={"model": "nano-gpt", **body})
    assert r.status_code == 422 and message in r.json()["detail"], r.text
