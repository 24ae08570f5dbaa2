"""The attention toy (learning path, step 4): an attention-only transformer of one layer and one head. Its forward
equals a plain numpy reference, its gradients equal finite differences, and the bundled model solves its task: after
the '=' it names the last capital letter, by attending to it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmviz.core.graph import Graph
from llmviz.io.loading import load_model
from llmviz.training.numpy_train import random_model
from llmviz.training.tasks import task, toy_accuracy, toy_examples


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference(w, ids):
    """One attention head, plainly: embeddings, q k v, masked softmax, the output added to the stream, unembedding."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    x = w["embed.W_E"][ids] + w["pos_embed.W_pos"][:len(ids)]
    a = "blocks.0.attn."
    q, k, v = (x @ w[a + f"W_{c}"][0] + w[a + f"b_{c}"][0] for c in "QKV")
    scores = q @ k.T / np.sqrt(q.shape[-1])
    scores[np.triu_indices(len(ids), 1)] = -np.inf  # a position sees itself and the ones before
    pattern = softmax(scores)
    x = x + (pattern @ v) @ w[a + "W_O"][0] + w[a + "b_O"]
    return x @ w["unembed.W_U"], pattern


def test_its_graph_is_attention_and_nothing_else():
    g = Graph(task("attention-toy").config)
    ops = [t.op for t in g if t.op]
    assert "ln_affine" not in ops and not any(n.startswith("blocks.0.mlp") for n in g.names())
    assert {"blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.0.attn.hook_pattern",
            "blocks.0.attn.hook_z", "blocks.0.hook_attn_out", "blocks.0.hook_resid_post", "logits"} <= set(g.names())
    cfg = task("attention-toy").config
    assert cfg.n_params == sum(int(np.prod(t.shape(g.sizes(1)))) for t in g if t.kind == "weight")


