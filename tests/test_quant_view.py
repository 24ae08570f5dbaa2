"""Seeing a quantized weight in the page: the stored form of a weight cell that /api/cells serves (the hover's
numbers), the precision choices a served model offers, the scene coloured by the weights' quantization error, and in
Chromium the precision selector, the tooltip of a q4_0 weight with its block outlined, and the error colouring."""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest
from safetensors.numpy import load

import llmviz
from conftest import local_client
from llmviz.core.quant import BITS, BLOCK, FORMATS, quantized
from llmviz.serve.server import create_app


@pytest.fixture(scope="module")
def shakespeare():
    return llmviz.load_model("shakespeare-char")


@pytest.fixture(scope="module")
def client(shakespeare, nano):
    return local_client(create_app([shakespeare, nano]))


def stored(client, model: str, tensor: str, index: list[int]) -> dict:
    text = "CBA" if model.startswith("nano-gpt") else "To be"
    r = client.post("/api/cells", json={"model": model, "text": text, "stored": [{"tensor": tensor, "index": index}]})
    assert r.status_code == 200, r.text
    [cell] = r.json()["stored"]
    return cell


@pytest.mark.parametrize("fmt", ["q4_0", "q8_0", "int8"])
def test_a_blocked_weight_cell_is_served_as_stored(client, shakespeare, fmt):
    q = quantized(shakespeare, fmt)
    for name, index in [("blocks.1.mlp.W_in", [37, 300]), ("blocks.2.attn.W_O", [3, 17, 99]), ("embed.W_E", [5, 70])]:
        s, at = q.stored[name], tuple(index)
        cell = stored(client, f"shakespeare-char:{fmt}", name, index)
        assert cell["fmt"] == s.fmt == fmt and cell["precision"] == fmt
        assert cell["code"] == int(s.codes[at]) and cell["scale"] == float(s.scales[at])
        assert cell["original"] == float(s.original[at]) and cell["value"] == float(s.values[at])
        assert cell["error"] == float(s.error[at])
        assert cell["block"] == int(s.block[at])
        # the dequantized value is the code read back with its scale: d × (code − 8) for q4_0, d × code otherwise
        centred = cell["code"] - 8 if fmt == "q4_0" else cell["code"]
        assert np.float32(cell["scale"]) * np.float32(centred) == np.float32(cell["value"])
        # the block's cells, as regions: exactly those with the same block id (32 in a block, a row in int8)
        marked = np.zeros(s.block.shape, bool)
        axes = q.graph[name].axes
        for r in cell["regions"]:
            marked[tuple(slice(r[a][0], r[a][1] + 1) for a in axes)] = True
        assert (marked == (s.block == s.block[at])).all()
        assert marked.sum() == (BLOCK if fmt != "int8" else cell["row"])


def test_a_q4_0_block_is_one_box_of_32_along_the_input(client):
    cell = stored(client, "shakespeare-char:q4_0", "blocks.0.attn.W_Q", [2, 70, 9])  # input axis: d_model
    assert cell["inputs"] == ["d_model"] and cell["row"] == 128
    assert cell["regions"] == [{"head": [2, 2], "d_model": [64, 95], "d_head": [9, 9]}]
    w_o = stored(client, "shakespeare-char:q4_0", "blocks.0.attn.W_O", [1, 5, 40])  # inputs: head and d_head (32)
    assert w_o["inputs"] == ["head", "d_head"] and w_o["regions"] == [{"head": [1, 1], "d_head": [0, 31], "d_model": [40, 40]}]


@pytest.mark.parametrize("fmt", ["f16", "bf16"])
def test_a_16_bit_weight_cell_is_served_with_its_bits(client, shakespeare, fmt):
    q = quantized(shakespeare, fmt)
    s, at = q.stored["blocks.0.mlp.W_out"], (100, 7)
    cell = stored(client, f"shakespeare-char:{fmt}", "blocks.0.mlp.W_out", list(at))
    assert cell["fmt"] == fmt and cell["code"] is None and cell["scale"] is None and cell["regions"] == []
    assert cell["original"] == float(s.original[at]) and cell["value"] == float(s.values[at])
    assert cell["error"] == float(s.error[at])
    bits = int(cell["bits"], 16)
    back = np.array([bits], np.uint16).view(np.float16)[0] if fmt == "f16" else \
        np.array([bits << 16], np.uint32).view(np.float32)[0]
    assert np.float32(back) == np.float32(cell["value"])


