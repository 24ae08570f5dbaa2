"""The embedding map in Debian's headless Chromium: select W_E on nano-gpt, "Map these vectors", three labelled points
where the API puts them, a hovered point's vector equal to W_E's row; W_pos's plot; Escape closes; the walkthrough's
step opens it."""

import json
import urllib.request

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from llmviz.serve.export import export
from test_e2e import console_errors, fly_to_block, open_view  # noqa: F401  (fixtures reused)
from test_export_view import serve_folder

VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


def api_map(live_server) -> dict:
    with urllib.request.urlopen(f"{live_server}/api/models/nano-gpt/embedding-map") as r:
        return {m["which"]: m for m in json.load(r)["maps"]}


def select_block(page: Page, tensor: str) -> None:
    fly_to_block(page, tensor)
    p = page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}')")
    page.mouse.click(p["x"], p["y"])
    page.wait_for_function(f"window.__llmviz.stats().selected === '{tensor}'")


def centres(page: Page) -> list[tuple[float, float]]:
    """Each point's circle's centre on screen."""
    return [(r["x"] + r["width"] / 2, r["y"] + r["height"] / 2)
            for r in page.locator("#embmap .em-pt circle").evaluate_all("cs => cs.map((c) => c.getBoundingClientRect().toJSON())")]


def fits(points, xy: np.ndarray, atol: float) -> bool:
    """Whether these 2-D points are o + k·(x, −y) for one offset o and one scale k > 0 (a least-squares fit), within
    atol: the API's coordinates on one scale for both axes, PC2 upwards."""
    pts, flip = np.asarray(points, float), xy * [1, -1]
    d, p = flip - flip.mean(axis=0), pts - pts.mean(axis=0)
    k = (d * p).sum() / (d * d).sum()
    return k > 0 and np.allclose(pts, pts.mean(axis=0) + k * d, atol=atol)


def check_placed(page: Page, m: dict) -> None:
    """The points sit where the API's coordinates say, on screen and in the SVG's own numbers."""
    xy = np.array([[p["x"], p["y"]] for p in m["points"]])
    assert fits(centres(page), xy, atol=1.0)
    assert fits(page.locator("#embmap .em-pt circle").evaluate_all(
        "cs => cs.map((c) => [+c.getAttribute('cx'), +c.getAttribute('cy')])"), xy, atol=0.01)


def test_map_these_vectors(page: Page, live_server, nano, console_errors, screenshots):
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC")
    select_block(page, "embed.W_E")
    expect(page.locator("#selection")).to_contain_text("Token embedding matrix")
    page.get_by_role("button", name="Map these vectors").click()
    panel = page.locator("#embmap")
    expect(panel).to_be_visible()
    points = panel.locator(".em-pt")
    expect(points).to_have_count(3)
    expect(points.locator("text")).to_have_text(["A", "B", "C"])
    maps = api_map(live_server)
    tokens = maps["tokens"]
    check_placed(page, tokens)
    v1, v2 = tokens["variance"]
    expect(panel.locator(".em-x")).to_have_text(f"PC1 ({100 * v1:.1f} % of variance)")
    expect(panel.locator(".em-y")).to_have_text(f"PC2 ({100 * v2:.1f} % of variance)")
    expect(panel).to_contain_text("The two axes keep 100.0 % of the rows' variance")

    # Hover B: its id, and its vector: W_E's row 1, as coloured cells and as numbers.
    panel.locator('.em-pt[data-i="1"] circle').hover()
    tip = panel.locator(".em-tip")
    expect(tip).to_be_visible()
    expect(tip.locator(".em-tip-head")).to_have_text("B · token id 1")
    W_E = nano.weights["embed.W_E"]
    numbers = tip.locator(".em-nums span")
    expect(numbers).to_have_count(48)
    assert np.float32(numbers.first.get_attribute("data-v")) == W_E[1, 0]
    assert float(numbers.first.inner_text().replace("−", "-")) == pytest.approx(float(W_E[1, 0]), rel=1e-3)
    expect(tip.locator(".em-strip span")).to_have_count(48)
    page.screenshot(path=screenshots / "embedding-map.png")
    panel.locator('.em-pt[data-i="0"]').focus()  # from the keyboard: a point takes the focus and shows its card
    expect(tip.locator(".em-tip-head")).to_have_text("A · token id 0")

    # The positions' plot: eleven points, joined in order, where the API puts them.
    panel.get_by_role("tab", name="Positions · W_pos").click()
    expect(points).to_have_count(11)
    check_placed(page, maps["positions"])
    expect(panel.locator(".em-path")).to_have_count(1)
    page.screenshot(path=screenshots / "embedding-map-positions.png")

    page.keyboard.press("Escape")  # closes the map, and only it
    expect(panel).to_be_hidden()
    expect(page.locator("#selection")).to_be_visible()
    assert console_errors == []


def test_the_position_block_opens_its_own_plot(page: Page, live_server):
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC")
    select_block(page, "pos_embed.W_pos")
    page.get_by_role("button", name="Map these vectors").click()
    expect(page.locator("#embmap [role=tab][aria-selected=true]")).to_have_text("Positions · W_pos")
    expect(page.locator("#embmap .em-pt")).to_have_count(11)


def test_other_blocks_offer_no_map(page: Page, live_server):
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC")
    select_block(page, "hook_embed")
    expect(page.locator("#selection")).to_contain_text("Token embedding")
    expect(page.get_by_role("button", name="Map these vectors")).to_have_count(0)


def test_the_walkthrough_step_opens_the_map(page: Page, live_server, screenshots):
    with urllib.request.urlopen(f"{live_server}/api/walkthrough?model=nano-gpt&input=CBABBC") as r:
        chapter = next(c for c in json.load(r)["chapters"] if c["title"] == "Embedding")
    maps = [i for i, s in enumerate(chapter["steps"], 1) if {"type": "open", "tab": "map"} in s["actions"]]
    assert len(maps) == 2 and maps[1] == maps[0] + 1  # the map for every model, then nano-gpt's own step
    open_view(page, f"{live_server}/?step={chapter['number']}.{maps[0]}")
    expect(page.locator("#embmap .em-pt")).to_have_count(3)
    expect(page.locator("#walk-text")).to_contain_text("Tokens used alike land near each other")
    page.wait_for_function("!window.__llmviz.flying()")
    page.screenshot(path=screenshots / "walkthrough-embedding-map.png")
    page.keyboard.press("ArrowRight")  # nano-gpt's step: the map stays open
    expect(page.locator("#walk-text")).to_contain_text("none of them between the other two")
    expect(page.locator("#embmap .em-pt")).to_have_count(3)
    page.keyboard.press("ArrowRight")  # the step after them closes it
    expect(page.locator("#walk-title")).to_have_text(chapter["steps"][maps[1]]["title"])
    expect(page.locator("#embmap")).to_be_hidden()


def test_the_export_maps_too(page: Page, tmp_path, nano):
    """A static export has no server: the map's answer is stored in it, so the button works there as well."""
    export(nano, ["CBABBC"], tmp_path / "site", steps=1)
    server = serve_folder(tmp_path / "site")
    try:
        open_view(page, f"http://127.0.0.1:{server.server_address[1]}/")
        select_block(page, "embed.W_E")
        page.get_by_role("button", name="Map these vectors").click()
        expect(page.locator("#embmap .em-pt text")).to_have_text(["A", "B", "C"])
        expect(page.locator("#em-status")).to_have_text("")
    finally:
        server.shutdown()
