"""End to end in Debian's headless Chromium: the 3D view draws every tensor of the graph, real pixels change,
the model selector, input and deep links work, and failures are shown, never a blank page."""

import json
import re
import urllib.request

import pytest
from playwright.sync_api import Page, expect

VIEWPORT = {"width": 1024, "height": 720}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


@pytest.fixture
def console_errors(page: Page):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def open_view(page: Page, url: str, first_visit: bool = False):
    """Open the app and wait for its first frame; as a returning visitor (the intro card dismissed) unless
    first_visit."""
    if not first_visit:
        page.add_init_script("localStorage.setItem('llmviz.intro.dismissed', '1')")
    page.goto(url)
    expect(page.locator("body[data-ready=true]")).to_be_attached(timeout=30_000)
    page.wait_for_function("window.__llmviz.stats().frames > 0")
    if "step=" in url:  # a link to a walkthrough step: it opens after the first frame, and its cells are explained
        page.wait_for_function("window.__llmviz.walk().at !== null && window.__llmviz.walk().settled")


def fly_to_block(page: Page, tensor: str):
    """Put the camera on a block at once, and wait for the frame drawn there (its labels placed)."""
    before = page.evaluate("window.__llmviz.stats().frames")
    page.evaluate(f"window.__llmviz.flyToBlock('{tensor}')")
    page.wait_for_function("f => window.__llmviz.stats().frames > f && !window.__llmviz.flying()", arg=before)


def stats(page: Page) -> dict:
    return page.evaluate("window.__llmviz.stats()")


def graph_names(live_server, model: str) -> list[str]:
    with urllib.request.urlopen(f"{live_server}/api/models/{model}/graph") as r:
        return [t["name"] for t in json.load(r)["tensors"]]


def test_nano_gpt_view_draws_every_tensor(page: Page, live_server, console_errors, screenshots):
    open_view(page, live_server)
    s = stats(page)
    assert s["models"] == ["nano-gpt"]
    assert s["blocks"] == len(graph_names(live_server, "nano-gpt"))  # one block per tensor of the graph
    assert s["instances"] == 223  # every head of every per-head tensor is its own slab
    assert s["drawCalls"] <= 5  # all blocks in one instanced draw, plus links, frames and the residual band
    assert page.evaluate("window.__llmviz.readPixels()") > 0.05  # the canvas is not blank
    expect(page.locator("#model")).to_have_value("nano-gpt")
    expect(page.locator(".label.block", has_text="tokens")).to_contain_text("tokens C B A B B C")  # the input, first
    expect(page.locator(".label.section", has_text="Embedding")).to_be_visible()
    expect(page.locator(".label.section", has_text="Layer 0")).to_be_visible()
    expect(page.locator("#legend")).to_contain_text("masked: a future position")
    page.screenshot(path=screenshots / "scene-nano-gpt.png")
    assert console_errors == []


def test_labels_name_blocks_with_coloured_axes(page: Page, live_server, screenshots):
    open_view(page, live_server)
    fly_to_block(page, "blocks.0.attn.hook_q")
    label = page.locator(".label.block[data-tensor='blocks.0.attn.hook_q']")
    expect(label).to_have_text("Q T × H × A = 6 × 3 × 16")  # hook_q is [pos, head, d_head]
    # Each axis letter carries its axis colour, the same as in the legend.
    color = label.locator("span", has_text="A").first.evaluate("e => getComputedStyle(e).color")
    legend = page.locator("#legend .axis", has_text="d_head").locator("span").first.evaluate("e => getComputedStyle(e).color")
    assert color == legend == "rgb(194, 37, 92)"
    page.screenshot(path=screenshots / "scene-head-q.png")


