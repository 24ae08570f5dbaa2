"""The embedding map: PCA of W_E's and W_pos's rows against a plain numpy reference (the eigendecomposition of the
covariance), its labels, caps and notes, the HTTP route, and the scene's blocks that say they have a map."""

import json
import struct

import numpy as np
import pytest

from conftest import local_client, random_model
from llmviz.core.config import ModelConfig
from llmviz.core.graph import Graph
from llmviz.core.model import Model
from llmviz.io.tokenizer import CharTokenizer
from llmviz.serve import schemas
from llmviz.serve.server import create_app
from llmviz.views.embedmap import MAX_POINTS, VECTOR_SHOWN, components, embedding_map, mapped


def reference(X: np.ndarray):
    """PCA the textbook way: the covariance's eigenvectors, largest eigenvalue first, each signed so that its loading
    of largest magnitude is positive; the rows' coordinates on the first two; each one's share of the variance."""
    X = X.astype(np.float64)
    w, V = np.linalg.eigh(np.cov(X, rowvar=False, bias=True))
    w, V = w[::-1], V[:, ::-1]
    top = V[:, :2].T.copy()
    for c in top:
        if c[np.argmax(np.abs(c))] < 0:
            c *= -1
    return (X - X.mean(axis=0)) @ top.T, w[:2] / w.sum()


def tiny_llama():
    cfg = ModelConfig("tiny-llama", n_layer=1, n_head=4, n_kv_head=2, n_embd=32, vocab_size=50, n_ctx=32, arch="llama",
                      norm="rms", mlp="gated", activation="silu", bias=False, rope_theta=10000.0, n_inner=64,
                      tied_unembed=False)
    graph, rng = Graph(cfg), np.random.default_rng(0)
    return Model(cfg, {n: rng.normal(0, 0.1, graph[n].shape(graph.sizes(0))).astype(np.float32)
                       for n in graph.names("weight")}, None, source="tiny-llama")


def coords(m: dict) -> np.ndarray:
    return np.array([[p["x"], p["y"]] for p in m["points"]])


def by_which(result: dict) -> dict:
    return {m["which"]: m for m in result["maps"]}


@pytest.mark.parametrize("whole", [True, False], ids=["svd", "scatter"])
@pytest.mark.parametrize("shape", [(3, 48), (11, 48), (200, 16), (5000, 64), (30, 120)])
def test_components_equal_the_covariance_eigenvectors(shape, whole):
    # Rows with a clear spread along a few directions (distinct eigenvalues), as trained embeddings have.
    rng = np.random.default_rng(shape[0])
    X = (rng.normal(size=shape) * np.linspace(3, 0.1, shape[1])).astype(np.float32) @ np.linalg.qr(
        rng.normal(size=(shape[1], shape[1])))[0].astype(np.float32)
    mean, top, fractions = components(X, svd_cells=10**9 if whole else 0)
    want_xy, want_f = reference(X)
    assert np.allclose((X - mean) @ top.T, want_xy, atol=1e-5)
    assert np.allclose(fractions, want_f, atol=1e-5)
    assert 0 <= fractions[1] <= fractions[0] and fractions.sum() <= 1 + 1e-12
    assert np.allclose(top @ top.T, np.eye(2), atol=1e-9)  # two orthonormal directions
    for c in top:
        assert c[np.argmax(np.abs(c))] > 0  # the sign convention: the largest loading is positive


def test_nano_gpt_maps_its_three_letters_and_eleven_positions(nano):
    maps = by_which(embedding_map(nano))
    tokens, positions = maps["tokens"], maps["positions"]
    assert [p["label"] for p in tokens["points"]] == ["A", "B", "C"] == nano.token_strs([0, 1, 2])
    assert [p["label"] for p in positions["points"]] == [str(i) for i in range(11)]
    for m, name in ((tokens, "embed.W_E"), (positions, "pos_embed.W_pos")):
        W = nano.weights[name]
        assert m["tensor"] == name and m["rows"] == len(W) and m["d_model"] == 48
        xy, f = reference(W)
        assert np.allclose(coords(m), xy, atol=1e-5) and np.allclose(m["variance"], f, atol=1e-5)
        assert sum(m["variance"]) <= 1 + 1e-12
        for p in m["points"]:
            assert np.array_equal(np.array(p["vector"], np.float32), W[p["id"]])  # the row itself, float32 exact
            assert p["norm"] == pytest.approx(float(np.linalg.norm(W[p["id"]].astype(np.float64))), rel=1e-9)
        assert m["scale"] == pytest.approx(float(np.abs(W).max()))
    # Three points always lie in one plane: two components hold all of their variance, and the map says why.
    assert sum(tokens["variance"]) == pytest.approx(1.0, abs=1e-9)
    assert tokens["note"] == "three points always lie in one plane: the two components keep all of their variance"
    assert positions["note"] is None
    assert embedding_map(nano)["note"] is None


