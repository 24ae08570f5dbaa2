"""Views across the model: the logit lens, the branch tree and every head's attention, in Python and over HTTP."""

import json

import numpy as np
import pytest

from conftest import local_client, random_model
from llmviz.serve.server import create_app
from llmviz.views.branches import branches
from llmviz.views.lens import boundaries, logit_lens


def direct_lens(trace, k):
    """TransformerLens's accumulated_resid(apply_ln=True), then the unembedding and a softmax, in plain numpy."""
    m, out = trace.model, []
    w, b, eps = trace["ln_final.w"], trace["ln_final.b"], m.config.layer_norm_eps
    W_U = trace["unembed.W_U"]
    for name in boundaries(m.graph):
        r = trace[name].astype(np.float64)
        x = (r - r.mean(-1, keepdims=True)) / np.sqrt(r.var(-1, keepdims=True) + eps) * w + b
        logits = x @ W_U + (trace["unembed.b_U"] if m.config.unembed_bias else 0)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        out.append([(list(np.argsort(-row)[:k]), sorted(row, reverse=True)[:k]) for row in p])
    return out


@pytest.mark.parametrize("which", ["nano", "random"])
def test_lens_equals_a_direct_numpy_computation(nano, which):
    model = nano if which == "nano" else random_model(vocab_size=500, n_layer=3)
    tokens = "CBABBC" if which == "nano" else list(range(3, 40))
    trace = model.run(tokens)
    lens = logit_lens(trace, k=3)
    n = model.config.n_layer
    assert lens["layers"] == [f"blocks.{i}.hook_resid_pre" for i in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    for layer, want in zip(lens["top"], direct_lens(trace, 3)):
        for got, (ids, probs) in zip(layer, want):
            assert [g["id"] for g in got] == [int(i) for i in ids]
            np.testing.assert_allclose([g["prob"] for g in got], probs, rtol=1e-4, atol=1e-7)
    # The last boundary is the model's own prediction.
    assert lens["top"][-1][-1][0]["id"] == trace.predicted_ids[-1]
    np.testing.assert_allclose(lens["top"][-1][-1][0]["prob"], trace.next_probs.max(), rtol=1e-6)


def test_root_branches_are_the_top_k_and_a_grandchild_is_a_fresh_run(nano):
    tree = branches(nano, "CBABBC", k=3, depth=2)
    probs = nano.run("CBABBC").next_probs
    assert [c["id"] for c in tree["children"]] == list(np.argsort(-probs)[:3])
    np.testing.assert_allclose([c["prob"] for c in tree["children"]], np.sort(probs)[::-1][:3], rtol=1e-6)
    child = tree["children"][1]
    grandchild = child["children"][2]
    fresh = nano.run(tree["tokens"] + [child["id"]]).next_probs
    np.testing.assert_allclose(grandchild["prob"], fresh[grandchild["id"]], rtol=1e-5)
    assert sum(len(c["children"]) for c in tree["children"]) == 9


def test_branches_respect_the_node_count_and_the_context(nano):
    tree = branches(nano, "CBABBC", k=3, depth=4, max_nodes=10)
    count = lambda n: len(n["children"]) + sum(count(c) for c in n["children"])
    assert count(tree) == 10
    full = branches(nano, "CBABBCABBB", k=2, depth=3)  # 10 of 11 positions: one level more fits, not two
    assert all(len(c["children"]) == 2 and all(not g["children"] for g in c["children"]) for c in full["children"])


def test_lens_branches_and_attention_over_http(nano):
    c = local_client(create_app())
    r = c.post("/api/lens", json={"text": "CBABBC", "k": 2})
    assert r.status_code == 200 and r.json() == json.loads(json.dumps(logit_lens(nano.run("CBABBC"), 2)))
    r = c.post("/api/branches", json={"text": "CBABBC", "k": 2, "depth": 2})
    assert r.status_code == 200 and r.json() == branches(nano, "CBABBC", 2, 2)
    r = c.post("/api/attention", json={"text": "CBABBC"})
    assert r.status_code == 200
    n = int.from_bytes(r.content[:8], "little")
    header = json.loads(r.content[8:8 + n])
    names = json.loads(header["__metadata__"]["layers"])
    assert names == [f"blocks.{i}.attn.hook_pattern" for i in range(3)]
    start, end = header[names[1]]["data_offsets"]
    got = np.frombuffer(r.content[8 + n + start: 8 + n + end], np.float16).reshape(header[names[1]]["shape"])
    np.testing.assert_allclose(got, nano.run("CBABBC")["blocks.1.attn.hook_pattern"], atol=1e-3)


@pytest.mark.parametrize("path,body,detail", [
    ("/api/lens", {"text": "AB", "k": 0}, "k: Input should be greater than or equal to 1 (allowed: from 1 to 20)"),
    ("/api/branches", {"text": "AB", "depth": 7}, "depth: Input should be less than or equal to 6 (allowed: from 1 to 6)"),
    ("/api/branches", {"text": "AB", "k": 21}, "k: Input should be less than or equal to 20 (allowed: from 1 to 20)"),
    ("/api/branches", {"text": "AB", "max_nodes": 0}, "(allowed: from 1 to 2000)"),
])
def test_out_of_range_settings_get_a_422_with_the_range(path, body, detail):
    r = local_client(create_app()).post(path, json=body)
    assert r.status_code == 422 and detail in r.json()["detail"]


@pytest.mark.parametrize("path", ["/api/lens", "/api/branches", "/api/attention"])
def test_structure_only_model_gets_a_409(path):
    r = local_client(create_app()).post(path, json={"model": "gpt2", "text": "hello"})
    assert r.status_code == 409 and "structure only" in r.json()["detail"]