def test_masked_attention_cells_are_drawn_masked(page: Page, live_server, screenshots):
    open_view(page, live_server)
    fly_to_block(page, "blocks.0.attn.hook_pattern")

    def pixel(col, row):
        p = page.evaluate(f"window.__llmviz.blockScreenPoint('blocks.0.attn.hook_pattern', 0, {col}, {row})")
        return page.evaluate(f"window.__llmviz.readPixels({p['x']}, {p['y']})")

    # Queries are rows and keys columns, as people draw attention: a key after its query is above the
    # diagonal, so the mask fills the upper right.
    for col in range(6):
        for row in range(6):
            rgb = pixel(col, row)
            grey = max(abs(c - g) for c, g in zip(rgb, (0xce, 0xd4, 0xda))) < 30 and max(rgb) - min(rgb) < 20
            assert grey == (col > row), (col, row, rgb)  # masked: grey, hatched; exactly above the diagonal
    first = pixel(0, 0)  # query 0 attends only to key 0: probability 1, the full activation blue
    assert first[2] > first[0] + 60, first
    # Both axes are labelled with the tokens: keys under the columns, queries left of the rows.
    keys = page.locator(".label.axis-name[data-tensor='blocks.0.attn.hook_pattern'][data-axis='key_pos']")
    queries = page.locator(".label.axis-name[data-tensor='blocks.0.attn.hook_pattern'][data-axis='pos']")
    def in_order(loc, key):
        return [t for _, t in sorted((el.bounding_box()[key], el.text_content()) for el in loc.all())]

    assert in_order(keys, "x")[:6] == list("CBABBC") and in_order(queries, "y") == list("CBABBC")
    page.screenshot(path=screenshots / "scene-masked-pattern.png")


def test_model_selector_switches_to_structure_only(page: Page, live_server, console_errors, screenshots):
    open_view(page, live_server)
    before = page.screenshot()
    page.select_option("#model", "gpt3")
    page.wait_for_function("window.__llmviz.stats().models[0] === 'gpt3' && !window.__llmviz.flying()")
    s = stats(page)
    assert s["blocks"] == len(graph_names(live_server, "gpt3"))  # all 96 layers
    assert s["drawCalls"] <= 5  # still bounded: 96 heads are merged into one box per tensor
    notice = page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("gpt3: structure only: no weights loaded")
    expect(page.locator("#run")).to_be_hidden()  # nothing to type for a model without weights
    assert page.screenshot() != before
    assert "model=gpt3" in page.url
    page.screenshot(path=screenshots / "scene-gpt3.png")
    assert console_errors == []


def test_deep_link_restores_model_camera_and_block(page: Page, live_server):
    url = f"{live_server}/?model=gpt2&cam=400,-900,3000,300,-1000,0&block=blocks.3.mlp.hook_pre"
    open_view(page, url)
    s = stats(page)
    assert s["models"] == ["gpt2"] and s["selected"] == "blocks.3.mlp.hook_pre"
    expect(page.locator("#selection")).to_contain_text("MLP pre-activation, layer 3")
    assert page.evaluate("window.__llmviz.camera()") == pytest.approx([400, -900, 3000, 300, -1000, 0], abs=1e-3)


def test_own_input_and_selection_go_into_the_link(page: Page, live_server, nano, screenshots):
    open_view(page, live_server)
    page.fill("#prompt", "AAC")
    page.click("#run button")
    page.wait_for_function("new URLSearchParams(location.search).get('input') === 'AAC'")
    page.wait_for_function("document.querySelector('.label.token') !== null || true")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.0.hook_resid_pre')")
    page.mouse.click(p["x"], p["y"])
    expect(page.locator("#selection")).to_contain_text("Residual stream into layer 0")
    assert "block=blocks.0.hook_resid_pre" in page.url
    # The link opens the same view.
    page2 = page.context.new_page()
    open_view(page2, page.url)
    assert stats(page2)["selected"] == "blocks.0.hook_resid_pre"
    assert page2.input_value("#prompt") == "AAC"
    page.screenshot(path=screenshots / "scene-selected.png")


def test_bad_input_shows_a_message(page: Page, live_server, screenshots):
    open_view(page, live_server)
    page.fill("#prompt", "CBD")
    page.click("#run button")
    alert = page.locator("#error")
    expect(alert).to_be_visible()
    expect(alert).to_have_text("unknown token 'D' at position 2: this model accepts only A, B, C")
    page.screenshot(path=screenshots / "scene-bad-input.png")


