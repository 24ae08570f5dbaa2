"""The scene as a first-time learner meets it, in Debian's headless Chromium: what the model answers, an
overview, honest axes, every head in reach, sources that stand out, and links and phones that behave."""

import math
import re

import pytest
from playwright.sync_api import Page, expect

from test_e2e import fly_to_block, open_view, stats

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def point(page: Page, tensor: str, slab=0, col=0, row=0):
    return page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}', {slab}, {col}, {row})")


def fly(page: Page, tensor: str):
    fly_to_block(page, tensor)


def hover(page: Page, tensor: str, slab=0, col=0, row=0):
    p = point(page, tensor, slab, col, row)
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-tensor", tensor)
    return tip


def test_the_readout_says_the_next_token_and_the_sorted_answer(page: Page, live_server, screenshots):
    open_view(page, live_server)
    readout = page.locator("#readout")
    expect(readout).to_be_visible()
    expect(readout.locator("[data-token]")).to_have_text("A")
    expect(readout).to_contain_text("99.99 %")
    expect(readout.locator("[data-answer]")).to_have_text("ABBBCC")
    expect(page.locator("#prompt")).to_have_attribute("placeholder", "nano-gpt: six letters from A, B, C; the model sorts them")
    expect(page.locator("#task")).to_have_text("nano-gpt: six letters from A, B, C; the model sorts them")
    page.screenshot(path=screenshots / "learner-home.png")


def test_other_lengths_get_a_note_and_short_inputs_keep_their_letters(page: Page, live_server):
    open_view(page, f"{live_server}/?input=AB")
    expect(page.locator("#readout .ro-note")).to_contain_text("trained on inputs of 6 tokens; this one has 2")
    expect(page.locator(".label.block[data-tensor='tokens']")).to_contain_text("tokens A B")


def test_only_the_last_position_predicts_and_vocab_rows_are_named(page: Page, live_server, screenshots):
    open_view(page, live_server)
    fly(page, "probs")
    nxt = page.locator(".label.predicted.next")
    expect(nxt).to_have_count(1)
    expect(nxt).to_contain_text("A")
    expect(nxt).to_have_attribute("data-position", "5")
    expect(page.locator(".label.predicted.given")).to_have_count(5)  # the earlier positions, greyed
    assert page.locator(".label.predicted.given").first.evaluate("e => getComputedStyle(e).color") == "rgb(173, 181, 189)"
    rows = page.locator(".label.axis-name[data-tensor='probs'][data-axis='vocab']")
    assert sorted((r.bounding_box()["y"], r.text_content()) for r in rows.all())[0][1] == "A"
    assert sorted(r.text_content() for r in rows.all()) == ["A", "B", "C"]
    tip = hover(page, "probs", 0, 5, 0)
    expect(tip.locator(".tt-index")).to_have_text("t = 5, v = A")
    page.screenshot(path=screenshots / "learner-output.png")


def test_a_source_highlight_changes_pixels_visibly(page: Page, live_server, screenshots):
    open_view(page, live_server)
    fly(page, "blocks.1.attn.hook_pattern")
    pixel = lambda p: page.evaluate(f"window.__llmviz.readPixels({p['x']}, {p['y']})")
    # Head 2's pattern cell [query 4, key 2] comes from the score at the same place, in view at the left.
    src = point(page, "blocks.1.attn.hook_attn_scores", 2, 2, 4)
    canvas = page.locator("#view").bounding_box()
    assert canvas["x"] < src["x"] and canvas["y"] < src["y"] < canvas["y"] + canvas["height"]
    before = pixel(src)
    hover(page, "blocks.1.attn.hook_pattern", 2, 2, 4)
    lit = pixel(src)
    assert sum(abs(a - b) for a, b in zip(before, lit)) > 120, (before, lit)
    assert lit[1] > 200 and lit[1] > lit[2] + 80, lit  # lime: a colour no data palette uses
    page.screenshot(path=screenshots / "learner-sources.png")
    # Hovering a score, the patterns are not its sources: they fade, so its sources stand out.
    other = point(page, "blocks.1.attn.hook_attn_scores", 0, 0, 0)
    page.mouse.move(5, canvas["y"] + canvas["height"] - 5)
    expect(page.get_by_role("tooltip")).to_be_hidden()
    pattern = point(page, "blocks.1.attn.hook_pattern", 0, 0, 0)
    before = pixel(pattern)
    hover(page, "blocks.1.attn.hook_attn_scores", 2, 1, 4)
    after = pixel(pattern)
    assert sum(after) > sum(before) + 60 and min(after) > 180, (before, after, other)


