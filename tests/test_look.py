"""The look (issue 21): the whole model fills the screen as a solid seen at three-quarters, face-on one click away, and a
pulse of light runs through the forward pass on a first visit and on Run, skippable, and never under reduced motion."""

import pytest
from playwright.sync_api import Page, expect

from test_e2e import open_view
from test_modern_view import DESKTOP, browser_context_args, llama_server  # noqa: F401  (1280 × 800; a tiny Llama)

pytestmark = pytest.mark.browser


def settle(page: Page):
    page.wait_for_function("window.__llmviz.flying() === false")


def share_of_canvas(page: Page) -> float:
    """The share of the canvas's area that the model's bounding box, projected, covers."""
    box = page.evaluate("window.__llmviz.modelScreenBox()")
    c = page.locator("#view").bounding_box()
    w = min(box["right"], c["x"] + c["width"]) - max(box["left"], c["x"])
    h = min(box["bottom"], c["y"] + c["height"]) - max(box["top"], c["y"])
    return max(w, 0) * max(h, 0) / (c["width"] * c["height"])


def view_direction(page: Page) -> list[float]:
    px, py, pz, tx, ty, tz = page.evaluate("window.__llmviz.camera()")
    d = [px - tx, py - ty, pz - tz]
    n = sum(v * v for v in d) ** 0.5
    return [v / n for v in d]


def whole_model_fills_the_view(page: Page, url: str, screenshot=None):
    open_view(page, url)
    page.click("#fit")
    settle(page)
    if screenshot:
        page.screenshot(path=screenshot)
    share = share_of_canvas(page)
    assert share >= 0.5, f"the whole model covers {share:.0%} of the canvas"
    x, y, z = view_direction(page)
    assert x > 0.2 and y > 0.15 and z > 0.8, (x, y, z)  # from the right and above: a three-quarter view
    target = page.evaluate("window.__llmviz.camera()")[3:]
    page.click("#faceon")  # every cell straight on, for reading, looking at the same point
    settle(page)
    assert view_direction(page) == pytest.approx([0, 0, 1], abs=1e-3)
    assert page.evaluate("window.__llmviz.camera()")[3:] == pytest.approx(target, rel=1e-3, abs=1e-3)
    return share


@pytest.mark.parametrize("model", ["nano-gpt", "gpt2"])
def test_the_whole_model_fills_half_the_canvas(page: Page, live_server, screenshots, model):
    whole_model_fills_the_view(page, f"{live_server}/?model={model}", screenshots / f"look-whole-{model}.png")


def test_a_llama_whole_fills_half_the_canvas(page: Page, llama_server, screenshots):
    url, _ = llama_server
    whole_model_fills_the_view(page, url, screenshots / "look-whole-llama.png")


def test_home_frames_the_token_path_generously(page: Page, live_server):
    """A returning visitor's first view: the tokens and their embeddings, face-on, as tall as the view allows (with the
    titles above and a glimpse of the first layer below)."""
    open_view(page, live_server)
    embedding = {"tokens", "embed.W_E", "pos_embed.W_pos", "hook_embed", "hook_pos_embed"}
    rects = [r for r in page.evaluate("window.__llmviz.blockRects()") if r["tensor"] in embedding]
    assert len(rects) == len(embedding)
    top, bottom = min(r["top"] for r in rects), max(r["bottom"] for r in rects)
    c = page.locator("#view").bounding_box()
    assert bottom - top >= 0.55 * c["height"], (top, bottom, c)
    assert view_direction(page)[2] > 0.95  # face-on enough to read


def test_the_map_whole_model_is_the_same_three_quarter_view(page: Page, live_server):
    """From the map, which stays open on a desktop: the same view, in the part of the canvas the map leaves."""
    open_view(page, live_server)
    page.click("#map-toggle")
    page.click("#map [data-section='*']")
    settle(page)
    assert view_direction(page)[0] > 0.2
    box, m = page.evaluate("window.__llmviz.modelScreenBox()"), page.locator("#map").bounding_box()
    assert box["left"] >= m["x"] + m["width"] - 1  # clear of the map
    c = page.locator("#view").bounding_box()
    free = (c["x"] + c["width"] - (m["x"] + m["width"])) * c["height"]
    w = min(box["right"], c["x"] + c["width"]) - box["left"]
    h = min(box["bottom"], c["y"] + c["height"]) - max(box["top"], c["y"])
    assert w * h >= 0.5 * free, w * h / free


def test_a_first_visit_opens_on_the_whole_model_and_the_pulse_runs_through_it(page: Page, live_server, screenshots):
    open_view(page, live_server, first_visit=True)
    expect(page.locator("body[data-pulse=running]")).to_be_attached()
    # The picture and the pulse's state in one turn of the page's script (no frame can pass in between).
    state, during = page.evaluate("[document.body.dataset.pulse, window.__llmviz.canvasDigest()]")
    assert state == "running"
    assert share_of_canvas(page) >= 0.5  # the sculpture, whole, from the first frame
    page.screenshot(path=screenshots / "look-pulse.png")
    expect(page.locator("body[data-pulse=done]")).to_be_attached(timeout=10_000)
    # the blocks not reached yet were faded, the front lit: now all as they are
    assert page.evaluate("window.__llmviz.canvasDigest()") != during
    expect(page.locator("#intro")).to_be_visible()  # and the intro card offers the walkthrough


def test_a_key_or_a_click_skips_the_pulse(page: Page, live_server):
    open_view(page, live_server, first_visit=True)
    expect(page.locator("body[data-pulse=running]")).to_be_attached()
    page.locator("#view").click(position={"x": 5, "y": 700})
    expect(page.locator("body[data-pulse=skipped]")).to_be_attached()


def test_run_pulses_the_new_numbers(page: Page, live_server):
    open_view(page, live_server)  # a returning visitor: no pulse on arrival
    assert page.evaluate("document.body.dataset.pulse") is None
    page.fill("#prompt", "ABCABC")
    page.click("#run button[type=submit]")
    expect(page.locator("body[data-pulse=running]")).to_be_attached()
    expect(page.locator("body[data-pulse=done]")).to_be_attached(timeout=10_000)


@pytest.mark.parametrize("browser_context_args", [{"viewport": DESKTOP, "reduced_motion": "reduce"}], indirect=False)
def test_no_pulse_under_reduced_motion(page: Page, live_server):
    open_view(page, live_server, first_visit=True)
    expect(page.locator("body[data-pulse=reduced]")).to_be_attached()
    page.fill("#prompt", "ABCABC")
    page.click("#run button[type=submit]")
    expect(page.locator("#readout [data-answer]")).to_have_text("AABBCC")  # the new numbers are shown
    expect(page.locator("body[data-pulse=reduced]")).to_be_attached()  # at once, with no light running through them
