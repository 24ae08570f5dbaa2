"""One input at two precisions (views/compare.py, POST /api/compare and /api/compare/scene, the page's Compare
precisions panel) and chapter 19, "Precision". Every number is recomputed here with numpy from two runs, model.run and
quantized(model, fmt).run: each layer's residual-stream relative error, both answers, the positions whose prediction
moved, the difference atlas; the chapter's bits, stored values, codes and scales from the weights themselves. In
Chromium: the panel on shakespeare-char f32 against q4_0, its chart's layers and the readout's two answers equal to the
server's, and a hovered cell's two values and their difference equal to the two runs'."""

import json
import re
import struct
import typing

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from conftest import local_client
from llmviz import load_model
from llmviz.core.quant import BITS, FORMATS, bf16, f16, quantized
from llmviz.core.sampling import percent
from llmviz.serve import schemas
from llmviz.serve.schemas import Format
from llmviz.serve.server import create_app
from llmviz.views.compare import compare, compare_scene
from llmviz.views.layout import build_layout
from llmviz.views.scene import slab_grid
from llmviz.views.walkthrough import compile_chapters
from test_e2e import console_errors, fly_to_block, open_view  # noqa: F401

SHAKESPEARE = "shakespeare-char"


@pytest.fixture(scope="module")
def shakespeare():
    return load_model(SHAKESPEARE)


@pytest.fixture(scope="module")
def client():
    return local_client(create_app())


def reference_errors(model, ref, other) -> list[tuple[str, float, float]]:
    """(tensor, at the last position, averaged over positions): ‖other − ref‖ / ‖ref‖ over d_model, in float64."""
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(model.config.n_layer)]
    out = []
    for name in names:
        r, o = np.float64(ref[name]), np.float64(other[name])
        rel = np.sqrt(((o - r) ** 2).sum(-1)) / np.sqrt((r ** 2).sum(-1))
        out.append((name, float(rel[-1]), float(rel.mean())))
    return out


@pytest.mark.parametrize("name,fmt", [(SHAKESPEARE, "q4_0"), ("nano-gpt", "int8"), ("nano-gpt", "bf16")])
def test_the_comparison_equals_two_runs(name, fmt):
    model = load_model(name)
    text = model.config.example
    ref, other = model.run(text), quantized(model, fmt).run(text)
    c = compare(ref, other)
    assert [p["tensor"] for p in c["layers"]] == [n for n, _, _ in reference_errors(model, ref, other)]
    for p, (_, last, mean) in zip(c["layers"], reference_errors(model, ref, other)):
        assert p["last"] == pytest.approx(last, rel=1e-9) and p["mean"] == pytest.approx(mean, rel=1e-9)
    assert c["reference"]["model"] == name and c["other"]["model"] == f"{name}:{fmt}"
    assert c["reference"]["bits"] == 32 and c["other"]["bits"] == BITS[fmt]
    assert c["reference"]["predicted"] == ref.predicted and c["other"]["predicted"] == other.predicted
    assert c["changed_positions"] == [i for i, (a, b) in enumerate(zip(ref.predicted, other.predicted)) if a != b]
    pr, po = ref.next_probs, other.next_probs
    assert c["same_answer"] == (pr.argmax() == po.argmax())
    assert c["other"]["prediction"]["top"][0]["prob"] == pytest.approx(float(po.max()))
    assert c["probs_tv"] == pytest.approx(0.5 * np.abs(np.float64(po) - pr).sum())


def test_shakespeare_q4_0_moves_the_stream_and_the_answer(shakespeare):
    """What the panel and the chapter tell of the bundled example: q4_0 moves shakespeare-char's stream by percents
    and changes its (uncertain) next token, f16 (its weights were saved in 16 bits) not at all."""
    ref = shakespeare.run(shakespeare.config.example)
    q4 = compare(ref, quantized(shakespeare, "q4_0").run(ref.tokens))
    assert all(0.01 < p["last"] < 0.5 for p in q4["layers"])
    assert not q4["same_answer"]
    half = compare(ref, quantized(shakespeare, "f16").run(ref.tokens))
    assert all(p["last"] == 0 for p in half["layers"]) and half["same_answer"] and not half["changed_positions"]


def scene_of(payload: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    n = struct.unpack("<Q", payload[:8])[0]
    header = json.loads(payload[8:8 + n])
    data = payload[8 + n:]
    arrays = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], np.float16).reshape(v["shape"])
              for k, v in header.items() if k != "__metadata__"}
    return json.loads(header["__metadata__"]["scene"]), arrays