def test_the_tooltip_goes_when_the_camera_moves(page: Page, live_server):
    open_view(page, live_server)
    fly(page, "blocks.0.attn.hook_q")
    hover(page, "blocks.0.attn.hook_q", 0, 2, 3)
    page.mouse.wheel(0, 200)  # zoom
    expect(page.get_by_role("tooltip")).to_be_hidden()
    hover(page, "blocks.0.attn.hook_q", 0, 2, 3)
    page.keyboard.press("Home")
    expect(page.get_by_role("tooltip")).to_be_hidden()


def test_every_head_can_be_hovered(page: Page, live_server, screenshots):
    open_view(page, live_server)
    fly(page, "blocks.2.attn.hook_pattern")
    for head in range(3):
        tip = hover(page, "blocks.2.attn.hook_pattern", head, 1, 4)
        expect(tip).to_have_attribute("data-index", f"[{head},4,1]")
        expect(tip.locator(".tt-name")).to_contain_text(f"head {head}")
    expect(page.locator(".label.head", has_text="head 2").first).to_be_visible()
    page.screenshot(path=screenshots / "learner-heads.png")
    page.click("#heads")  # stacked in depth instead, for the 3D look
    page.wait_for_function("location.search.includes('heads=stack')")
    expect(page.locator("#heads")).to_have_attribute("aria-pressed", "true")


def test_the_whole_model_fits_the_view(page: Page, live_server, screenshots):
    open_view(page, live_server)
    page.click("#fit")
    page.wait_for_function("window.__llmviz.flying() === false")
    box = page.evaluate("window.__llmviz.modelScreenBox()")
    canvas = page.locator("#view").bounding_box()
    assert box["left"] >= canvas["x"] - 1 and box["right"] <= canvas["x"] + canvas["width"] + 1
    assert box["top"] >= canvas["y"] - 1 and box["bottom"] <= canvas["y"] + canvas["height"] + 1
    # Drawn across its width (the layers stand in columns): the left and the right third of the model are painted.
    w = box["right"] - box["left"]
    for left, right in [(box["left"], box["left"] + w / 3), (box["right"] - w / 3, box["right"])]:
        band = {"left": left, "right": right, "top": box["top"], "bottom": box["bottom"]}
        assert page.evaluate("r => window.__llmviz.readPixels(undefined, undefined, r)", band) > 0.02, band
    # The layers' titles beside their frames, on the left, clear of the model; no part's title over its cells.
    shown = page.evaluate("""[...document.querySelectorAll('.label.section')].filter((e) => e.style.display !== 'none')
        .map((e) => { const r = e.getBoundingClientRect(); return [e.textContent, e.className, r.right]; })""")
    assert sorted(t for t, _, _ in shown) == ["Layer 0", "Layer 1", "Layer 2"]  # no Attention or MLP over the cells
    assert all("beside" in cls for _, cls, _ in shown), shown
    page.screenshot(path=screenshots / "learner-whole-model.png")
    page.click("#home")  # closer: above its frame again
    page.wait_for_function("window.__llmviz.flying() === false")
    expect(page.locator(".label.section", has_text="Layer 0")).not_to_have_class(re.compile("beside"))


def test_the_map_flies_to_any_section(page: Page, live_server, screenshots):
    open_view(page, live_server)
    page.click("#map-toggle")
    entries = page.locator("#map [data-section]")
    expect(entries).to_have_count(1 + 1 + 3 * 3 + 1)  # whole model, embedding, 3 × (layer, attention, MLP), output
    page.screenshot(path=screenshots / "learner-map.png")
    page.click("#map [data-section='blocks.2.mlp']")
    page.wait_for_function("!window.__llmviz.flying()")
    p = point(page, "blocks.2.mlp.hook_post")
    canvas = page.locator("#view").bounding_box()
    assert abs(p["x"] - (canvas["x"] + canvas["width"] / 2)) < canvas["width"] / 2
    assert abs(p["y"] - (canvas["y"] + canvas["height"] / 2)) < canvas["height"] / 2
    expect(page.locator(".label.section", has_text="MLP")).to_be_visible()


