"""A model served by the nnsight engine, in Debian's headless Chromium: the page says under its title that nnsight traced
it and what its grey blocks mean, a fetched cell's hover gives the value nnsight returned, a block it did not fetch is
drawn grey and its hover says so, and the controls the engine cannot serve (gradients, generation, precisions, the
Across-layers tabs that need the weights) are not offered."""

import json

import pytest
from playwright.sync_api import Page, expect

from serving import serving
from test_e2e import console_errors, fly_to_block, open_view  # noqa: F401
from test_hover import hover

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("nnsight")

pytestmark = pytest.mark.browser

PROMPT = "the quick brown fox"
VIEWPORT = {"width": 1400, "height": 850}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


@pytest.fixture(scope="module")
def nnsight_server(tmp_path_factory):
    """A tiny random GPT-2 folder (test_nnsight.py's), served with the nnsight engine: yields (its URL, the model)."""
    from llmviz.io.nnsight_engine import load_nnsight
    from llmviz.serve.server import create_app
    from reference import hf_gpt2_folder, train_bpe

    folder = tmp_path_factory.mktemp("nnsight") / "tiny-gpt2"  # (its name in the page)
    folder.mkdir()
    bpe = train_bpe()
    hf_gpt2_folder(folder, bpe, vocab_size=bpe.get_vocab_size(), n_layer=2, n_head=4, n_embd=32, n_positions=32)
    model = load_nnsight(str(folder))
    with serving(create_app([model]), "the nnsight model's server") as port:
        yield f"http://127.0.0.1:{port}", model


def pixel(page: Page, tensor: str, slab: int, col: int, row: int) -> tuple[int, int, int]:
    p = page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}', {slab}, {col}, {row})")
    return tuple(page.evaluate(f"window.__llmviz.readPixels({p['x']}, {p['y']})"))


def test_an_nnsight_model_is_shown_honestly(page: Page, nnsight_server, console_errors, screenshots):
    from llmviz.io.nnsight_engine import NOTE

    url, model = nnsight_server
    trace = model.run(PROMPT)
    open_view(page, f"{url}/?model={model.name}&input={PROMPT.replace(' ', '+')}")
    # Under the model's title, in the server's words: who traced it, and what grey means.
    note = page.locator(".label.model-title .engine-note")
    expect(note).to_be_visible()
    expect(note).to_have_text(NOTE)
    assert "nnsight" in NOTE and "grey" in NOTE
    # The first view, a fetched cell hovered (the token embedding, on screen without moving): docs/nnsight.png.
    p = page.evaluate("window.__llmviz.blockScreenPoint('hook_embed', 0, 3, 5)")
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_have_attribute("data-tensor", "hook_embed")
    index = json.loads(tip.get_attribute("data-index"))
    assert float(tip.locator("[data-value]").get_attribute("data-value")) == pytest.approx(
        float(trace["hook_embed"][tuple(index)]), abs=1e-5)
    page.screenshot(path=screenshots / "nnsight.png")

    # What the engine cannot serve is not offered: gradients, generation, precisions (and their comparison).
    for control in ("#grad-toggle", "#gen-toggle", "#precision-field", "#cmp-toggle", "#qerr-toggle"):
        expect(page.locator(control)).to_be_hidden()
    for control in ("#walk-toggle", "#ins-toggle", "#heads", "#fit"):  # what a forward pass's tensors are enough for
        expect(page.locator(control)).to_be_visible()

    # A fetched cell anywhere: its value is the one nnsight returned.
    tip, _ = hover(page, "blocks.1.attn.hook_pattern", 1, 0, 2)
    index = json.loads(tip.get_attribute("data-index"))
    assert float(tip.locator("[data-value]").get_attribute("data-value")) == pytest.approx(
        float(trace["blocks.1.attn.hook_pattern"][tuple(index)]), abs=1e-5)
    fetched = [pixel(page, "blocks.1.attn.hook_pattern", 1, c, 3) for c in range(4)]
    assert any(max(rgb) - min(rgb) > 40 for rgb in fetched), fetched  # coloured by its values

    # A block it did not fetch: grey, every cell alike, and its hover says why there is no number.
    tip, _ = hover(page, "blocks.0.attn.hook_z", 0, 1, 1)
    expect(tip).to_contain_text("not fetched by the nnsight engine")
    expect(tip.locator("[data-value]")).to_have_count(0)
    page.mouse.move(5, 400)  # (the tooltip off the block)
    expect(tip).to_be_hidden()
    grey = [pixel(page, "blocks.0.attn.hook_z", 0, c, r) for c, r in ((0, 0), (3, 2), (5, 6))]
    for rgb in grey:
        assert max(rgb) - min(rgb) < 30 and min(rgb) > 120, grey  # grey: no hue, light
    assert max(abs(a - b) for rgb in grey for a, b in zip(rgb, grey[0])) < 12, grey  # no value shades it

    # The legend names the grey; Across layers offers its attention tab, and says why the others are not offered.
    page.locator("#legend summary").click()
    expect(page.locator(".legend-unfetched")).to_contain_text("grey: not fetched by the nnsight engine")
    page.locator("#ins-toggle").click()
    expect(page.locator('#insights [data-tab="attention"]')).to_be_enabled()
    for tab in ("lens", "branches", "attribution", "patching"):
        t = page.locator(f'#insights [data-tab="{tab}"]')
        expect(t).to_be_disabled()
        expect(t).to_have_attribute("title", model.unavailable()[tab])
    assert console_errors == []


def test_its_walkthrough_tells_the_structure_and_says_why(page: Page, nnsight_server, console_errors):
    url, model = nnsight_server
    open_view(page, f"{url}/?model={model.name}")
    page.locator("#walk-toggle").click()
    expect(page.locator("#walk-note")).to_have_text(f"{model.name} is {model.walk_note}")
    expect(page.locator("#walk-title")).to_be_visible()
    assert console_errors == []
