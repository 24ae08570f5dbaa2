"""Links and the view's layout in Debian's headless Chromium: a link's block, cell or KV-cache step that the view does
not have says so and shows the rest; ?heads=stack opens stacked heads; Stack heads keeps the camera on its section;
zooming out stops while the whole model is still a good part of the view."""

import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, open_view, stats  # noqa: F401
from test_learner import DESKTOP, browser_context_args, point  # noqa: F401  (the desktop viewport, a cell's point)


def test_a_link_to_a_block_or_cell_the_model_lacks_says_so(page: Page, live_server, screenshots):
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC&block=blocks.9.attn.hook_q")
    notice = page.locator("#notice")
    expect(notice).to_have_text("No block named blocks.9.attn.hook_q in nano-gpt")
    expect(page.locator(".label.block", has_text="tokens")).to_contain_text("tokens C B A B B C")  # the rest is shown
    assert page.evaluate("window.__llmviz.readPixels()") > 0.05
    page.screenshot(path=screenshots / "link-bad-block.png")

    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC&cell=blocks.0.attn.hook_nope:0,1,1")
    expect(notice).to_have_text("No block named blocks.0.attn.hook_nope in nano-gpt: the link's cell is not pinned")
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC&block=probs&cell=blocks.0.attn.hook_q:3,1,40")
    expect(notice).to_contain_text("No cell 3,1,40 in blocks.0.attn.hook_q: it has heads 0–2")
    expect(page.locator("#selection")).to_contain_text("probs")  # the link's good block is selected
    expect(page.get_by_role("tooltip")).to_be_hidden()
    assert "cell=" not in page.evaluate("location.search")  # a copied link no longer carries it

    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC&block=probs&cell=probs:0,5,2")  # a good one: no message
    expect(page.get_by_role("tooltip")).to_be_visible()
    expect(notice).to_be_hidden()


def test_a_past_link_opens_the_kv_cache_view_or_says_why_not(page: Page, live_server, screenshots):
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBCAB&past=7")
    page.evaluate("window.__llmviz.flyToBlock('blocks.0.attn.cache_k')")
    expect(page.locator(".label.cache-note[data-tensor='blocks.0.attn.cache_k']")).to_contain_text(
        "columns 0–6: from the cache · 7: new")
    expect(page.locator("#notice")).to_be_hidden()
    assert "past=7" in page.evaluate("location.search")

    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC&past=7")  # six tokens: no step after seven
    notice = page.locator("#notice")
    expect(notice).to_contain_text("The link's KV-cache view (past=7) cannot be shown for CBABBC: past must be from 1 "
                                   "to 5")
    expect(notice).to_contain_text("Showing the whole pass instead")
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator(".label.block", has_text="tokens")).to_contain_text("tokens C B A B B C")
    page.screenshot(path=screenshots / "link-bad-past.png")


def head_gap(page: Page) -> float:
    """How far apart head 0 and head 1 of a pattern are drawn across the screen, in pixels."""
    page.evaluate("window.__llmviz.flyToBlock('blocks.0.attn.hook_pattern')")
    a, b = point(page, "blocks.0.attn.hook_pattern", 0), point(page, "blocks.0.attn.hook_pattern", 1)
    return abs(b["x"] - a["x"])


def test_a_stack_link_opens_stacked_heads(page: Page, live_server):
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC")
    side = head_gap(page)
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC&heads=stack")
    expect(page.locator("#heads")).to_have_attribute("aria-pressed", "true")
    stacked = head_gap(page)
    assert stacked < side / 4, (stacked, side)  # one behind the other, not side by side


def test_stack_heads_keeps_the_camera_on_the_section(page: Page, live_server, screenshots):
    open_view(page, live_server)
    page.click("#map-toggle")
    page.click("#map [data-section='blocks.1.attn']")
    page.wait_for_function("window.__llmviz.camera()[1] < -300")  # on its way down to layer 1's attention
    page.click("#map-toggle")
    canvas = page.locator("#view").bounding_box()

    def on_screen():
        p = point(page, "blocks.1.attn.hook_pattern", 0, 2, 2)
        return canvas["x"] < p["x"] < canvas["x"] + canvas["width"] and canvas["y"] < p["y"] < canvas["y"] + canvas["height"]

    for pressed in ("true", "false"):
        page.click("#heads")
        expect(page.locator("#heads")).to_have_attribute("aria-pressed", pressed)
        page.wait_for_function(f"location.search.includes('heads=stack') === {pressed}")
        assert on_screen()  # still layer 1's attention, not Home
        expect(page.locator(".label.block", has_text="tokens C B A B B C")).to_be_hidden()
        if pressed == "true":
            page.screenshot(path=screenshots / "stack-heads-attention.png")


@pytest.mark.parametrize("link", ["?model=nano-gpt", "?model=gpt3", "?view=scale"])
def test_zooming_out_stops_with_the_model_in_view(page: Page, live_server, link):
    open_view(page, f"{live_server}/{link}")
    canvas = page.locator("#view").bounding_box()
    page.mouse.move(canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    for _ in range(60):
        page.mouse.wheel(0, 1000)
    page.wait_for_function("window.__llmviz.stats().frames > 0")
    page.keyboard.press("-")  # the keyboard's zoom-out too
    box = page.evaluate("window.__llmviz.modelScreenBox()")
    extent = max(box["right"] - box["left"], box["bottom"] - box["top"])
    assert extent > 0.3 * canvas["height"], (box, canvas)