def test_the_difference_atlas_is_other_minus_reference(shakespeare):
    ref = shakespeare.run(shakespeare.config.example, keep=shakespeare.graph.checkpoints())
    q = quantized(shakespeare, "q4_0")
    other = q.run(ref.tokens)
    _, payload = compare_scene(q, ref)
    scene, arrays = scene_of(payload)
    assert scene["model"]["name"] == f"{SHAKESPEARE}:q4_0"
    assert scene["compare"]["layers"] == compare(ref, other)["layers"]
    assert scene["clean_predicted"] == ref.predicted and scene["predicted"] == other.predicted
    layout = {b.tensor: b for b in build_layout(shakespeare.graph, len(ref.tokens), "side").blocks}
    blocks = {b["tensor"]: b for b in scene["blocks"]}
    for name in ("blocks.2.hook_resid_post", "blocks.1.mlp.hook_post", "logits", "blocks.0.mlp.W_out"):
        b = blocks[name]
        assert b["tile"] == [1, 1], name  # (shown whole: each displayed cell one cell of the tensor)
        d = np.float64(other[name]) - np.float64(ref[name])
        want = slab_grid(d.astype(np.float32), shakespeare.graph[name].axes, layout[name])
        for k, (x, y, w, h) in enumerate(b["slabs"]):
            np.testing.assert_array_equal(arrays["change"][y:y + h, x:x + w], want[k].astype(np.float16), err_msg=name)
        assert b["change"] == pytest.approx(float(np.abs(want).max()), rel=1e-3)
    assert blocks["blocks.0.ln1.w"]["change"] == 0  # a norm's gain is not quantized


def test_the_endpoints(client, shakespeare):
    text = shakespeare.config.example
    r = client.post("/api/compare", json={"model": SHAKESPEARE, "text": text, "reference": "f32", "other": "q4_0"})
    assert r.status_code == 200
    ref = shakespeare.run(text)
    want = compare(ref, quantized(shakespeare, "q4_0").run(text))
    got = r.json()
    schemas.Comparison.model_validate(got)  # (as declared: no field undeclared)
    assert [p["last"] for p in got["layers"]] == pytest.approx([p["last"] for p in want["layers"]], rel=1e-9)
    assert got["other"]["prediction"]["top"][0]["token"] == want["other"]["prediction"]["top"][0]["token"]
    # A quantized model's name compares its original's formats
    again = client.post("/api/compare", json={"model": f"{SHAKESPEARE}:int8", "text": text, "other": "q4_0"}).json()
    assert again["reference"]["model"] == SHAKESPEARE and again["layers"] == got["layers"]
    # (the formats the panel offers are the model list's: ModelInfo.precisions, tests/test_quant_view.py)
    assert typing.get_args(Format) == FORMATS
    # A bad format: 422 naming the field; a model without weights: its reason
    bad = client.post("/api/compare", json={"model": SHAKESPEARE, "text": text, "other": "q5_1"})
    assert bad.status_code == 422 and "other" in bad.json()["detail"] and "q4_0" in bad.json()["detail"]
    none = client.post("/api/compare/scene", json={"model": "gpt2", "text": "hi"})
    assert none.status_code == 409 and "structure only" in none.json()["detail"]
    scene = client.post("/api/compare/scene", json={"model": SHAKESPEARE, "text": text, "reference": "q8_0",
                                                    "other": "q4_0"})
    assert scene.status_code == 200
    info, _ = scene_of(scene.content)
    schemas.SceneInfo.model_validate(info)
    assert info["compare"]["reference"]["model"] == f"{SHAKESPEARE}:q8_0"


# Chapter 19, Precision

C = (0, 0)  # the chapter's weight: blocks.0.mlp.W_out[0, 0]; its block: W_out[0:32, 0]
W = "blocks.0.mlp.W_out"


def plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub("<[^>]+>", "", html)).replace("&#x27;", "'")


def bit_string(x: float, fmt: str) -> str:
    if fmt == "f16":
        b = format(int(np.array([x], np.float16).view(np.uint16)[0]), "016b")
        return f"{b[0]} {b[1:6]} {b[6:]}"
    b = format(int(np.array([x], np.float32).view(np.uint32)[0]), "032b")
    return f"{b[0]} {b[1:9]} {b[9:]}" if fmt == "f32" else f"{b[0]} {b[1:9]} {b[9:16]}"


