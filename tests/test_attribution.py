"""Direct logit attribution (views/attribution.py): the parts against a plain numpy reference written here, for
nano-gpt and tiny random models of every family the graph builds (LayerNorm and RMSNorm, grouped-query heads,
parallel blocks, Gemma's scaled embedding and 1 + w gain, biases or none); they add up to the model's logit; and
POST /api/attribution."""

import numpy as np
import pytest

from conftest import local_client
from llmviz.core.config import ModelConfig
from llmviz.core.errors import LlmvizError
from llmviz.core.graph import Graph
from llmviz.core.model import Model
from llmviz.serve.server import create_app
from llmviz.views.attribution import attribution

ROPE = dict(rope_theta=10000.0, bias=False, norm="rms", mlp="gated", activation="silu")
FAMILIES = {
    "gpt2": ModelConfig("gpt2-t", 2, 4, 32, 40, 32, tied_unembed=True),
    "gpt2-nobias": ModelConfig("gpt2-nobias", 2, 2, 16, 30, 32, bias=False, tied_unembed=False, unembed_bias=True),
    "llama-gqa": ModelConfig("llama-gqa", 2, 4, 32, 50, 32, arch="llama", n_kv_head=2, n_inner=48, tied_unembed=False,
                             **ROPE),
    "qwen2": ModelConfig("qwen2-t", 2, 4, 32, 50, 32, arch="llama", n_kv_head=1, n_inner=48, qkv_bias=True,
                         tied_unembed=True, **ROPE),
    "gemma": ModelConfig("gemma-t", 2, 2, 16, 30, 32, arch="llama", embed_scale=True, rms_offset=1.0, tied_unembed=True,
                         **{**ROPE, "activation": "gelu_pytorch_tanh"}),
    "neox-parallel": ModelConfig("neox-p", 2, 4, 32, 45, 32, arch="neox", activation="gelu", n_inner=40,
                                 tied_unembed=False, rope_theta=10000.0, rotary_fraction=0.25, parallel=True),
    "neox-sequential": ModelConfig("neox-s", 2, 4, 32, 45, 32, arch="neox", activation="gelu", n_inner=40,
                                   tied_unembed=False, rope_theta=10000.0),
    "phi": ModelConfig("phi-t", 2, 4, 32, 45, 32, arch="phi", n_kv_head=2, n_inner=40, tied_unembed=False,
                       unembed_bias=True, rope_theta=10000.0, rotary_fraction=0.5, parallel=True),
}


def tiny(cfg: ModelConfig, seed: int = 0) -> Model:
    graph, rng = Graph(cfg), np.random.default_rng(seed)
    return Model(cfg, {n: rng.normal(0, 0.3, graph[n].shape(graph.sizes(0))).astype(np.float32)
                       for n in graph.names("weight")}, None, source=cfg.name)


def reference(model: Model, trace, p: int, t: int) -> tuple[list[float], np.ndarray]:
    """The parts in layer order, in plain numpy from the trace's tensors and the weights, and their vectors' sum."""
    w = {k: np.asarray(v, np.float64) for k, v in model.weights.items()}
    cfg = model.config
    vectors = []  # every vector added into the residual stream, each read through the norm
    embed = "hook_embed_scaled" if cfg.embed_scale else "hook_embed"
    vectors.append(trace[embed][p])
    if "hook_pos_embed" in trace:
        vectors.append(trace["hook_pos_embed"][p])
    for L in range(cfg.n_layer):
        z = trace[f"blocks.{L}.attn.hook_z"][p].astype(np.float64)
        W_O = w[f"blocks.{L}.attn.W_O"]
        for h in range(cfg.n_head):
            vectors.append(z[h] @ W_O[h])
        if f"blocks.{L}.attn.b_O" in w:
            vectors.append(w[f"blocks.{L}.attn.b_O"])
        vectors.append(trace[f"blocks.{L}.hook_mlp_out"][p])
    sigma = float(trace["ln_final.hook_scale"][p])
    gain, col = w["ln_final.w"], w["unembed.W_U"][:, t]

    def read(v):
        v = np.asarray(v, np.float64)
        if cfg.norm == "layer":
            v = v - v.mean()
        return float((v / sigma * gain) @ col)

    parts = [read(v) for v in vectors]
    if "ln_final.b" in w:
        parts.append(float(w["ln_final.b"] @ col))
    if "unembed.b_U" in w:
        parts.append(float(w["unembed.b_U"][t]))
    return parts, np.sum([np.asarray(v, np.float64) for v in vectors], axis=0)


