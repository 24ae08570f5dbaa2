"""The chain rule on hover, in the page (issue 24): in the gradients view, hovering a cell shows ∂loss/∂x as upstream ×
local for each op that reads it, with the pass's numbers, and a total equal to the backward pass's gradient: a score
through the softmax (p · (g − Σ p·g)), a cell of the softmax pattern, an MLP pre-activation (g · GELU′(x)), a weight
(Σ over the positions of g · x) and the residual stream, read by two ops."""

from __future__ import annotations

import json

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, open_view  # noqa: F401
from test_hover import hover

TEXT = "CBABBCABBBC"

# tensor, slab, col, row (head, across, down: as the view lays it out), the formula of its first reader
CELLS = [
    ("blocks.1.attn.hook_attn_scores", 0, 2, 4, "p · (g − Σ p·g)"),
    ("blocks.1.attn.hook_pattern", 2, 1, 5, "Σ g · v"),
    ("blocks.0.mlp.hook_pre", 0, 3, 17, "g · GELU′(x)"),
    ("blocks.0.mlp.W_in", 0, 17, 5, "Σ g · x"),
    ("blocks.1.hook_resid_pre", 0, 4, 9, "(g − mean g − x̂ · mean(g · x̂)) / σ"),
]


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@pytest.fixture(scope="module")
def grads(nano):
    return nano.gradients(TEXT)


def test_hover_shows_the_chain_rule_with_a_total_equal_to_the_backward_pass(page: Page, live_server, console_errors,
                                                                              nano, grads, screenshots):
    open_view(page, f"{live_server}/?model=nano-gpt&input={TEXT}&show=gradients")
    expect(page.locator("#grad-toggle")).to_have_attribute("aria-pressed", "true")
    for tensor, slab, col, row, formula in CELLS:
        tip, _ = hover(page, tensor, slab, col, row)
        chain = tip.locator(".tt-chain")
        expect(chain).to_be_visible()
        index = tuple(json.loads(tip.get_attribute("data-index")))
        ref = float((grads.weights[tensor] if tensor in grads.weights else grads[tensor])[index])
        api = page.request.post(f"{live_server}/api/chain",
                                data={"model": "nano-gpt", "text": TEXT, "tensor": tensor, "index": list(index)}).json()
        shown = float(chain.locator("[data-grad]").get_attribute("data-grad"))
        total = float(chain.locator("[data-total]").get_attribute("data-total"))
        assert shown == ref == api["gradient"]  # the backward pass's float32 number
        assert total == pytest.approx(api["total"], rel=1e-12) and total == pytest.approx(ref, rel=1e-4, abs=1e-9)
        expect(chain.locator(".ch-formula").first).to_have_text(formula)
        parts = chain.locator(".ch-part")
        expect(parts).to_have_count(len(api["parts"]))
        for k, p in enumerate(api["parts"]):
            expect(parts.nth(k)).to_have_attribute("data-reader", p["reader"])
            assert float(parts.nth(k).locator("[data-value]").get_attribute("data-value")) == pytest.approx(p["value"])
        expect(chain.locator(".ch-check")).to_contain_text("✓")
        if tensor == "blocks.1.attn.hook_attn_scores":  # p · (g − Σ p·g) with its numbers
            h, i, j = index
            p, g = (nano.run(TEXT)["blocks.1.attn.hook_pattern"][h, i].astype(np.float64),
                    grads["blocks.1.attn.hook_pattern"][h, i].astype(np.float64))
            text = chain.locator(".ch-text").inner_text()
            assert text.startswith(f"= {p[j]:.4g} × (") and text.endswith(f"= {p[j] * (g[j] - p @ g):.4g}".replace("-", "−"))
            page.screenshot(path=screenshots / "chain-rule-softmax.png")
        if tensor == "blocks.0.mlp.W_in":  # one term per position, the largest first
            terms = chain.locator(".ch-terms tr")
            expect(terms.first.locator("td").first).to_contain_text("T ")
            expect(terms.last).to_contain_text(f"… and {len(TEXT) - 5} more")
        if tensor == "blocks.1.hook_resid_pre":  # the stream is read by the norm and by the residual add
            expect(chain.locator(".ch-total")).to_contain_text("total:")
    page.mouse.move(5, 400)
    assert console_errors == []


def test_a_cell_without_a_gradient_says_why(page: Page, live_server, console_errors):
    open_view(page, f"{live_server}/?model=nano-gpt&input={TEXT}&show=gradients")
    tip, _ = hover(page, "probs", 0, 3, 1)
    expect(tip.locator(".tt-chain [data-grad]")).to_have_text("none")
    expect(tip.locator(".ch-note")).to_contain_text("the loss does not depend on this tensor")
    tip, _ = hover(page, "logits", 0, len(TEXT) - 1, 1)  # the last position's prediction is not scored
    expect(tip.locator(".ch-note")).to_contain_text(f"position {len(TEXT) - 1} feeds only its own prediction")
    assert console_errors == []
