"""Generation with a KV cache: every tensor of each cached step equals the full recomputation, greedy tokens
equal transformers' generate, and the cache is data a trace shows."""

import re

import numpy as np
import pytest

import llmviz
from llmviz.core.model import KVCache


def window(step_trace, name: str, full_trace, past: int) -> tuple[np.ndarray, np.ndarray]:
    """A step's tensor beside the same cells of the full pass: the new positions, the keys so far. The cache's
    tensors (`attn.past_k`, `attn.cache_k`) are slices of the full pass's `attn.hook_k`."""
    full_name = name.replace(".cache_", ".hook_").replace(".past_", ".hook_")
    n = len(step_trace.tokens)
    spans = {"pos": slice(past, past + n), "key_pos": slice(0, past + n), "past_pos": slice(0, past)}
    index = tuple(spans.get(a, slice(None)) for a in step_trace.graph[name].axes)
    return step_trace[name], full_trace[full_name][index]


def assert_steps_match(model, prompt: list[int], new: list[int], atol: float):
    cache = KVCache(model)
    model.step(cache, prompt)
    for token in new:
        past = len(cache)
        step = model.step(cache, [token])
        full = model.run(cache.tokens)
        assert step.graph.past == past and step.tokens == [token]
        names = [n for n in step.graph.names() if step.graph[n].kind != "weight"]
        assert any(n.endswith("cache_k") for n in names) and any(n.endswith("past_v") for n in names)
        for name in names:
            got, ref = window(step, name, full, past)
            assert got.shape == ref.shape, (name, got.shape, ref.shape)
            if got.dtype.kind in "iu":
                assert np.array_equal(got, ref), name
            else:
                np.testing.assert_allclose(got, ref, atol=atol, rtol=0, err_msg=f"{name} at step {past}")


def test_cached_steps_equal_the_full_pass_on_nano_gpt(nano):
    assert_steps_match(nano, [2, 1, 0, 1, 1, 2], [0, 1, 1, 1, 2], atol=1e-5)


@pytest.mark.parametrize("shape", [dict(n_layer=2, n_head=4, n_embd=32, vocab_size=97, n_ctx=40),
                                   dict(n_layer=3, n_head=2, n_embd=24, vocab_size=50, n_ctx=30)])
def test_cached_steps_equal_the_full_pass_on_gpt2_shapes(shape):
    from conftest import random_model

    model = random_model("shape", scale=0.3, **shape)
    rng = np.random.default_rng(1)
    assert_steps_match(model, rng.integers(0, shape["vocab_size"], 9).tolist(),
                       rng.integers(0, shape["vocab_size"], 6).tolist(), atol=1e-4)


def test_a_step_with_several_new_tokens(nano):
    cache = KVCache(nano)
    nano.step(cache, [2, 1, 0])
    step = nano.step(cache, [1, 1, 2])  # three new positions at once: the mask keeps each to its own past
    full = nano.run([2, 1, 0, 1, 1, 2])
    got, ref = window(step, "blocks.2.attn.hook_pattern", full, 3)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert np.isinf(step["blocks.0.attn.hook_attn_scores"][:, 0, 4:]).all()  # query 3 cannot see keys 4 and 5


def test_the_cache_is_data_in_the_trace(nano):
    cache = KVCache(nano)
    first = nano.step(cache, [2, 1, 0, 1, 1, 2])
    np.testing.assert_array_equal(cache.kv["k"][1], first["blocks.1.attn.hook_k"])
    step = nano.step(cache, [0])
    np.testing.assert_array_equal(step["blocks.1.attn.past_k"], first["blocks.1.attn.hook_k"])
    np.testing.assert_array_equal(step["blocks.1.attn.cache_k"][:6], first["blocks.1.attn.hook_k"])
    assert step["blocks.1.attn.cache_v"].shape == (7, 3, 16) and cache.nbytes == 2 * 3 * 3 * 16 * 7 * 4
    assert step.predicted[-1] == "B"  # after CBABBC A: the sorted answer goes on with B


def test_a_full_context_is_refused(nano):
    cache = KVCache(nano)
    nano.step(cache, [0] * 11)
    with pytest.raises(llmviz.LlmvizError, match="the context is full: nano-gpt holds 11 tokens"):
        nano.step(cache, [1])


# The sampling chain

from llmviz.core.sampling import Sampling, sample  # noqa: E402


