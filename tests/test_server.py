"""The HTTP API: typed endpoints, binary traces equal to the numpy forward pass, 4xx with a JSON detail."""

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load

from conftest import local_client
from llmviz.serve.server import MAX_BODY_BYTES, TRACE_MEDIA_TYPE, create_app


@pytest.fixture(scope="module")
def client():
    return local_client(create_app())


def test_models(client):
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert next(iter(models)) == "nano-gpt"
    assert models["nano-gpt"]["has_weights"] and models["nano-gpt"]["n_params"] == 85_728
    assert not models["gpt3"]["has_weights"] and models["gpt3"]["config"]["n_layer"] == 96
    assert models["gpt2"]["n_params"] == 124_439_808 and models["gpt2-xl"]["description"]


def test_graph(client, nano):
    g = client.get("/api/models/nano-gpt/graph").json()
    assert [t["name"] for t in g["tensors"]] == nano.graph.names()
    assert g["tokenizer"] == {"type": "chars", "chars": ["A", "B", "C"]}
    assert client.get("/api/models/gpt3/graph").json()["model"]["n_layer"] == 96


def test_trace_is_binary_and_equals_the_forward_pass(client, nano):
    r = client.post("/api/trace", json={"model": "nano-gpt", "text": "CBABBC"})
    assert r.status_code == 200 and r.headers["content-type"] == TRACE_MEDIA_TYPE
    header_len = struct.unpack("<Q", r.content[:8])[0]
    meta = json.loads(r.content[8:8 + header_len])["__metadata__"]
    assert json.loads(meta["tokens"]) == [2, 1, 0, 1, 1, 2] and json.loads(meta["predicted"])[-1] == "A"
    got, ref = load(r.content), nano.run("CBABBC")
    assert set(got) == set(ref.computed())  # activations and aggregates; no weights unless asked
    for name in got:
        np.testing.assert_array_equal(got[name], ref[name].astype(got[name].dtype), err_msg=name)


def test_trace_from_tokens_with_weights(client, nano):
    got = load(client.post("/api/trace", json={"tokens": [0, 1], "include_weights": True}).content)
    np.testing.assert_array_equal(got["blocks.0.attn.W_Q"], nano.weights["blocks.0.attn.W_Q"])
    assert got["probs"].shape == (2, 3)


def test_generate(client):
    r = client.post("/api/generate", json={"model": "nano-gpt", "text": "CBABBC"}).json()
    assert r["text"] == "ABBBCC" and r["tokens"] == [0, 1, 1, 1, 2, 2] and len(r["probs"]) == 6


@pytest.mark.parametrize("method,url,body,status,detail", [
    ("post", "/api/trace", {"model": "gpt5", "text": "A"}, 404, "unknown model 'gpt5'"),
    ("get", "/api/models/gpt5/graph", None, 404, "unknown model 'gpt5'"),
    ("post", "/api/trace", {"text": "CBD"}, 422, "unknown token 'D' at position 2"),
    ("post", "/api/trace", {"tokens": [7]}, 422, "token id 7 is out of range"),
    ("post", "/api/trace", {}, 422, "give exactly one of 'text' or 'tokens'"),
    ("post", "/api/trace", {"text": "A", "tokens": [0]}, 422, "give exactly one of 'text' or 'tokens'"),
    ("post", "/api/trace", {"text": "ABCABCABCABC"}, 413, "context holds at most 11"),
    ("post", "/api/trace", {"model": "gpt3", "tokens": [1]}, 409, "gpt3 is structure only"),
    ("post", "/api/generate", {"text": "AB", "temperature": -1}, 422, "temperature: Input should be greater than"),
    ("post", "/api/generate", {"text": "AB", "max_new_tokens": 10_000}, 422, "max_new_tokens"),
])
def test_bad_requests_get_a_readable_detail(client, method, url, body, status, detail):
    r = client.request(method.upper(), url, json=body)
    assert r.status_code == status
    assert detail in r.json()["detail"]


def test_body_size_is_limited(client):
    r = client.post("/api/trace", content=b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}",
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "at most" in r.json()["detail"]


def test_body_size_is_limited_without_content_length(client):
    def chunks():
        yield b'{"text": "'
        for _ in range(20):
            yield b"A" * 4096
        yield b'"}'
    r = client.post("/api/trace", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "at most" in r.json()["detail"]
    small = client.post("/api/trace", content=iter([b'{"text": ', b'"CBA"}']), headers={"content-type": "application/json"})
    assert small.status_code == 200


def test_openapi_documents_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/models", "/api/models/{name}/graph", "/api/trace", "/api/generate"} <= set(paths)


def test_front_end_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "<title>llmviz" in r.text
    assert client.get("/app.js").status_code == 200
