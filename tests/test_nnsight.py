"""The nnsight engine (io/nnsight_engine.py): tiny random GPT-2 and Llama models traced by nnsight locally, every tensor
it fetched equal to llmviz's numpy pass within 1e-4; the rest reported as not fetched, drawn as not fetched in the
scene, and the routes that need weights answered with a 4xx naming the engine. Remote use (NDIF) is not tested: no
network here."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("nnsight")

from hf_models import random_net  # noqa: E402
from llmviz import load_model  # noqa: E402
from llmviz.core.errors import EngineCannot, LlmvizError, NotFetched  # noqa: E402
from llmviz.io.nnsight_engine import load_nnsight  # noqa: E402
from reference import hf_gpt2_folder, train_bpe  # noqa: E402

pytestmark = pytest.mark.slow

LLAMA = dict(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2, max_position_embeddings=64,
             num_attention_heads=6, num_key_value_heads=2, attn_implementation="eager")
PROMPT = "the quick brown fox"


@pytest.fixture(scope="module", params=["gpt2", "llama-gqa"])
def pair(request, tmp_path_factory):
    """The same folder loaded by llmviz's numpy loader and by the nnsight engine."""
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "gpt2":
        bpe = train_bpe()
        hf_gpt2_folder(folder, bpe, vocab_size=bpe.get_vocab_size(), n_layer=2, n_head=4, n_embd=32, n_positions=32)
        prompt = PROMPT
    else:
        random_net("LlamaConfig", "LlamaForCausalLM", LLAMA).save_pretrained(folder)
        prompt = [int(i) for i in np.random.default_rng(1).integers(0, 97, 9)]  # (no tokenizer: token ids)
    return load_model(str(folder)), load_nnsight(str(folder)), prompt, folder


def test_every_fetched_tensor_equals_the_numpy_pass(pair):
    ref, nn, prompt, _ = pair
    mine, theirs = ref.run(prompt), nn.run(prompt)
    fetched = theirs.computed()
    n = ref.config.n_layer
    for i in range(n):  # what the issue names, in every layer
        for part in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
                     "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern"):
            assert f"blocks.{i}.{part}" in fetched
    assert {"ln_final.hook_out", "logits", "probs"} <= set(fetched)
    for name in fetched:
        assert theirs[name].shape == mine[name].shape, name
        np.testing.assert_allclose(theirs[name], mine[name], atol=1e-4, err_msg=name)
    assert theirs.predicted_ids == mine.predicted_ids
    np.testing.assert_allclose(theirs.next_probs, mine.next_probs, atol=1e-5)


def test_the_rest_is_not_fetched_and_never_recomputed(pair):
    ref, nn, prompt, _ = pair
    t = nn.run(prompt)
    assert nn.weights is None  # no numpy weights are kept
    missing = [n for n in ref.graph.names() if n not in t.fetched]
    assert "blocks.0.attn.hook_z" in missing and "blocks.0.attn.hook_attn_scores" in missing
    assert "embed.W_E" in missing  # weights stay with the engine
    for name in missing:
        with pytest.raises(NotFetched, match=f"{name} was not fetched by the nnsight engine"):
            t[name]
    with pytest.raises(KeyError):
        t["blocks.99.hook_resid_pre"]


def test_what_needs_weights_is_refused_by_name(pair):
    _, nn, prompt, _ = pair
    for call in (lambda: nn.gradients(prompt), lambda: nn.generate(prompt, 2), lambda: nn.require_weights(),
                 lambda: nn.run(prompt, edits=[{"tensor": "blocks.0.hook_resid_pre", "set": "zero"}])):
        with pytest.raises(EngineCannot, match=r"served by the nnsight engine.*--engine numpy"):
            call()


def scene_of(payload: bytes) -> dict:
    """The JSON scene in a scene payload's safetensors header."""
    n = int.from_bytes(payload[:8], "little")
    return json.loads(json.loads(payload[8:8 + n])["__metadata__"]["scene"])


