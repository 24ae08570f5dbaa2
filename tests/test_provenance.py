"""Hover provenance, as the page explains a cell (frontend/src/explain.ts, run in node: tests/pagexplain.py): every
cell's formula, filled in with the trace's numbers, ends in the cell's value; and POST /api/cells, which hands the
served page the numbers it reads."""

import base64
import math

import numpy as np
import pytest

from conftest import local_client
from llmviz.serve.server import create_app
from pagexplain import explain, explain_all


@pytest.fixture(scope="module")
def trace(nano):
    return nano.run("CBABBC")


def cells(shape, rng, n=4):
    return [tuple(int(rng.integers(0, s)) for s in shape) for _ in range(n)]


def test_every_computed_cell_explains_its_value(trace):
    rng = np.random.default_rng(0)
    asked = [(spec.name, idx) for spec in trace.model.graph if spec.kind in ("activation", "aggregate")
             for idx in cells(trace[spec.name].shape, rng)]
    ops = set()
    for (name, idx), e in zip(asked, explain_all(trace, asked)):
        spec = trace.model.graph[name]
        f = e["formula"]
        v = float(trace[name][idx])
        assert e["value"] == v  # the shown value is the trace's float32 number
        if v == -math.inf:
            assert f["result"] == -math.inf and f["masked"]
        else:
            assert f["result"] == pytest.approx(v, rel=1e-4, abs=1e-6), (name, idx, f["text"])
        assert f["text"].endswith(e["value_text"]) or f.get("masked") or "no attention" in f["text"] \
            or spec.op in ("embed", "pos_embed", "softmax_max"), f["text"]
        assert f["template"] and f["description"]
        assert {s["tensor"] for s in e["sources"]} <= set(spec.inputs) and e["sources"]
        for src in e["sources"]:
            shape = trace[src["tensor"]].shape
            axes = trace.model.graph[src["tensor"]].axes
            assert list(src["ranges"]) == list(axes)
            assert all(0 <= lo <= hi < n for (lo, hi), n in zip(src["ranges"].values(), shape))
        assert e["target"] == {"tensor": name, "ranges": {a: [i, i] for a, i in zip(spec.axes, idx)}, "role": "target"}
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
    f = e["formula"]
    assert f["text"] == f"{f['rows'][0][1]} + Σ C x·W (48 terms) = {e['value_text']}"


def test_output_projection_sums_over_heads(trace):
    e = explain(trace, "blocks.1.hook_attn_out", (2, 7))
    assert e["formula"]["terms"]["count"] == 48  # 3 heads × 16 channels
    assert e["formula"]["text"].startswith(f"{e['formula']['rows'][0][1]} + Σ H,A x·W")


def test_masked_score_and_gelu_curve(trace):
    e = explain(trace, "blocks.0.attn.hook_attn_scores", (1, 2, 4))
    assert e["formula"]["text"] == "future position: masked to −∞" and e["value_text"] == "−∞"
    assert e["value"] == -math.inf
    g = explain(trace, "blocks.1.mlp.hook_post", (2, 7))["formula"]
    assert g["curve"]["name"] == "GELU" and len(g["curve"]["xs"]) == 48
    assert min(g["curve"]["xs"]) <= g["curve"]["x"] <= max(g["curve"]["xs"])
    p = explain(trace, "blocks.0.attn.hook_pattern", (1, 2, 4))["formula"]
    assert p["text"].startswith("exp(−∞ − ") and p["text"].endswith("= 0: a masked (future) position gets no attention")


def test_weights_and_tokens(trace):
    w = explain(trace, "blocks.2.mlp.W_out", (10, 3))
    assert w["formula"] is None and "one of the 9,216 numbers of the parameter blocks.2.mlp.W_out" in w["parameter"]["text"]
    assert w["sources"] == [] and w["value"] == float(trace["blocks.2.mlp.W_out"][10, 3])
    t = explain(trace, "tokens", (2,))
    assert t["note"] == "token 'A' (id 0) at position 2"
    e = explain(trace, "hook_embed", (2, 7))
    assert e["formula"]["text"].startswith("W_E[0, 7] = ") and "token 'A' (id 0) picks W_E[0]" in e["formula"]["text"]