def test_on_shakespeare_char_characters_used_alike_land_near_each_other():
    """The second bundled model's map: the vowels gather, and the punctuation marks sit together, away from the
    letters (the two components keep little of the variance, and the map says how little)."""
    from llmviz import load_model

    tokens = embedding_map(load_model("shakespeare-char"))["maps"][0]
    at = {p["label"]: np.array([p["x"], p["y"]]) for p in tokens["points"]}

    def spread(chars):  # the mean distance to the group's centre
        xs = np.array([at[c] for c in chars])
        return float(np.linalg.norm(xs - xs.mean(0), axis=1).mean())

    def centre(chars):
        return np.array([at[c] for c in chars]).mean(0)

    everyone, consonants, marks = list(at), "bcdfghjklmnpqrstvwxyz", "!,.:;?"
    assert spread("aeiou") < 0.6 * spread(everyone)
    assert spread(marks) < 0.4 * spread(everyone)
    assert np.linalg.norm(centre(marks) - centre(consonants)) > 1.5 * spread(everyone)
    assert np.linalg.norm(centre("aeiou") - centre(consonants)) > spread(everyone)
    assert 0 < sum(tokens["variance"]) < 0.5


def test_a_large_vocabulary_shows_its_lowest_ids_and_the_start_of_each_vector():
    model = random_model("wide", n_embd=96, vocab_size=5000, n_ctx=64, n_layer=1)
    maps = by_which(embedding_map(model))
    tokens = maps["tokens"]
    W = model.weights["embed.W_E"]
    assert [p["id"] for p in tokens["points"]] == list(range(MAX_POINTS)) and tokens["rows"] == 5000
    assert tokens["note"] == ("showing the 2,000 lowest token ids of 5,000 (the components are those of all 5,000 rows); "
                              f"each vector: its first {VECTOR_SHOWN} of 96 numbers, and its length")
    xy, f = reference(W)  # the components of every row, not only of those shown
    assert np.allclose(coords(tokens), xy[:MAX_POINTS], atol=1e-5) and np.allclose(tokens["variance"], f, atol=1e-5)
    p = tokens["points"][1234]
    assert np.array_equal(np.array(p["vector"], np.float32), W[1234, :VECTOR_SHOWN])
    assert p["norm"] == pytest.approx(float(np.linalg.norm(W[1234].astype(np.float64))), rel=1e-9)
    assert [p["label"] for p in tokens["points"][:3]] == ["0", "1", "2"]  # no tokenizer: ids
    assert maps["positions"]["note"] == f"each vector: its first {VECTOR_SHOWN} of 96 numbers, and its length"


def test_labels_are_the_tokens_as_the_view_shows_them():
    cfg = ModelConfig("chars", n_layer=1, n_head=1, n_embd=8, vocab_size=4, n_ctx=4)
    graph, rng = Graph(cfg), np.random.default_rng(1)
    weights = {n: rng.normal(0, 0.1, graph[n].shape(graph.sizes(0))).astype(np.float32) for n in graph.names("weight")}
    model = Model(cfg, weights, CharTokenizer(["a", " ", "\n", "b"]), source="chars")
    assert [p["label"] for p in by_which(embedding_map(model))["tokens"]["points"]] == ["a", "␣", "↵", "b"]


def test_a_rotary_model_has_no_position_map_and_says_why():
    result = embedding_map(tiny_llama())
    assert [m["which"] for m in result["maps"]] == ["tokens"]
    assert "no position embedding" in result["note"] and "rotary" in result["note"]


