"""The "Across layers" panel in Debian's headless Chromium: every head's attention, the logit lens and the branch
tree on its Poincaré disk."""

import json

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, open_view  # noqa: F401

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def test_every_head_hover_and_fly(page: Page, live_server, console_errors, screenshots, nano):
    open_view(page, live_server)
    page.click("#ins-toggle")
    page.wait_for_selector("#ins-attention[data-shown-ms]", state="attached")
    assert page.evaluate("location.search").endswith("insights=attention")
    # The hovered pair in every head: query 5 (C), key 2 (A); head 0 of layer 0 is at the top left.
    geo = page.evaluate("""(() => { const c = document.querySelector('.am-overlay'), r = c.getBoundingClientRect();
        return { left: r.left, top: r.top, w: c.width }; })()""")
    margin, cell, gap = 34, (geo["w"] - 34) // 3 - 6, 6
    step = cell / 6
    page.mouse.move(geo["left"] + margin + 2.5 * step, geo["top"] + margin + (cell + gap) * 1 + 5.5 * step)  # layer 1
    readout = page.locator(".am-readout")
    expect(readout).to_contain_text("query 5 C → key 2 A")
    trace = nano.run("CBABBC")
    for layer in range(3):
        row = readout.locator(f"tr:has(th:text-is('L{layer}')) td").all_text_contents()
        np.testing.assert_allclose([float(v.replace("−", "-")) for v in row],
                                   trace[f"blocks.{layer}.attn.hook_pattern"][:, 5, 2], rtol=2e-3)
    assert float(readout.get_attribute("data-weight")) == pytest.approx(
        float(trace["blocks.1.attn.hook_pattern"][0, 5, 2]), rel=2e-3)
    page.screenshot(path=screenshots / "insights-attention.png")
    before = page.evaluate("window.__llmviz.camera()")
    page.mouse.click(geo["left"] + margin + (cell + gap) * 2 + 2.5 * step, geo["top"] + margin + 5.5 * step)  # L0 h2
    page.wait_for_function("!window.__llmviz.flying()")
    assert page.evaluate("window.__llmviz.camera()") != before
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.0.attn.hook_pattern', 2, 2, 5)")
    assert 0 < p["x"] < 1280 and 40 < p["y"] < 800  # the head the click named is in view
    panel = page.locator("#insights").bounding_box()  # beside the panel, which stays open: not under it
    expect(page.locator("#insights")).to_be_visible()
    assert not (panel["x"] <= p["x"] <= panel["x"] + panel["width"] and panel["y"] <= p["y"] <= panel["y"] + panel["height"])
    assert console_errors == []


def test_logit_lens_grid_and_its_top_five(page: Page, live_server, screenshots, nano):
    from llmviz.views.lens import logit_lens

    lens = logit_lens(nano.run("CBABBC"), 5)
    open_view(page, f"{live_server}/?insights=lens")
    cells = page.locator("table.lens td[data-layer]")
    expect(cells).to_have_count(4 * 6)
    cell = page.locator("table.lens td[data-layer='1'][data-pos='2']")
    expect(cell).to_have_text(lens["top"][1][2][0]["token"])
    cell.hover()
    tip = page.locator(".lens-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("after layer 0, position 2")
    assert tip.locator("tr").count() == 3  # nano-gpt has three tokens: all of them
    page.screenshot(path=screenshots / "insights-lens.png")


def test_branch_tree_expand_walk_back_and_json(page: Page, live_server, screenshots, nano, tmp_path):
    open_view(page, f"{live_server}/?insights=branches")
    box = page.locator("#ins-branches")
    expect(box).to_have_attribute("data-nodes", "12")  # 3 children, each with 3: two levels to start
    page.screenshot(path=screenshots / "insights-branches.png")
    # Expand the most probable child's most probable child: 3 more nodes, and its path is the view's input.
    page.locator(".bt-node[data-path='0.0']").click()
    expect(box).to_have_attribute("data-nodes", "15")
    expect(box).to_have_attribute("data-focus", "CBABBCAB")
    expect(page.locator("#prompt")).to_have_value("CBABBCAB")
    assert page.evaluate("location.search").endswith("branch=0.1")  # token ids: A then B
    probs = nano.run("CBABBCAB").next_probs
    grand = page.locator(".bt-node[data-path='0.0.0'] title").text_content()
    assert f"{100 * probs.max():.2f}% after its parent" in grand
    page.click("[data-bt=parent]")  # walk back
    expect(box).to_have_attribute("data-focus", "CBABBCA")
    expect(page.locator("#prompt")).to_have_value("CBABBCA")
    # Export, then import: the same tree.
    with page.expect_download() as d:
        page.click("[data-bt=export]")
    exported = tmp_path / "tree.json"
    d.value.save_as(exported)
    tree = json.loads(exported.read_text())
    assert tree["model"] == "nano-gpt" and tree["focus"] == [0] and len(tree["children"]) == 3
    assert [c["prob"] for c in tree["children"]] == sorted((c["prob"] for c in tree["children"]), reverse=True)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    page.set_input_files(".bt-import input", str(bad))
    expect(page.locator(".bt-message")).to_contain_text("not an llmviz branch tree")
    expect(box).to_have_attribute("data-nodes", "15")  # kept as it was
    page.set_input_files(".bt-import input", str(exported))
    expect(page.locator(".bt-message")).to_be_hidden()
    expect(box).to_have_attribute("data-focus", "CBABBCA")
    expect(box).to_have_attribute("data-nodes", "15")


def test_a_link_holds_the_branch_focus(page: Page, live_server):
    open_view(page, f"{live_server}/?insights=branches&branch=0.1")
    box = page.locator("#ins-branches")
    expect(box).to_have_attribute("data-focus", "CBABBCAB")
    expect(page.locator(".bt-node.here")).to_have_attribute("data-path", "0.0")
