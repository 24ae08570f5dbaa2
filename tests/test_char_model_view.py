"""shakespeare-char in the page, in Debian's headless Chromium: the first-visit card offers both bundled models and
switches to the one chosen, and a click on an MLP neuron's cell leads to what that neuron does."""

import json
import re
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from test_e2e import fly_to_block, open_view

NAME = "shakespeare-char"


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


def point(page: Page, tensor: str, slab=0, col=0, row=0):
    return page.evaluate(f"window.__llmviz.blockScreenPoint('{tensor}', {slab}, {col}, {row})")


def shown_models(page: Page) -> list[str]:
    return page.evaluate("window.__llmviz.stats().models")


def test_the_first_visit_card_offers_both_models_and_switches(page: Page, live_server, screenshots):
    open_view(page, live_server, first_visit=True)
    intro = page.locator("#intro")
    expect(intro).to_be_visible()
    nano = intro.locator("[data-intro=model][data-model='nano-gpt']")
    chars = intro.locator(f"[data-intro=model][data-model='{NAME}']")
    expect(nano).to_contain_text("sorts them")
    expect(nano).to_have_attribute("aria-pressed", "true")
    expect(chars).to_contain_text("English like Shakespeare")
    expect(chars).to_have_attribute("aria-pressed", "false")
    chars.click()
    expect(page.locator("#model")).to_have_value(NAME)
    page.wait_for_function(f"window.__llmviz.stats().models.join() === '{NAME}'")
    # The card stays, told for the model chosen, until dismissed.
    expect(intro).to_contain_text(f"This is {NAME}")
    expect(intro).to_contain_text("one character at a time")
    expect(intro.locator(f"[data-model='{NAME}']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#readout")).to_contain_text("next token")
    expect(page.locator("#prompt")).to_have_value(json.loads(urllib.request.urlopen(f"{live_server}/api/models").read())[1]["example"])
    assert f"model={NAME}" in page.url
    page.screenshot(path=screenshots / "char-model-intro.png")
    intro.get_by_role("button", name="Got it").click()
    expect(intro).to_be_hidden()
    assert shown_models(page) == [NAME]


def test_a_click_on_an_mlp_neuron_opens_what_it_does(page: Page, live_server, screenshots):
    open_view(page, f"{live_server}/?model={NAME}")
    tensor = "blocks.1.mlp.hook_post"
    fly_to_block(page, tensor)
    p = point(page, tensor, 0, 10, 40)  # (position 10, neuron 40)
    page.mouse.click(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_have_attribute("data-tensor", tensor)
    _, i = json.loads(tip.get_attribute("data-index"))
    ask = page.locator("#selection .neuron-ask")
    expect(ask).to_have_text(f"What does neuron 1.{i} do?")
    ask.click()
    panel = page.locator("#neuron")
    expect(panel).to_be_visible()
    rows = panel.locator(".nr-contexts li")
    expect(rows).to_have_count(8)
    want = json.loads(urllib.request.urlopen(f"{live_server}/api/models/{NAME}/neurons/1/{i}").read())
    for row, c in zip(rows.all(), want["contexts"]):
        expect(row.locator("code")).to_have_text(c["text"].replace("\n", "↵"))
        expect(row.locator("mark")).to_have_text(c["text"][c["mark"]].replace("\n", "↵"))
    expect(panel.locator(".nr-bars.up .nr-bar")).to_have_count(8)
    expect(panel.locator(".nr-bars.down .nr-bar")).to_have_count(8)
    expect(panel.locator(".nr-bars.up .nr-tok").first).to_have_text(want["boosted"][0]["token"])
    panel.screenshot(path=screenshots / "char-model-neuron.png")
    page.screenshot(path=screenshots / "char-model-neuron-page.png")
    page.select_option("#model", "nano-gpt")  # another model: the panel goes with its own
    page.wait_for_function("window.__llmviz.stats().models.join() === 'nano-gpt'")
    expect(panel).to_be_hidden()


def test_a_cell_that_is_no_neuron_offers_none_and_nano_gpt_says_it_has_no_contexts(page: Page, live_server):
    open_view(page, live_server)
    fly_to_block(page, "blocks.0.attn.hook_q")
    p = point(page, "blocks.0.attn.hook_q", 0, 1, 1)
    page.mouse.click(p["x"], p["y"])
    expect(page.get_by_role("tooltip")).to_have_attribute("data-tensor", "blocks.0.attn.hook_q")
    expect(page.locator("#selection")).to_be_visible()
    page.wait_for_function("fetch('/api/models/nano-gpt/neurons').then(() => true)")  # what the panel asked for, known
    expect(page.locator("#selection .neuron-ask")).to_have_count(0)
    fly_to_block(page, "blocks.0.mlp.hook_pre")
    p = point(page, "blocks.0.mlp.hook_pre", 0, 5, 2)
    page.mouse.click(p["x"], p["y"])
    ask = page.locator("#selection .neuron-ask")
    expect(ask).to_have_text(re.compile(r"What does neuron 0\.\d+ do\?"))
    ask.click()
    expect(page.locator("#neuron")).to_contain_text("nano-gpt has no stored contexts")
    expect(page.locator("#neuron .nr-bars.up .nr-bar")).to_have_count(3)
    page.keyboard.press("Escape")  # Escape closes the neuron's panel first, and only it
    expect(page.locator("#neuron")).to_be_hidden()
    expect(page.locator("#selection")).to_be_visible()
    ask.click()
    expect(page.locator("#neuron")).to_be_visible()
    page.locator("#neuron [data-neuron=close]").click()
    expect(page.locator("#neuron")).to_be_hidden()
