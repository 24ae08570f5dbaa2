"""The gradients layer (issue 24, part 2): /api/scene with `gradients` draws ∂loss/∂x of every cell beside the values,
and the page shows it in a palette of its own, with the loss in the readout and each cell's gradient on hover."""

import json

import numpy as np
import pytest
from playwright.sync_api import Page, expect
from safetensors.numpy import load

from conftest import local_client
from llmviz.serve.server import create_app
from test_e2e import console_errors, fly_to_block, open_view  # noqa: F401
from test_hover import hover
from test_scene import atlas_slab

TEXT = "CBABBCABBBC"


@pytest.fixture(scope="module")
def client(nano):
    return local_client(create_app([nano]))


def scene_of(r):
    assert r.status_code == 200, r.text
    n = int.from_bytes(r.content[:8], "little")
    return json.loads(json.loads(r.content[8:8 + n])["__metadata__"]["scene"]), load(r.content)


def test_the_grad_atlas_holds_every_cells_gradient(client, nano):
    scene, atlases = scene_of(client.post("/api/scene", json={"model": "nano-gpt", "text": TEXT, "gradients": True}))
    g = nano.gradients(TEXT)
    assert scene["loss"] == pytest.approx(g.loss, rel=1e-12)
    b, got = atlas_slab(scene, atlases["grad"], "blocks.1.attn.W_Q", 2)  # a weight: [head, d_model, d_head]
    np.testing.assert_allclose(got, g.weights["blocks.1.attn.W_Q"][2].T, rtol=2e-3, atol=1e-6)
    assert b["grad"] == pytest.approx(float(np.abs(g.weights["blocks.1.attn.W_Q"]).max()), rel=1e-6)  # (every head)
    _, got = atlas_slab(scene, atlases["grad"], "blocks.1.hook_resid_post")  # an activation
    np.testing.assert_allclose(got, g["blocks.1.hook_resid_post"].T, rtol=2e-3, atol=1e-6)
    _, values = atlas_slab(scene, atlases["atlas"], "blocks.1.hook_resid_post")  # and the values, as ever
    np.testing.assert_allclose(values, nano.run(TEXT)["blocks.1.hook_resid_post"].T, rtol=1e-3, atol=1e-4)
    blocks = {b["tensor"]: b for b in scene["blocks"]}
    assert blocks["tokens"]["grad"] == 0 and blocks["probs"]["grad"] == 0  # (no gradient: the input; after the logits)


@pytest.mark.parametrize("body,message", [
    ({"text": "C"}, "a loss needs at least two tokens"),
    ({"text": TEXT, "edits": [{"tensor": "blocks.0.attn.hook_z", "set": "zero"}]}, "gradients are of a whole, clean pass"),
])
def test_a_scene_with_gradients_refuses_with_a_detail(client, body, message):
    r = client.post("/api/scene", json={"model": "nano-gpt", "gradients": True, **body})
    assert r.status_code == 422 and message in r.json()["detail"], r.text


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


def test_the_gradients_toggle_colours_the_view_by_the_losss_gradient(page: Page, live_server, console_errors, nano,
                                                                       screenshots):
    g = nano.gradients(TEXT)
    open_view(page, f"{live_server}/?model=nano-gpt&input={TEXT}")
    toggle = page.locator("#grad-toggle")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    fly_to_block(page, "blocks.1.attn.hook_pattern")
    by_value = page.evaluate("window.__llmviz.canvasDigest()")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    loss = page.locator("#readout [data-loss]")
    expect(loss).to_be_visible()
    assert float(loss.get_attribute("data-loss")) == pytest.approx(g.loss, rel=1e-9)
    page.wait_for_function("d => window.__llmviz.canvasDigest() !== d", arg=by_value)
    assert "show=gradients" in page.url
    expect(page.locator("#legend-box summary")).to_be_visible()
    tip, _ = hover(page, "blocks.1.attn.hook_pattern", 0, 2, 4)
    index = tuple(json.loads(tip.get_attribute("data-index")))
    shown = float(tip.locator("[data-grad]").get_attribute("data-grad"))
    assert shown == pytest.approx(float(g["blocks.1.attn.hook_pattern"][index]), rel=2e-3, abs=1e-7)
    page.screenshot(path=screenshots / "gradients.png")
    page.mouse.move(5, 400)
    toggle.click()  # back to the values
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#readout [data-loss]")).to_have_count(0)
    assert "show=gradients" not in page.url
    assert console_errors == []