@pytest.mark.parametrize("name", ["nano-gpt", SHAKESPEARE])
def test_the_chapter_tells_the_real_numbers(name):
    model = load_model(name)
    trace = model.run(model.config.example)
    walk = compile_chapters(model, trace)
    (ch,) = [c for c in walk["chapters"] if c["file"] == "19-precision.md"]
    steps = {s["title"]: plain(s["html"]) for s in ch["steps"]}
    w = np.float32(model.weights[W][C])
    first = steps["One weight, 32 bits"]
    assert f"{float(w):.8g}" in first and bit_string(w, "f32") in first
    half = steps["16 bits: bf16 and f16"]
    b16, h16 = float(bf16(np.array([w]))[0]), float(f16(np.array([w]))[0])
    assert bit_string(b16, "bf16") in half and bit_string(h16, "f16") in half
    assert f"becomes {b16:.8g}" in half and f"becomes {h16:.8g}" in half
    q8 = quantized(model, "int8").stored[W]
    scale = float(np.abs(model.weights[W][:, 0]).max()) / 127  # the output's weights: W_out's input axis d_mlp
    code = int(np.sign(w / scale) * np.floor(abs(w / scale) + 0.5))
    assert q8.codes[C] == code
    assert f"stored as {code} and read back as {code} × scale = {float(np.float32(code) * np.float32(scale)):.8g}" in steps[
        "8 bits: whole numbers and a scale"]
    q4 = quantized(model, "q4_0").stored[W]
    block = model.weights[W][0:32, 0].astype(np.float32)
    d = float(np.float16(block[np.abs(block).argmax()] / np.float32(-8)))
    codes = np.clip(np.trunc(block / np.float32(d) + np.float32(8.5)), 0, 15).astype(int)
    assert q4.codes[0:32, 0].tolist() == codes.tolist()
    four = steps["4 bits, in blocks of 32"]
    assert f"Its d is {d:.6g}" in four and " ".join(map(str, codes)) in four
    assert f"The first is code {codes[0]}: {float(np.float32(d) * (codes[0] - 8)):.8g}" in four
    other = quantized(model, "q4_0").run(trace.tokens)
    errors = reference_errors(model, trace, other)
    where = steps["Where the error goes"]
    for said in (f"after the embedding: {percent(errors[0][1])};", f"after layer 0: {percent(errors[1][1])};",
                 f"after the last layer: {percent(errors[-1][1])}."):
        assert said in where
    top = int(other.next_probs.argmax())
    assert f"q4_0 says {model.token_strs([top])[0]} ({percent(float(other.next_probs[top]))})" in where
    moved = sum(a != b for a, b in zip(trace.predicted, other.predicted))
    assert f"differs at {moved} of {len(trace.tokens)} positions" in where


def test_the_chapter_is_for_models_at_full_precision_with_weights(nano):
    q = quantized(nano, "q4_0")
    walk = compile_chapters(q, q.run(nano.config.example))
    assert "19-precision.md" not in [c["file"] for c in walk["chapters"]]
    for name in ("bigram-char", "digits-mlp"):  # the learning path's models have their own chapters only
        m = load_model(name)
        files = [c["file"] for c in compile_chapters(m, m.run(m.config.example))["chapters"]]
        assert "19-precision.md" not in files


# In Chromium

def test_compare_panel_in_the_page(page: Page, live_server, console_errors, shakespeare, client, screenshots):
    text = shakespeare.config.example
    server = client.post("/api/compare", json={"model": SHAKESPEARE, "text": text, "other": "q4_0"}).json()
    open_view(page, f"{live_server}/?model={SHAKESPEARE}")
    page.click("#cmp-toggle")
    panel = page.locator("#compare")
    expect(panel.locator(".cmp-chart")).to_be_visible(timeout=30_000)
    page.wait_for_function("!document.querySelector('#status').textContent")
    dots = panel.locator(".cmp-dot")
    expect(dots).to_have_count(len(server["layers"]))
    assert len(server["layers"]) == shakespeare.config.n_layer + 1
    assert [float(x) for x in dots.evaluate_all("ds => ds.map((d) => d.dataset.last)")] == pytest.approx(
        [p["last"] for p in server["layers"]], rel=1e-12)
    ref_top, other_top = (server[k]["prediction"]["top"][0] for k in ("reference", "other"))
    readout = page.locator("#readout")
    expect(readout).to_contain_text("f32 → q4_0")
    assert readout.locator("[data-clean-token]").get_attribute("data-clean-token") == ref_top["token"]
    assert readout.locator("[data-token]").first.get_attribute("data-token") == other_top["token"]
    expect(readout).to_contain_text(ref_top["percent"])
    expect(readout).to_contain_text(other_top["percent"])
    expect(panel.locator("[data-side=reference]")).to_contain_text(f"f32: {ref_top['token']} {ref_top['percent']}")
    expect(panel.locator("[data-side=other]")).to_contain_text(f"q4_0: {other_top['token']} {other_top['percent']}")

    # A hovered cell: both values and their difference, the two runs'
    ref, other = shakespeare.run(text), quantized(shakespeare, "q4_0").run(text)
    name = "blocks.3.hook_resid_post"
    fly_to_block(page, name)
    p = page.evaluate(f"window.__llmviz.blockScreenPoint('{name}', 0, 20, 30)")
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip.locator(".tt-compare")).to_be_visible(timeout=20_000)
    index = tuple(json.loads(tip.get_attribute("data-index")))
    a, b = float(ref[name][index]), float(other[name][index])
    assert float(tip.locator("[data-reference]").get_attribute("data-reference")) == pytest.approx(a, rel=1e-6)
    assert float(tip.locator("[data-other]").get_attribute("data-other")) == pytest.approx(b, rel=1e-6)
    assert float(tip.locator(".tt-compare [data-change]").get_attribute("data-change")) == pytest.approx(b - a, abs=1e-6)
    expect(tip.locator(".tt-compare")).to_contain_text("f32")
    page.screenshot(path=screenshots / "precision-compare-hover.png")

    # Closing the panel: the plain pass again
    page.mouse.move(5, 400)
    page.click("#compare [data-cmp=close]")
    expect(readout).not_to_contain_text("f32 → q4_0")
    assert console_errors == []
