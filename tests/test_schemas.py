"""The API's declared bodies (serve/schemas.py) are what the server really sends: real answers validate against
them with no undeclared field, so the front-end's types, generated from the same schema, read them right."""

import json
import struct

import numpy as np
import pytest
from pydantic import BaseModel

from conftest import local_client, random_model
from llmviz.core.config import ModelConfig
from llmviz.core.graph import Graph
from llmviz.core.model import Model
from llmviz.io.loading import load_model
from llmviz.serve import schemas
from llmviz.serve.server import create_app, schema


def random_llama() -> Model:
    cfg = ModelConfig("tiny-llama", n_layer=2, n_head=4, n_embd=32, vocab_size=40, n_ctx=32, arch="llama", norm="rms",
                      mlp="gated", n_kv_head=2, activation="silu", tied_unembed=False, n_inner=48,
                      rope_theta=10000.0)
    graph, rng = Graph(cfg), np.random.default_rng(0)
    weights = {n: rng.normal(0, 0.2, graph[n].shape(graph.sizes(0))).astype(np.float32) for n in graph.names("weight")}
    return Model(cfg, weights, None, source="tiny-llama")


@pytest.fixture(scope="module")
def client():
    return local_client(create_app([load_model("nano-gpt"), random_model("wide", vocab_size=300), random_llama()]))


def valid(model: type[BaseModel], answer) -> BaseModel:
    return model.model_validate(answer)


@pytest.mark.parametrize("body", [
    {"model": "nano-gpt", "text": "CBABBC"},
    {"model": "nano-gpt", "text": "CBABBCAB", "past": 7},
    {"model": "nano-gpt", "text": "CBABBC", "edits": [{"tensor": "blocks.0.attn.hook_z", "where": {"head": 1}, "set": "zero"}]},
    {"model": "nano-gpt", "text": "CBABBC", "gradients": True},
    {"model": "wide", "tokens": [5, 7, 9]},
    {"model": "tiny-llama", "tokens": [1, 2, 3, 4]},
    {"model": "gpt2", "n_pos": 4},
    {"model": "gpt3", "n_pos": 4, "tower": True},
])
def test_every_scene_is_a_scene_info(client, body):
    r = client.post("/api/scene", json=body)
    assert r.status_code == 200, r.text
    n = struct.unpack("<Q", r.content[:8])[0]
    info = valid(schemas.SceneInfo, json.loads(json.loads(r.content[8:8 + n])["__metadata__"]["scene"]))
    assert info.blocks and info.model.name == body["model"]
    assert (info.prediction is None) == (body["model"] in ("gpt2", "gpt3"))


def test_the_json_answers_are_their_declared_models(client):
    models = client.get("/api/models").json()
    assert [valid(schemas.ModelInfo, m).name for m in models][:3] == ["nano-gpt", "wide", "tiny-llama"]
    for name in ("nano-gpt", "tiny-llama", "gpt2"):
        graph = valid(schemas.GraphJson, client.get(f"/api/models/{name}/graph").json())
        assert any(t.kind == "weight" for t in graph.tensors)
    for name in ("nano-gpt", "tiny-llama"):  # every action of every step, each of its declared kind
        walk = valid(schemas.Walk, client.get("/api/walkthrough", params={"model": name}).json())
        kinds = {a.type for c in walk.chapters for s in c.steps for a in s.actions}
        assert {"frame", "highlight", "dot", "tooltip", "softmax", "code"} <= kinds, kinds
    assert valid(schemas.Walk, client.get("/api/walkthrough", params={"model": "gpt2"}).json()).note
    lens = valid(schemas.Lens, client.post("/api/lens", json={"text": "CBABBC", "k": 2}).json())
    assert len(lens.top[0][0]) == 2
    split = valid(schemas.Attribution, client.post("/api/attribution", json={"model": "tiny-llama", "tokens": [1, 2, 3]}).json())
    assert len(split.parts) == 1 + 2 * (4 + 1)  # the embedding, then each layer's four heads and its MLP
    sweep = valid(schemas.Patching, client.post("/api/patching", json={"clean": "CBABBC", "corrupted": "CBCBBC"}).json())
    assert len(sweep.resid.probs) == 4 and len(sweep.heads.probs[0]) == 3
    tree = valid(schemas.BranchRoot, client.post("/api/branches", json={"text": "CBABBC", "k": 2, "depth": 2}).json())
    assert len(tree.children) == 2 and len(tree.children[0].children) == 2
    cells = valid(schemas.CellsResponse, client.post("/api/cells", json={
        "text": "CBABBC", "slices": [{"tensor": "blocks.0.attn.hook_pattern", "at": {"head": 0}}]}).json())
    assert cells.slices[0].shape == [6, 6]
    edits = [{"tensor": "blocks.0.attn.hook_z", "where": {"head": 1}, "set": "zero"},
             {"tensor": "blocks.1.hook_resid_post", "where": {"pos": [1, 2]}, "set": {"from_tokens": [1, 2, 3, 4]}},
             {"tensor": "blocks.0.mlp.hook_post", "set": {"scale": 2}}, {"tensor": "logits", "set": "mean"}]
    edited = valid(schemas.InterveneResponse, client.post("/api/intervene", json={
        "model": "tiny-llama", "tokens": [1, 2, 3, 5], "edits": edits}).json())
    assert len(edited.probs) == len(edited.clean_probs) == 4 and edited.changed["logits"] > 0
    assert [e.cells for e in edited.edits] == [4 * 8, 2 * 32, 4 * 48, 4 * 40]
    gen = valid(schemas.GenerateResponse, client.post("/api/generate", json={"text": "CBABBC", "max_new_tokens": 2}).json())
    assert len(gen.steps) == 2
    state = client.post("/api/sessions", json={"text": "CBABBC"}).json()
    state = valid(schemas.SessionState, client.post(f"/api/sessions/{state['session']}/step", json={"count": 1}).json())
    assert state.cache.positions == 6 and len(state.steps) == 1


def test_the_schema_declares_the_scene_and_every_route_answers_a_declared_body():
    s = schema()
    assert "SceneInfo" in s["components"]["schemas"] and "BlockInfo" in s["components"]["schemas"]
    for path, ops in s["paths"].items():
        for method, op in ops.items():
            ok = next((op["responses"][c] for c in ("200", "201", "204") if c in op["responses"]), None)
            assert ok is not None, f"{method} {path} declares no success answer"
            content = ok.get("content", {})
            json_body = content.get("application/json", {}).get("schema")
            binary = [t for t in content if t != "application/json"]
            assert json_body not in (None, {}) or binary or "204" in op["responses"], \
                f"{method.upper()} {path} answers JSON with no declared model"
