"""The 3D layout and the scene payload: derived from the graph, every number the trace's, downsampled honestly."""

import itertools
import json

import numpy as np
import pytest
from safetensors.numpy import load

from conftest import local_client
from llmviz import Graph
from llmviz.core.config import PRESETS
from llmviz.io.loading import structure_only
from llmviz.serve.server import create_app
from llmviz.views.layout import MERGE_HEADS_ABOVE, build_layout
from llmviz.views.scene import MAX_DISPLAY, build_scene, tile_max_abs


@pytest.mark.parametrize("name", ["nano-gpt", "gpt2", "gpt3"])
def test_every_tensor_has_a_block_and_data_flows_down(name):
    graph = Graph(PRESETS[name])
    layout = build_layout(graph, 5)
    blocks = {b.tensor: b for b in layout.blocks}
    assert list(blocks) == graph.names()
    columns = [band[0] + 1 for band in layout.bands]  # each column of layers: the residual stream down its left
    for t in graph:
        for i in t.inputs:
            a, b = blocks[i], blocks[t.name]
            if graph[i].kind not in ("activation", "input") or a.x + a.width <= b.x:
                continue  # (the stream's step to the next column, or the MLP beside its attention: read across)
            assert b.y <= a.y, f"{t.name} sits above its input {i}"
    for b in layout.blocks:
        assert b.residual == (b.x in columns)  # the residual stream is the left column of each, and only it
        assert b.merged == (b.depth > MERGE_HEADS_ABOVE)


@pytest.mark.parametrize("name", ["nano-gpt", "gpt2", "gpt3", "smollm-135m"])
def test_the_layout_uses_the_width(name):
    """The MLP beside its attention, and the layers in columns: the whole model about as wide for its height as a
    1280 × 800 screen below the toolbar (it was a column three times as tall as wide)."""
    model = structure_only(name) if name != "nano-gpt" else None
    layout = build_layout(model.graph if model else Graph(PRESETS[name]), 6)
    x0, y0, x1, y1 = layout.bounds
    assert 1.2 <= (x1 - x0) / (y0 - y1) <= 2.6
    blocks = {b.tensor: b for b in layout.blocks}
    attn, mlp = (next(s for s in layout.sections if s["key"] == f"blocks.0.{k}") for k in ("attn", "mlp"))
    # the MLP beside its attention, level at the top, or below it: whichever makes the model's shape closer to a screen's
    assert (mlp["x0"] > attn["x1"] and mlp["y0"] == attn["y0"]) or mlp["y0"] < attn["y1"]
    if name == "nano-gpt":
        assert mlp["x0"] > attn["x1"]
    # The residual stream stays one path: down each column, in the order it flows, each band holding its adds.
    res = [b for b in layout.blocks if b.residual]
    assert len(layout.bands) >= 2 and [b[0] for b in layout.bands] == sorted(b[0] for b in layout.bands)
    for b in res:
        assert any(x0 <= b.x and b.x + b.width <= x1 and top >= b.y and b.y - b.height >= bottom
                   for x0, top, x1, bottom in layout.bands), b.tensor
    assert blocks["blocks.0.hook_resid_post"].y < blocks["blocks.0.hook_resid_mid"].y


def test_blocks_of_a_row_do_not_overlap():
    layout = build_layout(Graph(PRESETS["gpt2"]), 7)
    by_row = {}
    for b in layout.blocks:
        by_row.setdefault(b.row, []).append(b)
    for row in by_row.values():
        spans = sorted((b.x, b.x + b.width) for b in row)
        for (_a0, a1), (b0, _b1) in itertools.pairwise(spans):
            assert a1 <= b0