def test_a_matrix_blocks_cannot_cut_falls_back_to_f16_and_says_why(client, nano):
    q = quantized(nano, "q4_0")
    s = q.stored["blocks.0.mlp.W_in"]  # rows of d_model = 48: not a multiple of 32
    cell = stored(client, "nano-gpt:q4_0", "blocks.0.mlp.W_in", [10, 20])
    assert s.fmt == "f16" and cell["fmt"] == "f16" and cell["precision"] == "q4_0"
    assert cell["row"] == 48 and cell["inputs"] == ["d_model"] and cell["code"] is None
    assert cell["original"] == float(s.original[10, 20]) and cell["error"] == float(s.error[10, 20])


def test_an_unquantized_weight_or_model_says_f32(client):
    assert stored(client, "shakespeare-char:q4_0", "pos_embed.W_pos", [0, 0])["fmt"] == "f32"  # never quantized
    cell = stored(client, "shakespeare-char", "blocks.0.mlp.W_in", [0, 0])
    assert cell["fmt"] == "f32" and cell["precision"] == "f32" and cell["original"] is None


def test_bad_stored_cells_are_refused(client):
    for tensor, index, words in [("blocks.0.hook_resid_pre", [0, 0], "is not a weight"),
                                 ("blocks.0.mlp.W_in", [0, 9999], "outside"), ("nope", [0], "is not a weight")]:
        r = client.post("/api/cells", json={"model": "shakespeare-char:q4_0", "text": "To", "stored": [
            {"tensor": tensor, "index": index}]})
        assert r.status_code in (400, 422) and words in r.json()["detail"], r.text


def test_served_models_offer_their_precisions(client):
    [sh, nano_info] = [m for m in client.get("/api/models").json() if m["name"] in ("shakespeare-char", "nano-gpt")]
    assert [p["format"] for p in sh["precisions"]] == list(FORMATS)
    assert [p["bits"] for p in sh["precisions"]] == [BITS[f] for f in FORMATS]
    assert [p["model"] for p in sh["precisions"]] == ["shakespeare-char"] + [f"shakespeare-char:{f}" for f in FORMATS[1:]]
    assert nano_info["precisions"][0]["model"] == "nano-gpt"
    structure = [m for m in client.get("/api/models").json() if not m["has_weights"]]
    assert structure and all(m["precisions"] == [] for m in structure)


def scene_of(content: bytes) -> tuple[dict, dict]:
    """A scene payload's tensors and its JSON."""
    n = int.from_bytes(content[:8], "little")
    return load(content), json.loads(json.loads(content[8:8 + n])["__metadata__"]["scene"])


def test_the_error_scene_holds_each_weight_cells_error(client, shakespeare):
    r = client.post("/api/scene", json={"model": "shakespeare-char:q4_0", "text": "To be", "quant_error": True})
    assert r.status_code == 200, r.text
    tensors, scene = scene_of(r.content)
    q = quantized(shakespeare, "q4_0")
    assert scene["quant_error"] == pytest.approx(max(float(np.abs(s.error).max()) for s in q.stored.values()), rel=1e-3)
    error = tensors["error"]
    b = next(b for b in scene["blocks"] if b["tensor"] == "blocks.1.mlp.W_out")
    assert b["tile"] == [1, 1]
    x, y, w, h = b["slabs"][0]
    drawn = error[y:y + h, x:x + w].astype(np.float32)
    want = q.stored["blocks.1.mlp.W_out"].error  # d_mlp × d_model, drawn as rows (y) × cols (x) of its axes
    grid = want if b["axes"][1] == "d_mlp" else want.T
    assert np.allclose(drawn, grid.astype(np.float16), atol=0)
    assert b["error"] == pytest.approx(float(np.abs(want).max()), rel=1e-3)
    resid = next(b for b in scene["blocks"] if b["tensor"] == "blocks.0.hook_resid_post")
    x, y, w, h = resid["slabs"][0]
    assert (error[y:y + h, x:x + w] == tensors["atlas"][y:y + h, x:x + w]).all() and resid["error"] is None


def test_the_error_scene_is_refused_for_a_model_in_float32(client):
    r = client.post("/api/scene", json={"model": "shakespeare-char", "text": "To", "quant_error": True})
    assert r.status_code == 422 and "f32" in r.json()["detail"]


