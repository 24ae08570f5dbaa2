"""The backward pass without torch: on nano-gpt (and tiny random tied models of each architecture), `model.gradients`
gives −mean log p(next token) of the forward pass's own probabilities, one float32 gradient for each of the model's
weights in its shape, and gradients that central differences of the loss confirm, for weights (one entry nudged)
and for activations (one cell set through an edit, everything downstream recomputed). The comparison with torch's
autograd is test_gradients_hf.py."""

from __future__ import annotations

import numpy as np
import pytest

import llmviz
from llmviz import Graph, ModelConfig
from llmviz.core.errors import LlmvizError
from llmviz.core.model import Model

TEXT = "CBABBCABBBC"  # nano-gpt's whole context: six letters, then five of the sorted answer
H = 1e-3  # the nudge; the loss's float32 noise makes a central difference good to about 2e-4 at this step
REL, ABS = 2e-2, 2e-4


@pytest.fixture(scope="module")
def model():
    """nano-gpt of its own: the finite differences nudge its weights (and put them back)."""
    return llmviz.load_model("nano-gpt")


@pytest.fixture(scope="module")
def ids(model):
    return model.encode(TEXT)


@pytest.fixture(scope="module")
def grads(model, ids):
    return model.gradients(ids)


def cross_entropy(logits: np.ndarray, targets) -> float:
    """Mean −log softmax(logits[i])[targets[i]] over the positions that have a target, in float64."""
    z = logits[: len(targets)].astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-logp[np.arange(len(targets)), targets].mean())


def loss_of(model, ids, edits=()) -> float:
    return cross_entropy(model.run(ids, only=["logits"], edits=edits)["logits"], ids[1:])


def largest(g: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, ...]]:
    """The k cells of largest |g| (among the allowed ones): where a central difference is clearly above its noise."""
    a = np.abs(g) if allowed is None else np.where(allowed, np.abs(g), -1)
    return [tuple(int(i) for i in np.unravel_index(j, g.shape)) for j in np.argsort(a, axis=None)[::-1][:k]]


def weight_difference(model, ids, name: str, idx: tuple[int, ...]) -> float:
    """(loss(w + h) − loss(w − h)) / (the nudge as stored in float32), the weight put back after."""
    w = model.weights[name]
    v = w[idx].copy()
    try:
        w[idx] = v + np.float32(H)
        up, hi = loss_of(model, ids), float(w[idx])
        w[idx] = v - np.float32(H)
        down, lo = loss_of(model, ids), float(w[idx])
    finally:
        w[idx] = v
    return (up - down) / (hi - lo)


def activation_difference(model, ids, trace, name: str, idx: tuple[int, ...]) -> float:
    """The same with one cell of an activation set to its value ± h by an edit."""
    axes = model.graph[name].axes
    v = np.float32(trace[name][idx])
    hi, lo = v + np.float32(H), v - np.float32(H)

    def at(x):
        return loss_of(model, ids, [{"tensor": name, "where": dict(zip(axes, idx)), "set": {"value": float(x)}}])

    return (at(hi) - at(lo)) / (float(hi) - float(lo))


def off(analytic: float, numeric: float) -> bool:
    return not abs(analytic - numeric) <= REL * abs(analytic) + ABS


# ---- What it returns ----

def test_one_float32_gradient_for_each_weight_in_its_shape(model, grads):
    assert set(grads.weights) == set(model.weights)
    for name, w in model.weights.items():
        g = grads.weights[name]
        assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == np.float32, name
        assert np.isfinite(g).all(), name
    assert all(np.abs(grads.weights[n]).max() > 0 for n in ("embed.W_E", "blocks.0.attn.W_Q", "unembed.W_U"))


def test_the_loss_is_minus_the_mean_log_probability_of_each_next_token(model, ids, grads):
    probs = model.run(ids)["probs"].astype(np.float64)
    want = -np.log(probs[np.arange(len(ids) - 1), ids[1:]]).mean()
    assert isinstance(grads.loss, float)
    assert grads.loss == pytest.approx(want, rel=1e-5)
    assert model.gradients(TEXT).loss == grads.loss  # text or its ids


def test_targets_are_what_each_position_is_scored_on(model, ids):
    targets = [0, 2, 1, 1, 0, 2, 2, 0, 1, 0]  # T − 1 of them: position i predicts targets[i]
    probs = model.run(ids)["probs"].astype(np.float64)
    g = model.gradients(ids, targets=targets)
    assert g.loss == pytest.approx(-np.log(probs[np.arange(len(targets)), targets]).mean(), rel=1e-5)
    assert model.gradients(ids, targets=ids[1:]).loss == pytest.approx(model.gradients(ids).loss, rel=1e-6)
    logits_grad = (probs[:-1] - np.eye(3)[targets]) / len(targets)  # softmax − one-hot, over the mean
    np.testing.assert_allclose(g["logits"][:-1], logits_grad, atol=1e-6)
    np.testing.assert_array_equal(g["logits"][-1], 0)  # the last position predicts nothing here


def test_targets_of_the_wrong_length_are_refused(model, ids):
    with pytest.raises(LlmvizError):
        model.gradients(ids, targets=[0, 1, 2])


