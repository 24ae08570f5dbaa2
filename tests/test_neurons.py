"""The neuron view: a neuron's direct effect on the logits equals a plain numpy computation, its stored contexts are
the ones the shipped model computes, and the HTTP route answers, or refuses in one line."""

import numpy as np
import pytest

import llmviz
from conftest import local_client, random_model
from llmviz.core.errors import LlmvizError
from llmviz.serve.server import create_app
from llmviz.views.neurons import direct_effect, neuron, neuron_tensors, stored_contexts


@pytest.fixture(scope="module")
def shakespeare():
    return llmviz.load_model("shakespeare-char")


@pytest.fixture(scope="module")
def client(shakespeare):
    return local_client(create_app([llmviz.load_model("nano-gpt"), shakespeare]))


def reference_effect(model, layer, i):
    """W_out[i], centred (a LayerNorm subtracts the mean), times the final norm's gain, times W_U: in float64."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in model.weights.items()}
    v = w[f"blocks.{layer}.mlp.W_out"][i]
    return ((v - v.mean()) * w["ln_final.w"]) @ w["unembed.W_U"]


@pytest.mark.parametrize("which", ["nano", "random", "shakespeare"])
def test_direct_effect_equals_numpy(nano, shakespeare, which):
    model = {"nano": nano, "random": random_model(vocab_size=300, n_layer=3), "shakespeare": shakespeare}[which]
    for layer in range(model.config.n_layer):
        for i in (0, 7, model.config.d_mlp - 1):
            np.testing.assert_allclose(direct_effect(model, layer, i), reference_effect(model, layer, i), rtol=1e-6,
                                       atol=1e-9)


def test_top_boosted_and_suppressed_are_the_extremes_named_as_the_view_names_tokens(shakespeare):
    about = neuron(shakespeare, 2, 100)
    ref = reference_effect(shakespeare, 2, 100)
    order = np.argsort(-ref)
    assert [t["id"] for t in about["boosted"]] == list(order[:8])
    assert [t["id"] for t in about["suppressed"]] == list(order[::-1][:8])
    np.testing.assert_allclose([t["effect"] for t in about["boosted"]], ref[order[:8]], rtol=1e-6)
    assert [t["token"] for t in about["boosted"]] == shakespeare.token_strs(list(order[:8]))
    assert about["boosted"][0]["effect"] > 0 > about["suppressed"][0]["effect"]
    assert about["tensor"] == "blocks.2.mlp.hook_post"


def test_stored_contexts_are_what_the_shipped_model_computes(shakespeare):
    """Each stored activation is the neuron's hook_post at the marked character when the model reads the snippet from
    its first character to the mark: recomputed here with llmviz's numpy forward pass."""
    data = stored_contexts(shakespeare)
    assert data is not None and data["format"] == "llmviz-neurons-1"
    rng = np.random.default_rng(0)
    for layer in range(shakespeare.config.n_layer):
        for i in rng.choice(shakespeare.config.d_mlp, 3, replace=False):
            about = neuron(shakespeare, layer, int(i))
            contexts = about["contexts"]
            assert 1 <= len(contexts) <= 8
            acts = [c["activation"] for c in contexts]
            assert acts == sorted(acts, reverse=True)  # strongest first
            assert len({c["text"] for c in contexts}) == len(contexts)  # distinct snippets
            for c in contexts[:3]:
                assert c["mark"] == 20 and len(c["text"]) == 26
                trace = shakespeare.run(c["text"][:c["mark"] + 1])
                got = trace[f"blocks.{layer}.mlp.hook_post"][-1, i]
                assert got == pytest.approx(c["activation"], abs=2e-3 + 2e-3 * abs(c["activation"]))


def test_a_model_without_stored_contexts_says_so(nano):
    about = neuron(nano, 0, 5)
    assert about["contexts"] is None
    assert "nano-gpt has no stored contexts" in about["contexts_note"]
    assert len(about["boosted"]) == len(about["suppressed"]) == 3  # nano-gpt's whole vocabulary, A B C


def test_out_of_range_is_refused_naming_the_range(nano):
    with pytest.raises(LlmvizError, match="layer 3 is out of range: nano-gpt has layers 0 to 2"):
        neuron(nano, 3, 0)
    with pytest.raises(LlmvizError, match="neuron 192 is out of range: each MLP of nano-gpt has neurons 0 to 191"):
        neuron(nano, 0, 192)


def test_neuron_tensors_are_the_mlps_per_neuron_tensors(nano):
    assert neuron_tensors(nano.graph) == [f"blocks.{L}.mlp.{t}" for L in range(3)
                                          for t in ("W_in", "b_in", "hook_pre", "hook_post", "W_out")]


def test_route_answers_as_the_function(client, shakespeare):
    r = client.get("/api/models/shakespeare-char/neurons/1/42")
    assert r.status_code == 200, r.text
    body = r.json()
    want = neuron(shakespeare, 1, 42)
    assert body["contexts"] == want["contexts"] and body["boosted"] == want["boosted"]
    assert body["suppressed"] == want["suppressed"] and body["contexts_note"] == want["contexts_note"]
    listing = client.get("/api/models/shakespeare-char/neurons").json()
    assert listing["axis"] == "d_mlp" and listing["contexts"] is True and listing["d_mlp"] == 512
    assert "blocks.3.mlp.hook_post" in listing["tensors"] and "blocks.3.mlp.hook_pre" in listing["tensors"]
    assert client.get("/api/models/nano-gpt/neurons").json()["contexts"] is False
    assert client.get("/api/models/nano-gpt/neurons/0/0").json()["contexts"] is None


@pytest.mark.parametrize("url, status, detail", [
    ("/api/models/shakespeare-char/neurons/4/0", 422, "layer 4 is out of range: shakespeare-char has layers 0 to 3"),
    ("/api/models/shakespeare-char/neurons/0/512", 422, "neuron 512 is out of range"),
    ("/api/models/shakespeare-char/neurons/-1/0", 422, "layer -1 is out of range"),
    ("/api/models/nope/neurons/0/0", 404, "unknown model 'nope'"),
    ("/api/models/gpt2/neurons/0/0", 409, "structure only"),
    ("/api/models/shakespeare-char/neurons/x/0", 422, "layer"),
])
def test_route_refusals_say_why(client, url, status, detail):
    r = client.get(url)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]