def test_block_axes_follow_the_rules():
    layout = {b.tensor: b for b in build_layout(Graph(PRESETS["nano-gpt"]), 6).blocks}
    assert (layout["blocks.0.attn.hook_q"].x_axis, layout["blocks.0.attn.hook_q"].y_axis) == ("pos", "d_head")
    assert layout["blocks.0.attn.hook_q"].depth == 3
    assert (layout["embed.W_E"].x_axis, layout["embed.W_E"].y_axis) == ("vocab", "d_model")  # a lookup picks a column
    assert (layout["blocks.0.mlp.W_in"].cols, layout["blocks.0.mlp.W_in"].rows) == (48, 192)
    assert (layout["blocks.0.ln1.hook_mean"].cols, layout["blocks.0.ln1.hook_mean"].rows) == (6, 1)
    assert (layout["blocks.0.ln1.w"].cols, layout["blocks.0.ln1.w"].rows) == (1, 48)


def atlas_slab(scene, atlas, tensor, slab=0):
    b = next(b for b in scene["blocks"] if b["tensor"] == tensor)
    x, y, w, h = b["slabs"][slab]
    return b, atlas[y:y + h, x:x + w].astype(np.float32)


def test_atlas_holds_the_trace_values(nano):
    trace = nano.run("CBABBC")
    scene, atlas = build_scene(nano, trace, 6)
    b, got = atlas_slab(scene, atlas, "blocks.1.attn.hook_q", slab=2)
    np.testing.assert_allclose(got, trace["blocks.1.attn.hook_q"][:, 2, :].T, rtol=1e-3, atol=1e-4)  # rows = d_head
    b, got = atlas_slab(scene, atlas, "blocks.0.attn.hook_attn_scores", slab=1)
    ref = trace["blocks.0.attn.hook_attn_scores"][1]  # [pos, key_pos]: each row one query, as people draw it
    assert np.array_equal(np.isinf(got), np.triu(np.ones((6, 6), bool), 1))  # the mask in the upper right
    assert np.array_equal(np.isinf(got), np.isinf(ref))
    np.testing.assert_allclose(got[np.isfinite(got)], ref[np.isfinite(ref)], rtol=1e-3, atol=1e-4)
    assert b["scale"] == pytest.approx(float(np.abs(ref[np.isfinite(ref)]).max()) if b["depth"] == 1 else
                                       float(np.abs(trace["blocks.0.attn.hook_attn_scores"][
                                           np.isfinite(trace["blocks.0.attn.hook_attn_scores"])]).max()))
    b, got = atlas_slab(scene, atlas, "embed.W_E")
    np.testing.assert_allclose(got, nano.weights["embed.W_E"].T, rtol=1e-3, atol=1e-4)
    assert scene["predicted"][-1] == "A" and scene["token_strs"] == list("CBABBC")
    assert b["axes"] == ["vocab", "d_model", None]
    pattern = next(b for b in scene["blocks"] if b["tensor"] == "blocks.0.attn.hook_pattern")
    assert pattern["axes"] == ["key_pos", "pos", "head"] and pattern["causal"]
    sums = atlas_slab(scene, atlas, "blocks.2.attn.hook_pattern", slab=0)[1].sum(axis=1)  # each row sums to 1
    np.testing.assert_allclose(sums, 1.0, atol=3e-3)


def test_scene_says_what_the_model_answers(nano):
    scene, _ = build_scene(nano, nano.run("CBABBC"), 6)
    p = scene["prediction"]
    assert p["position"] == 5 and p["top"][0]["token"] == "A" and p["top"][0]["prob"] > 0.999
    assert [t["token"] for t in p["top"]] == ["A", "B", "C"]
    assert p["answer"]["text"] == "ABBBCC" == nano.generate("CBABBC").text
    assert p["answer"]["written"] == 0
    # After the input and two tokens of its answer (as generation writes it): those two, then the greedy rest.
    later, _ = build_scene(nano, nano.run("CBABBCAB"), 8)
    a = later["prediction"]["answer"]
    assert a["text"] == "ABBBCC" and a["written"] == 2 and a["ids"][2:] == nano.generate("CBABBCAB", 4).tokens
    assert scene["axis_names"] == {"pos": list("CBABBC"), "key_pos": list("CBABBC"), "vocab": ["A", "B", "C"]}
    assert scene["model"]["config"]["task"] == "six letters from A, B, C; the model sorts them"
    assert scene["ops"]["add"]["symbol"] == "+" and scene["axes"]["key_pos"]["color"] != scene["axes"]["pos"]["color"]


