"""Hover in Debian's headless Chromium: the tooltip's value and its formula's result equal the numpy trace."""

import json

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from conftest import TEST_HOOKS
from test_e2e import VIEWPORT, fly_to_block, open_view


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


# (tensor, slab, col, row) of the displayed cell, and the tensor index it stands for. Attention is drawn with
# one row per query and one column per key.
CELLS = [
    ("hook_embed", 0, 2, 7, (2, 7)),                                   # embedding lookup
    ("blocks.0.hook_resid_pre", 0, 4, 30, (4, 30)),                    # token row + position row
    ("blocks.0.ln1.hook_normalized", 0, 1, 12, (1, 12)),               # layer norm
    ("blocks.0.ln1.hook_out", 0, 3, 40, (3, 40)),                      # layer norm gain and bias
    ("blocks.1.attn.hook_q", 0, 3, 5, (3, 0, 5)),                      # Q (linear)
    ("blocks.1.attn.hook_attn_scores", 0, 2, 4, (0, 4, 2)),            # attention score (row: query 4, column: key 2)
    ("blocks.1.attn.hook_attn_scores", 0, 4, 1, (0, 1, 4)),            # masked score: key 4 after query 1
    ("blocks.1.attn.hook_pattern", 0, 3, 5, (0, 5, 3)),                # softmax
    ("blocks.2.attn.hook_z", 0, 5, 9, (5, 0, 9)),                      # weighted sum
    ("blocks.0.mlp.hook_pre", 0, 2, 100, (2, 100)),                    # MLP pre (linear)
    ("blocks.0.mlp.hook_post", 0, 2, 100, (2, 100)),                   # GELU
    ("blocks.1.hook_resid_mid", 0, 5, 20, (5, 20)),                    # residual add
    ("logits", 0, 5, 0, (5, 0)),                                       # unembedding (linear)
    ("probs", 0, 5, 0, (5, 0)),                                        # probability
]


def hover(page: Page, tensor: str, slab: int, col: int, row: int):
    fly_to_block(page, tensor)
    p = page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}', {slab}, {col}, {row})")
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-tensor", tensor)
    return tip, p


def test_hovered_values_and_formulas_equal_numpy(page: Page, live_server, nano, screenshots):
    trace = nano.run("CBABBC")
    open_view(page, live_server)
    for tensor, slab, col, row, index in CELLS:
        tip, _ = hover(page, tensor, slab, col, row)
        expect(tip).to_have_attribute("data-index", json.dumps(list(index)).replace(" ", ""))
        ref = float(trace[tensor][index])
        shown = float(tip.locator("[data-value]").get_attribute("data-value"))
        result = tip.locator("[data-result]").get_attribute("data-result")
        if ref == -np.inf:
            assert shown == -np.inf and result == "-Infinity"
            expect(tip.locator(".tt-formula")).to_have_text("future position: masked to −∞")
            continue
        assert shown == pytest.approx(ref, rel=1e-3, abs=1e-7), tensor
        assert float(result) == pytest.approx(ref, rel=1e-3, abs=1e-6), tensor
        # The value as a learner reads it: 4 significant digits.
        expect(tip.locator(".tt-value b")).to_have_text(f"{ref:.4g}".replace("-", "−"))
        assert page.evaluate("window.__llmviz.highlighted()") >= 2  # sources and the target outlined
    page.screenshot(path=screenshots / "hover-probs.png")


def test_formula_kinds_read_as_a_learner_expects(page: Page, live_server, nano, screenshots):
    trace = nano.run("CBABBC")
    open_view(page, live_server)
    tip, _ = hover(page, "blocks.1.attn.hook_q", 0, 3, 5)
    expect(tip).to_contain_text("Query vector, layer 1, head 0")
    expect(tip.locator(".tt-index")).to_have_text("t = 3, h = 0, a = 5")
    assert tip.locator(".tt-index span").first.evaluate("e => getComputedStyle(e).color") == "rgb(47, 158, 68)"
    expect(tip.locator(".tt-template")).to_have_text("b + Σ x · W")
    expect(tip).to_contain_text("48 terms; the 5 largest:")
    tip, _ = hover(page, "blocks.1.attn.hook_attn_scores", 0, 2, 4)  # query 4 (row), key 2 (column)
    expect(tip.locator(".tt-formula")).to_contain_text("q · k / 4 =")
    tip, _ = hover(page, "blocks.1.attn.hook_pattern", 0, 3, 5)
    m, s = trace["blocks.1.attn.hook_pattern_max"][0, 5], trace["blocks.1.attn.hook_pattern_sum_exp"][0, 5]
    expect(tip.locator(".tt-formula")).to_contain_text(f"− {m:.4g}) / {s:.4g}".replace("-", "−"))
    tip, _ = hover(page, "blocks.0.ln1.hook_out", 0, 3, 40)
    expect(tip.locator(".tt-template")).to_have_text("x̂ · γ + β")
    expect(tip).to_contain_text("μ")
    tip, _ = hover(page, "blocks.0.mlp.hook_post", 0, 2, 100)
    expect(tip.locator("svg.tt-curve circle")).to_have_count(1)  # the GELU curve with the point marked
    page.screenshot(path=screenshots / "hover-gelu.png")
    tip, _ = hover(page, "blocks.0.attn.W_K", 0, 10, 3)
    expect(tip).to_contain_text("one of the 2,304 numbers of the parameter blocks.0.attn.W_K")