def test_the_chain_shows_each_stage_and_places_u_on_the_cumulative():
    logits = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
    d = sample(logits, Sampling(temperature=1.0, top_k=4, top_p=0.8, min_p=0.25), np.random.default_rng(0))
    names = [s["name"] for s in d.stages]
    assert names == ["probabilities", "÷ temperature 1", "top-k 4", "top-p 0.8", "min-p 0.25", "renormalised"]
    kept = {s["name"]: s["kept"] for s in d.stages}
    assert kept["top-k 4"] == 4 and kept["top-p 0.8"] == 3 and kept["min-p 0.25"] == 3  # 0.5+0.2+0.15 >= 0.8
    final = dict(d.stages[-1]["top"])
    np.testing.assert_allclose(sorted(final.values(), reverse=True), [0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85])
    cumulative = np.cumsum([0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85])
    assert d.token == [0, 1, 2][int(np.searchsorted(cumulative, d.u, side="right"))]
    assert d.prob == pytest.approx(0.5 if d.token == 0 else 0.2 if d.token == 1 else 0.15)


def test_greedy_and_tiny_temperatures_take_the_top_token():
    logits = np.array([0.1, 3.0, 2.9])
    assert sample(logits, Sampling(), np.random.default_rng(0)).token == 1
    assert sample(logits, Sampling(), np.random.default_rng(0)).u is None
    assert all(sample(logits, Sampling(temperature=1e-300), np.random.default_rng(s)).token == 1 for s in range(20))


@pytest.mark.parametrize("field,value,message", [
    ("temperature", -1, "temperature must be a number >= 0"), ("temperature", float("nan"), "temperature must be"),
    ("top_k", 0, "top_k must be 1 or more"), ("top_p", 0, "top_p must be in (0, 1]"), ("top_p", 1.5, "top_p"),
    ("min_p", 0, "min_p must be in (0, 1]")])
def test_settings_out_of_range_are_refused(field, value, message):
    with pytest.raises(llmviz.LlmvizError, match=re.escape(message)):
        Sampling(**{field: value})


def test_the_same_seed_gives_the_same_tokens(nano):
    a = nano.generate("CAB", 8, temperature=1.5, top_k=2, min_p=0.01, seed=7)
    assert a.tokens == nano.generate("CAB", 8, temperature=1.5, top_k=2, min_p=0.01, seed=7).tokens
    assert len({tuple(nano.generate("CAB", 8, temperature=3.0, seed=s).tokens) for s in range(6)}) > 1
    assert all(d.u is not None and 0 <= d.u < 1 for d in a.draws)


@pytest.mark.parametrize("shape", [dict(n_layer=2, n_head=2, n_embd=32, vocab_size=120, n_positions=48),
                                   dict(n_layer=3, n_head=4, n_embd=24, vocab_size=80, n_positions=40, n_inner=50)])
def test_greedy_tokens_equal_transformers_generate(tmp_path, shape):
    torch = pytest.importorskip("torch")
    from reference import hf_gpt2_folder

    hf = hf_gpt2_folder(tmp_path, seed=5, **shape)
    model = llmviz.load_model(str(tmp_path))
    prompt = np.random.default_rng(2).integers(0, shape["vocab_size"], 7).tolist()
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, pad_token_id=0,
                          attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    assert model.generate(prompt, 20).tokens == out[0, len(prompt):].tolist()


# The API: generate with every stage, and sessions for Step, Undo and Reset

@pytest.fixture(scope="module")
def client(nano):
    from conftest import local_client
    from llmviz.serve.server import create_app

    return local_client(create_app([nano]))


def test_stepping_a_session_writes_the_sorted_answer(client):
    s = client.post("/api/sessions", json={"text": "CBABBC"}).json()
    assert s["tokens"] == [2, 1, 0, 1, 1, 2] and s["steps"] == [] and not s["done"]
    tokens = []
    for _ in range(6):
        r = client.post(f"/api/sessions/{s['session']}/step", json={}).json()
        (step,) = r["steps"]
        tokens.append(step["token"])
        assert step["u"] is None and [st["name"] for st in step["stages"]] == ["probabilities", "greedy"]
    assert "".join(tokens) == "ABBBCC" == r["text"] and r["done"]  # 6 + 6 = 12 tokens: the 11-token context is used up
    assert r["cache"]["bytes"] == 2 * 3 * 3 * 16 * 11 * 4 and r["cache"]["formula"] == "2 · 3 · 3 · 16 · 11 · 4 bytes"
    gpt2, gpt3 = r["cache"]["at_scale"]
    assert gpt2["bytes"] == 2 * 12 * 768 * 1024 * 4 and gpt3["bytes"] == 2 * 96 * 12288 * 2048 * 4
    assert r["cache"]["full_multiply_adds"] > 5 * r["cache"]["step_multiply_adds"]
    full = client.post(f"/api/sessions/{s['session']}/step", json={})
    assert full.status_code == 409 and "the context is full: nano-gpt holds 11 tokens" in full.json()["detail"]