def test_degenerate_matrices_have_no_direction_and_no_variance():
    _, top, f = components(np.ones((5, 4), np.float32))  # every row the same
    assert np.array_equal(top, np.zeros((2, 4))) and np.array_equal(f, [0, 0])
    _, top, f = components(np.arange(6, dtype=np.float32)[:, None])  # one column: one direction
    assert np.array_equal(top, [[1.0], [0.0]]) and np.allclose(f, [1, 0])


def test_which_blocks_have_a_map():
    assert mapped(Graph(ModelConfig("g", n_layer=1, n_head=1, n_embd=8, vocab_size=5, n_ctx=4))) == {
        "embed.W_E": "tokens", "pos_embed.W_pos": "positions"}
    assert mapped(tiny_llama().graph) == {"embed.W_E": "tokens"}


# ---- over HTTP ----

@pytest.fixture(scope="module")
def client(nano):
    return local_client(create_app([nano, tiny_llama()]))


def test_the_route_answers_the_map(client, nano):
    r = client.get("/api/models/nano-gpt/embedding-map")
    assert r.status_code == 200
    schemas.EmbeddingMap.model_validate(r.json())
    assert r.json() == json.loads(json.dumps(embedding_map(nano)))
    r = client.get("/api/models/tiny-llama/embedding-map")
    assert r.status_code == 200 and [m["which"] for m in r.json()["maps"]] == ["tokens"] and "rotary" in r.json()["note"]


def test_the_route_refuses_what_has_no_numbers(client):
    r = client.get("/api/models/gpt2/embedding-map")  # structure only: 409, as every route that needs the numbers
    assert r.status_code == 409 and r.json()["detail"] == (
        "gpt2 is structure only: no weights are loaded, so there is nothing to compute")
    r = client.get("/api/models/nope/embedding-map")
    assert r.status_code == 404 and "unknown model 'nope'" in r.json()["detail"]


def scene_blocks(client, body) -> dict:
    r = client.post("/api/scene", json=body)
    n = struct.unpack("<Q", r.content[:8])[0]
    info = schemas.SceneInfo.model_validate(json.loads(json.loads(r.content[8:8 + n])["__metadata__"]["scene"]))
    return {b.tensor: b.map for b in info.blocks}


def test_the_scene_says_which_blocks_have_a_map(client):
    blocks = scene_blocks(client, {"model": "nano-gpt", "text": "CBABBC"})
    assert {t: m for t, m in blocks.items() if m} == {"embed.W_E": "tokens", "pos_embed.W_pos": "positions"}
    assert {t: m for t, m in scene_blocks(client, {"model": "tiny-llama", "tokens": [1, 2]}).items() if m} == {
        "embed.W_E": "tokens"}
    assert not any(scene_blocks(client, {"model": "gpt2", "n_pos": 4}).values())  # no numbers: no map


@pytest.mark.slow  # (an export: about 10 s here)
def test_the_export_holds_the_map(tmp_path, nano, client):
    """A static export has no server: it stores the map's answer, which its page reads as the served page does."""
    import gzip

    from llmviz.serve.export import export, read_manifest, request_key

    export(nano, ["CBABBC"], tmp_path / "site", steps=1)
    manifest = read_manifest(tmp_path / "site")
    stored = manifest["responses"][request_key("GET", "/api/models/nano-gpt/embedding-map", None)]
    assert stored["status"] == 200
    body = gzip.decompress((tmp_path / "site" / stored["file"]).read_bytes())
    assert json.loads(body) == client.get("/api/models/nano-gpt/embedding-map").json()


def test_the_walkthrough_opens_the_map_for_every_model_with_numbers(nano):
    """Chapter 3's map step is for every model with weights; nano-gpt's own step (its three letters) for it alone."""
    from llmviz.io.loading import structure_only
    from llmviz.views.walkthrough import compile_chapters

    def embedding(model, trace):
        chapter = next(c for c in compile_chapters(model, trace)["chapters"] if c["title"] == "Embedding")
        return {s["title"]: s["actions"] for s in chapter["steps"]}

    llama = tiny_llama()
    for model, trace, want in ((nano, nano.run("CBABBC"), ["A map of the vectors", "Three letters, eleven places"]),
                               (llama, llama.run([1, 2, 3]), ["A map of the vectors"]),
                               (structure_only("gpt2"), None, [])):
        steps = embedding(model, trace)
        assert [t for t, acts in steps.items() if {"type": "open", "tab": "map"} in acts] == want, model.name
