"""Interventions in the page, in Debian's headless Chromium: a link's edits shown as the edited pass coloured by
its change, the readout's clean → edited answer, an edited cell's tooltip, the right-click menu, Undo, and a refused
edit that leaves the view as it was."""

import json
import urllib.parse

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, fly_to_block, open_view  # noqa: F401
from test_hover import hover

TEXT = "CBABBCABBBC"
Z = "blocks.0.attn.hook_z"
EDIT = {"tensor": Z, "where": {"head": 1}, "set": "zero"}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


def link(server: str, edits: list[dict]) -> str:
    return f"{server}/?model=nano-gpt&input={TEXT}&edits={urllib.parse.quote(json.dumps(edits))}"


def edits_shown(page: Page) -> list[str]:
    return page.locator("#edits .ed-label").all_text_contents()


def settled(page: Page, n: int):
    """Wait for the view of an edited pass with n edits (0: the clean pass) to be drawn."""
    page.wait_for_function("n => (window.__llmviz.edits() ?? []).length === n && !document.querySelector('#status').textContent",
                           arg=n)


def test_a_link_with_an_edit_shows_the_edited_pass_and_what_changed(page: Page, live_server, console_errors, nano,
                                                                    screenshots):
    clean, edited = nano.run(TEXT), nano.run(TEXT, edits=[EDIT])
    open_view(page, link(live_server, [EDIT]))
    settled(page, 1)
    assert edits_shown(page) == [f"zero {Z} at attention head 1"]
    assert page.evaluate("window.__llmviz.editMarks()") > 0  # the edit is ringed where it was made
    readout = page.locator("#readout")
    expect(readout).to_contain_text("clean → edited")
    before = readout.locator("[data-clean-token]").get_attribute("data-clean-token")
    assert before == clean.predicted[-1] and readout.locator("[data-token]").get_attribute("data-token") == edited.predicted[-1]
    moved = [i for i, (a, b) in enumerate(zip(clean.predicted, edited.predicted)) if a != b]
    expect(readout.locator(".ro-changed")).to_contain_text(f"changed at {len(moved)} of {len(TEXT)} positions")
    for i in moved[:4]:
        expect(readout.locator(".ro-changed")).to_contain_text(f"after position {i}, {clean.predicted[i]} → {edited.predicted[i]}")

    # An edited cell: its value (0), the edit in words, and what the pass computed before it
    tip, _ = hover(page, Z, 1, 3, 2)
    expect(tip.locator(".tt-edit")).to_contain_text(f"set by an edit: zero {Z} at attention head 1")
    index = json.loads(tip.get_attribute("data-index"))
    assert float(tip.locator(".tt-value [data-value]").get_attribute("data-value")) == 0
    assert float(tip.locator("[data-computed]").get_attribute("data-computed")) == pytest.approx(
        float(clean[Z][tuple(index)]), rel=1e-5, abs=1e-7)
    # A cell downstream: the edited value, the clean one, and how far it moved
    tip, _ = hover(page, "blocks.2.hook_resid_post", 0, 4, 9)
    expect(tip.locator(".tt-clean")).to_be_visible()
    index = tuple(json.loads(tip.get_attribute("data-index")))
    assert float(tip.locator("[data-clean]").get_attribute("data-clean")) == pytest.approx(
        float(clean["blocks.2.hook_resid_post"][index]), rel=1e-5, abs=1e-6)
    assert float(tip.locator("[data-value]").first.get_attribute("data-value")) == pytest.approx(
        float(edited["blocks.2.hook_resid_post"][index]), rel=1e-5, abs=1e-6)
    expect(tip.locator(".tt-edit")).to_have_count(0)
    page.screenshot(path=screenshots / "edit-hover.png")

    # Colour by value instead of change: the pixels of the view change, and the URL says so
    page.mouse.move(5, 400)
    fly_to_block(page, Z)
    page.screenshot(path=screenshots / "edit-change.png")  # (the README's picture)
    by_change = page.evaluate("window.__llmviz.canvasDigest()")
    page.check("#edits input[value=values]")
    page.wait_for_function("d => window.__llmviz.canvasDigest() !== d", arg=by_change)
    assert "show=values" in page.url
    assert console_errors == []


