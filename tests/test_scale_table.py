"""The scale view in Debian's headless Chromium: its table of the models (shape, parameters, where they live) and
each model's title at its own model, there when the camera flies to it."""

import re

from playwright.sync_api import Page, expect

from llmviz import PRESETS
from test_e2e import open_view
from test_learner import browser_context_args  # noqa: F401  (the desktop viewport, 1280 × 800)

MODELS = ["nano-gpt", "gpt2", "gpt2-xl", "gpt3"]
COUNTS = {"nano-gpt": "85.7 k", "gpt2": "124.4 M", "gpt2-xl": "1.6 B", "gpt3": "174.6 B"}  # as the page rounds them
LABELS = {"embedding": "embedding", "attention": "attention", "mlp": "MLP", "other": "norms"}


def named(name: str) -> re.Pattern:
    """A model's name alone, or followed by its count (gpt2's, not gpt2-xl's)."""
    return re.compile(rf"^{re.escape(name)}(\d|$)")


def row(page: Page, name: str):
    return page.locator("#scalebars tr.scale-row", has=page.locator(".scale-name", has_text=named(name)))


def row_cells(page: Page, name: str) -> list[str]:
    return [c.strip() for c in row(page, name).locator("th, td").all_inner_texts()]


def test_the_table_shows_each_models_shape_and_where_its_parameters_live(page: Page, live_server, screenshots):
    open_view(page, f"{live_server}/?view=scale")
    table = page.locator("#scalebars .scale-table")
    expect(table).to_be_visible()
    expect(table.locator("thead")).to_have_text("modelCheadshead sizelayersvocabcontextparameterswhere they live")
    expect(table.locator("tr.scale-row")).to_have_count(4)
    assert row_cells(page, "gpt2")[:8] == ["gpt2", "768", "12", "64", "12", "50257", "1024", "124.4 M"]
    for name in MODELS:
        cfg = PRESETS[name]
        cells = row_cells(page, name)
        assert cells[:7] == [name, *map(str, (cfg.n_embd, cfg.n_head, cfg.d_head, cfg.n_layer, cfg.vocab_size, cfg.n_ctx))]
        r = row(page, name)
        expect(r.locator(".scale-params")).to_have_attribute("title", f"{cfg.n_params:,} parameters")
        # Each part: its exact count and share in its title, its width its share of the bar.
        parts = cfg.param_parts()
        segs = r.locator(".scale-part")
        expect(segs).to_have_count(len(parts))
        bar = r.locator(".scale-stack").bounding_box()["width"]
        for seg, (key, n) in zip(segs.all(), parts.items(), strict=True):
            title = seg.get_attribute("title")
            assert title.startswith(f"{name}: {LABELS[key]} {n:,} parameters ("), title
            assert abs(seg.bounding_box()["width"] - bar * n / cfg.n_params) <= 2.5  # (a sliver is drawn 2 px wide)
    expect(page.locator("#scalebars .scale-legend")).to_have_text("embeddingattentionMLPnorms")
    logs = [page.locator("#scalebars tr.scale-row .scale-log-fill").nth(i).bounding_box()["width"] for i in range(4)]
    assert logs == sorted(logs) and logs[0] > 5  # on a log scale: nano-gpt's bar short but there
    page.screenshot(path=screenshots / "scale-table.png")


def shown_titles(page: Page):
    return page.locator(".label.model-title .model-title-text").filter(visible=True)


def title_box(page: Page, name: str):
    title = shown_titles(page).filter(has_text=named(name))
    expect(title).to_have_count(1)
    return title.bounding_box()


def test_a_row_flies_to_its_model_and_the_models_title_sits_at_it(page: Page, live_server):
    open_view(page, f"{live_server}/?view=scale")
    for name in MODELS:
        row(page, name).locator("button.scale-name").click()
        page.wait_for_function("window.__llmviz.flying() === false")
        t = title_box(page, name)
        # Readable: whole on screen, its name and its count on two lines, clear of the table.
        expect(shown_titles(page).filter(has_text=named(name))).to_have_text(f"{name}{COUNTS[name]} parameters")
        assert t["height"] > 30 and t["x"] >= 0 and t["x"] + t["width"] <= 1280 and t["y"] >= 0
        table = page.locator("#scalebars").bounding_box()
        assert t["y"] >= table["y"] + table["height"], (t, table)
        # At its model: the model is drawn just under the title's left end (its top-left corner).
        under = {"left": t["x"] - 4, "right": t["x"] + 30, "top": t["y"] + t["height"] + 30, "bottom": t["y"] + t["height"] + 150}
        assert page.evaluate("r => window.__llmviz.readPixels(undefined, undefined, r)", under) > 0.04, name
        if name != "gpt3":  # (GPT-3 framed whole is the scale view's width: every title shows then)
            expect(shown_titles(page)).to_have_count(1)  # another model's title would be beside another model
            left = {**under, "left": under["left"] - 200, "right": under["right"] - 200}  # and nothing left of it
            assert page.evaluate("r => window.__llmviz.readPixels(undefined, undefined, r)", left) < 0.01, name


def test_every_model_is_titled_in_the_overview_without_overlaps_and_on_a_phone_the_table_scrolls(page: Page, live_server):
    for width, height in [(1280, 800), (390, 844)]:
        page.set_viewport_size({"width": width, "height": height})
        open_view(page, f"{live_server}/?view=scale")
        boxes = [title_box(page, name) for name in MODELS]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"] or \
                    a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"], (a, b)
        assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)  # each over its model, in the models' order
        box = page.locator("#scalebars").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width and box["height"] < 0.3 * height, box
    scroller = page.locator("#scalebars .scale-table-box")
    assert scroller.evaluate("e => e.scrollWidth > e.clientWidth && getComputedStyle(e).overflowX === 'auto'")
    scroller.evaluate("e => { e.scrollLeft = e.scrollWidth; }")  # the parts' bars, scrolled to
    expect(page.locator("#scalebars tr.scale-row").nth(3).locator(".scale-stack")).to_be_in_viewport()
