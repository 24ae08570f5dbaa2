"""An image model's input drawn as its image: digits-mlp's 64 pixels stand in the scene as the 8 × 8 picture drawn on
the pad (row 0 at the top), not a row of 64 cells; a cell at row r, column c is pixel side·r + c, in the atlas, in the
hover and in the highlights. Every other block, and every other model, is laid out as before."""

import json

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from conftest import local_client
from llmviz import Graph, load_model
from llmviz.core.config import PRESETS
from llmviz.serve.server import create_app
from llmviz.views.layout import build_layout
from llmviz.views.scene import build_scene
from test_e2e import fly_to_block, open_view
from test_scene import load_meta

NAME = "digits-mlp"


@pytest.fixture(scope="module")
def digits():
    return load_model(NAME)


def test_the_input_block_is_the_image_and_nothing_else_changes(digits):
    side = digits.config.image_side
    assert side == 8
    blocks = {b.tensor: b for b in build_layout(digits.graph, 1).blocks}
    px = blocks["pixels"]
    assert (px.cols, px.rows, px.depth, px.wrap) == (side, side, 1, side)
    assert (px.x_axis, px.y_axis, px.z_axis) == ("pixel", None, None)
    w = blocks["blocks.0.mlp.W_in"]  # the first layer's weight keeps one column per pixel
    assert (w.cols, w.rows, w.wrap) == (side * side, 32, None)
    assert [n for n, b in blocks.items() if b.wrap] == ["pixels"]
    assert blocks["blocks.0.mlp.hook_pre"].y <= px.y - px.rows  # the layers still start below the image
    for name in ("nano-gpt", "gpt2", "gpt3"):  # token models: no block wraps
        assert all(b.wrap is None for b in build_layout(Graph(PRESETS[name]), 5).blocks)


def test_cell_row_r_column_c_holds_pixel_8r_plus_c(digits):
    trace = digits.run(digits.config.example)
    scene, atlas = build_scene(digits, trace, len(trace.tokens))
    b = next(b for b in scene["blocks"] if b["tensor"] == "pixels")
    assert (b["cols"], b["rows"], b["wrap"], b["tile"]) == (8, 8, 8, [1, 1])
    assert b["axes"] == ["pixel", None, None] and b["dims"] == [["pixel", 64]]
    [(x, y, w, h)] = b["slabs"]
    assert (w, h) == (8, 8)
    grid = atlas[y:y + h, x:x + w].astype(np.float32)
    pixels = trace["pixels"]
    for r in range(8):
        for c in range(8):
            assert grid[r, c] == pixels[8 * r + c]
    np.testing.assert_array_equal(grid, pixels.reshape(8, 8))  # row 0 at the top, as the pad draws it
    assert not np.array_equal(grid, grid.T)  # (the example is no symmetric picture: rows and columns are told apart)
    assert all(o["wrap"] is None for o in scene["blocks"] if o["tensor"] != "pixels")


def test_the_scene_endpoint_says_how_the_image_wraps():
    client = local_client(create_app())
    scene = json.loads(load_meta(client.post("/api/scene", json={"model": NAME}).content)["scene"])
    assert [(b["tensor"], b["wrap"]) for b in scene["blocks"] if b["wrap"]] == [("pixels", 8)]
    nano = json.loads(load_meta(client.post("/api/scene", json={"model": "nano-gpt"}).content)["scene"])
    assert all(b["wrap"] is None for b in nano["blocks"])
    spec = client.get("/openapi.json").json()["components"]["schemas"]["BlockInfo"]["properties"]
    assert "wrap" in spec


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


