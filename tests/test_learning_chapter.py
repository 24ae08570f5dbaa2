"""Chapter 14, "How it learned": its numbers are the backward pass's and one AdamW step's, computed here again from
Model.gradients and the AdamW formula; its steps show the gradients view; an input of one token has no loss, so no
chapter, and a model without weights has none."""

import math
import re

import numpy as np
import pytest

from llmviz import load_model
from llmviz.core.ops import fmt
from llmviz.core.sampling import percent
from llmviz.views.walkthrough import STEP_LR, compile_chapters
from test_e2e import console_errors  # noqa: F401
from test_walkthrough import structure_only


@pytest.fixture(scope="module")
def nano():
    return load_model("nano-gpt")


def chapter(w):
    return next((c for c in w["chapters"] if c["file"] == "14-how-it-learned.md"), None)


def text(c):
    return re.sub("<[^>]+>", "", " ".join(s["html"] for s in c["steps"]))


def test_its_numbers_are_the_backward_pass_and_one_adamw_step(nano):
    ids = nano.encode("CBABBCABBBC")
    c = chapter(compile_chapters(nano, nano.run(ids)))
    assert c and all(s["view"] == {"kind": "gradients"} for s in c["steps"])
    g, words = nano.gradients(ids), text(c)
    T = len(ids)
    assert f"averaged over the {T - 1} positions" in words and f"Here that is {fmt(g.loss)}." in words
    probs = nano.run(ids)["probs"][T - 2]
    assert f"the next token is {nano.token_strs([ids[-1]])[0]}, and the model gave it {percent(float(probs[ids[-1]]))}" in words
    # the logits' gradient at the right token: (p − 1) / (T − 1)
    logits = nano.run(ids)["logits"][T - 2].astype(np.float64)
    p64 = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    want = (p64[ids[-1]] - 1) / (T - 1)
    assert g["logits"][T - 2, ids[-1]] == pytest.approx(want, rel=1e-4, abs=1e-9)
    assert f"gets {fmt(float(g['logits'][T - 2, ids[-1]]))}: negative" in words
    assert "after layer 0" in words and fmt(float(g["blocks.0.hook_resid_post"][T - 2, 0])) in words
    assert f"has gradient {fmt(float(g.weights['blocks.0.mlp.W_in'][0, 0]))}" in words
    # One AdamW step from the model's weights (the first: m̂ = g, v̂ = g², so the move is lr · g / (|g| + ε)), after
    # clipping the whole gradient to norm 1; W_in is decayed (0.1).
    norm = math.sqrt(sum(float((w.astype(np.float64) ** 2).sum()) for w in g.weights.values()))
    gw = float(g.weights["blocks.0.mlp.W_in"][0, 0]) * (min(1.0, 1 / (norm + 1e-6)) if norm > 1 else 1.0)
    w0 = float(nano.weights["blocks.0.mlp.W_in"][0, 0])
    after = w0 * (1 - STEP_LR * 0.1) - STEP_LR * gw / (abs(gw) + 1e-8)
    assert f"moves that entry of W_in from {fmt(w0)} to {fmt(after)}" in words
    loss_after = float(re.search(r"from \S+ to (\S+)\.\s+Training", words).group(1).replace("−", "-"))
    assert loss_after < g.loss  # the step lowers the loss on this input


def test_no_chapter_without_a_loss_or_without_weights(nano):
    assert chapter(compile_chapters(nano, nano.run("A"))) is None  # one token: nothing to predict it on
    assert chapter(compile_chapters(structure_only("gpt2"), None)) is None
    c = chapter(compile_chapters(nano, nano.run("CBABBC")))
    assert "nano-gpt was trained to write the sorted answer" in text(c)  # (its own step: a sort model's loss)


@pytest.mark.browser
def test_its_steps_show_the_gradients_view_and_leaving_it_shows_values(page, live_server, console_errors):
    """Step 14.1 opens on the loss's gradients (the toggle pressed, the readout's loss, the legend's gradient
    palette); going back into chapter 13 shows the values again."""
    from playwright.sync_api import expect

    from test_e2e import open_view

    nano = load_model("nano-gpt")
    g = nano.gradients("CBABBC")
    open_view(page, f"{live_server}/?step=14.1")
    page.wait_for_function("window.__llmviz.walk().at !== null && window.__llmviz.walk().settled && !window.__llmviz.flying()")
    expect(page.locator("#walk-title")).to_have_text("The loss: how wrong it is")
    expect(page.locator("#grad-toggle")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#readout .ro-loss")).to_contain_text(fmt(g.loss))
    expect(page.locator("#walk-text")).to_contain_text(f"Here that is {fmt(g.loss)}.")
    page.keyboard.press("ArrowLeft")  # back into chapter 13: the values again
    page.wait_for_function("window.__llmviz.walk().at !== null && window.__llmviz.walk().at[0] === 13 && window.__llmviz.walk().settled")
    expect(page.locator("#grad-toggle")).to_have_attribute("aria-pressed", "false")
    assert page.locator("#readout .ro-loss").count() == 0 or not page.locator("#readout .ro-loss").is_visible()
    assert console_errors == []