def test_scale_view_puts_four_models_side_by_side(page: Page, live_server, screenshots):
    open_view(page, f"{live_server}/?view=scale")
    s = stats(page)
    assert s["models"] == ["nano-gpt", "gpt2", "gpt2-xl", "gpt3"]
    titles = page.locator(".label.model-title .model-title-text")
    for name in ["nano-gpt", "gpt2", "gpt2-xl", "gpt3"]:  # every title shows its name (and its count where there is room)
        expect(titles.filter(has_text=re.compile(rf"^{re.escape(name)}(\d|$)"))).to_be_visible()
    expect(titles.filter(has_text="gpt3")).to_have_text("gpt3174.6 B parameters")
    boxes = [t.bounding_box() for t in titles.all() if t.is_visible()]
    for a in boxes:  # and none covers another
        for b in boxes:
            if a is not b:
                assert a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"] or \
                    a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"], (a, b)
    expect(page.locator("#model")).to_have_value("__scale")  # the selector says where we are
    rows = page.locator("#scalebars tr.scale-row")
    expect(rows).to_have_count(4)
    widths = [r.locator(".scale-log-fill").bounding_box()["width"] for r in rows.all()]
    assert widths == sorted(widths) and widths[0] > 5  # comparable: nano-gpt's bar is short but there
    expect(page.locator("#inset-label")).to_contain_text("nano-gpt, enlarged: 85.7 k parameters")
    page.screenshot(path=screenshots / "scene-scale.png")
    before = page.evaluate("window.__llmviz.camera()")
    page.locator("#scalebars button.scale-name", has_text="nano-gpt").click()
    page.wait_for_function("window.__llmviz.flying() === false")
    assert page.evaluate("window.__llmviz.camera()") != before


def test_keyboard_moves_and_home_resets(page: Page, live_server):
    open_view(page, live_server)
    start = page.url
    page.locator("#view").click(position={"x": 5, "y": 5})
    page.keyboard.press("ArrowRight")
    page.keyboard.press("+")
    moved = page.url
    assert moved != start and "cam=" in moved
    page.keyboard.press("Home")
    page.wait_for_function("moved => location.href !== moved", arg=moved)  # Home flies back, and the link follows


def test_no_webgl2_explains_itself(page: Page, live_server, screenshots):
    page.add_init_script("HTMLCanvasElement.prototype.getContext = function () { return null; };")
    page.goto(live_server)
    fatal = page.locator("#fatal")
    expect(fatal).to_be_visible()
    expect(fatal).to_contain_text("no WebGL2")
    page.screenshot(path=screenshots / "scene-no-webgl.png")


def test_lost_context_explains_itself(page: Page, live_server):
    open_view(page, live_server)
    page.evaluate("document.querySelector('#view').getContext('webgl2').getExtension('WEBGL_lose_context').loseContext()")
    expect(page.locator("#fatal")).to_contain_text("lost its graphics context")


def test_resize_redraws_to_the_new_size(page: Page, live_server):
    open_view(page, live_server)
    page.set_viewport_size({"width": 600, "height": 500})
    page.wait_for_function("document.querySelector('#view').width === 600")
    frames = stats(page)["frames"]
    assert frames > 0 and page.evaluate("window.__llmviz.readPixels()") > 0.05


def test_deep_link_with_bad_input_shows_the_reason(page: Page, live_server, screenshots):
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBD")
    alert = page.locator("#error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("unknown token 'D' at position 2: this model accepts only A, B, C")
    expect(alert).to_contain_text("showing the example CBABBC instead")
    expect(page.locator("#prompt")).to_be_visible()  # the input field stays, to correct the input
    expect(page.locator("#prompt")).to_have_value("CBD")
    assert stats(page)["blocks"] > 0 and page.evaluate("window.__llmviz.readPixels()") > 0.05  # the default scene
    expect(page.locator("#readout")).to_contain_text("ABBBCC")
    page.screenshot(path=screenshots / "scene-bad-link.png")
