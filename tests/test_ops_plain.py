"""Each op's plain version (Op.plain, shown first in the walkthrough's code boxes) is honest: run with numpy on
small inputs, it gives the numbers the op's real forward gives."""

import re

import numpy as np
import pytest

from llmviz.core.ops import OPS
from llmviz.core.ops.norm import ln_mean, ln_scale, rms_scale
from llmviz.views.walkthrough import chapters

EPS = 1e-5
rng = np.random.default_rng(0)
X = rng.normal(0, 2, 7).astype(np.float32)  # one position's vector
GAIN, BIAS = rng.normal(1, 0.2, 7).astype(np.float32), rng.normal(0, 0.2, 7).astype(np.float32)
Q, K = rng.normal(0, 1, (5, 8)).astype(np.float32), rng.normal(0, 1, (5, 8)).astype(np.float32)  # one head: [pos, d_head]
P = rng.random((5, 5)).astype(np.float32)
P = (np.tril(P) / np.tril(P).sum(-1, keepdims=True)).astype(np.float32)  # a causal pattern, rows adding up to 1
V = rng.normal(0, 1, (5, 8)).astype(np.float32)
ROW = np.array([1.5, -0.5, 3.0, -np.inf, 0.25], np.float32)  # a row of scores, one of them masked


def forward(name, *inputs, **attrs):
    return OPS[name](*inputs, **attrs)


# op -> (the plain version's inputs, the forward's numbers for those inputs, as the model calls it)
CASES = {
    "ln_normalize": ({"x": X, "eps": EPS},
                     lambda: forward("ln_normalize", X[None], ln_mean(X[None]), ln_scale(X[None], ln_mean(X[None]), EPS))[0]),
    "ln_affine": ({"x_hat": X, "gamma": GAIN, "beta": BIAS}, lambda: forward("ln_affine", X[None], GAIN, BIAS)[0]),
    "rms_normalize": ({"x": X, "eps": EPS}, lambda: forward("rms_normalize", X[None], rms_scale(X[None], EPS))[0]),
    "attn_scores": ({"q": Q, "k": K},  # [pos, head, d_head] in, [head, pos, key_pos] out
                    lambda: forward("attn_scores", Q[:, None], K[:, None], scale=np.sqrt(8))[0]),
    "weighted_sum": ({"p": P, "v": V}, lambda: forward("weighted_sum", P[None], V[:, None])[:, 0]),
    "softmax": ({"x": ROW}, lambda: forward("softmax", ROW[None], ROW.max()[None], np.exp(ROW - ROW.max()).sum()[None])[0]),
    "gelu": ({"x": X}, lambda: forward("gelu", X)),
    "relu": ({"x": X}, lambda: forward("relu", X)),
    "silu": ({"x": X}, lambda: forward("silu", X)),
    "sigmoid": ({"x": X}, lambda: forward("sigmoid", X)),
    "mul": ({"gate": X, "up": GAIN}, lambda: forward("mul", X, GAIN)),
}


def run_plain(name: str, inputs: dict) -> np.ndarray:
    """The op's plain version, executed with numpy and these inputs; its result is what its last line assigns."""
    code = OPS[name].plain
    scope = {"np": np, **{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in inputs.items()}}
    exec(code, scope)  # our own snippet, the one the walkthrough shows
    result = re.match(r"\s*(\w+)\s*\[?.*?=", code.strip().splitlines()[-1]).group(1)
    return np.asarray(scope[result])


def code_ops() -> set[str]:
    return {a.split()[1] for ch in chapters() for s in ch.steps for _, a in s.actions if a.startswith("code ")}


def test_every_code_box_of_the_chapters_has_a_plain_version():
    ops = code_ops()
    assert ops >= {"ln_normalize", "ln_affine", "rms_normalize", "attn_scores", "gelu", "mul"}
    for op in ops:
        plain = OPS[op].plain
        assert plain and plain.strip() and len(plain.splitlines()) <= 6, op  # a few lines
        assert op in CASES, f"{op}: give tests/test_ops_plain.py inputs for its plain version"


@pytest.mark.parametrize("op", sorted(op for op in OPS if OPS[op].plain))
def test_plain_version_gives_the_forwards_numbers(op):
    assert op in CASES, f"{op}: give tests/test_ops_plain.py inputs for its plain version"
    inputs, want = CASES[op]
    got, want = run_plain(op, inputs), np.asarray(want())
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_plain_attention_scores_mask_the_future():
    got = run_plain("attn_scores", CASES["attn_scores"][0])
    assert np.isneginf(got[0, 1:]).all() and np.isfinite(np.tril(got)).all()


def test_the_code_action_carries_plain_and_source(nano):
    from llmviz.views.walkthrough import compile_chapters

    w = compile_chapters(nano, nano.run("CBABBC"))
    codes = [a for c in w["chapters"] for s in c["steps"] for a in s["actions"] if a["type"] == "code"]
    assert codes and all(set(a) == {"type", "op", "plain", "source", "file"} for a in codes)
    gelu = next(a for a in codes if a["op"] == "gelu")
    assert gelu["plain"] == OPS["gelu"].plain and "np.tanh" in gelu["plain"] and "def gelu" in gelu["source"]
    assert gelu["file"] == "core/ops/activations.py"
