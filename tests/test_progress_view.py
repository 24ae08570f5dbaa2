"""The page's progress box: a pass that has not answered within a second says which layer the server is computing,
with a Cancel button; Cancel aborts the request, the server stops the pass and frees its worker, and the page keeps
the view it showed. The pass is held at the start of a layer until the test lets it go (no timing)."""

from __future__ import annotations

import logging
import re

import pytest
from playwright.sync_api import Page, expect

from llmviz.serve.server import create_app
from serving import serving
from test_progress import Hold, answers, hold  # noqa: F401  (fixtures)
from waiting import wait_until

VIEWPORT = {"width": 1024, "height": 720}
SECONDS = re.compile(r"^\d+(\.\d)? s$|^\d+ min \d\d s$")  # the time so far: "1.2 s", "42 s", "1 min 05 s"


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": VIEWPORT}


def test_a_held_pass_shows_its_layer_and_cancel_keeps_the_view(page: Page, nano, hold: Hold, answers, caplog,
                                                              screenshots):
    caplog.set_level(logging.INFO, logger="llmviz")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    app = create_app([nano])
    workers = app.state.served.workers
    with serving(app) as port:
        page.add_init_script("localStorage.setItem('llmviz.intro.dismissed', '1')")
        page.goto(f"http://127.0.0.1:{port}/?input=CBABBC")
        expect(page.locator("body[data-ready=true]")).to_be_attached(timeout=30_000)
        expect(page.locator("#progress")).to_be_hidden()  # (a quick pass shows no box)
        shown_url = page.url

        hold.armed.set()
        page.fill("#prompt", "ABCCBA")
        page.click("#run button")
        box = page.locator("#progress")
        n = nano.config.n_layer
        expect(box).to_be_visible(timeout=30_000)
        expect(box.locator(".progress-text")).to_have_text(f"Computing layer 1 of {n}…", timeout=30_000)
        expect(box.locator(".progress-time")).to_have_text(SECONDS)
        cancel = box.get_by_role("button", name="Cancel")
        expect(cancel).to_be_visible()
        page.screenshot(path=screenshots / "progress.png")

        cancel.click()
        expect(box.locator(".progress-text")).to_have_text("Cancelled")
        wait_until(lambda: 499 in answers, what="the server to see the page's request go")
        hold.release.set()
        wait_until(lambda: workers.pending == 0, what="the worker to be free")
        wait_until(lambda: any("a computation stopped" in r.getMessage() for r in caplog.records),
                   what="the log line of the stopped computation")
        assert workers.tasks.records == {}
        # The page keeps what it showed: the view of the input before, its input field and its link, and no error.
        expect(page.locator("#prompt")).to_have_value("CBABBC")
        assert page.url == shown_url or "input=CBABBC" in page.url
        expect(page.locator("#error")).to_be_hidden()
        expect(box).to_be_hidden()
        assert page.evaluate("window.__llmviz.stats().models") == ["nano-gpt"]
        assert errors == []  # (the page asks about its computations without ever getting a 404)

        # The same input asked for again is computed afresh, and shown.
        page.click("#run button")
        page.wait_for_function("new URLSearchParams(location.search).get('input') === 'CBABBC'")
        page.fill("#prompt", "ABCCBA")
        page.click("#run button")
        page.wait_for_function("new URLSearchParams(location.search).get('input') === 'ABCCBA'")


def test_the_first_scene_of_the_page_shows_its_progress_and_can_be_cancelled(page: Page, nano, hold: Hold, answers):
    app = create_app([nano])
    with serving(app) as port:
        hold.armed.set()  # (the scene index.html asks for before the app has loaded)
        page.add_init_script("localStorage.setItem('llmviz.intro.dismissed', '1')")
        page.goto(f"http://127.0.0.1:{port}/?input=BBACCA")
        box = page.locator("#progress")
        expect(box.locator(".progress-text")).to_have_text(f"Computing layer 1 of {nano.config.n_layer}…",
                                                           timeout=30_000)
        box.get_by_role("button", name="Cancel").click()
        expect(page.locator("#error")).to_have_text("Cancelled: nothing is shown yet. Press Run, or choose another "
                                                    "model, to compute a view.")
        wait_until(lambda: 499 in answers, what="the server to see the page's request go")
        hold.release.set()
        wait_until(lambda: app.state.served.workers.pending == 0, what="the worker to be free")
        page.click("#run button")  # Run computes it now
        expect(page.locator("body[data-ready=true]")).to_be_attached(timeout=30_000)
        expect(page.locator("#error")).to_be_hidden()