def test_right_click_zero_then_undo(page: Page, live_server, console_errors, nano):
    open_view(page, f"{live_server}/?model=nano-gpt&input={TEXT}")
    expect(page.locator("#edits")).to_be_hidden()
    fly_to_block(page, "blocks.1.mlp.hook_post")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.1.mlp.hook_post', 0, 5, 17)")
    page.mouse.click(p["x"], p["y"], button="right")
    menu = page.locator("#edit-menu")
    expect(menu).to_be_visible()
    expect(menu).to_contain_text("blocks.1.mlp.hook_post")
    checked = menu.locator("input[name=em-scope]:checked")
    assert menu.locator(f"label:has(input[value='{checked.get_attribute('value')}'])").inner_text().strip().startswith(
        "MLP hidden unit")  # a neuron's cell: the neuron is offered first
    menu.locator("[data-set=zero]").click()
    settled(page, 1)
    (edit,) = page.evaluate("window.__llmviz.edits()")
    neuron = edit["where"]["d_mlp"][0]
    ref = nano.run(TEXT, edits=[{"tensor": "blocks.1.mlp.hook_post", "where": {"d_mlp": neuron}, "set": "zero"}])
    assert edits_shown(page) == [f"zero blocks.1.mlp.hook_post at MLP hidden unit {neuron}"]
    assert json.loads(urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["edits"][0]) == [
        {"tensor": "blocks.1.mlp.hook_post", "where": {"d_mlp": neuron}, "set": "zero"}]
    expect(page.locator("#readout [data-token]")).to_have_attribute("data-token", ref.predicted[-1])

    # A second edit, on another tensor: mean-ablate a head's pattern
    fly_to_block(page, "blocks.2.attn.hook_pattern")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.2.attn.hook_pattern', 2, 1, 8)")
    page.mouse.click(p["x"], p["y"], button="right")
    menu.locator("[data-set=mean]").click()
    settled(page, 2)
    assert len(edits_shown(page)) == 2 and edits_shown(page)[1].startswith("mean-ablate blocks.2.attn.hook_pattern at")

    page.locator("#edits [data-edit-undo]").click()  # Undo: the last edit goes
    settled(page, 1)
    assert edits_shown(page) == [f"zero blocks.1.mlp.hook_post at MLP hidden unit {neuron}"]
    page.locator("#view").focus()
    page.keyboard.press("Control+z")  # and Ctrl+Z: back to the clean pass
    settled(page, 0)
    expect(page.locator("#edits")).to_be_hidden()
    expect(page.locator("#readout")).not_to_contain_text("clean → edited")
    assert "edits=" not in page.url
    assert console_errors == []


def test_a_refused_patch_says_why_and_keeps_the_view(page: Page, live_server):
    open_view(page, link(live_server, [EDIT]))
    settled(page, 1)
    fly_to_block(page, "blocks.1.hook_resid_post")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.1.hook_resid_post', 0, 3, 3)")
    page.mouse.click(p["x"], p["y"], button="right")
    page.locator("#edit-menu [data-set=patch]").click()
    field = page.locator("#edit-menu [data-patch-input]")
    expect(field).to_have_value(TEXT)  # the other input starts as this one
    field.fill("CBA")
    field.press("Enter")
    expect(page.locator("#error")).to_contain_text("the patch's input has 3 tokens and this input 11")
    assert page.evaluate("window.__llmviz.edits().length") == 1 and len(edits_shown(page)) == 1
    # A weight cannot be edited: the menu says so and offers nothing
    fly_to_block(page, "blocks.0.attn.W_Q")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.0.attn.W_Q', 0, 1, 1)")
    page.mouse.click(p["x"], p["y"], button="right")
    expect(page.locator("#edit-menu .em-why")).to_contain_text("Weights are not edited here")
    expect(page.locator("#edit-menu [data-set]")).to_have_count(0)
    page.keyboard.press("Escape")
    expect(page.locator("#edit-menu")).to_be_hidden()


def test_an_edit_this_input_cannot_take_is_dropped_with_a_note(page: Page, live_server):
    bad = {"tensor": Z, "where": {"pos": 10}, "set": "zero"}
    open_view(page, f"{live_server}/?model=nano-gpt&input=CBABBC&edits={urllib.parse.quote(json.dumps([bad]))}")
    expect(page.locator("#notice")).to_contain_text("The edits could not be made on this input")
    expect(page.locator("#notice")).to_contain_text("pos goes from 0 to 5")
    assert page.evaluate("window.__llmviz.edits()") in (None, [])
    assert "edits=" not in page.url
    assert np.isfinite(page.evaluate("window.__llmviz.stats().frames"))


def test_a_walkthrough_step_makes_its_edit_in_one_click(page: Page, live_server, console_errors, screenshots):
    """A step's `@edit` is a button: one click makes its edits to the view (the readout says what the step says),
    another goes back to the clean pass; the next step is told on the clean pass."""
    import urllib.request

    with urllib.request.urlopen(f"{live_server}/api/walkthrough?model=nano-gpt") as r:
        walk = json.load(r)
    chapter, step, action = next((c["number"], i + 1, a) for c in walk["chapters"] for i, s in enumerate(c["steps"])
                                 for a in s["actions"] if a["type"] == "edit" and a["pos"] == len(walk["tokens"]) - 1)
    open_view(page, f"{live_server}/?step={chapter}.{step}")
    button = page.locator("#walk-card [data-walk-edit]", has_text=action["label"])
    expect(button).to_be_visible()
    expect(page.locator("#edits")).to_be_hidden()
    button.click()
    settled(page, len(action["edits"]))
    assert page.evaluate("window.__llmviz.edits()")[0]["tensor"] == action["edits"][0]["tensor"]
    made = page.locator("#walk-card .walk-edit-made")
    expect(made).to_contain_text(f"{action['before']['token']} {action['before']['percent']} → "
                                 f"{action['after']['token']} {action['after']['percent']}")
    readout = page.locator("#readout")
    expect(readout.locator("[data-clean-token]")).to_have_attribute("data-clean-token", action["before"]["token"])
    expect(readout.locator("[data-token]")).to_have_attribute("data-token", action["after"]["token"])
    page.wait_for_function("!window.__llmviz.flying()")
    page.screenshot(path=screenshots / "walk-edit.png")
    page.locator("#walk-card [data-walk-edit=clean]").click()
    settled(page, 0)
    expect(page.locator("#edits")).to_be_hidden()
    button.click()  # again, then on to the next step: it is told on the clean pass
    settled(page, len(action["edits"]))
    page.locator("[data-walk=next]").click()
    settled(page, 0)
    assert console_errors == []