def test_activation_gradients_have_the_traces_shapes(model, ids, grads):
    t = model.run(ids)
    for name in ("hook_embed", "blocks.0.hook_resid_pre", "blocks.1.attn.hook_pattern", "blocks.2.attn.hook_z",
                 "blocks.1.mlp.hook_post", "blocks.2.hook_resid_post", "ln_final.hook_out", "logits"):
        assert grads[name].shape == t[name].shape and grads[name].dtype == np.float32, name
    # a layer's input is the layer before's output, passed on: the same gradient
    np.testing.assert_array_equal(grads["blocks.1.hook_resid_pre"], grads["blocks.0.hook_resid_post"])


# ---- Central differences ----

WEIGHTS = ("embed.W_E", "pos_embed.W_pos", "blocks.0.ln1.w", "blocks.0.ln1.b", "blocks.0.attn.W_Q", "blocks.0.attn.b_K",
           "blocks.1.attn.W_K", "blocks.1.attn.W_V", "blocks.1.attn.W_O", "blocks.1.attn.b_O", "blocks.2.mlp.W_in",
           "blocks.2.mlp.b_in", "blocks.2.mlp.W_out", "blocks.2.ln2.w", "ln_final.w", "ln_final.b", "unembed.W_U")


@pytest.mark.parametrize("name", WEIGHTS)
def test_weight_gradients_match_central_differences(model, ids, grads, name):
    g = grads.weights[name]
    rng = np.random.default_rng(len(name))
    cells = largest(g, 3) + [tuple(int(rng.integers(0, s)) for s in g.shape)]
    bad = [(idx, float(g[idx]), d) for idx in cells if off(float(g[idx]), d := weight_difference(model, ids, name, idx))]
    assert not bad, f"{name}: (cell, analytic, central difference) {bad}"


ACTIVATIONS = ("hook_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_normalized", "blocks.0.attn.hook_q",
               "blocks.0.attn.hook_k", "blocks.1.attn.hook_attn_scores", "blocks.1.attn.hook_pattern",
               "blocks.1.attn.hook_v", "blocks.1.attn.hook_z", "blocks.1.hook_resid_mid", "blocks.2.mlp.hook_pre",
               "blocks.2.mlp.hook_post", "blocks.2.hook_resid_post", "ln_final.hook_out", "logits")


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradients_match_central_differences(model, ids, grads, name):
    t = model.run(ids)
    g = grads[name]
    axes = model.graph[name].axes
    allowed = None
    if "key_pos" in axes:  # a query sees only the keys at or before it: the others are no cells of the pass
        p, k = axes.index("pos"), axes.index("key_pos")
        allowed = np.indices(g.shape)[k] <= np.indices(g.shape)[p]
    cells = largest(g, 3, allowed)
    bad = [(idx, float(g[idx]), d) for idx in cells
           if off(float(g[idx]), d := activation_difference(model, ids, t, name, idx))]
    assert not bad, f"{name}: (cell, analytic, central difference) {bad}"


# ---- Tied weights, rotary, grouped-query attention: tiny random models ----

ROPE = dict(rope_theta=10000.0, bias=False, norm="rms", mlp="gated", activation="silu")
TINY = {
    "gpt2-tied": ModelConfig("gpt2-tied", 2, 2, 8, 11, 16, tied_unembed=True),
    "gpt2-nobias-unembed-bias": ModelConfig("gpt2-nobias-unembed-bias", 2, 2, 8, 11, 16, bias=False, tied_unembed=False,
                                            unembed_bias=True),
    "llama-gqa-tied": ModelConfig("llama-gqa-tied", 2, 4, 16, 11, 16, arch="llama", n_kv_head=2, n_inner=24,
                                  qkv_bias=True, tied_unembed=True, **ROPE),
    "neox-parallel": ModelConfig("neox-parallel", 2, 4, 16, 11, 16, arch="neox", activation="gelu", n_inner=24,
                                 tied_unembed=False, rope_theta=10000.0, rotary_fraction=0.5, parallel=True),
}


def tiny(cfg: ModelConfig) -> Model:
    graph, rng = Graph(cfg), np.random.default_rng(0)
    return Model(cfg, {n: rng.normal(0, 0.3, graph[n].shape(graph.sizes(0))).astype(np.float32)
                       for n in graph.names("weight") if "tied_to" not in graph[n].attrs}, None, source=cfg.name)


@pytest.mark.parametrize("case", TINY)
def test_every_weight_of_a_tiny_model_matches_central_differences(case):
    """One nudge of W_E moves both its uses when the unembedding is tied to it: the gradient is their sum, and the
    tied W_U's gradient is the same numbers in its own axes."""
    m = tiny(TINY[case])
    ids = [3, 7, 1, 1, 9, 4, 0, 10]
    g = m.gradients(ids)
    assert set(g.weights) == set(m.weights)
    bad = []
    for name in m.weights:
        if "tied_to" in m.graph[name].attrs:
            continue
        for idx in largest(g.weights[name], 2):
            a = float(g.weights[name][idx])
            if off(a, d := weight_difference(m, ids, name, idx)):
                bad.append((name, idx, a, d))
    assert not bad, f"{case}: (weight, cell, analytic, central difference) {bad}"
    if m.config.tied_unembed:
        np.testing.assert_array_equal(g.weights["unembed.W_U"], g.weights["embed.W_E"].T)