def test_heads_side_by_side_or_stacked(nano):
    side, _ = build_scene(nano, nano.run("CBA"), 3)
    stack, _ = build_scene(nano, nano.run("CBA"), 3, heads="stack")
    q_side = next(b for b in side["blocks"] if b["tensor"] == "blocks.0.attn.hook_q")
    q_stack = next(b for b in stack["blocks"] if b["tensor"] == "blocks.0.attn.hook_q")
    assert q_side["x_step"] == q_side["cols"] + 1 and q_side["z_step"] == 0  # every head in view
    assert q_stack["x_step"] == 0 and q_stack["z_step"] == 2  # (test_blocks_of_a_row_do_not_overlap: side by side)


def test_tiles_keep_the_value_of_largest_magnitude():
    g = np.arange(1, 13, dtype=np.float32).reshape(1, 3, 4)
    g[0, 0, 1] = -20
    g[0, 2, 3] = -np.inf
    out = tile_max_abs(g, 2)
    assert out.shape == (1, 2, 2)
    assert out[0, 0, 0] == -20 and out[0, 0, 1] == 8 and out[0, 1, 0] == 10 and out[0, 1, 1] == 11
    assert tile_max_abs(np.full((1, 2, 2), -np.inf, np.float32), 2)[0, 0, 0] == -np.inf