def test_a_tied_unembedding_is_stored_as_the_embedding():
    from llmviz.core.config import ModelConfig
    from llmviz.core.graph import Graph
    from llmviz.core.model import Model

    cfg = ModelConfig("tied", n_layer=1, n_head=2, n_embd=64, vocab_size=40, n_ctx=16, tied_unembed=True)
    graph, rng = Graph(cfg), np.random.default_rng(0)
    weights = {n: rng.normal(0, 0.1, graph[n].shape(graph.sizes(0))).astype(np.float32) for n in graph.names("weight")
               if not graph[n].attrs.get("tied_to")}
    c = local_client(create_app([Model(cfg, weights, None, source="tied")]))
    assert graph["unembed.W_U"].attrs["tied_to"] == "embed.W_E"
    s = quantized(Model(cfg, weights, None, source="tied"), "int8").stored["embed.W_E"]  # vocab × d_model
    r = c.post("/api/cells", json={"model": "tied:int8", "tokens": [1, 2], "stored": [
        {"tensor": "unembed.W_U", "index": [7, 2]}]})  # d_model × vocab
    [cell] = r.json()["stored"]
    assert cell["fmt"] == "int8" and cell["code"] == int(s.codes[2, 7]) and cell["scale"] == float(s.scales[2, 7])
    assert cell["original"] == float(s.original[2, 7]) and cell["regions"] == [{"d_model": [0, 63], "vocab": [2, 2]}]


# In Chromium: the precision selector, a q4_0 weight's tooltip and block, the error colouring.

FACE_ON = """([tensor, slab, col, row, d]) => {  // the camera face-on, d world units in front of a cell of a block
  const app = window.__app, p = app.placed[0], i = p.data.info.blocks.findIndex((b) => b.tensor === tensor);
  const b = p.data.info.blocks[i], box = p.built.boxes[i], v = app.view, t = v.controls.target.clone();
  t.set(b.x + slab * b.x_step + col + 0.5 + p.offsetX + d * 0.25, b.y - row - 0.5 - d * 0.12, box.max.z);
  v.flyTo(t.clone().setZ(box.max.z + d), t, 0);
}"""


def face_on(page, tensor: str, slab: int, col: int, row: int, distance: float):
    """The camera face-on in front of a cell, and the frame drawn there."""
    frames = page.evaluate("window.__llmviz.stats().frames")
    page.evaluate(FACE_ON, [tensor, slab, col, row, distance])
    page.wait_for_function("f => window.__llmviz.stats().frames > f && !window.__llmviz.flying()", arg=frames)


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


def open_quantized(page, live_server, fmt: str):
    """shakespeare-char's view, then the precision selector set to `fmt`: the same input and camera."""
    from playwright.sync_api import expect

    from test_e2e import open_view

    page.add_init_script("window.addEventListener('llmviz:app', (e) => { window.__app = e.detail.app; })")
    open_view(page, f"{live_server}/?model=shakespeare-char")
    field = page.locator("#precision-field")
    expect(field).to_be_visible()
    expect(field).to_have_attribute("title", re.compile(r"^Precision: how the model's weights are stored"))
    served = next(m for m in json.loads(urllib.request.urlopen(f"{live_server}/api/models").read())
                  if m["name"] == "shakespeare-char")["precisions"]
    expect(page.locator("#precision option")).to_have_text([f"{p['format']} · {p['bits']} bits" for p in served])
    expect(page.locator("#qerr-toggle")).to_be_hidden()  # (the model as trained has no quantization error)
    text, camera = page.locator("#prompt").input_value(), page.evaluate("window.__llmviz.camera()")
    page.select_option("#precision", f"shakespeare-char:{fmt}")
    page.wait_for_function(f"window.__llmviz.stats().models.join() === 'shakespeare-char:{fmt}'")
    expect(page.locator("#model")).to_have_value("shakespeare-char")
    expect(page.locator("#precision")).to_have_value(f"shakespeare-char:{fmt}")
    expect(page.locator("#prompt")).to_have_value(text)
    assert page.evaluate("window.__llmviz.camera()") == camera
    assert "model=shakespeare-char%3A" + fmt in page.url


