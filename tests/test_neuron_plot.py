"""The neuron's plot in the page (issue 25, step 1), in Debian's headless Chromium: beside a neuron's scene, its 60
points and its decision line; a dragged weight moves the line and loads the learner's neuron by name, whose readout is
the learner's model's own pass and whose loss the server's; Step lowers the loss by the server's step; Train steps until
stopped; a click in the plot makes that point the input; a bad name, or a refused request, says why."""

import json
import re
import urllib.request

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from llmviz import load_model
from llmviz.core.sampling import percent
from llmviz.views.decision import decision, learner_model, weights_name
from test_e2e import open_view

PANEL = "#neuronplot"


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@pytest.fixture(scope="module")
def served():
    return {"neuron": load_model("neuron")}


def shown(page: Page, key: str) -> str | None:
    return page.evaluate("k => new URLSearchParams(location.search).get(k)", key)


def wait_for_model(page: Page, name: str):
    """Wait until the page shows this model (its name in the address) and the panel draws its plot."""
    page.wait_for_function("n => new URLSearchParams(location.search).get('model') === n", arg=name)
    expect(page.locator(PANEL)).to_have_attribute("data-model", name)


def score(d: dict) -> str:
    n = len(d["points"])
    return f"loss {d['loss']:.3f} · {round(d['accuracy'] * n)} of {n} points on their side"


def readout(page: Page) -> tuple[str, str]:
    r = page.locator("#readout .ro-next")
    return r.locator("[data-token]").get_attribute("data-token"), r.locator(".ro-prob").first.inner_text()


def expected_readout(model, text: str) -> tuple[str, str]:
    p = float(model.run(text)["probs"][0])  # σ(z): class 1's probability
    return ("1", percent(p)) if p > 0.5 else ("0", percent(1 - p))


def set_slider(page: Page, index: int, value: float):
    page.evaluate("([i, v]) => { const s = document.querySelector(`#neuronplot input[data-w='${i}']`); s.value = v; "
                  "s.dispatchEvent(new Event('input', { bubbles: true })); }", [index, value])


def line_ends(page: Page) -> list[tuple[float, float]]:
    """The decision line's two ends, in the plane's coordinates (the plot is ±3 across its 320 units)."""
    line = page.locator(f"{PANEL} line.np-line")
    return [(float(line.get_attribute(f"x{k}")) / 320 * 6 - 3, 3 - float(line.get_attribute(f"y{k}")) / 320 * 6)
            for k in (1, 2)]


def test_the_panel_draws_the_points_the_line_and_the_servers_score(page: Page, live_server, served, screenshots):
    open_view(page, f"{live_server}/?model=neuron")
    panel = page.locator(PANEL)
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("data-model", "neuron")
    d = decision(served["neuron"])
    expect(panel.locator("circle.np-point")).to_have_count(60)
    wrong = sum((p > 0.5) != (c == 1) for p, c in zip(d["probs"], d["labels"], strict=True))
    expect(panel.locator("circle.np-point.np-wrong")).to_have_count(wrong)  # hollow: on the wrong side
    expect(panel.locator("circle.np-point[data-class='1']")).to_have_count(30)
    expect(panel.locator(".np-score")).to_have_text(score(d))
    (w0, w1), b = d["line"]["w"], d["line"]["b"]
    for x, y in line_ends(page):  # the line drawn is W[0] x₁ + W[1] x₂ + b = 0
        assert w0 * x + w1 * y + b == pytest.approx(0, abs=0.05 * np.hypot(w0, w1))
    expect(panel.locator("g.np-input")).to_have_count(1)  # the input, 1.2 0.5, marked
    expect(panel.locator(".np-formula")).to_contain_text(f"z = {w0:.4g}·x₁ + {w1:.4g}·x₂ + {b:.4g}")
    page.screenshot(path=screenshots / "neuron-plot.png")


def test_a_dragged_weight_loads_the_learners_neuron_and_the_readout_is_its_pass_until_reset(page: Page, live_server, served):
    open_view(page, f"{live_server}/?model=neuron")
    expect(page.locator(PANEL)).to_have_attribute("data-model", "neuron")
    (_, w1), b = served["neuron"].weights["W"][:, 0], float(served["neuron"].weights["b"][0])
    set_slider(page, 0, -1)
    name = weights_name("neuron", [-1, w1], b)
    wait_for_model(page, name)
    mine = learner_model(served, name)
    assert shown(page, "input") == "1.2 0.5"  # the input kept
    assert readout(page) == expected_readout(mine, "1.2 0.5")
    d = decision(mine)
    expect(page.locator(f"{PANEL} .np-score")).to_have_text(score(d))
    assert d["accuracy"] < decision(served["neuron"])["accuracy"]  # (a line that splits the clouds worse)
    for x, y in line_ends(page):
        assert -x + w1 * y + b == pytest.approx(0, abs=0.05)
    expect(page.locator(f"{PANEL} input[data-w='0'] + output")).to_have_text("−1")
    expect(page.locator("#model option[data-learner]")).to_have_text(f"{name} · your weights")
    page.locator(PANEL).get_by_role("button", name="Reset").click()  # back to the trained neuron
    wait_for_model(page, "neuron")
    expect(page.locator(f"{PANEL} .np-score")).to_have_text(score(decision(served["neuron"])))
    expect(page.locator(f"{PANEL} input[data-w='0'] + output")).to_have_text(f"{served['neuron'].weights['W'][0, 0]:.4g}")