def test_many_steps_stop_at_a_full_context_with_a_message(client):
    sid = client.post("/api/sessions", json={"text": "CBABBC"}).json()["session"]
    r = client.post(f"/api/sessions/{sid}/step", json={"count": 50}).json()
    assert len(r["steps"]) == 6 and r["done"] and "context is full" in r["message"]


def test_the_same_seed_gives_the_same_tokens_from_python_and_the_api(client, nano):
    settings = {"temperature": 2.0, "top_k": 2, "top_p": 0.95, "min_p": 0.05, "seed": 42}
    want = nano.generate("CAB", 8, **settings)
    via_generate = client.post("/api/generate", json={"text": "CAB", "max_new_tokens": 8, **settings}).json()
    sid = client.post("/api/sessions", json={"text": "CAB", **settings}).json()["session"]
    via_session = client.post(f"/api/sessions/{sid}/step", json={"count": 8}).json()
    assert via_generate["tokens"] == want.tokens == [s["id"] for s in via_session["steps"]]
    listed = client.get(f"/api/sessions/{sid}").json()["steps"]
    positions = [[s["position"] for s in steps] for steps in (via_generate["steps"], via_session["steps"], listed)]
    assert positions == [list(range(3, 11))] * 3  # each token's place in the sequence, the same from every endpoint
    step = via_generate["steps"][0]
    assert [st["name"] for st in step["stages"]] == ["probabilities", "÷ temperature 2", "top-k 2", "top-p 0.95",
                                                     "min-p 0.05", "renormalised"]
    assert step["u"] == pytest.approx(want.draws[0].u) and step["prob"] == pytest.approx(want.probs[0])
    assert step["stages"][-1]["top"][0]["token"] in "ABC"


def test_undo_takes_back_a_step_and_its_draw(client):
    sid = client.post("/api/sessions", json={"text": "CAB", "temperature": 3.0, "seed": 9}).json()["session"]
    first = client.post(f"/api/sessions/{sid}/step", json={"count": 3}).json()
    undone = client.post(f"/api/sessions/{sid}/undo").json()
    assert undone["tokens"] == first["tokens"][:-1]
    again = client.post(f"/api/sessions/{sid}/step", json={}).json()
    assert again["tokens"] == first["tokens"]  # the same draw again: the generator went back too
    assert again["steps"][0]["u"] == first["steps"][-1]["u"]
    for _ in range(3):
        client.post(f"/api/sessions/{sid}/undo")
    nothing = client.post(f"/api/sessions/{sid}/undo")
    assert nothing.status_code == 422 and "nothing to undo" in nothing.json()["detail"]
    history = client.get(f"/api/sessions/{sid}").json()
    assert history["tokens"] == [2, 0, 1] and history["steps"] == []
    assert client.delete(f"/api/sessions/{sid}").status_code == 204
    assert client.post(f"/api/sessions/{sid}/step", json={}).status_code == 410


def test_unknown_and_evicted_sessions(nano):
    from llmviz.serve.sessions import Session, Sessions

    store = Sessions(size=1)
    a = store.add(Session(nano, [0], Sampling(), None))
    store.add(Session(nano, [1], Sampling(), None))  # the first is evicted
    with pytest.raises(llmviz.LlmvizError, match="has expired") as gone:
        store.get(a)
    assert gone.value.status == 410
    with pytest.raises(llmviz.LlmvizError, match="no generation session") as missing:
        store.get("nope")
    assert missing.value.status == 404


@pytest.mark.parametrize("body,field", [({"min_p": 0}, "min_p"), ({"top_p": 1.5}, "top_p"),
                                        ({"temperature": -1}, "temperature"), ({"top_k": 0}, "top_k")])
