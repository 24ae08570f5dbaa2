"""The learning path's bigram table and attention toy in Debian's headless Chromium: each model's view draws every
tensor of its graph, and its own chapter opens at its first step with the model's numbers."""

import json
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from test_e2e import graph_names, open_view, stats

VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


def chapter(live_server, model: str) -> dict:
    with urllib.request.urlopen(f"{live_server}/api/walkthrough?model={model}") as r:
        (only,) = json.load(r)["chapters"]  # the model's own chapter, and no other
    return only


@pytest.mark.parametrize("model, first, says", [
    ("bigram-char", "One letter is all it sees", "its last character, ␣, is id 1 of the 64 characters"),
    ("attention-toy", "A task that needs to look back", "the model says F (100.00 %)"),
])
def test_the_model_and_its_chapter_open(page: Page, live_server, screenshots, model, first, says):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_view(page, f"{live_server}/?model={model}")
    assert stats(page)["blocks"] == len(graph_names(live_server, model))  # one block per tensor of its graph
    expect(page.locator("#model")).to_have_value(model)
    assert page.evaluate("window.__llmviz.readPixels()") > 0.05
    page.screenshot(path=screenshots / f"learning-path-{model}.png")
    c = chapter(live_server, model)
    assert c["steps"][0]["title"] == first
    open_view(page, f"{live_server}/?model={model}&step={c['number']}.1")
    panel = page.locator("#walk")
    expect(panel).to_contain_text(first)
    expect(panel).to_contain_text(says)
    page.screenshot(path=screenshots / f"learning-path-{model}-step1.png")
    assert errors == []
