"""llmviz.show in a real JupyterLab and a real Notebook 7 (each started on loopback by the test, with a token), in
Debian's headless Chromium: the scene, a hovered cell's formula, pinning and the walkthrough seen from Python,
widget.text set from Python changing the view, and a second widget."""

import json
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from conftest import _free_port
from waiting import json_when_up

pytest.importorskip("anywidget")
pytest.importorskip("jupyterlab")

DESKTOP = {"width": 1280, "height": 900}
TOKEN = "llmviz-test-token"


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def notebook(cells: list[str]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None,
                       "id": f"c{i}"} for i, c in enumerate(cells)]}


# The app, and where it opens a notebook.
APPS = {"jupyterlab": "/lab/tree/show.ipynb", "notebook": "/notebooks/show.ipynb"}


@pytest.fixture(scope="module", params=list(APPS))
def lab(request, tmp_path_factory):
    app = pytest.importorskip(request.param).__name__
    folder = tmp_path_factory.mktemp(app)
    (folder / "show.ipynb").write_text(json.dumps(notebook([
        'import llmviz\nw = llmviz.show("nano-gpt", "CBABBC")\nw',
        'import json\nprint("selected", json.dumps(w.selected), "step", w.step)',
        'w.text = "AAB"',
        'w2 = llmviz.show("nano-gpt", "CCA")\nw2',
    ])))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={TOKEN}", f"--notebook-dir={folder}", "--LabApp.news_url=",
                             "--ServerApp.disable_check_xsrf=True", "--allow-root"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    json_when_up(f"{base}/api/status?token={TOKEN}", 60)
    yield base + APPS[app], app
    proc.terminate()
    proc.wait(10)


def run_cell(page: Page, i: int):
    cell = page.locator(".jp-Notebook .jp-Cell").nth(i)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def test_show_draws_hovers_and_follows_python(page: Page, lab, screenshots):
    url, app = lab
    page.goto(f"{url}?token={TOKEN}")
    expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=60_000)
    # The kernel started: the toolbar names it (a cell run before that, with "No Kernel", is dropped), and its
    # execution indicator says idle (JupyterLab's and Notebook 7's toolbars alike).
    expect(page.locator(".jp-Toolbar-kernelName")).to_contain_text("Python 3", timeout=60_000)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status=idle]")).to_be_attached(timeout=60_000)
    run_cell(page, 0)
    frame_el = page.locator(".jp-OutputArea-output iframe").first
    expect(frame_el).to_be_visible(timeout=60_000)
    frame = frame_el.content_frame
    expect(frame.locator("body[data-ready=true]")).to_be_attached(timeout=60_000)
    expect(frame.locator("#readout")).to_contain_text("ABBBCC")
    frame.locator("[data-intro=close]").click()  # the first-visit card, as on the served page
    # Hover a cell: its formula comes from the kernel.
    inner = next(f for f in page.frames if f.url == "about:srcdoc")
    before = inner.evaluate("window.__llmviz.stats().frames")
    inner.evaluate("window.__llmviz.flyToBlock('blocks.0.attn.hook_attn_scores')")
    inner.wait_for_function("f => window.__llmviz.stats().frames > f", arg=before)  # drawn there
    p = inner.evaluate("""(() => { const p = window.__llmviz.blockScreenPoint('blocks.0.attn.hook_attn_scores', 0, 1, 4),
        r = document.querySelector('#view').getBoundingClientRect(); return { x: p.x - r.left, y: p.y - r.top }; })()""")
    frame_el.scroll_into_view_if_needed()
    frame.locator("#view").hover(position=p)
    tip = frame.get_by_role("tooltip")
    expect(tip).to_be_visible(timeout=20_000)
    expect(tip).to_contain_text("q · k /")
    news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's offer of news, over the output
    if news.is_visible():
        news.click()
    page.screenshot(path=screenshots / f"notebook-widget-{app}.png")
    # Pinning a cell and moving through the walkthrough show in Python.
    frame.locator("#view").click(position=p)
    expect(tip).to_contain_text("pinned")
    frame.locator("#walk-toggle").click()
    expect(frame.locator("#walk-where")).to_contain_text("Chapter 1 of 15 · step 1")
    frame.locator("[data-walk=next]").click()
    expect(frame.locator("#walk-where")).to_contain_text("step 2")
    run_cell(page, 1)
    out = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
    expect(out).to_contain_text('selected {"tensor": "blocks.0.attn.hook_attn_scores", "index": [0, 4, 1]} step 1.2',
                                timeout=30_000)
    # Python sets the input: the view follows.
    run_cell(page, 2)
    expect(frame.locator("#prompt")).to_have_value("AAB", timeout=30_000)
    expect(frame.locator("#readout")).to_contain_text("next token after AAB")
    # A second widget in the same notebook has its own state.
    run_cell(page, 3)
    frames = page.locator(".jp-OutputArea-output iframe")
    expect(frames).to_have_count(2, timeout=60_000)
    expect(frames.nth(1).content_frame.locator("#prompt")).to_have_value("CCA", timeout=60_000)
    expect(frame.locator("#prompt")).to_have_value("AAB")


def test_a_widget_exports_its_view(tmp_path):
    """w.export(folder): the widget's model on the widget's input, as `llmviz export` writes it."""
    import llmviz
    from llmviz.serve.export import read_manifest

    w = llmviz.show("nano-gpt", "AABCCB")
    w.text = "CCBBAA"  # (as Python or the page set it)
    done = w.export(tmp_path / "site", steps=1)
    assert done["inputs"] == ["CCBBAA"]
    assert read_manifest(tmp_path / "site")["inputs"] == ["CCBBAA"]
    assert (tmp_path / "site" / "index.html").is_file()
