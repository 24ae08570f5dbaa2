"""Hover provenance: every cell's formula, filled in with the trace's numbers, ends in the cell's value."""

import math

import numpy as np
import pytest

from conftest import local_client
from llmviz.core.errors import LlmvizError
from llmviz.serve.server import create_app
from llmviz.views.provenance import explain, pick_in_region


@pytest.fixture(scope="module")
def trace(nano):
    return nano.run("CBABBC")


def cells(shape, rng, n=4):
    return [tuple(int(rng.integers(0, s)) for s in shape) for _ in range(n)]


def test_every_computed_cell_explains_its_value(trace):
    rng = np.random.default_rng(0)
    ops = set()
    for spec in trace.model.graph:
        if spec.kind not in ("activation", "aggregate"):
            continue
        for idx in cells(trace[spec.name].shape, rng):
            e = explain(trace, spec.name, idx)
            f = e["formula"]
            v = float(trace[spec.name][idx])
            if v == -math.inf:
                assert f["result"] == -math.inf and f["masked"]
            else:
                assert f["result"] == pytest.approx(v, rel=1e-4, abs=1e-6), (spec.name, idx, f["text"])
            assert f["text"].endswith(e["value_text"]) or f.get("masked") or "no attention" in f["text"] \
                or spec.op in ("embed", "pos_embed", "softmax_max"), f["text"]
            for src in e["sources"]:
                shape = trace[src["tensor"]].shape
                axes = trace.model.graph[src["tensor"]].axes
                assert list(src["ranges"]) == list(axes)
                assert all(0 <= lo <= hi < n for (lo, hi), n in zip(src["ranges"].values(), shape))
            ops.add(spec.op)
    assert ops == {"embed", "pos_embed", "add", "identity", "ln_mean", "ln_scale", "ln_normalize", "ln_affine",
                   "linear", "attn_scores", "softmax_max", "softmax_sum_exp", "softmax", "weighted_sum", "gelu"}


def test_linear_shows_its_largest_terms(trace):
    e = explain(trace, "blocks.0.attn.hook_q", (3, 2, 5))
    t = e["formula"]["terms"]
    assert t["count"] == 48 and len(t["shown"]) == 5
    x = trace["blocks.0.ln1.hook_out"][3].astype(np.float64)
    w = trace["blocks.0.attn.W_Q"][2, :, 5].astype(np.float64)
    top = np.argsort(-np.abs(x * w))[:5]
    assert [s["at"]["d_model"] for s in t["shown"]] == top.tolist()
    total = sum(s["product"] for s in t["shown"]) + t["rest"] + float(trace["blocks.0.attn.b_Q"][2, 5])
    assert total == pytest.approx(float(trace["blocks.0.attn.hook_q"][3, 2, 5]), rel=1e-5)
    assert e["title"] == "Query vector, layer 0, head 2"
    assert e["code"] == 'trace["blocks.0.attn.hook_q"][3, 2, 5]'
    assert [(i["label"], i["i"]) for i in e["index"]] == [("T", 3), ("H", 2), ("A", 5)]
    assert {s["tensor"]: s["ranges"] for s in e["sources"]} == {
        "blocks.0.ln1.hook_out": {"pos": [3, 3], "d_model": [0, 47]},
        "blocks.0.attn.W_Q": {"head": [2, 2], "d_model": [0, 47], "d_head": [5, 5]},
        "blocks.0.attn.b_Q": {"head": [2, 2], "d_head": [5, 5]},
    }


def test_output_projection_sums_over_heads(trace):
    e = explain(trace, "blocks.1.hook_attn_out", (2, 7))
    assert e["formula"]["terms"]["count"] == 48  # 3 heads × 16 channels
    assert e["formula"]["text"].startswith(f"{e['formula']['rows'][0][1]} + Σ H,A x·W")


def test_masked_score_and_gelu_curve(trace):
    e = explain(trace, "blocks.0.attn.hook_attn_scores", (1, 2, 4))
    assert e["formula"]["text"] == "future position: masked to −∞" and e["value_text"] == "−∞"
    g = explain(trace, "blocks.1.mlp.hook_post", (2, 7))["formula"]
    assert g["curve"]["name"] == "GELU" and len(g["curve"]["xs"]) == 48
    assert min(g["curve"]["xs"]) <= g["curve"]["x"] <= max(g["curve"]["xs"])


def test_weights_and_tokens(trace):
    w = explain(trace, "blocks.2.mlp.W_out", (10, 3))
    assert w["formula"] is None and "one of the 9,216 numbers of the parameter blocks.2.mlp.W_out" in w["parameter"]["text"]
    t = explain(trace, "tokens", (2,))
    assert t["note"] == "token 'A' (id 0) at position 2"


def test_region_picks_the_largest_magnitude(trace):
    ranges = {"pos": [0, 5], "d_model": [0, 47]}
    idx = pick_in_region(trace, "blocks.0.hook_resid_mid", ranges)
    a = np.abs(trace["blocks.0.hook_resid_mid"])
    assert a[idx] == a.max()


def test_bad_cells_are_refused(trace):
    with pytest.raises(LlmvizError, match=r"index \[9, 0\] is outside blocks.0.hook_resid_mid of shape \[6, 48\]"):
        explain(trace, "blocks.0.hook_resid_mid", (9, 0))
    with pytest.raises(LlmvizError, match="unknown tensor 'nope'"):
        explain(trace, "nope", (0,))


def test_explain_endpoint(nano):
    c = local_client(create_app())
    r = c.post("/api/explain", json={"text": "CBABBC", "tensor": "probs", "index": [5, 0]})
    assert r.status_code == 200 and r.json()["value"] == pytest.approx(float(nano.run("CBABBC")["probs"][5, 0]))
    r = c.post("/api/explain", json={"text": "CBABBC", "tensor": "logits", "region": {"pos": [0, 5], "vocab": [0, 2]}})
    assert r.status_code == 200
    bad = c.post("/api/explain", json={"text": "CBABBC", "tensor": "nope", "index": [0]})
    assert bad.status_code == 422 and "unknown tensor 'nope'" in bad.json()["detail"]
    for region in ({"pos": [5, 2]}, {"pos": [0, 99]}, {"head": [0, 0]}):  # empty, too long, no such axis
        bad = c.post("/api/explain", json={"text": "CBABBC", "tensor": "probs", "region": region})
        assert bad.status_code == 422 and "does not fit probs, whose axes are pos (0 to 5), vocab (0 to 2)" \
            in bad.json()["detail"]
    bad = c.post("/api/explain", json={"text": "CBABBC", "tensor": "probs"})
    assert bad.status_code == 422 and "exactly one of 'index' or 'region'" in bad.json()["detail"]
    assert c.post("/api/explain", json={"model": "gpt3", "tokens": [1], "tensor": "probs", "index": [0, 0]}).status_code == 409


def test_a_vocabulary_index_reads_as_its_token(trace):
    e = explain(trace, "probs", (5, 0))
    assert [(a["label"], a["shown"]) for a in e["index"]] == [("T", "5"), ("V", "A")]
    assert e["index"][0]["name"] == "C"  # position 5 holds the token C
