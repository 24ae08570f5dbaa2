"""digits-mlp in the page, in Debian's headless Chromium: a pad to draw the 8 × 8 input on replaces the text input, a
digit drawn with the mouse (or a finger) runs the model, the readout says what Model.run says of the same pixels, and
a hidden unit's or a logit's cell explains itself with the numbers of the trace, as a GPT's cells do."""

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from conftest import TEST_HOOKS
from llmviz import load_model
from llmviz.core.sampling import percent
from test_e2e import fly_to_block, open_view

NAME = "digits-mlp"


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@pytest.fixture(scope="module")
def digits():
    return load_model(NAME)


def shown_input(page: Page) -> str:
    return page.evaluate("new URLSearchParams(location.search).get('input')")


def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> str:
    """Draw strokes on the pad (points in image pixels, 0 … 8) with the mouse; wait for the pass of the drawing. Returns
    the pixels the pad sent, as text."""
    box = page.locator("#digitpad canvas.dp-draw").bounding_box()
    for stroke in strokes:
        before = page.get_attribute("#digitpad", "data-pixels")
        page.mouse.move(box["x"] + stroke[0][0] / 8 * box["width"], box["y"] + stroke[0][1] / 8 * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x / 8 * box["width"], box["y"] + y / 8 * box["height"], steps=6)
        page.mouse.up()
        pixels = page.get_attribute("#digitpad", "data-pixels")
        assert pixels != before  # the stroke inked the pad
        page.wait_for_function("p => new URLSearchParams(location.search).get('input') === p", arg=pixels)
    return pixels


def readout(page: Page) -> tuple[str, str]:
    r = page.locator("#readout .ro-next")
    return r.locator("[data-token]").get_attribute("data-token"), r.locator(".ro-prob").inner_text()