def test_its_forward_equals_a_plain_numpy_attention_head():
    t = task("attention-toy")
    model = random_model(t.config, t.tokenizer, seed=4)
    ids = t.tokenizer.encode("abCdeFgha=")
    trace = model.run(ids)
    logits, pattern = reference(model.require_weights(), ids)
    np.testing.assert_allclose(trace["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(trace["blocks.0.attn.hook_pattern"][0], pattern, atol=1e-6)


def test_its_gradients_equal_finite_differences():
    t = task("attention-toy")
    cfg = dataclasses.replace(t.config, n_embd=4)
    model = random_model(cfg, t.tokenizer, seed=9)
    w = {k: v.astype(np.float64) * 20 for k, v in model.require_weights().items()}  # large enough to matter
    model = type(model)(cfg, {k: v.astype(np.float32) for k, v in w.items()}, t.tokenizer, source="test")
    w = {k: v.astype(np.float64) for k, v in model.require_weights().items()}
    (ids, targets), = toy_examples(1, np.random.default_rng(1))

    def loss(w):
        logp = np.log(softmax(reference(w, ids)[0]))
        return -logp[-1, targets[-1]]

    grads = model.batch_gradients([ids], [targets])
    assert grads.loss == pytest.approx(loss(w), rel=1e-4)
    for name in ("blocks.0.attn.W_Q", "blocks.0.attn.W_K", "blocks.0.attn.W_V", "blocks.0.attn.W_O",
                 "pos_embed.W_pos", "embed.W_E", "unembed.W_U"):
        numeric = np.zeros_like(w[name])
        for idx in np.ndindex(w[name].shape):
            up, down = {k: v.copy() for k, v in w.items()}, {k: v.copy() for k, v in w.items()}
            up[name][idx] += 1e-6
            down[name][idx] -= 1e-6
            numeric[idx] = (loss(up) - loss(down)) / 2e-6
        np.testing.assert_allclose(grads.weights[name], numeric, atol=2e-4, rtol=1e-3)


def test_the_bundled_model_names_the_last_capital_of_fresh_sequences():
    model = load_model("attention-toy")
    assert toy_accuracy(model, n=3000, seed=777) >= 0.99  # not the seeds it was trained or scored on
    assert model.generate("abCdeFgha=", 1).text == "F"
    assert model.generate("Hgfedcba=", 1).text == "H"  # far back, and at the very start


def test_the_equals_sign_attends_to_the_last_capital():
    model = load_model("attention-toy")
    for text, last in (("abCdeFgha=", 5), ("AbcdEfghB=", 8), ("Gabcdefgh=", 0)):
        row = model.run(text)["blocks.0.attn.hook_pattern"][0, -1]
        assert int(row.argmax()) == last and row[last] > 0.5, (text, row.round(2))


def test_its_task_trains_offline_and_is_listed_for_the_training_view():
    from llmviz.training.tasks import TASKS
    assert "attention-toy" in TASKS and task("attention-toy").offline
    (ids, targets), = toy_examples(1, np.random.default_rng(0))
    assert len(ids) == 10 and targets[:-1] == [-1] * 9 and targets[-1] >= 0


def test_its_walkthrough_is_its_own_chapter_and_follows_the_pattern():
    import re

    from llmviz.views.walkthrough import compile_chapters
    model = load_model("attention-toy")
    w = compile_chapters(model, model.run("AbcdEfghb="))
    assert [c["file"] for c in w["chapters"]] == ["16-one-attention-head.md"]
    steps = w["chapters"][0]["steps"]
    assert 3 <= len(steps) <= 6 and {"guess", "mask", "softmax", "edit"} <= {a["type"] for s in steps
                                                                                  for a in s["actions"]}
    text = " ".join(" ".join(re.sub("<[^>]+>", "", s["html"]).split()) for s in steps)
    assert "the model says E (100.00 %)" in text and "goes to position 4, which holds E" in text


def test_llmviz_train_writes_it_with_its_card(tmp_path):
    from click.testing import CliRunner

    from llmviz.serve.cli import main
    out = tmp_path / "toy.safetensors"
    r = CliRunner().invoke(main, ["train", "attention-toy", "--steps", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    model = load_model(str(out))
    assert model.config.arch == "attn-only" and model.generate("abCdeFgha=", 1).text in task("attention-toy").tokenizer.chars
    card = (tmp_path / "toy.safetensors.md").read_text()
    assert "`llmviz train attention-toy` (llmviz's numpy trainer), 20 steps of batch 64" in card
    r = CliRunner().invoke(main, ["train", "attention-toy", "--text", str(out), "--out", str(tmp_path / "b.safetensors")])
    assert r.exit_code != 0 and "--text is for shakespeare-char and bigram-char" in r.output


def test_the_training_view_trains_it_and_refuses_a_download_by_name():
    from conftest import local_client
    from llmviz.serve.server import create_app
    c = local_client(create_app([load_model("nano-gpt"), load_model("bigram-char"), load_model("attention-toy")]))
    r = c.post("/api/training", json={"model": "shakespeare-char"})  # (its text is a download; the bigram's counts are bundled)
    assert r.status_code in (409, 422) and r.json()["detail"].endswith("nano-gpt, neuron, digits-mlp, bigram-char, attention-toy"), r.text
    r = c.post("/api/training", json={"model": "attention-toy", "steps": 40, "every": 20, "speed": 1})
    assert r.status_code in (200, 201) and r.json()["model"] == "attention-toy" and r.json()["probe"] == "abCdeFgha="
    assert c.post("/api/training/control", json={"action": "stop"}).status_code == 200


def test_the_page_explains_a_cell_of_every_tensor_with_its_real_value():
    """explain.ts (the page's only copy of every explanation), run in node on this model's pass: each computed
    tensor's last cell shows the trace's value and its formula recomputes it."""
    from pagexplain import assert_explains_every_tensor

    assert_explains_every_tensor(load_model("attention-toy").run("abCdeFgha="))