def check(model: Model, trace, p: int, t: int | None) -> dict:
    a = attribution(trace, p, t)
    t = a["token"]
    parts, stream = reference(model, trace, p, t)
    # the reference's vectors are the whole residual stream the final norm reads
    np.testing.assert_allclose(stream, trace[f"blocks.{model.config.n_layer - 1}.hook_resid_post"][p], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose([x["value"] for x in a["parts"]], parts, rtol=1e-6, atol=1e-6)
    logit = float(trace["logits"][p, t])
    assert a["logit"] == logit
    assert a["total"] == pytest.approx(logit, rel=1e-5, abs=1e-5)
    assert sum(x["value"] for x in a["parts"]) == pytest.approx(logit, rel=1e-5, abs=1e-5)
    return a


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_parts_equal_the_reference_and_add_up_to_the_logit(family):
    model = tiny(FAMILIES[family])
    ids = [int(i) for i in np.random.default_rng(1).integers(0, model.config.vocab_size, 9)]
    trace = model.run(ids)
    a = check(model, trace, 8, None)
    assert a["token"] == trace.predicted_ids[8] and a["prob"] == float(trace["probs"][8, a["token"]])
    check(model, trace, 3, 7)
    kinds = [x["kind"] for x in a["parts"]]
    cfg = model.config
    assert kinds.count("head") == cfg.n_layer * cfg.n_head and kinds.count("mlp") == cfg.n_layer
    assert a["norm"]["centred"] == (cfg.norm == "layer")
    # in layer order: the embeddings, then each layer's heads, (its bias) and MLP, then the final biases
    layers = [x["layer"] for x in a["parts"] if x["layer"] is not None]
    assert layers == sorted(layers) and kinds[0] == "embed"


def test_the_parts_name_their_tensors(nano):
    a = attribution(nano.run("CBABBC"))
    assert [x["label"] for x in a["parts"][:7]] == ["token embedding", "position embedding", "L0 head 0", "L0 head 1",
                                                   "L0 head 2", "L0 attention bias b_O", "L0 MLP"]
    assert [x["tensor"] for x in a["parts"][:7]] == ["hook_embed", "hook_pos_embed", *["blocks.0.attn.hook_z"] * 3,
                                                    "blocks.0.attn.b_O", "blocks.0.hook_mlp_out"]
    assert [x["head"] for x in a["parts"][2:5]] == [0, 1, 2]
    assert a["parts"][-1] == {"label": "final norm bias β", "kind": "bias", "layer": None, "head": None,
                              "tensor": "ln_final.b", "value": a["parts"][-1]["value"]}
    gemma = attribution(tiny(FAMILIES["gemma"]).run([1, 2, 3]))
    assert gemma["parts"][0]["tensor"] == "hook_embed_scaled" and gemma["parts"][0]["label"] == "token embedding × √C"


def test_nano_gpt_every_position_and_token(nano):
    trace = nano.run("CBABBCAB")
    for p in range(8):
        for t in range(3):
            check(nano, trace, p, t)
    a = attribution(trace)
    assert (a["position"], a["token_str"]) == (7, "B") and a["top"][0]["token"] == "B"
    np.testing.assert_allclose([x["prob"] for x in a["top"]], sorted(trace.next_probs, reverse=True), rtol=1e-6)


def test_a_trace_of_checkpoints_gives_the_same_parts(nano):
    whole = attribution(nano.run("CBABBC"), 2, 1)
    light = attribution(nano.run("CBABBC", keep=nano.graph.checkpoints()), 2, 1)
    assert light == whole


@pytest.mark.parametrize("position,token,message", [
    (6, None, "position 6 is out of range: the input has 6 tokens (positions 0 to 5)"),
    (-1, None, "position -1 is out of range"),
    (None, 3, "token 3 is out of range: nano-gpt has token ids 0 to 2"),
])
def test_out_of_range_is_refused(nano, position, token, message):
    with pytest.raises(LlmvizError, match=message.replace("(", r"\(").replace(")", r"\)")):
        attribution(nano.run("CBABBC"), position, token)


@pytest.fixture(scope="module")
def client(nano):
    return local_client(create_app([nano, tiny(FAMILIES["llama-gqa"])]))


def test_the_endpoint_answers_the_parts(client, nano):
    r = client.post("/api/attribution", json={"model": "nano-gpt", "text": "CBABBC", "position": 4, "token": 2})
    assert r.status_code == 200, r.text
    assert r.json() == attribution(nano.run("CBABBC"), 4, 2)
    r = client.post("/api/attribution", json={"model": "llama-gqa", "tokens": [3, 1, 4, 1, 5]})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["position"] == 4 and a["total"] == pytest.approx(a["logit"], rel=1e-5, abs=1e-5)
    assert not any(x["kind"] == "bias" for x in a["parts"])  # a Llama has no biases


@pytest.mark.parametrize("body,status,message", [
    ({"text": "CBABBC", "position": 6}, 422, "position 6 is out of range: the input has 6 tokens (positions 0 to 5)"),
    ({"text": "CBABBC", "token": 5}, 422, "token 5 is out of range: nano-gpt has token ids 0 to 2"),
    ({"text": "CBABBC", "token": "A"}, 422, "token"),
    ({"text": "CBABBD"}, 422, "unknown token 'D'"),
    ({"model": "gpt2", "tokens": [1, 2]}, 409, "gpt2 is structure only"),
])
def test_the_endpoint_refuses_with_a_detail(client, body, status, message):
    r = client.post("/api/attribution", json={"model": "nano-gpt", **body})
    assert r.status_code == status and message in r.json()["detail"], r.text
