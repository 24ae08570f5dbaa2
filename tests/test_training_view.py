"""Training you can watch, in Debian's headless Chromium: a short run started from the page, its loss curve and
accuracy drawn with the server's numbers, pause and a single step, the scrubber showing a snapshot in the view (a
weight's hover value is the trainer's at that step), a snapshot opened in the normal view, a refused start and a
diverging run."""

import dataclasses
import json
import re
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from llmviz.training.numpy_train import Trainer
from llmviz.training.tasks import task
from test_e2e import console_errors, open_view, stats  # noqa: F401
from test_hover import hover
from waiting import wait_until

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def api(base: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def nano(steps: int, lr: float | None = None):
    t = task("nano-gpt")
    return dataclasses.replace(t, settings=dataclasses.replace(t.settings, steps=steps, **({"lr": lr} if lr else {})))


@pytest.fixture
def fresh(live_server):
    """The server's run slot free at the start and at the end (the server is shared by every browser test)."""
    def end():
        if api(live_server, "/api/training")["status"] in ("running", "paused"):
            api(live_server, "/api/training/control", {"action": "stop"})
        wait_until(lambda: api(live_server, "/api/training")["status"] not in ("running", "paused"), 60, "the run to end")

    end()
    yield
    end()


def open_panel(page: Page, live_server: str):
    open_view(page, live_server)
    page.click("#train-toggle")
    expect(page.locator("#train")).to_be_visible()
    expect(page.locator("#train")).to_have_attribute("data-version", re.compile(r"\d"))  # its state drawn


def weight(page: Page, tensor: str) -> tuple[list[int], float]:
    """Hover a cell of a weight block: the tensor index it stands for, and the value the tooltip shows."""
    tip, _ = hover(page, tensor, 2, 10, 3)  # (the last head: to the right of the panel)
    return json.loads(tip.get_attribute("data-index")), float(tip.locator("[data-value]").first.get_attribute("data-value"))


def test_watch_a_run_pause_step_scrub_and_open_a_snapshot(page: Page, live_server, fresh, console_errors, screenshots):
    open_panel(page, live_server)
    expect(page.locator("#tr-what, .tr-what")).to_contain_text("starts from random weights")
    page.fill("#tr-steps", "400")
    page.fill("#tr-every", "5")
    page.select_option("#tr-speed", "20")  # 20 steps a second: the run is still going when it is paused below
    page.click("#tr-start [type=submit]")
    expect(page.locator("#train")).to_have_attribute("data-status", "running")
    page.wait_for_function("document.querySelectorAll('#tr-metric .tr-dot').length >= 3", timeout=60_000)
    page.click("[data-tr=pause]")
    st = wait_until(lambda: (s := api(live_server, "/api/training"))["status"] == "paused" and s, 60, "the run to pause")
    expect(page.locator("#train")).to_have_attribute("data-version", str(st["version"]), timeout=30_000)
    k, name = st["steps_done"], st["snapshots"][-1]["name"]
    # The curves are the server's numbers: every step's loss, the accuracy at every snapshot.
    assert int(page.get_attribute("#tr-loss .tr-loss", "data-n")) == len(st["losses"]) == k
    last = page.locator("#tr-loss .tr-last")
    assert float(last.get_attribute("data-loss")) == st["losses"][-1]
    expect(last).to_have_text(f"loss {st['losses'][-1]:.4g} at step {k:,}")
    expect(page.locator("#tr-metric .tr-dot")).to_have_count(len(st["snapshots"]))
    accuracy = st["snapshots"][-1]["metrics"]["accuracy"]
    assert float(page.get_attribute("#tr-metric .tr-last", "data-value")) == accuracy
    expect(page.locator("#tr-status")).to_contain_text(f"paused · step {k:,} of 400 · loss {st['losses'][-1]:.4g} · "
                                                       f"accuracy {100 * accuracy:.1f} %")
    expect(page.locator("#tr-heads li")).to_have_count(9)
    expect(page.locator("#tr-heads li").first).to_contain_text("L0H0")
    expect(page.locator("[data-tr=pause]")).to_have_text("Resume")
    # The view behind shows the latest snapshot.
    expect(page.locator("#train")).to_have_attribute("data-shown", name)
    assert stats(page)["models"] == [name]
    # One step: a snapshot of it, shown, the camera where it was.
    camera = page.evaluate("window.__llmviz.camera()")
    page.click("[data-tr=step]")
    stepped = f"{name.split('@')[0]}@{k + 1}"
    expect(page.locator("#train")).to_have_attribute("data-shown", stepped, timeout=30_000)
    assert stats(page)["models"] == [stepped] and page.evaluate("window.__llmviz.camera()") == camera
    st = api(live_server, "/api/training")
    assert st["status"] == "paused" and st["steps_done"] == k + 1
    page.screenshot(path=screenshots / "training-paused.png")
    # A weight's hover value is the trainer's (run alone, the same seed) at that step.
    ref = Trainer(nano(400))
    for _ in range(5):
        ref.step()
    at5 = {n: w.copy() for n, w in ref.model.require_weights().items()}
    for _ in range(k + 1 - 5):
        ref.step()
    index, value = weight(page, "blocks.0.attn.W_K")
    assert value == pytest.approx(float(ref.model.require_weights()["blocks.0.attn.W_K"][tuple(index)]), rel=1e-6, abs=1e-9)
    # The scrubber: the view shows the snapshot of step 5, whose numbers differ.
    page.locator("#tr-scrub").fill("1")
    early = f"{name.split('@')[0]}@5"
    expect(page.locator("#tr-at")).to_have_attribute("data-snapshot", early)
    expect(page.locator("#train")).to_have_attribute("data-shown", early, timeout=30_000)
    assert stats(page)["models"] == [early]
    index5, value5 = weight(page, "blocks.0.attn.W_K")
    assert index5 == index and value5 == pytest.approx(float(at5["blocks.0.attn.W_K"][tuple(index)]), rel=1e-6, abs=1e-9)
    assert value5 != value
    page.screenshot(path=screenshots / "training-scrub.png")
    # Open this snapshot: the panel goes, the normal view stays on it, its name in the link (a link that opens it).
    page.click("[data-tr=open]")
    expect(page.locator("#train")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"model=" + re.escape(early.replace("@", "%40"))))
    expect(page.locator("#model")).to_have_value(early)
    expect(page.locator("#readout")).to_contain_text("answer")
    page.goto(page.url)
    expect(page.locator("body[data-ready=true]")).to_be_attached(timeout=30_000)
    assert stats(page)["models"] == [early]
    assert not [m for m in api(live_server, "/api/models") if "@" in m["name"]]  # never in the models list
    assert console_errors == []