def test_a_q4_0_weight_shows_how_it_is_stored_and_its_block(page, live_server, shakespeare, screenshots):
    from playwright.sync_api import expect

    open_quantized(page, live_server, "q4_0")
    tensor, (slab, col, row) = "blocks.1.attn.W_Q", (2, 70, 9)  # (head 2, d_model 70, d_head 9)
    face_on(page, tensor, slab, col, row, 60)
    p = page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}', {slab}, {col}, {row})")
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    stored_ = tip.locator(".tt-stored")
    expect(stored_).to_be_visible()
    index = tuple(json.loads(tip.get_attribute("data-index")))
    assert index == (2, 70, 9)
    s = quantized(shakespeare, "q4_0").stored[tensor]
    code, d, value, original = int(s.codes[index]), float(s.scales[index]), float(s.values[index]), float(s.original[index])
    assert stored_.get_attribute("data-fmt") == "q4_0"
    assert int(stored_.get_attribute("data-code")) == code
    assert float(stored_.get_attribute("data-scale")) == d
    assert float(stored_.get_attribute("data-value")) == value
    assert float(stored_.get_attribute("data-original")) == original
    assert float(stored_.get_attribute("data-error")) == float(s.error[index])

    def g4(x):
        return f"{x:.4g}".replace("-", "−")

    expect(stored_).to_contain_text(f"stored as q4_0 (4 bits): the integer {code} (0 … 15)")
    expect(stored_).to_contain_text(f"read back: d × (code − 8) = {g4(d)} × ({code} − 8) = {g4(value)}")
    expect(stored_).to_contain_text(f"original (float32){g4(original)}")
    # Its block outlined: one rectangle of 32 cells along d_model (the block's), beside the cell's own outline.
    rects = page.evaluate("""() => {
      const g = window.__app.highlights.mesh.geometry, n = g.instanceCount;
      const r = g.getAttribute('iRect').array, z = g.getAttribute('iZ').array;
      return Array.from({ length: n }, (_, k) => ({ w: r[4 * k + 2], h: r[4 * k + 3], mode: z[2 * k + 1] }));
    }""")
    assert rects == [{"w": 32, "h": 1, "mode": 1}, {"w": 1, "h": 1, "mode": 1}]
    page.screenshot(path=screenshots / "precision-hover.png")


def test_the_error_toggle_colours_the_weights_by_their_quantization_error(page, live_server, shakespeare, screenshots):
    from playwright.sync_api import expect

    open_quantized(page, live_server, "q4_0")
    tensor = "blocks.1.attn.W_Q"
    face_on(page, tensor, 2, 40, 12, 90)
    cells = [(2, c, r) for c in range(30, 60, 3) for r in range(2, 30, 3)]

    def colours():
        out = []
        for slab, col, row in cells:
            p = page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}', {slab}, {col}, {row})")
            out.append(tuple(page.evaluate(f"window.__llmviz.readPixels({p['x']}, {p['y']})")))
        return out

    before = colours()
    toggle = page.locator("#qerr-toggle")
    expect(toggle).to_be_visible()
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    after = colours()
    changed = sum(a != b for a, b in zip(before, after))
    assert changed >= 0.9 * len(cells)
    # the error palette (PuOr): where the error is largest, the colour is near its ends, and the sign picks the end
    s = quantized(shakespeare, "q4_0").stored[tensor]
    signs = [np.sign(s.error[h, c, r]) for h, c, r in cells]
    brown = [c for c, sign in zip(after, signs) if sign < 0]
    purple = [c for c, sign in zip(after, signs) if sign > 0]
    assert np.mean([r - b for r, _, b in brown]) > 0 > np.mean([r - b for r, _, b in purple])
    legend = page.locator("#legend")
    legend.locator("summary").click()
    expect(legend).to_contain_text("weights: quantization error (stored − original), what storing them in "
                                   "shakespeare-char:q4_0 changed")
    p = page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}', 2, 44, 12)")  # a cell's error, as the hover says
    page.mouse.move(p["x"], p["y"])
    expect(page.get_by_role("tooltip").locator(".tt-stored")).to_contain_text("error (stored − original)")
    page.screenshot(path=screenshots / "precision-error.png")
    page.mouse.move(1, 1)
    toggle.click()  # back to the values
    expect(toggle).to_have_attribute("aria-pressed", "false")
    again = colours()
    assert again == before, [(c, a, b) for c, a, b in zip(cells, again, before) if a != b]
    expect(legend).not_to_contain_text("quantization error")


def test_the_learning_paths_small_networks_offer_no_precision():
    """The learning path's networks are told in float32: no formats to choose (the page hides the selector and the
    Compare button), while a transformer served beside them offers every format."""
    from conftest import local_client
    from llmviz import load_model
    from llmviz.serve.server import create_app

    infos = local_client(create_app([load_model(n) for n in ("nano-gpt", "neuron", "digits-mlp")])).get("/api/models")
    got = {m["name"]: len(m["precisions"]) for m in infos.json()}
    assert got["neuron"] == got["digits-mlp"] == 0 and got["nano-gpt"] == len(FORMATS)