def test_the_page_explains_a_cell_with_one_request_for_its_numbers(page: Page, live_server, nano):
    """The page explains a hovered cell itself (explain.ts): a fresh cell costs one POST /api/cells for exactly the
    numbers its formula reads; the model's graph is asked for once; a cell explained before costs nothing."""
    asked = []
    page.on("request", lambda r: asked.append((r.url.split("/api/", 1)[-1], r.post_data)) if "/api/" in r.url else None)
    open_view(page, live_server)
    trace = nano.run("CBABBC")
    tip, _ = hover(page, "blocks.1.attn.hook_q", 0, 3, 5)
    expect(tip.locator(".tt-formula")).to_contain_text("Σ C x·W (48 terms) = ")
    expect(tip.locator(".tt-template")).to_have_text("b + Σ x · W")
    assert float(tip.locator("[data-value]").get_attribute("data-value")) == float(trace["blocks.1.attn.hook_q"][3, 0, 5])
    cells = [json.loads(body) for url, body in asked if url == "cells"]
    assert len(cells) == 1 and [u for u, _ in asked].count("models/nano-gpt/graph?past=0") == 1
    assert sorted(s["tensor"] for s in cells[0]["slices"]) == [
        "blocks.1.attn.W_Q", "blocks.1.attn.b_Q", "blocks.1.attn.hook_q", "blocks.1.ln1.hook_out"]
    assert not [u for u, _ in asked if u.startswith("explain")]
    for tensor, slab, col, row, _ in CELLS[7:10]:  # three fresh cells more: one request each
        tip, _ = hover(page, tensor, slab, col, row)
        expect(tip.locator(".tt-formula")).to_be_visible()
    assert [u for u, _ in asked].count("cells") == 4
    hover(page, "blocks.1.attn.hook_q", 0, 3, 5)  # explained before: no request
    expect(tip).to_have_attribute("data-index", "[3,0,5]")
    assert [u for u, _ in asked].count("cells") == 4
    assert page.evaluate("window.__llmviz.hoverMs()") is not None


def test_pin_copy_keyboard_and_escape(page: Page, live_server, nano, screenshots):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    trace = nano.run("CBABBC")
    open_view(page, live_server)
    tip, p = hover(page, "blocks.1.attn.hook_q", 0, 3, 5)
    page.mouse.click(p["x"], p["y"])
    page.keyboard.press("Shift+PageDown")  # keyboard: two heads back
    page.keyboard.press("Shift+PageDown")
    expect(tip).to_have_attribute("data-index", "[3,2,5]")
    expect(tip).to_have_class("pinned")
    page.mouse.move(5, 5)  # a pinned tooltip stays while the pointer moves on
    expect(tip).to_be_visible()
    tip.locator(".tt-copy").click()
    expect(tip.locator(".tt-copy")).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == 'trace["blocks.1.attn.hook_q"][3, 2, 5]'
    page.keyboard.press("Shift+ArrowDown")  # keyboard: the next cell down is d_head 6
    expect(tip).to_have_attribute("data-index", "[3,2,6]")
    value = float(tip.locator("[data-value]").get_attribute("data-value"))
    assert value == pytest.approx(float(trace["blocks.1.attn.hook_q"][3, 2, 6]), rel=1e-6)
    page.keyboard.press("Shift+PageUp")  # the head in front
    expect(tip).to_have_attribute("data-index", "[3,1,6]")
    page.screenshot(path=screenshots / "hover-pinned.png")
    page.keyboard.press("Escape")
    expect(tip).to_be_hidden()


def test_structure_only_blocks_say_what_they_are(page: Page, live_server, screenshots):
    open_view(page, f"{live_server}/?model=gpt2")
    tip, _ = hover(page, "blocks.0.mlp.W_in", 0, 100, 100)
    expect(tip).to_contain_text("MLP input weight, layer 0")
    expect(tip).to_contain_text("2,359,296 parameters")
    expect(tip).to_contain_text("structure only: no weights loaded")
    page.screenshot(path=screenshots / "hover-structure.png")


@pytest.fixture
def touch_context(browser):
    ctx = browser.new_context(viewport=VIEWPORT, has_touch=True)
    ctx.add_init_script(path=TEST_HOOKS)
    yield ctx
    ctx.close()


def test_tap_shows_and_pins(touch_context, live_server, nano):
    page = touch_context.new_page()
    open_view(page, live_server)
    fly_to_block(page, "blocks.0.hook_resid_mid")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.0.hook_resid_mid', 0, 2, 10)")
    page.touchscreen.tap(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_have_class("pinned")
    value = float(tip.locator("[data-value]").get_attribute("data-value"))
    assert value == pytest.approx(float(nano.run("CBABBC")["blocks.0.hook_resid_mid"][2, 10]), rel=1e-6)


def test_keyboard_alone_reaches_a_cell(page: Page, live_server, nano):
    open_view(page, live_server)
    fly_to_block(page, "blocks.0.hook_resid_mid")
    page.locator("#view").focus()
    page.keyboard.press("Enter")
    tip = page.get_by_role("tooltip")
    expect(tip).to_have_class("pinned")
    expect(tip).to_have_attribute("data-tensor", "blocks.0.hook_resid_mid")
    first = json.loads(tip.get_attribute("data-index"))
    page.keyboard.press("Shift+ArrowRight")
    expect(tip).to_have_attribute("data-index", json.dumps([first[0] + 1, first[1]]).replace(" ", ""))