def test_the_intro_card_shows_once(page: Page, live_server, screenshots):
    open_view(page, live_server, first_visit=True)
    intro = page.locator("#intro")
    expect(intro).to_be_visible()
    expect(intro).to_contain_text("six letters from A, B, C")
    expect(intro).to_contain_text("Hover any cell")
    page.screenshot(path=screenshots / "learner-intro.png")
    intro.get_by_role("button", name="Got it").click()
    expect(intro).to_be_hidden()
    page.reload()
    expect(page.locator("body[data-ready=true]")).to_be_attached(timeout=30_000)
    expect(intro).to_be_hidden()


def test_the_structure_is_labelled_at_home(page: Page, live_server):
    open_view(page, live_server)
    for text in ("W_E", "W_pos", "γ", "residual stream"):
        expect(page.locator("#labels .label", has_text=text).first).to_be_visible()
    expect(page.locator(".label.symbol", has_text="+").first).to_be_visible()  # where the two embeddings add
    assert_no_label_covers_another(page)
    page.click("#fit")  # the same at the scale of the whole model, where "W_out" used to land on "Layer 1"
    page.wait_for_function("window.__llmviz.flying() === false")
    assert_no_label_covers_another(page)


def assert_no_label_covers_another(page: Page):
    labels = page.locator("#labels .label:visible").all()
    boxes = [(lab.text_content(), lab.bounding_box()) for lab in labels]
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            overlap_x = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
            overlap_y = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
            assert overlap_x < 4 or overlap_y < 4, (ta, tb)


def test_a_bad_model_link_says_so(page: Page, live_server):
    open_view(page, f"{live_server}/?model=gpt5")
    expect(page.locator("#error")).to_contain_text("unknown model 'gpt5'")
    assert stats(page)["models"] == ["nano-gpt"]
    expect(page.locator("#model")).to_have_value("nano-gpt")