def test_a_drawn_digit_runs_the_model_and_the_readout_is_model_run(page: Page, live_server, digits, screenshots):
    open_view(page, f"{live_server}/?model={NAME}")
    pad = page.locator("#digitpad")
    expect(pad).to_be_visible()
    expect(page.locator("#run")).to_be_hidden()  # no text input for an image model: the pad is its input
    for what in ("Generate", "Across layers", "Stack heads"):  # nothing of the kind in an MLP
        expect(page.get_by_role("button", name=what, exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Walkthrough", exact=True)).to_be_visible()  # its own chapter (17)
    expect(page.locator("#readout")).to_contain_text("the model reads the drawing as")
    example = digits.run(digits.config.example)
    assert readout(page) == (example.predicted[0], percent(float(example.next_probs.max()))) == ("7", readout(page)[1])
    assert [float(v) for v in pad.get_attribute("data-pixels").split()] == example.tokens  # the example, on the pad

    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("() => (new URLSearchParams(location.search).get('input') || '').split(' ').every(v => v === '0')")
    assert pad.get_attribute("data-pixels") == " ".join(["0"] * 64)
    pixels = draw(page, [[(4.3, 0.8), (4.2, 4.0), (4.0, 7.2)]])  # a 1: one stroke down the middle
    trace = digits.run(pixels)
    assert shown_input(page) == pixels and trace.predicted == ["1"]
    assert readout(page) == (trace.predicted[0], percent(float(trace.next_probs.max())))
    rest = page.locator("#readout .ro-rest").inner_text()
    second = int(trace.next_probs.argsort()[-2])
    assert rest.startswith(f"then {second} ({percent(float(trace.next_probs[second]))})")
    page.screenshot(path=screenshots / "digits-one.png")

    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("() => (new URLSearchParams(location.search).get('input') || '').split(' ').every(v => v === '0')")
    pixels = draw(page, [[(1.5, 1.0), (6.5, 1.0), (4.0, 4.0), (3.0, 7.0)]])  # a 7: across, then down to the left
    trace = digits.run(pixels)
    assert readout(page) == (trace.predicted[0], percent(float(trace.next_probs.max())))
    assert trace.predicted == ["7"]
    page.screenshot(path=screenshots / "digits-seven.png")


def test_a_finger_draws_too(browser, live_server, digits):
    context = browser.new_context(has_touch=True, viewport={"width": 1280, "height": 800})
    context.add_init_script(path=TEST_HOOKS)
    page = context.new_page()
    open_view(page, f"{live_server}/?model={NAME}")
    box = page.locator("#digitpad canvas.dp-draw").bounding_box()
    before = page.get_attribute("#digitpad", "data-pixels")
    page.touchscreen.tap(box["x"] + box["width"] * 0.94, box["y"] + box["height"] * 0.94)  # a corner the example leaves blank
    page.wait_for_function("b => document.querySelector('#digitpad').dataset.pixels !== b", arg=before)
    pixels = page.get_attribute("#digitpad", "data-pixels")
    assert pixels.split()[63] == "16" and pixels.split()[:50] == before.split()[:50]
    page.wait_for_function("p => new URLSearchParams(location.search).get('input') === p", arg=pixels)
    trace = digits.run(pixels)
    assert readout(page) == (trace.predicted[0], percent(float(trace.next_probs.max())))
    context.close()


@pytest.mark.parametrize("tensor, row, index", [
    ("blocks.0.mlp.hook_pre", 5, (5,)),    # a hidden unit: b + Σ pixel · W
    ("blocks.0.mlp.hook_post", 5, (5,)),   # its ReLU
    ("logits", 7, (7,)),                   # the digit 7's score
    ("probs", 7, (7,)),                    # its probability
])
def test_a_cell_explains_itself_with_the_traces_numbers(page: Page, live_server, digits, tensor, row, index):
    trace = digits.run(digits.config.example)
    open_view(page, f"{live_server}/?model={NAME}")
    fly_to_block(page, tensor)
    p = page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}', 0, 0, {row})")
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-tensor", tensor)
    ref = float(trace[tensor][index])
    assert float(tip.locator("[data-value]").get_attribute("data-value")) == pytest.approx(ref, rel=1e-3, abs=1e-6)
    assert float(tip.locator("[data-result]").get_attribute("data-result")) == pytest.approx(ref, rel=1e-3, abs=1e-5)
    expect(tip.locator(".tt-value b")).to_have_text(f"{ref:.4g}".replace("-", "−"))


def test_a_token_model_keeps_its_text_input(page: Page, live_server):
    open_view(page, f"{live_server}/?model={NAME}")
    expect(page.locator("#digitpad")).to_be_visible()
    page.select_option("#model", "nano-gpt")
    page.wait_for_function("window.__llmviz.stats().models.join() === 'nano-gpt'")
    expect(page.locator("#digitpad")).to_be_hidden()
    expect(page.locator("#run")).to_be_visible()
    expect(page.locator("#readout")).to_contain_text("next token after")
    expect(page.get_by_role("button", name="Generate", exact=True)).to_be_visible()


def test_hovering_a_hidden_unit_draws_its_weights_as_a_picture(page: Page, live_server, digits, screenshots):
    open_view(page, f"{live_server}/?model={NAME}")
    unit = 5
    fly_to_block(page, "blocks.0.mlp.hook_post")
    p = page.evaluate(f"window.__llmviz.blockScreenPoint('blocks.0.mlp.hook_post', 0, 0, {unit})")
    page.mouse.move(p["x"], p["y"])
    expect(page.get_by_role("tooltip")).to_have_attribute("data-tensor", "blocks.0.mlp.hook_post")
    expect(page.locator("#digitpad")).to_have_attribute("data-unit", f"blocks.0.mlp.W_in:{unit}")
    picture = page.locator("#digitpad .dp-unit")
    expect(picture).to_be_visible()
    expect(picture).to_contain_text(f"unit {unit}'s weight on each pixel")
    column = digits.require_weights()["blocks.0.mlp.W_in"][:, unit]

    def colour(i: int) -> list[int]:  # a pixel's colour away from the ink dot at its centre
        return page.evaluate("""i => {
            const c = document.querySelector('#digitpad .dp-unit canvas'), s = c.width / 8;
            return Array.from(c.getContext('2d').getImageData((i % 8) * s + 2, Math.floor(i / 8) * s + 2, 1, 1).data).slice(0, 3);
        }""", i)
    teal, purple = (0x09, 0x5C, 0x6B), (0xBE, 0x4B, 0xDB)  # the weights' colours (colors.ts FAMILIES.weight)

    def near(rgb, ref):
        return sum((a - b) ** 2 for a, b in zip(rgb, ref, strict=True)) ** 0.5

    hi, lo, zero = int(column.argmax()), int(column.argmin()), int(np.abs(column).argmin())
    assert near(colour(hi), teal) < 10 and near(colour(lo), purple) < 60 and near(colour(zero), (255, 255, 255)) < 60
    # the first layer's W_in cell of the same unit pictures it too; a second-layer unit has no picture of pixels
    page.screenshot(path=screenshots / "digits-unit.png")
    fly_to_block(page, "blocks.1.mlp.hook_post")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.1.mlp.hook_post', 0, 0, 3)")
    page.mouse.move(p["x"], p["y"])
    expect(page.get_by_role("tooltip")).to_have_attribute("data-tensor", "blocks.1.mlp.hook_post")
    expect(page.locator("#digitpad")).to_have_attribute("data-unit", f"blocks.0.mlp.W_in:{unit}")  # (unchanged)


def test_the_held_out_mistakes_open_one_by_one(page: Page, live_server, digits, screenshots):
    from llmviz.training.digits import misclassified

    wrong = misclassified(digits)
    open_view(page, f"{live_server}/?model={NAME}")
    page.locator("#digitpad summary").click()
    buttons = page.locator("#digitpad .dp-list button")
    expect(buttons).to_have_count(len(wrong))
    expect(page.locator("#digitpad .dp-note")).to_contain_text(f"{len(wrong)} of 360 images it never trained on")
    assert buttons.first.inner_text() == f"{wrong[0]['label']} → {wrong[0]['predicted']}"
    buttons.nth(1).click()
    text = buttons.nth(1).get_attribute("data-text")
    page.wait_for_function("t => new URLSearchParams(location.search).get('input') === t", arg=text)
    trace = digits.run(text)
    assert trace.predicted == [str(wrong[1]["predicted"])]
    assert readout(page) == (str(wrong[1]["predicted"]), percent(float(trace.next_probs.max())))
    assert page.get_attribute("#digitpad", "data-pixels") == text  # the pad shows the image opened
    page.screenshot(path=screenshots / "digits-mistake.png")


def test_the_first_visit_card_tells_an_image_model_as_one(page: Page, live_server):
    open_view(page, f"{live_server}/?model={NAME}", first_visit=True)
    intro = page.locator("#intro")
    expect(intro).to_contain_text("every number of a small neural network")
    expect(intro).to_contain_text("its 64 pixels (0 blank, 16 ink) enter at the top, pass through 2 layers of hidden units")
    expect(intro).not_to_contain_text("transformer")
    expect(intro).not_to_contain_text("next token")