def test_bad_settings_name_the_field(client, body, field):
    for url in ("/api/sessions", "/api/generate"):
        r = client.post(url, json={"text": "AB", **body})
        assert r.status_code == 422 and r.json()["detail"].startswith(field)


def test_probabilities_keep_the_digits_that_tell_them_apart():
    from llmviz.core.sampling import percent

    assert (percent(0.99995303), percent(0.5), percent(4.5e-5), percent(1.0)) == ("99.99 %", "50.00 %", "0.0045 %", "100.00 %")


def test_the_cli_prints_each_choice_with_its_alternatives():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "llmviz.serve.cli", "generate", "CBABBC", "--show-probs"],
                       capture_output=True, text=True, timeout=60)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and len(lines) == 7 and lines[-1] == "ABBBCC"
    assert lines[0].split() == ["'A'", "99.99", "%", "then", "'B'", "0.0045", "%,", "'C'", "0.00017", "%"]
    seeded = ["generate", "CAB", "-n", "8", "-t", "2", "--top-k", "2", "--min-p", "0.1", "--seed", "3"]
    out = subprocess.run([sys.executable, "-m", "llmviz.serve.cli", *seeded], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == llmviz.load_model("nano-gpt").generate("CAB", 8, temperature=2, top_k=2, min_p=0.1,
                                                                         seed=3).text


def test_the_kv_cache_view_of_a_step(client, nano):
    import json as json_

    from safetensors import safe_open

    r = client.post("/api/scene", json={"tokens": [2, 1, 0, 1, 1, 2, 0], "past": 6})
    assert r.status_code == 200
    with open("/tmp/llmviz-step-scene.safetensors", "wb") as f:
        f.write(r.content)
    with safe_open("/tmp/llmviz-step-scene.safetensors", "np") as f:
        scene = json_.loads(f.metadata()["scene"])
    blocks = {b["tensor"]: b for b in scene["blocks"]}
    assert scene["past"] == 6 and scene["n_pos"] == 1 and scene["context"] == [2, 1, 0, 1, 1, 2, 0]
    assert blocks["blocks.0.attn.past_k"]["dims"] == [["past_pos", 6], ["head", 3], ["d_head", 16]]
    # the cached keys are drawn as the activations they are (the palette of K so far), the tokens as inputs
    assert blocks["blocks.0.attn.past_k"]["kind"] == blocks["blocks.0.attn.cache_k"]["kind"] == "activation"
    assert blocks["tokens"]["kind"] == "input"
    assert blocks["blocks.0.attn.cache_k"]["dims"][0] == ["key_pos", 7]  # 6 from the cache, 1 new
    assert blocks["blocks.0.attn.hook_attn_scores"]["rows"] == 1 and blocks["blocks.0.attn.hook_attn_scores"]["cols"] == 7
    assert scene["axis_names"]["key_pos"] == list("CBABBCA") and scene["token_strs"] == ["A"]
    # Its cells, as the page explains them (explain.ts, in node) from the step's numbers
    from pagexplain import explain_all

    cache = KVCache(nano)
    nano.step(cache, [2, 1, 0, 1, 1, 2], keep=())
    step = nano.step(cache, [0])
    whole = nano.run([2, 1, 0, 1, 1, 2, 0])
    e, new, past = explain_all(step, [("blocks.1.attn.cache_k", (3, 0, 5)), ("blocks.1.attn.hook_attn_scores", (0, 0, 4)),
                                      ("blocks.1.attn.past_v", (2, 1, 0))])
    assert e["formula"]["text"].startswith("from the cache") and e["value"] == pytest.approx(
        float(whole["blocks.1.attn.hook_k"][3, 0, 5]), abs=1e-5)
    assert e["sources"][0]["tensor"] == "blocks.1.attn.past_k"
    assert new["value"] == pytest.approx(float(whole["blocks.1.attn.hook_attn_scores"][0, 6, 4]), abs=1e-5)
    assert new["formula"]["result"] == pytest.approx(new["value"], abs=1e-5)
    assert past["note"] == "cached at an earlier step: position 2 ('A'); this step reads it, nothing recomputes it"
    bad = client.post("/api/scene", json={"tokens": [2, 1], "past": 2})
    assert bad.status_code == 422 and "past must be from 1 to 1" in bad.json()["detail"]
