"""A Llama-family model in Debian's headless Chromium: its scene draws every tensor of its graph, and hover
explains a rotated key and a query head that shares its key-value head."""


import numpy as np
import pytest
from playwright.sync_api import Page, expect

from serving import serving
from test_e2e import console_errors, open_view  # noqa: F401
from test_hover import hover

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    yield from serve_tiny_llama(tmp_path_factory)


def serve_tiny_llama(tmp_path_factory):
    """A tiny Llama with grouped-query attention (random weights, no tokenizer), served on a free port: yields
    (its URL, the model) and stops the server after."""
    import llmviz
    from llmviz.serve.server import create_app
    from test_modern import save

    folder = tmp_path_factory.mktemp("tiny-llama")
    save(folder, "llama-gqa3")
    model = llmviz.load_model(str(folder))
    with serving(create_app([model]), "the tiny Llama's server") as port:
        yield f"http://127.0.0.1:{port}", model


def test_llama_scene_and_its_hover(page: Page, llama_server, console_errors, screenshots):
    url, model = llama_server
    ids = "5 17 3 60 2 41"
    open_view(page, f"{url}/?model={model.name}&input={ids.replace(' ', '+')}")
    stats = page.evaluate("window.__llmviz.stats()")
    assert stats["blocks"] == len(model.graph.names())
    trace = model.run(ids)
    page.screenshot(path=screenshots / "llama-scene.png")
    # A rotated key: position 4, key-value head 1, channel 2 (col: position, row: channel, slab: kv head).
    tip, _ = hover(page, "blocks.0.attn.hook_rot_k", 1, 4, 2)
    expect(tip).to_contain_text("θ = position × frequency")
    expect(tip).to_contain_text(f"channels 2 and {2 + model.config.d_head // 2}")
    assert float(tip.locator("[data-value]").get_attribute("data-value")) == pytest.approx(
        float(trace["blocks.0.attn.hook_rot_k"][4, 1, 2]), abs=1e-4)
    # Query head 5 reads key-value head 1, which heads 3, 4 and 5 share (six heads, two key-value heads).
    tip, _ = hover(page, "blocks.1.attn.hook_attn_scores", 5, 2, 4)
    expect(tip).to_contain_text("1 (shared by query heads 3 to 5)")
    assert float(tip.locator("[data-value]").get_attribute("data-value")) == pytest.approx(
        float(trace["blocks.1.attn.hook_attn_scores"][5, 4, 2]), abs=1e-4)
    page.screenshot(path=screenshots / "llama-hover-kv-head.png")
    tip, _ = hover(page, "blocks.0.ln1.hook_scale", 0, 3, 0)
    expect(tip).to_contain_text("√(Σ x² /")
    np.testing.assert_allclose(float(tip.locator("[data-value]").get_attribute("data-value")),
                               trace["blocks.0.ln1.hook_scale"][3], rtol=1e-4)
    assert console_errors == []


def test_llama_walkthrough_steps_its_generator_and_has_no_scale_view(page: Page, llama_server, console_errors):
    """A grouped-query Llama walked through: chapter 11 runs its generator on the KV cache (the cache counted in
    key/value heads), the shared-heads step stays on that view, and chapter 12 says this server has no scale view."""
    url, model = llama_server
    ids = "5 17 3 60 2 41"
    c, trace = model.config, model.run(ids)
    text = model.decode(trace.tokens + [trace.predicted_ids[-1]])
    open_view(page, f"{url}/?model={model.name}&input={ids.replace(' ', '+')}&step=11.2")
    page.wait_for_function("window.__llmviz.walk().settled && !window.__llmviz.flying()")
    expect(page.locator("#walk-title")).to_have_text("One step on the KV cache")
    expect(page.locator("#prompt")).to_have_value(text)
    bytes_ = 2 * c.n_layer * c.kv_heads * c.d_head * 6 * 4
    expect(page.locator(".walk-gen")).to_contain_text(f"2 · {c.n_layer} · {c.kv_heads} · {c.d_head} · 6 · 4 bytes = {bytes_:,} bytes")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#walk-title")).to_have_text("A cache of shared heads")
    page.wait_for_function("window.__llmviz.walk().settled")
    expect(page.locator("#prompt")).to_have_value(text)  # the same view: no second step
    page.keyboard.press("ArrowRight")
    expect(page.locator("#walk-title")).to_have_text("Same structure, bigger numbers")
    expect(page.locator("#notice")).to_contain_text("This server has no scale view")
    expect(page.locator("#model")).to_have_value(model.name)
    expect(page.locator("#scale")).to_be_hidden()
    assert console_errors == []