def test_a_refused_start_says_why_and_keeps_the_panel(page: Page, live_server, fresh, screenshots):
    open_panel(page, live_server)
    before = page.get_attribute("#train", "data-status")
    page.fill("#tr-steps", "0")
    page.click("#tr-start [type=submit]")
    expect(page.locator("#tr-message")).to_have_text(
        "Could not start: steps: Input should be greater than or equal to 1 (allowed: from 1 to 100000)")
    expect(page.locator("#train")).to_have_attribute("data-status", before)
    expect(page.locator("#tr-steps")).to_have_value("0")  # kept, to correct


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_run_stops_naming_the_step(page: Page, live_server, fresh, monkeypatch, screenshots):
    from llmviz.serve.routes import training

    monkeypatch.setattr(training, "task", lambda name: nano(50, lr=1e3))  # (the server runs in this process)
    open_panel(page, live_server)
    page.fill("#tr-every", "1")
    page.click("#tr-start [type=submit]")
    expect(page.locator("#train")).to_have_attribute("data-status", "diverged", timeout=60_000)
    st = api(live_server, "/api/training")
    done, last = st["steps_done"], st["snapshots"][-1]["name"]
    expect(page.locator("#tr-run-message")).to_have_text(re.compile(
        rf"^training diverged at step {done + 1}: .* kept as the last snapshot, {re.escape(last)}$"))
    expect(page.locator("#tr-at")).to_have_attribute("data-snapshot", last)
    expect(page.locator("#tr-status")).to_contain_text(f"diverged · step {done}")
    page.screenshot(path=screenshots / "training-diverged.png")
