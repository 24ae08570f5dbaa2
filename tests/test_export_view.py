"""An export in Debian's headless Chromium, served by a plain static file server (Python's http.server): the
scene draws as the server's does, hovered cells show the server's formulas, the walkthrough steps, generation,
the lens and the branch tree work from the stored answers, an input that was not exported says so, and no
request leaves the folder."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from llmviz.serve.export import export
from test_e2e import console_errors, open_view  # noqa: F401  (fixtures reused)
from test_hover import CELLS, hover


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}  # one header line, with or without
    # the server's Scale view button: the same canvas


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Unpacking(Quiet):
    """A host that sends .gz files with Content-Encoding: gzip, so that the browser unpacks them itself."""

    def end_headers(self):
        if self.path.split("?")[0].endswith(".gz"):
            self.send_header("Content-Encoding", "gzip")
        super().end_headers()


def serve_folder(folder, handler=Quiet) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def host_root(tmp_path_factory, nano):
    """A web host's folder with the export of nano-gpt on CBABBC and AABCCB under a sub-folder (as a course page
    would put it)."""
    root = tmp_path_factory.mktemp("static-host")
    export(nano, ["CBABBC", "AABCCB"], root / "course" / "nano")
    return root


@pytest.fixture(scope="module")
def site(host_root):
    """The export, served as plain files from a loopback port."""
    server = serve_folder(host_root)
    yield f"http://127.0.0.1:{server.server_address[1]}/course/nano/"
    server.shutdown()


CAM = "cam=48.8%2C-25.4%2C180.4%2C27.1%2C-39.8%2C-0.5"


def canvas(page: Page) -> np.ndarray:
    """The drawn picture as the mean colour of each of 64 × 40 patches, once the camera is still and a frame drawn."""
    page.wait_for_function("!window.__llmviz.flying()")
    page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return np.array(page.evaluate("window.__llmviz.snapshot(64, 40)"))


def test_scene_hover_and_walkthrough_equal_the_servers(page: Page, context, live_server, site, console_errors, screenshots):
    asked = []
    page.on("request", lambda r: asked.append(r.url))
    open_view(page, f"{site}?{CAM}")
    expect(page.locator(".label.block", has_text="tokens")).to_contain_text("tokens C B A B B C")
    expect(page.locator("#readout")).to_contain_text("ABBBCC")
    mine = canvas(page)
    page.screenshot(path=screenshots / "export.png")

    server = context.new_page()
    open_view(server, f"{live_server}/?model=nano-gpt&input=CBABBC&{CAM}")
    theirs = canvas(server)
    assert np.abs(mine - theirs).max() < 1.0  # the same picture
    assert page.evaluate("window.__llmviz.readPixels()") > 0.05  # and a picture, not a blank canvas

    for tensor, slab, col, row, _ in CELLS:
        tips = [hover(p, tensor, slab, col, row)[0] for p in (page, server)]
        assert tips[0].get_attribute("data-index") == tips[1].get_attribute("data-index")
        assert tips[0].inner_text() == tips[1].inner_text() != ""

    for p in (page, server):
        p.mouse.move(5, 400)
        p.get_by_role("button", name="Walkthrough").click()
        expect(p.locator("#walk-where")).to_have_text("Chapter 1 of 15 · step 1 of 3")
        for n in (2, 3):
            p.keyboard.press("ArrowRight")
            expect(p.locator("#walk-where")).to_have_text(f"Chapter 1 of 15 · step {n} of 3")
        p.keyboard.press("ArrowRight")
        expect(p.locator("#walk-where")).to_contain_text("Chapter 2 of 15 · step 1 of")
    assert page.locator("#walk-text").inner_text() == server.locator("#walk-text").inner_text() != ""
    assert page.locator("#walk-title").inner_text() == server.locator("#walk-title").inner_text()

    outside = [u for u in asked if not u.startswith(site) and not u.startswith(("data:", "blob:"))]
    assert not outside, f"requests left the folder: {outside}"
    assert any("/data/manifest.json.gz" in u for u in asked)
    assert not console_errors


def test_generation_panels_and_an_input_not_exported(page: Page, site, screenshots):
    asked = []
    page.on("request", lambda r: asked.append(r.url))
    open_view(page, site)
    expect(page.locator("#prompt")).to_have_value("CBABBC")
    for hidden in ("#scale", "#heads"):  # nothing this export holds
        expect(page.locator(hidden)).to_be_hidden()

    page.click("#gen-toggle")
    expect(page.locator("#gen-kv")).to_be_checked()
    expect(page.locator("#gen-kv")).to_be_disabled()
    for n, want in enumerate("AB", start=1):
        page.click("[data-gen=step]")
        expect(page.locator("#gen")).to_have_attribute("data-steps-done", str(n))
        expect(page.locator("#gen-chain .ch-token")).to_have_text(want)
    expect(page.locator("#prompt")).to_have_value("CBABBCAB")
    tip, _ = hover(page, "blocks.0.attn.hook_attn_scores", 0, 3, 0)  # the step's one query row, against key 3
    expect(tip.locator(".tt-formula")).to_contain_text("q · k / 4 =")
    page.screenshot(path=screenshots / "export-generate.png")
    page.click("[data-gen=reset]")
    expect(page.locator("#prompt")).to_have_value("CBABBC")
    page.click("#gen-toggle")

    page.click("#ins-toggle")
    page.wait_for_selector("#ins-attention[data-shown-ms]", state="attached")  # every head's pattern, drawn
    page.get_by_role("tab", name="Logit lens").click()
    expect(page.locator("table.lens td[data-layer]")).to_have_count(4 * 6)
    page.get_by_role("tab", name="Branches").click()
    box = page.locator("#ins-branches")
    expect(box).to_have_attribute("data-nodes", "12")
    page.locator(".bt-node[data-path='0.0']").click()  # the likeliest path, a stored step: expanded and shown
    expect(box).to_have_attribute("data-nodes", "15")
    expect(page.locator("#prompt")).to_have_value("CBABBCAB")
    expect(page.locator("#error")).to_be_hidden()
    page.click("#ins-toggle")
    page.locator("#saved button").first.click()  # the attribution and patching tabs as they open, stored too
    expect(page.locator("#prompt")).to_have_value("CBABBC")
    page.click("#ins-toggle")
    page.get_by_role("tab", name="Attribution").click()
    expect(page.locator("#ins-attribution .at-row")).not_to_have_count(0)
    page.get_by_role("tab", name="Patching").click()
    expect(page.locator("#ins-patching td[data-kind=resid]").first).to_be_attached()
    expect(page.locator("#ins-status")).to_have_text("")
    page.click("#ins-toggle")

    saved = page.locator("#saved button")  # the inputs the page holds, one click each
    expect(saved).to_have_text(["CBABBC", "AABCCB"])
    saved.nth(1).click()
    expect(page.locator(".label.block", has_text="tokens")).to_have_text("tokens A A B C C B")
    expect(saved.nth(1)).to_have_attribute("aria-current", "true")
    expect(page.locator("#readout")).to_contain_text("AABBCC")
    tip, _ = hover(page, "probs", 0, 5, 0)
    expect(tip.locator(".tt-formula")).to_contain_text("exp(")

    page.fill("#prompt", "AAB")
    page.click("#run button[type=submit]")
    expect(page.locator("#error")).to_contain_text('"AAB" is not saved in this page: it holds nano-gpt on the saved '
                                                   "inputs CBABBC, AABCCB")
    expect(page.locator("#readout")).to_contain_text("next token after AABCCB")  # the view as it was
    page.screenshot(path=screenshots / "export-not-exported.png")
    assert all(u.startswith(site) or u.startswith(("data:", "blob:")) for u in asked)


def test_a_host_that_unpacks_gzip_itself(page: Page, host_root):
    """Some hosts send a .gz file with Content-Encoding: gzip: the browser unpacks it, and the page takes it as is."""
    server = serve_folder(host_root, Unpacking)
    try:
        open_view(page, f"http://127.0.0.1:{server.server_address[1]}/course/nano/")
        expect(page.locator("#readout")).to_contain_text("ABBBCC")
        assert page.evaluate("window.__llmviz.readPixels()") > 0.05
        tip, _ = hover(page, "blocks.0.attn.hook_q", 0, 3, 5)
        expect(tip.locator(".tt-formula")).to_contain_text("x·W")
    finally:
        server.shutdown()


def test_other_settings_and_views_say_what_the_export_holds(page: Page, site, screenshots):
    """Sampling settings other than the panel's first are refused for what they are (not blamed on the input), and
    a link to the scale view or stacked heads, which an export does not hold, shows the model and says so."""
    open_view(page, site)
    page.click("#gen-toggle")
    page.click("[data-gen=step]")
    expect(page.locator("#gen")).to_have_attribute("data-steps-done", "1")
    page.fill("#gen-temperature", "1")
    page.locator("#gen-temperature").dispatch_event("change")
    page.click("[data-gen=step]")
    error = page.locator("#error")
    expect(error).to_contain_text("This page holds generation with the panel's first settings only (greedy: "
                                  "temperature 0, seed 0), not temperature 1. Other settings need llmviz serve")
    expect(error).not_to_contain_text("not saved")
    expect(page.locator("#prompt")).to_have_value("CBABBCA")  # the view as it was
    page.screenshot(path=screenshots / "export-settings.png")

    for link, note in (("view=scale", "The scale view is not part of this export (run llmviz serve for it): "
                                      "showing nano-gpt"),
                       ("heads=stack", "Stacked heads are not part of this export")):
        open_view(page, f"{site}?{link}")
        expect(page.locator("#model")).to_have_value("nano-gpt")
        expect(page.locator("#model option:checked")).to_contain_text("nano-gpt")  # never a blank selector
        expect(page.locator("#notice")).to_contain_text(note)
        expect(page.locator(".label.block", has_text="tokens")).to_contain_text("tokens C B A B B C")
        if link == "view=scale":
            page.screenshot(path=screenshots / "export-scale-link.png")
    open_view(page, f"{site}?step=12.1")  # the scale chapter: the export has no scale view, and says so
    expect(page.locator("#walk-title")).to_have_text("Same structure, bigger numbers")
    expect(page.locator("#notice")).to_contain_text("The scale view is not part of this export (run llmviz serve")
    expect(page.locator("#model")).to_have_value("nano-gpt")
    page.keyboard.press("ArrowLeft")  # chapter 11's generation step works in an export: its session is stored
    expect(page.locator("#walk-title")).to_have_text("One step on the KV cache")
    expect(page.locator("#prompt")).to_have_value("CBABBCA")
    expect(page.locator("#notice")).not_to_contain_text("scale view")
    open_view(page, f"{site}?step=14.1")  # How it learned: no backward pass in an export, so its steps show values
    expect(page.locator("#walk-title")).to_have_text("The loss: how wrong it is")
    expect(page.locator("#notice")).to_contain_text("The gradients are not part of this export (run llmviz serve")
    expect(page.locator("#readout")).to_contain_text("ABBBCC")  # the pass's own view, with its numbers
    expect(page.locator("#error")).to_be_hidden()
    open_view(page, f"{site}?input=CBABBC&past=3")  # a KV-cache view the page does not hold: said for what it is
    expect(page.locator("#notice")).to_contain_text("The link's KV-cache view (past=3) cannot be shown for CBABBC: its "
                                                    "KV-cache view after 3 cached tokens is not saved in this page")
    expect(page.locator("#notice")).to_contain_text("Showing the whole pass instead")
    expect(page.locator("#notice")).not_to_contain_text("is not saved in this page: it holds")
    expect(page.locator(".label.block", has_text="tokens")).to_contain_text("tokens C B A B B C")