def test_scene_marks_what_was_not_fetched(pair):
    from llmviz.views.scene import run_scene

    ref, nn, prompt, _ = pair
    ids = nn.encode(prompt)
    scene = scene_of(run_scene(nn, ids)[1])
    blocks = {b["tensor"]: b for b in scene["blocks"]}
    assert scene["model"]["engine"] == "nnsight"
    assert blocks["blocks.0.hook_resid_pre"]["fetched"] and blocks["blocks.0.hook_resid_pre"]["slabs"]
    assert not blocks["blocks.0.attn.hook_z"]["fetched"] and blocks["blocks.0.attn.hook_z"]["slabs"] is None
    assert not blocks["embed.W_E"]["fetched"]  # weights are not fetched either
    assert set(scene["not_fetched"]) == {b for b in blocks if not blocks[b]["fetched"]}
    # the same layout as the numpy engine's scene: structure drawn, every block in its place
    mine = scene_of(run_scene(ref, ids)[1])
    assert [(b["tensor"], b["x"], b["y"]) for b in mine["blocks"]] == [(b["tensor"], b["x"], b["y"]) for b in scene["blocks"]]
    assert all(b["fetched"] for b in mine["blocks"]) and mine["not_fetched"] is None


def test_served_scene_hover_cells_and_refusals(pair):
    from conftest import local_client
    from llmviz.serve.server import create_app

    ref, nn, prompt, _ = pair
    client = local_client(create_app([nn]))
    name = nn.name
    body = {"model": name, **({"text": prompt} if isinstance(prompt, str) else {"tokens": prompt})}
    r = client.post("/api/scene", json=body)
    assert r.status_code == 200, r.text
    ids = nn.encode(prompt)
    # hover: a fetched cell's numbers come back (the page explains it with its value and place)
    cells = client.post("/api/cells", json={"model": name, "tokens": ids, "slices": [
        {"tensor": "blocks.1.attn.hook_pattern", "at": {"head": 1, "pos": 2}}]})
    assert cells.status_code == 200, cells.text
    got = np.frombuffer(__import__("base64").b64decode(cells.json()["slices"][0]["values"]), "<f4")
    np.testing.assert_allclose(got, ref.run(prompt)["blocks.1.attn.hook_pattern"][1, 2], atol=1e-4)
    # a tensor the engine did not fetch, asked for anyway: a 4xx that says so
    r = client.post("/api/cells", json={"model": name, "tokens": ids, "slices": [{"tensor": "blocks.0.attn.hook_z"}]})
    assert r.status_code == 409 and "not fetched by the nnsight engine" in r.json()["detail"]
    # what needs weights or llmviz's own pass: 4xx, one line naming the engine
    for path, extra in (("/api/scene", {"gradients": True}), ("/api/chain", {"tensor": "logits", "index": [0, 0]}),
                        ("/api/generate", {"max_new_tokens": 2}),
                        ("/api/scene", {"edits": [{"tensor": "blocks.0.hook_resid_pre", "set": "zero"}]})):
        r = client.post(path, json={**body, **extra})
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        detail = r.json()["detail"]
        assert isinstance(detail, str) and "nnsight engine" in detail and "\n" not in detail, (path, detail)


def test_the_model_list_says_what_the_page_cannot_offer(pair):
    """/api/models: the engine, the note under the title, no precisions, and each feature it cannot offer with why; the
    walkthrough is told as structure, with a note that says so."""
    from conftest import local_client
    from llmviz.io.nnsight_engine import CANNOT, NOTE
    from llmviz.serve.server import create_app

    ref, nn, _, _ = pair
    client = local_client(create_app([nn, ref]))
    theirs, mine = client.get("/api/models").json()[:2]
    assert theirs["engine"] == "nnsight" and theirs["engine_note"] == NOTE and theirs["precisions"] == []
    assert set(theirs["cannot"]) == set(CANNOT) >= {"gradients", "generate", "edit"}
    for feature, why in theirs["cannot"].items():
        assert "served by the nnsight engine" in why and "--engine numpy" in why and CANNOT[feature] in why
    assert mine["engine"] == "numpy" and mine["engine_note"] is None and mine["cannot"] == {}
    assert client.get(f"/api/models/{nn.name}").json()["cannot"] == theirs["cannot"]
    walk = client.get("/api/walkthrough", params={"model": nn.name})
    assert walk.status_code == 200, walk.text
    assert walk.json()["note"] == f"{nn.name} is {nn.walk_note}" and walk.json()["chapters"]
    first = walk.json()["chapters"][0]["steps"][0]["html"]
    assert "Another engine, nnsight, ran it here" in first and "structure only" not in first


def test_unknown_architecture_and_missing_key_are_refused(tmp_path, monkeypatch):
    from llmviz.io.nnsight_engine import plan

    nano = load_model("nano-gpt")
    assert plan(nano.config)  # (nano-gpt is a GPT-2: mapped)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 8,
                                                      "vocab_size": 10, "n_positions": 8}))
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr("llmviz.io.nnsight_engine._api_key", lambda: None)
    with pytest.raises(LlmvizError, match="NDIF_API_KEY"):
        load_nnsight(str(tmp_path), remote=True)