def test_region_picks_the_largest_magnitude(trace):
    ranges = {"pos": [0, 5], "d_model": [0, 47]}
    a = np.abs(trace["blocks.0.hook_resid_mid"])
    picked, tile = explain_all(trace, [("blocks.0.hook_resid_mid", ranges),
                                       ("blocks.0.hook_resid_mid", {"pos": [1, 2], "d_model": [8, 15]})], stats=True)
    assert a[tuple(i["i"] for i in picked["explanation"]["index"])] == a.max()
    sub = a[1:3, 8:16]
    r, c = np.unravel_index(np.argmax(sub), sub.shape)
    assert [i["i"] for i in tile["explanation"]["index"]] == [1 + r, 8 + c]
    assert tile["rounds"] == 2  # the tile's numbers, then those of its cell's formula


def test_a_cell_takes_one_fetch_of_its_numbers(trace):
    """Explaining a cell of a pass that holds nothing yet fetches what it reads in one request: the cell's own
    number and its formula's inputs (the served page's one /api/cells request)."""
    for a in explain_all(trace, [("blocks.0.attn.hook_q", (3, 2, 5)), ("probs", (5, 0)), ("blocks.1.ln1.hook_scale", (4,)),
                                 ("blocks.2.attn.hook_z", (1, 2, 3))], stats=True):
        assert a["rounds"] == 1 and a["slices"] <= 6, a


def test_bad_cells_are_refused(trace):
    bad = explain_all(trace, [("blocks.0.hook_resid_mid", (9, 0)), ("nope", (0,)),
                              ("probs", {"pos": [0, 99]}), ("probs", {"head": [0, 0]})])
    assert bad[0] == {"error": "index [9, 0] is outside blocks.0.hook_resid_mid of shape [6, 48]"}
    assert bad[1] == {"error": "unknown tensor 'nope': not in nano-gpt's graph"}
    assert bad[2]["error"].startswith("region pos=[0, 99] does not fit probs, whose axes are pos (0 to 5), vocab (0 to 2)")
    assert bad[3]["error"].startswith("region head=[0, 0] does not fit probs")


def test_a_vocabulary_index_reads_as_its_token(trace):
    e = explain(trace, "probs", (5, 0))
    assert [(a["label"], a["shown"]) for a in e["index"]] == [("T", "5"), ("V", "A")]
    assert e["index"][0]["name"] == "C"  # position 5 holds the token C


def test_cells_endpoint(nano):
    c = local_client(create_app())
    t = nano.run("CBABBC")
    r = c.post("/api/cells", json={"text": "CBABBC", "slices": [{"tensor": "probs", "at": {"pos": 5}},
                                                              {"tensor": "blocks.0.attn.W_Q", "at": {"head": 1, "d_head": 2}}]})
    assert r.status_code == 200
    body = r.json()
    assert body["shapes"]["probs"] == [6, 3] and body["shapes"]["blocks.0.attn.W_Q"] == [3, 48, 16]
    probs, w = body["slices"]
    assert probs["axes"] == ["vocab"] and probs["shape"] == [3]
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(probs["values"]), "<f4"), t["probs"][5])
    assert w["axes"] == ["d_model"]
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(w["values"]), "<f4"), t["blocks.0.attn.W_Q"][1, :, 2])
    for slices, said in [([{"tensor": "nope"}], "unknown tensor 'nope'"), ([{"tensor": "probs", "at": {"head": 0}}],
                         "probs has no axis 'head'"), ([{"tensor": "probs", "at": {"pos": 6}}], "pos 6 is outside probs")]:
        bad = c.post("/api/cells", json={"text": "CBABBC", "slices": slices})
        assert bad.status_code == 422 and said in bad.json()["detail"]
    step = c.post("/api/cells", json={"tokens": [2, 1, 0, 1, 1, 2, 0], "past": 6,
                                      "slices": [{"tensor": "blocks.1.attn.past_k", "at": {"past_pos": 3}}]}).json()
    assert step["shapes"]["blocks.1.attn.cache_k"] == [7, 3, 16]
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(step["slices"][0]["values"]), "<f4").reshape(3, 16),
                               nano.run([2, 1, 0, 1, 1, 2, 0])["blocks.1.attn.hook_k"][3], atol=1e-5)