def test_hovering_row_3_column_3_of_the_image_shows_pixel_27(page: Page, live_server, digits, screenshots):
    trace = digits.run(digits.config.example)
    open_view(page, f"{live_server}/?model={NAME}")
    fly_to_block(page, "pixels")
    p = page.evaluate("window.__llmviz.blockScreenPoint('pixels', 0, 3, 3)")
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-tensor", "pixels")
    expect(tip).to_have_attribute("data-index", "[27]")
    ref = float(trace["pixels"][27])
    assert float(tip.locator("[data-value]").get_attribute("data-value")) == ref
    expect(tip.locator(".tt-value b")).to_have_text(f"{ref:g}")
    expect(tip).to_contain_text("= 27")  # the pixel's index, as the tooltip names it
    page.screenshot(path=screenshots / "image-layout-hover.png")


def test_the_image_is_square_on_screen_and_its_regions_land_on_their_cells(page: Page, live_server):
    open_view(page, f"{live_server}/?model={NAME}")
    fly_to_block(page, "pixels")

    def at(col, row):
        q = page.evaluate(f"window.__llmviz.blockScreenPoint('pixels', 0, {col}, {row})")
        return np.array([q["x"], q["y"]])

    across, down = at(7, 0) - at(0, 0), at(0, 7) - at(0, 0)
    assert abs(across[1]) < 0.2 * across[0] and abs(down[0]) < 0.2 * down[1]  # rows go across, and down the page
    assert 0.8 < across[0] / down[1] < 1.25  # square: 8 cells across, 8 down
    rect = page.evaluate("window.__llmviz.blockScreenRect('pixels')")
    assert 0.75 < (rect["right"] - rect["left"]) / (rect["bottom"] - rect["top"]) < 1.33

    def region(lo, hi):
        q = page.evaluate("r => window.__llmviz.regionPoint(r)", {"tensor": "pixels", "ranges": {"pixel": [lo, hi]},
                                                                     "role": "target"})
        return np.array([q["x"], q["y"]])

    tol = 0.1 * across[0] / 7  # a tenth of a cell
    assert np.abs(region(27, 27) - at(3, 3)).max() < tol  # one pixel: its cell
    assert np.abs(region(59, 59) - at(3, 7)).max() < tol
    assert np.abs(region(11, 14) - (at(3, 1) + at(6, 1)) / 2).max() < tol  # part of a row
    assert np.abs(region(8, 23) - (at(0, 1) + at(7, 2)) / 2).max() < tol  # whole rows: one rectangle
    assert np.abs(region(3, 20) - (at(3, 0) + at(7, 0)) / 2).max() < tol  # across rows: the first row's part first
    assert np.abs(region(0, 63) - (at(0, 0) + at(7, 7)) / 2).max() < tol  # the whole image


def test_a_hidden_units_sources_light_the_whole_image(page: Page, live_server, digits):
    open_view(page, f"{live_server}/?model={NAME}")
    fly_to_block(page, "blocks.0.mlp.hook_pre")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.0.mlp.hook_pre', 0, 0, 5)")
    page.mouse.move(p["x"], p["y"])
    expect(page.get_by_role("tooltip")).to_have_attribute("data-tensor", "blocks.0.mlp.hook_pre")
    # every pixel, unit 5's column of W_in, its bias and the cell itself: four rectangles (the image's one, not 8 rows)
    page.wait_for_function("window.__llmviz.highlighted() === 4")


def test_the_first_view_shows_the_image_whole_and_no_label_covers_a_block(page: Page, live_server, screenshots):
    from test_label_overlap import overlaps, still

    open_view(page, f"{live_server}/?model={NAME}")
    still(page)
    rect = page.evaluate("window.__llmviz.blockScreenRect('pixels')")
    assert rect["left"] > 0 and rect["right"] < 1280 and rect["top"] > 36 and rect["bottom"] < 800
    assert rect["right"] - rect["left"] > 120  # big enough to read the digit: 15 px a pixel at least
    bad, shown = overlaps(page)
    assert not bad and shown >= 3, bad
    expect(page.locator(".section", has_text="Input image").first).to_be_visible()
    page.screenshot(path=screenshots / "image-layout-home.png")