def test_links_fly_to_a_block_and_keep_a_pinned_cell(page: Page, live_server):
    open_view(page, f"{live_server}/?block=blocks.2.attn.hook_pattern")
    assert stats(page)["selected"] == "blocks.2.attn.hook_pattern"
    p = point(page, "blocks.2.attn.hook_pattern", 1, 2, 3)
    canvas = page.locator("#view").bounding_box()
    assert canvas["x"] < p["x"] < canvas["x"] + canvas["width"] and canvas["y"] < p["y"] < canvas["y"] + canvas["height"]
    page.mouse.click(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_have_class(re.compile("pinned"))
    page.wait_for_function("location.search.includes('cell=')")
    link = page.url
    assert "cell=blocks.2.attn.hook_pattern%3A1%2C2%2C3" in link
    page.goto("about:blank")
    open_view(page, link)
    expect(tip).to_be_visible()
    expect(tip).to_have_class(re.compile("pinned"))
    expect(tip).to_have_attribute("data-index", "[1,3,2]")


def test_a_double_click_flies_without_pinning(page: Page, live_server):
    open_view(page, live_server)
    fly(page, "blocks.0.attn.hook_q")
    p = point(page, "blocks.0.attn.hook_q", 0, 2, 3)
    page.mouse.dblclick(p["x"], p["y"])
    page.wait_for_function("!window.__llmviz.flying()")  # the double-click's flight has landed
    # The pointer still rests on a cell, so its hover tooltip may show; but nothing is pinned.
    expect(page.locator("#tooltip")).not_to_have_class(re.compile("pinned"))  # hidden, or a mere hover
    assert "cell=" not in page.url
    page.mouse.move(p["x"] + 40, p["y"] + 40)  # and it follows the pointer, as a hover does
    page.mouse.move(2, 790)
    expect(page.get_by_role("tooltip")).to_be_hidden()


def test_rotation_stays_where_cells_face_the_camera(page: Page, live_server):
    open_view(page, live_server)
    page.mouse.move(600, 400)
    page.mouse.down(button="right")
    page.mouse.move(2400, 400, steps=20)
    page.mouse.up(button="right")
    px, _, pz, tx, _, tz = page.evaluate("window.__llmviz.camera()")
    assert abs(math.atan2(px - tx, pz - tz)) <= 1.11  # about 63°: the faces, and their cells, stay in view
    assert page.evaluate("window.__llmviz.readPixels()") > 0.05


def test_the_legend_is_a_chip_that_opens(page: Page, live_server):
    """Folded by default (issue #21: it covers none of the model), with its families' swatches; a click opens it,
    a new view keeps it open, another click folds it."""
    open_view(page, live_server)
    legend = page.locator("#legend-box")
    expect(legend).not_to_have_attribute("open", "")
    expect(legend.locator(".legend-row").first).to_be_hidden()
    expect(legend.locator("summary .chip-swatch")).to_have_count(3)  # weights, activations, aggregates
    chip = page.locator("#legend").bounding_box()
    assert chip["width"] < 200 and chip["height"] < 40
    legend.locator("summary").click()
    expect(legend.locator(".legend-row").first).to_be_visible()
    page.fill("#prompt", "AAB")
    page.click("#run button")
    expect(page.locator(".label.block", has_text="tokens")).to_contain_text("tokens A A B")
    expect(page.locator("#legend-box")).to_have_attribute("open", "")
    page.locator("#legend-box summary").click()
    expect(page.locator("#legend .legend-row").first).to_be_hidden()


def test_structure_only_legend_shows_what_applies(page: Page, live_server):
    open_view(page, f"{live_server}/?model=gpt3")
    expect(page.locator("#legend")).to_contain_text("structure only")
    expect(page.locator("#legend")).not_to_contain_text("activations")
    expect(page.locator("#readout")).to_be_hidden()
    expect(page.locator("#gen-toggle")).to_be_hidden()  # nothing to generate without weights


@pytest.mark.parametrize("browser_context_args", [{"viewport": {"width": 390, "height": 844}, "has_touch": True,
                                                   "is_mobile": True}])
def test_on_a_phone(page: Page, live_server, screenshots):
    open_view(page, live_server)
    assert page.locator("header").bounding_box()["height"] < 60  # the controls fold behind ☰
    expect(page.locator("#help")).to_contain_text("tap a cell")
    expect(page.locator("#legend-box")).not_to_have_attribute("open", "")
    page.screenshot(path=screenshots / "learner-phone.png")
    page.click("#menu")
    expect(page.locator("#prompt")).to_be_visible()
    page.click("#menu")
    fly(page, "blocks.0.attn.hook_q")
    p = point(page, "blocks.0.attn.hook_q", 0, 2, 3)
    page.touchscreen.tap(p["x"], p["y"])
    expect(page.get_by_role("tooltip")).to_be_visible()
    expect(page.locator("#selection")).to_be_hidden()  # one panel at a time
    page.screenshot(path=screenshots / "learner-phone-tap.png")
    page.click("#map-toggle")
    expect(page.locator("#map")).to_be_visible()
    expect(page.get_by_role("tooltip")).to_be_hidden()


def test_dark_theme_follows_the_system(page: Page, live_server, screenshots):
    """Under prefers-color-scheme: dark the scene's ground and the panels are dark, the text light, and a dimmed block
    fades towards the dark ground (issue #21); the light theme is the default."""
    def luminance(rgb) -> float:
        return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255

    open_view(page, live_server)
    box = page.locator("#view").bounding_box()
    corner = page.evaluate(f"window.__llmviz.readPixels({box['x'] + 5}, {box['y'] + box['height'] - 5})")
    assert luminance(corner) > 0.9  # light by default
    page.emulate_media(color_scheme="dark")
    open_view(page, f"{live_server}/?step=5.5")
    box = page.locator("#view").bounding_box()
    corner = page.evaluate(f"window.__llmviz.readPixels({box['x'] + 5}, {box['y'] + box['height'] - 5})")
    assert luminance(corner) < 0.15, corner
    css = page.evaluate("""() => ['#walk', '#walk-text'].map(s => getComputedStyle(document.querySelector(s)))
        .map(c => [c.backgroundColor, c.color])""")
    assert css[0][0] == "rgb(33, 37, 41)" and css[1][1] == "rgb(222, 226, 230)"
    # a block the step does not light fades towards the dark ground, not towards white
    z = page.evaluate("window.__llmviz.blockScreenRect('blocks.0.attn.hook_z')")
    assert z and z["top"] < 800
    cell = page.evaluate(f"window.__llmviz.readPixels({(z['left'] + z['right']) / 2}, {(z['top'] + min(z['bottom'], 790)) / 2})")
    assert luminance(cell) < 0.6, cell
    page.screenshot(path=screenshots / "dark-theme.png")
