"""The server under real use: bad values, strict types, the Host check, memory budgets, the worker pool,
computations that stop when their client goes away, and request bodies that never finish."""

import base64
import json
import re
import socket
import threading
import time

import numpy as np
import pytest
from safetensors.numpy import load

from conftest import local_client, random_model
from llmviz.core.config import ModelConfig
from llmviz.core.model import Model, Stopped
from llmviz.serve.server import Limits, create_app
from llmviz.serve.workers import Recent
from serving import serving
from waiting import poll


@pytest.fixture(scope="module")
def client(nano):
    return local_client(create_app([nano]))


# Bad values get a 422 that names the field, or a defined meaning

@pytest.mark.parametrize("body,field", [
    ({"text": "AB", "seed": -1}, "seed"),
    ({"text": "AB", "top_p": 0}, "top_p"),
    ({"text": "AB", "top_k": 0}, "top_k"),
    ({"tokens": ["1"]}, "tokens.0"),
    ({"tokens": [True]}, "tokens.0"),
    ({"tokens": [1.0]}, "tokens.0"),
    ({"text": 5}, "text"),
    ({"text": "AB", "temprature": 1}, "temprature: Extra inputs are not permitted"),
])
def test_bad_generate_values_name_the_field(client, body, field):
    r = client.post("/api/generate", json=body)
    assert r.status_code == 422 and r.json()["detail"].startswith(field)


