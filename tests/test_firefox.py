"""The app in Debian's Firefox ESR, not only in Chromium: `llmviz serve` on nano-gpt, opened by
frontend/test-browser/firefox.mjs (puppeteer-core over WebDriver BiDi, Firefox under `xvfb-run` for a real WebGL2
context, no browser ever downloaded, no network). The script opens the page once and reports what it shows as JSON;
each test here judges one part of it: WebGL2 in use, the readout's prediction, a hovered cell's tooltip, and a
canvas that is drawn (on screen too, in Firefox's own screenshot)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from waiting import json_when_up

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "frontend" / "test-browser" / "firefox.mjs"
PACKAGES = ["firefox-esr", "xvfb", "xauth"]  # as `make firefox` installs them
# The cell the script hovers (it says so in its report): layer 1's attention score of query 4 for key 2.
TENSOR, INDEX = "blocks.1.attn.hook_attn_scores", (0, 4, 2)


def _install(packages: list[str]) -> str | None:
    """apt-get install `packages` (as root, or through sudo without a password); None if it went, else why not."""
    apt = shutil.which("apt-get")
    if apt is None:
        return "no apt-get on this machine"
    if os.geteuid() == 0:
        sudo = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        sudo = ["sudo", "-n"]
    else:
        return "not root, and sudo asks for a password"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([*sudo, apt, "update", "-qq"], [*sudo, apt, "install", "-y", "-qq", *packages]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if r.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


@pytest.fixture(scope="module")
def firefox() -> str:
    """Firefox ESR's path, with xvfb-run there too: installed here if missing (`make test` installs both first);
    the tests skip only if they are missing and cannot be installed."""
    path = _tools()
    if path is None:
        why = _install(PACKAGES)
        path = _tools()
        if path is None:
            pytest.skip(f"firefox-esr or xvfb-run is missing and could not be installed ({why or 'installed, not found'})")
    if not (ROOT / "frontend" / "node_modules" / "puppeteer-core").is_dir() or shutil.which("node") is None:
        pytest.fail("node or frontend/node_modules/puppeteer-core is missing: run `make build` (make test does)")
    return path


def _tools() -> str | None:
    """Firefox's path (LLMVIZ_FIREFOX, or firefox-esr on the PATH) if it and xvfb-run (with xauth) are there."""
    path = os.environ.get("LLMVIZ_FIREFOX") or shutil.which("firefox-esr")
    return path if path and shutil.which("xvfb-run") and shutil.which("xauth") else None


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    """The first line the process prints, waiting for it at most `timeout` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail(f"`llmviz serve` printed nothing in {timeout:g} s: {proc.stderr.read()}")
    return proc.stdout.readline()


@pytest.fixture(scope="module")
def served():
    """`llmviz serve --no-browser` on nano-gpt on a free port, as a user starts it: its URL, once it answers, and
    what /api/models says (the example input the page opens with)."""
    proc = subprocess.Popen([sys.executable, "-m", "llmviz.serve.cli", "serve", "--no-browser", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(proc, 60)  # "llmviz is serving nano-gpt at http://127.0.0.1:PORT/  (Ctrl+C to stop)"
        assert " at http://127.0.0.1:" in line, f"`llmviz serve` printed {line!r}, not its URL: {proc.stderr.read()}"
        url = line.split(" at ")[1].split()[0]
        models = json_when_up(url + "api/models")
        yield url, models[0]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def shown(firefox, served, screenshots) -> dict:
    """What Firefox showed: the script's report."""
    url, _ = served
    shot = screenshots / "firefox-hover.png"
    r = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", "node", str(SCRIPT), url, "--screenshot",
                        str(shot)], capture_output=True, text=True, timeout=180, cwd=ROOT,
                       env={**os.environ, "FIREFOX": firefox})
    lines = r.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        pytest.fail(f"firefox.mjs exited {r.returncode} with no report: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    if r.returncode != 0 or "error" in report:
        pytest.fail(f"Firefox ({report.get('firefox')}) failed at the step '{report.get('step')}': "
                    f"{report.get('error')}\nconsole errors: {report.get('errors')}\nstderr: {r.stderr[-2000:]}")
    return report


def test_firefox_draws_with_webgl2(shown, nano):
    gl = shown["webgl"]
    assert gl["webgl2"], f"the page's canvas is not a WebGL2 context in {shown['firefox']}: {gl}"
    assert gl["version"].startswith("WebGL 2"), gl
    assert shown["stats"]["blocks"] == len(nano.graph.names()), shown["stats"]  # a block for every tensor


def test_firefox_readout_says_what_nano_gpt_predicts(shown, served, nano):
    example = served[1]["example"]
    trace = nano.run(example)
    best = nano.token_strs([int(trace["probs"][-1].argmax())])[0]
    answer = nano.generate(example, nano.config.answer_tokens).text
    readout = shown["readout"]
    assert readout["visible"], f"the readout is hidden in Firefox: {readout}"
    assert f"next token after {example}" in readout["text"], readout["text"]
    assert readout["token"] == best, f"the readout's next token is {readout['token']!r}; nano-gpt predicts {best!r}"
    assert readout["answer"] == answer and answer in readout["text"], (
        f"the readout's answer is {readout['answer']!r}; nano-gpt answers {answer!r}")


def test_firefox_hover_shows_the_cells_value_and_formula(shown, served, nano):
    ref = float(nano.run(served[1]["example"])[TENSOR][INDEX])
    tip = shown["tooltip"]
    assert (shown["hovered"]["tensor"], tip["tensor"]) == (TENSOR, TENSOR), (shown["hovered"], tip)
    assert json.loads(tip["index"]) == list(INDEX), f"the tooltip explains {tip['index']}, not the hovered {INDEX}"
    assert float(tip["value"]) == pytest.approx(ref, rel=1e-4), f"the tooltip's value {tip['value']}; numpy: {ref}"
    assert f"value {ref:.4g}" in tip["text"], tip["text"]  # as a user reads it
    assert "q · k" in tip["formula"] and f"{ref:.4g}" in tip["formula"], tip["formula"]  # q · k / √A = 0.328
    assert float(tip["result"]) == pytest.approx(ref, rel=1e-4), tip


def test_firefox_canvas_is_drawn_and_on_screen(shown):
    assert shown["pixels"] > 0.05, f"only {shown['pixels']:.1%} of the canvas differs from the background"
    # Firefox's own screenshot (what the page composites, not only what WebGL drew) at the hovered cell: the
    # cell's colour, which is the colour WebGL drew there, not the background.
    screen = shown["screen"]
    assert max(abs(a - b) for a, b in zip(screen["cell"], screen["ground"])) > 24, screen
    assert max(abs(a - b) for a, b in zip(screen["cell"], screen["drawn"])) < 12, screen


def test_firefox_page_has_no_console_errors(shown):
    assert shown["errors"] == [], shown["errors"]
