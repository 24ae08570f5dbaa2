"""Issue #20's chapters that operate the real features, in Debian's headless Chromium: the temperature slider
redraws its bars from the model's real logits, chapter 11 steps the real generator onto the KV-cache view, chapter
9 opens the Across-layers panel's logit lens and heads, and chapter 12 flies through the scale view."""

import pytest
from playwright.sync_api import Page, expect

from llmviz.core.sampling import percent, tempered
from llmviz.views.walkthrough import TEMPERATURES
from test_e2e import console_errors, open_view  # noqa: F401

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def settled(page: Page):
    """The step's view is loaded and its camera has landed."""
    page.wait_for_function("window.__llmviz.walk().at !== null && window.__llmviz.walk().settled && !window.__llmviz.flying()")


def marks(page: Page, model: str) -> set[str]:
    """The walkthrough's marks on a model's row of the scale view's table."""
    return set(page.evaluate(f"[...document.querySelector(\"#scalebars tr[data-name='{model}']\").classList]")) - {"scale-row"}


def set_slider(page: Page, k: int):
    page.evaluate(f"""(() => {{ const r = document.querySelector('#walk-card [data-temperature]');
        r.value = '{k}'; r.dispatchEvent(new Event('input', {{ bubbles: true }})); }})()""")


def test_temperature_slider_redraws_the_bars_from_the_real_logits(page: Page, live_server, nano, console_errors):
    logits = nano.run("CBABBC")["logits"][-1]
    open_view(page, f"{live_server}/?step=10.4")
    card = page.locator(".walk-temp")
    expect(card).to_contain_text("temperature 1: the model's own probabilities")
    rows = card.locator(".ch-row")
    expect(rows).to_have_count(3)
    for k in (0, len(TEMPERATURES) - 1, 2):
        set_slider(page, k)
        want = tempered(logits, TEMPERATURES[k])
        expect(card.locator(".walk-temp-says")).to_contain_text(f"temperature {TEMPERATURES[k]:g}")
        for i, name in enumerate("ABC"):
            row = rows.filter(has_text=name)
            expect(row.locator(".ch-p")).to_have_text(percent(float(want[i])))
            width = row.locator(".ch-bar span").evaluate("e => parseFloat(e.style.width)")
            assert width == pytest.approx(100 * want[i], abs=0.01)
    # the slider keeps its stop when the step is drawn again (a resize redraws it)
    page.set_viewport_size({"width": 1200, "height": 800})
    expect(card.locator("[data-temperature]")).to_have_value("2")
    assert console_errors == []


def test_generating_steps_the_generator_onto_the_kv_cache_view_and_back(page: Page, live_server, nano, console_errors):
    t = nano.run("CBABBC")
    pred = t.predicted[-1]
    open_view(page, f"{live_server}/?step=11.1")
    expect(page.locator("#walk-title")).to_have_text("Feed it back")
    page.keyboard.press("ArrowRight")
    settled(page)
    expect(page.locator("#walk-title")).to_have_text("One step on the KV cache")
    expect(page.locator("#prompt")).to_have_value("CBABBC" + pred)  # the generator's token, appended
    card = page.locator(".walk-gen")
    expect(card).to_contain_text(f"{pred} appended")
    expect(card).to_contain_text(f"2 · 3 · 3 · 16 · 6 · 4 bytes = {nano.config.kv_cache_bytes(6):,} bytes")
    # the KV-cache view: the cached keys beside the step's, the new column lit
    expect(page.locator("#labels .label.block[data-tensor='blocks.0.attn.past_k']")).to_be_visible()
    assert page.evaluate("window.__llmviz.regionPoint({tensor: 'blocks.0.attn.cache_k', ranges: {key_pos: [6, 6]}, role: 'subject'})")
    # a link to this step names the walkthrough's own input, not the generated one
    assert page.evaluate("location.search") == "?model=nano-gpt&input=CBABBC&step=11.2"
    page.keyboard.press("ArrowLeft")  # back: the input's own pass
    settled(page)
    expect(page.locator("#prompt")).to_have_value("CBABBC")
    assert page.evaluate("window.__llmviz.walk().at") == [11, 1]
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC&step=11.2")  # the link: the same step, generated again
    settled(page)
    expect(page.locator("#prompt")).to_have_value("CBABBC" + pred)
    expect(page.locator(".walk-gen")).to_contain_text("KV cache")
    assert console_errors == []


def test_layers_chapter_opens_the_logit_lens_then_every_head(page: Page, live_server, nano, console_errors):
    pred = nano.run("CBABBC").predicted[-1]
    open_view(page, f"{live_server}/?step=9.2")
    settled(page)
    expect(page.locator("#insights")).to_be_visible()
    expect(page.locator("#insights [data-tab=lens]")).to_have_attribute("aria-selected", "true")
    top = page.locator("#ins-lens table.lens tr").first.locator("td").last  # the last layer, the last position
    expect(top).to_have_text(pred)
    expect(page.locator("#walk-text")).to_contain_text(f"At the last position the lens's top token is {pred}")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#insights [data-tab=attention]")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#ins-attention canvas").first).to_be_visible()
    page.keyboard.press("ArrowRight")  # a step without the panel closes it
    expect(page.locator("#insights")).to_be_hidden()
    assert console_errors == []


def test_scale_chapter_flies_from_model_to_model_and_lights_their_rows(page: Page, live_server, nano, console_errors):
    open_view(page, f"{live_server}/?step=12.1")
    settled(page)
    expect(page.locator("#model")).to_have_value("__scale")
    page.wait_for_function("document.querySelector('[data-walk=play]').textContent === 'Play'")
    for name, cls in [("nano-gpt", {"walk-lit"}), ("gpt2", {"walk-lit"}), ("gpt2-xl", set()),
                      ("gpt3", {"walk-lit", "walk-here"})]:  # the models flown to lit, the camera's marked
        assert marks(page, name) == cls, name
    title = page.locator(".label.model-title .model-title-text", has_text="gpt3")
    expect(title).to_be_visible()
    assert page.evaluate("location.search") == "?model=nano-gpt&input=CBABBC&step=12.1"
    cam = page.evaluate("window.__llmviz.camera()")
    page.keyboard.press("ArrowRight")  # 12.2: to GPT-2, every row of the table lit
    settled(page)
    page.wait_for_function("document.querySelector('[data-walk=play]').textContent === 'Play'")
    assert marks(page, "gpt2") == {"walk-lit", "walk-here"}
    assert page.evaluate("window.__llmviz.camera()") != cam
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # back to chapter 11's last step: the model again, on the generator's step
    settled(page)
    expect(page.locator("#model")).to_have_value("nano-gpt")
    expect(page.locator("#prompt")).to_have_value("CBABBC" + nano.run("CBABBC").predicted[-1])
    assert page.evaluate("window.__llmviz.walk().at") == [11, 2]
    assert console_errors == []