def test_nan_temperature_is_refused(client):
    r = client.post("/api/generate", content=b'{"text": "AB", "temperature": NaN}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "temperature" in r.json()["detail"]


def test_include_weights_must_be_a_boolean(client):
    r = client.post("/api/trace", json={"text": "AB", "include_weights": "yes"})
    assert r.status_code == 422 and r.json()["detail"].startswith("include_weights")


def test_a_tiny_temperature_is_greedy(client):
    r = client.post("/api/generate", json={"text": "CBABBC", "temperature": 5e-324, "seed": 1})
    assert r.status_code == 200 and r.json()["text"] == "ABBBCC"


def test_seeded_sampling_repeats(client):
    body = {"text": "CAB", "max_new_tokens": 8, "temperature": 1.5, "seed": 2**63 - 1}
    first = client.post("/api/generate", json=body).json()["tokens"]
    assert client.post("/api/generate", json=body).json()["tokens"] == first


def test_nan_weights_give_a_clear_error_not_nan_probabilities():
    bad = random_model("broken", vocab_size=50, n_ctx=16)
    bad.weights["blocks.0.mlp.W_in"][0, 0] = np.nan
    c = local_client(create_app([bad]))
    r = c.post("/api/generate", json={"model": "broken", "tokens": [1, 2], "max_new_tokens": 1})
    assert r.status_code == 422 and "not finite numbers" in r.json()["detail"]


def test_numeric_trouble_is_a_422_naming_the_tensor(nano):
    from llmviz.io.loading import load_model

    hot = load_model("nano-gpt")
    hot.weights["blocks.0.ln2.b"][:] = 1e6
    hot.weights["blocks.0.mlp.W_in"][:] = 1e6
    c = local_client(create_app([hot]))
    for path, body in [("/api/generate", {"text": "CBA", "max_new_tokens": 1}), ("/api/scene", {"text": "CBA"}),
                       ("/api/cells", {"text": "CBA", "slices": [{"tensor": "probs", "at": {"pos": 0}}]})]:
        r = c.post(path, json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith(
            "computing blocks.0.mlp.hook_post went out of float32's range (overflow encountered in multiply)"), path


def test_an_unexpected_error_is_a_json_500_that_keeps_the_connection(nano, monkeypatch):
    c = local_client(create_app([nano]), raise_server_exceptions=False)
    import llmviz.serve.routes.passes

    def boom(*a, **k):
        raise RuntimeError("secret internal state /home/someone")

    monkeypatch.setattr(llmviz.serve.routes.passes, "cells", boom)
    r = c.post("/api/cells", json={"text": "AB", "slices": [{"tensor": "probs"}]})
    assert r.status_code == 500 and r.json() == {"detail": "internal error: the server log has the details"}
    assert c.get("/api/models").status_code == 200


# The Host header and what the page may learn

@pytest.mark.parametrize("host,status", [
    ("evil.example", 400), ("evil.example:8765", 400), ("127.0.0.1.nip.io", 400),
    ("localhost:8765", 200), ("127.0.0.1", 200), ("[::1]:8765", 200), ("LOCALHOST", 200),
])
def test_host_header_is_checked(client, host, status):
    r = client.get("/api/models", headers={"host": host})
    assert r.status_code == status
    if status == 400:
        assert "unexpected Host header" in r.json()["detail"]


def test_allowed_hosts(nano):
    c = local_client(create_app([nano], hosts=["viz.lan"]))
    assert c.get("/api/models", headers={"host": "viz.lan:8765"}).status_code == 200
    assert c.get("/api/models", headers={"host": "other.lan"}).status_code == 400
    anyone = local_client(create_app([nano], hosts=["*"]))
    assert anyone.get("/api/models", headers={"host": "other.lan"}).status_code == 200


def test_no_absolute_paths_reach_the_page(tmp_path):
    import llmviz
    from llmviz.io.loading import save_weights

    path = tmp_path / "mine.safetensors"
    save_weights(llmviz.load_model("nano-gpt"), path)
    model = llmviz.load_model(str(path))
    c = local_client(create_app([model, llmviz.load_model("nano-gpt")]))
    models = c.get("/api/models")
    assert str(tmp_path) not in models.text and "/site-packages/" not in models.text
    assert [m["source"] for m in models.json()][:2] == ["mine.safetensors", "bundled with llmviz"]
    assert str(tmp_path) not in c.get(f"/api/models/{model.name}/graph").text
    scene = c.post("/api/scene", json={"model": model.name, "text": "AB"})
    assert scene.status_code == 200 and str(tmp_path).encode() not in scene.content


def test_docs_are_offline(client):
    assert client.get("/docs").status_code == 404  # Swagger UI would come from a CDN
    assert "/api/trace" in client.get("/openapi.json").json()["paths"]


# Memory: budgets and caches in bytes

@pytest.fixture(scope="module")
def wide():
    return random_model()


def test_a_trace_over_the_budget_is_413_with_the_size_and_the_alternatives(wide):
    c = local_client(create_app([wide], Limits(request_mb=16)))
    r = c.post("/api/trace", json={"model": "wide", "tokens": list(range(512))})
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert "MiB" in detail and "512 tokens" in detail and "llmviz trace --out" in detail and "--request-mb" in detail
    assert "fewer tensors" in detail


def test_fewer_tensors_fit_the_budget(wide):
    c = local_client(create_app([wide], Limits(request_mb=16)))
    r = c.post("/api/trace", json={"model": "wide", "tokens": list(range(512)),
                                   "tensors": ["blocks.1.attn.hook_q", "blocks.0.ln1.*"]})
    assert r.status_code == 200
    got, ref = load(r.content), wide.run(list(range(512)))
    assert set(got) == {"blocks.1.attn.hook_q", "blocks.0.ln1.hook_mean", "blocks.0.ln1.hook_scale",
                        "blocks.0.ln1.hook_normalized", "blocks.0.ln1.hook_out"}
    for name in got:
        np.testing.assert_array_equal(got[name], ref[name])
    bad = c.post("/api/trace", json={"model": "wide", "tokens": [1], "tensors": ["blocks.9.*"]})
    assert bad.status_code == 422 and "'blocks.9.*' names no tensor" in bad.json()["detail"]


def test_cells_over_the_budget_are_413_and_a_row_fits(wide):
    """The numbers behind a cell come in slices; a slice as big as a whole matrix is refused with its size, before any
    pass is computed, and the row or column an explanation reads is answered."""
    c = local_client(create_app([wide], Limits(request_mb=1)))
    whole = [{"tensor": "embed.W_E"}] * 2  # 5,000 × 64 float32, twice: 3.3 MiB in base64
    r = c.post("/api/cells", json={"model": "wide", "tokens": [1, 2], "slices": whole})
    assert r.status_code == 413, r.text
    assert "these 2 slices are 3 MiB" in r.json()["detail"] and "fix more of their axes" in r.json()["detail"]
    assert c.app.state.served.cache.get(("trace", wide, (1, 2))) is None  # refused before the pass
    row = c.post("/api/cells", json={"model": "wide", "tokens": [1, 2],
                                     "slices": [{"tensor": "embed.W_E", "at": {"vocab": 2}}]})
    assert row.status_code == 200
    got = np.frombuffer(base64.b64decode(row.json()["slices"][0]["values"]), "<f4")
    np.testing.assert_array_equal(got, wide.weights["embed.W_E"][2])
    bad = c.post("/api/cells", json={"model": "wide", "tokens": [1, 2], "slices": [{"tensor": "embed.W_E", "at": {"pos": 0}}]})
    assert bad.status_code == 422 and bad.json()["detail"] == "embed.W_E has no axis 'pos': its axes are vocab, d_model"


def test_a_scene_over_the_budget_is_413_before_computing(wide):
    c = local_client(create_app([wide], Limits(request_mb=16)))
    r = c.post("/api/scene", json={"model": "wide", "tokens": list(range(512))})
    most = int(re.search(r"give at most ([\d,]+) tokens$", r.json()["detail"]).group(1).replace(",", ""))
    assert r.status_code == 413 and wide.pass_bytes(most) <= 16 * 2**20 < wide.pass_bytes(most + 1)  # the longest that fits
    assert c.post("/api/scene", json={"model": "wide", "tokens": list(range(most))}).status_code == 200


def test_cells_recompute_a_layer_from_the_kept_residual_stream(wide):
    """The numbers a hover reads (POST /api/cells) of any layer come from the kept residual stream."""
    c = local_client(create_app([wide]))
    tokens = list(range(40))
    ref = wide.run(tokens)
    for tensor, index in [("blocks.1.attn.hook_pattern", [2, 30, 7]), ("probs", [39, 17]),
                          ("blocks.0.mlp.hook_post", [5, 100]), ("blocks.1.ln2.hook_scale", [9])]:
        at = dict(zip(wide.graph[tensor].axes, index))
        r = c.post("/api/cells", json={"model": "wide", "tokens": tokens, "slices": [{"tensor": tensor, "at": at}]})
        assert r.status_code == 200
        value = np.frombuffer(base64.b64decode(r.json()["slices"][0]["values"]), "<f4")
        assert value.tolist() == [pytest.approx(float(ref[tensor][tuple(index)]), rel=1e-6)]
    trace = c.app.state.served.cache.get(("trace", wide, tuple(tokens)))
    kept = set(trace.kept)
    assert kept == set(wide.graph.checkpoints())  # the residual stream only
    assert trace.nbytes < ref.nbytes / 5


def test_the_cache_is_bounded_in_bytes(wide):
    app = create_app([wide], Limits(cache_mb=1))
    c = local_client(app)
    for start in range(0, 400, 100):
        assert c.post("/api/scene", json={"model": "wide", "tokens": list(range(start, start + 100))}).status_code == 200
    cache = app.state.served.cache
    assert 0 < cache.used <= 2**20 and cache.used == sum(size for _, size in cache.items.values())


def test_recent_evicts_by_bytes():
    r = Recent(100)
    r.put("a", "A", 40)
    r.put("b", "B", 40)
    r.get("a")  # a is now the most recent
    r.put("c", "C", 40)
    assert r.get("b") is None and r.get("a") == "A" and r.get("c") == "C" and r.used == 80
    r.put("huge", "H", 101)
    assert r.get("huge") is None and r.used == 80


# The worker pool, disconnects and unfinished bodies, on a real server

class Slow(Model):
    """nano-gpt, but every next-token step a request makes waits ~5 s unless told to stop (and records that it was)."""

    def __init__(self, model):
        super().__init__(model.config, model.weights, model.tokenizer, "slow")
        self.stopped = threading.Event()
        self.started = threading.Event()

    def step(self, cache, new, keep=None, visit=None, stop=None):
        if stop is None:  # (the server's warm-up compiling the walkthrough, not a request: at full speed)
            return super().step(cache, new, keep, visit, stop)
        self.started.set()
        if poll(lambda: stop is not None and stop(), 5.0, 0.05):  # ~5 s of work, looking whether to stop as it goes
            self.stopped.set()
            raise Stopped("stopped")
        return super().step(cache, new, keep, visit, stop)


@pytest.fixture
def slow_server(nano):
    slow = Slow(nano)
    slow.config = ModelConfig.from_dict({**nano.config.to_dict(), "name": "slow"})
    with serving(create_app([slow], Limits(workers=1, queue=0, body_timeout=1.0)), "the slow model's server") as port:
        yield slow, port


def http(port, raw: bytes, wait=5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(raw)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def post(path, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data


def test_a_full_queue_gets_503_with_retry_after_and_a_gone_client_stops_generation(slow_server):
    slow, port = slow_server
    first = socket.create_connection(("127.0.0.1", port))
    first.sendall(post("/api/generate", {"model": "slow", "text": "CBABBC", "max_new_tokens": 5}))
    assert slow.started.wait(5)
    busy = http(port, post("/api/generate", {"model": "slow", "text": "AB", "max_new_tokens": 1}))
    assert busy.startswith(b"HTTP/1.1 503") and b"retry-after: 2" in busy.lower()
    assert b"the server is busy" in busy
    first.close()  # the client goes away: its generation stops at the next check
    assert slow.stopped.wait(3)
    ok = http(port, post("/api/models/x", {}))  # the worker is free again: the server answers at once
    assert ok.startswith(b"HTTP/1.1 405") or ok.startswith(b"HTTP/1.1 404")


@pytest.mark.parametrize("body", [
    b"Content-Length: 100\r\n\r\n" + b'{"text": "AB"',  # a Content-Length that never arrives
    b"Transfer-Encoding: chunked\r\n\r\n" + b"20\r\n" + b'{"text": ',  # a chunk cut short
])
def test_an_unfinished_body_times_out_and_the_connection_closes(slow_server, body):
    _, port = slow_server
    start = time.perf_counter()
    out = http(port, b"POST /api/trace HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + body)
    assert out.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in out
    assert time.perf_counter() - start < 4  # answered, and closed (recv saw the end)