def test_step_lowers_the_loss_by_the_servers_gradient_descent_step(page: Page, live_server, served):
    start = "neuron~-1,0.5,0"
    open_view(page, f"{live_server}/?model={start}")
    panel = page.locator(PANEL)
    wait_for_model(page, start)
    d = decision(learner_model(served, start))
    expect(panel.locator(".np-score")).to_have_text(score(d))
    g = d["grad"]
    expect(panel.locator(".np-grad")).to_contain_text(
        f"∂loss/∂W = [{g['w'][0]:.3g}, {g['w'][1]:.3g}], ∂loss/∂b = {g['b']:.3g}".replace("-", "−"))
    panel.get_by_role("button", name="Step").click()
    wait_for_model(page, d["next"]["name"])
    after = decision(learner_model(served, d["next"]["name"]))
    assert after["loss"] < d["loss"]
    expect(panel.locator(".np-score")).to_have_text(score(after))
    expect(panel.locator(".np-note")).to_have_text(f"last step: loss {d['loss']:.4f} → {after['loss']:.4f}")
    assert readout(page) == expected_readout(learner_model(served, after["model"]), "1.2 0.5")


def test_train_keeps_stepping_until_stopped(page: Page, live_server, served):
    open_view(page, f"{live_server}/?model=neuron~-1,0.5,0")
    panel = page.locator(PANEL)
    wait_for_model(page, "neuron~-1,0.5,0")
    panel.get_by_role("button", name="Train").click()
    page.wait_for_function("+document.querySelector('#neuronplot').dataset.steps >= 3")
    panel.get_by_role("button", name="Stop").click()
    expect(panel).to_have_attribute("data-training", "false")
    steps = int(panel.get_attribute("data-steps"))
    name = panel.get_attribute("data-model")
    # The server's steps one after another from the start: each the `next` of the one before, each lowering the loss.
    d = decision(learner_model(served, "neuron~-1,0.5,0"))
    losses = [d["loss"]]
    for _ in range(steps):
        d = decision(learner_model(served, d["next"]["name"]))
        losses.append(d["loss"])
    assert d["model"] == name and losses == sorted(losses, reverse=True)
    expect(panel.locator(".np-score")).to_have_text(score(d))
    expect(panel.locator(".np-note")).to_have_text(
        f"trained {steps} steps: loss {losses[0]:.4f} → {losses[-1]:.4f} (stopped: you stopped it)")
    expect(panel.get_by_role("button", name="Train")).to_be_enabled()


def test_a_click_in_the_plot_makes_that_point_the_input(page: Page, live_server, served):
    open_view(page, f"{live_server}/?model=neuron")
    box = page.locator(f"{PANEL} svg.np-plot").bounding_box()
    x, y = -1.5, 1.0
    page.mouse.click(box["x"] + (x + 3) / 6 * box["width"], box["y"] + (3 - y) / 6 * box["height"])
    page.wait_for_function("() => new URLSearchParams(location.search).get('input') !== '1.2 0.5'")
    text = shown(page, "input")
    got = [float(v) for v in text.split()]
    assert re.fullmatch(r"-?\d+(\.\d{1,2})? -?\d+(\.\d{1,2})?", text)  # rounded to 2 decimals
    assert got == pytest.approx([x, y], abs=6 / box["width"] + 0.01)  # within a pixel of the click
    expect(page.locator("#prompt")).to_have_value(text)
    expect(page.locator("#readout .ro-next [data-token]")).to_have_attribute("data-token", expected_readout(served["neuron"], text)[0])
    assert readout(page) == expected_readout(served["neuron"], text)
    cross = page.locator(f"{PANEL} g.np-input").get_attribute("transform")
    cx, cy = (float(v) for v in re.findall(r"[-\d.]+", cross))
    assert [cx / 320 * 6 - 3, 3 - cy / 320 * 6] == pytest.approx(got, abs=0.01)


def test_a_bad_name_in_the_address_says_why(page: Page, live_server):
    open_view(page, f"{live_server}/?model=neuron~1,2")
    expect(page.locator("#error")).to_contain_text("'neuron~1,2': give neuron~ then its 2 weights and its bias")
    with urllib.request.urlopen(f"{live_server}/api/models") as r:
        first = json.load(r)[0]["name"]
    assert shown(page, "model") == first  # (the server's first model shown meanwhile, as for any unknown model)
    expect(page.locator(PANEL)).to_be_hidden()


def test_a_refused_request_is_said_in_the_panel_and_the_line_stays(page: Page, live_server, served):
    open_view(page, f"{live_server}/?model=neuron")
    panel = page.locator(PANEL)
    expect(panel).to_have_attribute("data-model", "neuron")
    before = line_ends(page)
    page.route(re.compile(r".*/api/models/neuron~[^/]*/decision.*"),
               lambda route: route.fulfill(status=422, content_type="application/json", json={"detail": "weights refused"}))
    set_slider(page, 1, 7.5)
    expect(panel.locator(".np-error")).to_have_text("weights refused")
    expect(panel).to_have_attribute("data-model", "neuron")
    assert shown(page, "model") == "neuron"
    np.testing.assert_allclose(line_ends(page), before)  # the line back where the neuron's weights put it
    page.unroute(re.compile(r".*/api/models/neuron~[^/]*/decision.*"))


def test_on_a_phone_the_panel_leaves_room_for_the_scene_and_folds(page: Page, live_server):
    page.set_viewport_size({"width": 390, "height": 844})
    open_view(page, f"{live_server}/?model=neuron")
    panel = page.locator(PANEL)
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box["height"] <= 0.5 * 844 and box["width"] <= 390
    panel.get_by_role("button", name="−").click()
    expect(panel.locator("svg.np-plot")).to_be_hidden()
    assert panel.bounding_box()["height"] < 60