def test_large_tensors_are_downsampled_and_say_so(tmp_path):
    pytest.importorskip("transformers")
    from llmviz import load_model
    from reference import hf_gpt2_folder

    hf_gpt2_folder(tmp_path, n_layer=1, n_head=2, n_embd=16, vocab_size=1500, n_positions=8)
    model = load_model(str(tmp_path))
    trace = model.run([1, 2, 3])
    scene, atlas = build_scene(model, trace, 3)
    b, got = atlas_slab(scene, atlas, "embed.W_E")
    f = -(-1500 // MAX_DISPLAY)
    assert b["tile"] == [f, 1] and got.shape == (16, -(-1500 // f))  # only the long axis is tiled
    w = model.weights["embed.W_E"].T  # [d_model, vocab]
    np.testing.assert_allclose(got, tile_max_abs(w[None, :, :], 1, f)[0], rtol=1e-3)
    assert b["scale"] == pytest.approx(float(np.abs(w).max()))
    b, logits = atlas_slab(scene, atlas, "logits")  # a long vocabulary lies across: one row per position
    assert b["axes"][:2] == ["vocab", "pos"]
    assert b["tile"] == [f, 1] and logits.shape == (3, -(-1500 // f))  # every position keeps its row
    np.testing.assert_allclose(logits, tile_max_abs(trace["logits"][None], 1, f)[0], rtol=1e-3)


def test_structure_only_scene_has_no_numbers():
    scene, atlas = build_scene(structure_only("gpt3"), None, 8)
    assert all(b["slabs"] is None and b["scale"] == 0 for b in scene["blocks"])
    assert atlas.size == 1 and not scene["model"]["has_weights"]
    assert len(scene["blocks"]) == len(Graph(PRESETS["gpt3"]).tensors)


def test_scene_endpoint(nano):
    client = local_client(create_app())
    r = client.post("/api/scene", json={"model": "nano-gpt"})
    assert r.status_code == 200
    meta = json.loads(load_meta(r.content)["scene"])
    assert meta["tokens"] == [2, 1, 0, 1, 1, 2]  # the model's example input
    assert load(r.content)["atlas"].dtype == np.float16
    r = client.post("/api/scene", json={"model": "gpt2", "n_pos": 5})
    assert json.loads(load_meta(r.content)["scene"])["n_pos"] == 5
    assert client.post("/api/scene", json={"model": "nope"}).status_code == 404
    bad = client.post("/api/scene", json={"text": "CBD"})
    assert bad.status_code == 422 and "unknown token 'D'" in bad.json()["detail"]
    assert client.post("/api/scene", json={"model": "gpt2", "n_pos": 0}).status_code == 422


@pytest.mark.parametrize("model", ["nano-gpt", "gpt3"])
def test_a_tower_stands_the_layers_in_one_column(nano, model):
    """The scale view asks for towers: one column of layers, each MLP below its attention, the same numbers."""
    client = local_client(create_app())
    wide, tall = (json.loads(load_meta(client.post("/api/scene", json={"model": model, **extra}).content)["scene"])
                  for extra in ({}, {"tower": True}))
    assert len(wide["bands"]) >= 2 and len(tall["bands"]) == 1
    (x0, y0, x1, y1), (w0, v0, w1, v1) = tall["bounds"], wide["bounds"]
    assert (x1 - x0) / (y0 - y1) < 0.5 < (w1 - w0) / (v0 - v1)
    mlp, attn = (next(s for s in tall["sections"] if s["key"] == f"blocks.0.{k}") for k in ("mlp", "attn"))
    assert mlp["y0"] < attn["y1"]
    assert [b["scale"] for b in tall["blocks"]] == [b["scale"] for b in wide["blocks"]]
    assert client.post("/api/scene", json={"model": model, "tower": "yes"}).status_code == 422


def load_meta(data: bytes) -> dict:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n])["__metadata__"]


def tiny_llama(qkv_bias=True):
    """A Llama-shaped model (4 query heads, 2 key/value heads, biases on Q, K and V as Qwen2's), random weights."""
    from llmviz.core.config import ModelConfig
    from llmviz.core.model import Model

    cfg = ModelConfig("tiny-llama", n_layer=2, n_head=4, n_kv_head=2, n_embd=32, vocab_size=50, n_ctx=32, arch="llama",
                      norm="rms", mlp="gated", activation="silu", bias=False, rope_theta=10000.0, n_inner=64,
                      tied_unembed=False, qkv_bias=qkv_bias)
    graph, rng = Graph(cfg), np.random.default_rng(0)
    return Model(cfg, {n: rng.normal(0, 0.1, graph[n].shape(graph.sizes(0))).astype(np.float32)
                       for n in graph.names("weight")}, None, source="tiny-llama")


@pytest.mark.parametrize("which", ["nano-gpt", "gpt2", "llama"])
def test_every_block_has_a_readable_label(nano, which):
    if which == "nano-gpt":
        scene, _ = build_scene(nano, nano.run("CBABBC"), 6)
    elif which == "gpt2":
        scene, _ = build_scene(structure_only("gpt2"), None, 5)
    else:
        model = tiny_llama()
        scene, _ = build_scene(model, model.run("1 2 3 4 5"), 5)
    short = {b["tensor"]: b["short"] for b in scene["blocks"]}
    assert len(short) == len(scene["blocks"]) > 20
    for name, label in short.items():
        assert label and "hook_" not in label and not label.startswith("blocks.") and "." not in label, (name, label)
    want = ({"blocks.0.ln1.hook_scale": "σ", "blocks.0.mlp.hook_pre": "MLP pre", "blocks.0.mlp.hook_post": "activation"}
            if which != "llama" else
            {"blocks.0.ln1.hook_scale": "s (rms)", "blocks.0.ln1.hook_normalized": "x / s", "blocks.0.ln1.hook_out": "RMS out",
             "blocks.0.attn.hook_rot_q": "Q rotated", "blocks.0.attn.hook_rot_k": "K rotated", "blocks.0.attn.b_Q": "b_Q",
             "blocks.0.mlp.W_gate": "W_gate", "blocks.0.mlp.hook_pre": "gate", "blocks.0.mlp.hook_pre_linear": "up",
             "blocks.0.mlp.hook_act": "SiLU(gate)", "blocks.0.mlp.hook_post": "gate × up"})
    assert {n: short[n] for n in want} == want
    if which != "nano-gpt":  # a generation step's graph too: the cached keys and values, labelled where declared
        cfg = PRESETS["gpt2"] if which == "gpt2" else tiny_llama().config
        step = Graph(cfg, past=3)
        assert all(t.label and "hook_" not in t.label and "." not in t.label for t in step)
        assert [step[f"blocks.0.attn.{n}"].label for n in ("past_k", "cache_k", "past_v", "cache_v")] == \
            ["K cache", "K so far", "V cache", "V so far"]
