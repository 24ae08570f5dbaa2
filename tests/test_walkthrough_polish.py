"""The walkthrough as a learner meets it, in Debian's headless Chromium: guesses that give nothing away until
made, Escape that closes one thing per press, a block description that goes with its view, links to steps that
do not exist, code that fits its panel and an intro card that reads as sentences."""

import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, open_view  # noqa: F401
from test_walkthrough_view import walkthrough

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def guess_step(w: dict, tensor_part: str) -> tuple[str, dict]:
    """The step (C.S) whose @guess reads a tensor named with tensor_part, and that action."""
    for c in w["chapters"]:
        for i, s in enumerate(c["steps"], 1):
            for a in s["actions"]:
                if a["type"] == "guess" and tensor_part in a["row"]["tensor"]:
                    return f"{c['number']}.{i}", a
    raise AssertionError(f"no @guess on {tensor_part}")


def pixel(page: Page, region: dict) -> list[int]:
    p = page.evaluate("r => window.__llmviz.regionPoint(r)", region)
    assert p is not None, region
    return page.evaluate(f"window.__llmviz.readPixels({p['x']}, {p['y']})")


def cell(action: dict, i: int) -> dict:
    return {**action["row"], "ranges": {**action["row"]["ranges"], action["axis"]: [i, i]}}


def settle(page: Page):
    """Wait until the camera stops (a double-click's flight has landed)."""
    page.wait_for_function("""() => { const c = JSON.stringify(window.__llmviz.camera());
        const same = window.__lastCamera === c; window.__lastCamera = c; return same; }""", polling=150)


def far(a: list[int], b: list[int]) -> int:
    return sum(abs(x - y) for x, y in zip(a, b))


@pytest.mark.parametrize("tensor", ["attn.hook_pattern", "probs"])
def test_a_guess_gives_nothing_away_until_made(page: Page, live_server, nano, tensor, screenshots):
    step, action = guess_step(walkthrough(live_server, model="nano-gpt", input="CBABBC"), tensor)
    open_view(page, f"{live_server}/?step={step}")
    expect(page.locator(".walk-guess")).to_contain_text("your guess?")
    answer = action["answer"]
    names = {c["i"]: c["name"] for c in action["choices"]}
    others = [c["i"] for c in action["choices"] if c["i"] != answer]
    # Before the pick: every cell of the row looks the same (one flat cover), and nothing names the answer.
    before = [pixel(page, cell(action, i)) for i in [answer, *others]]
    assert max(far(before[0], p) for p in before) < 30, before
    expect(page.locator("#walk-card")).not_to_contain_text(f"it is {names[answer]}")
    if tensor == "probs":
        nxt = page.locator(".label.predicted.next")
        expect(nxt).to_be_visible()
        assert nxt.inner_text().split() == ["→", "?", "next"]  # what shows: not "→ A next"
    page.screenshot(path=screenshots / f"walkthrough-guess-{tensor.split('.')[-1]}-before.png")
    page.click(f"[data-guess='{others[0]}']")  # a wrong guess: then the answer, as before
    expect(page.locator(".walk-guess")).to_contain_text(f"no: it is {names[answer]}")
    expect(page.locator(f"[data-guess='{answer}']")).to_have_class("right")
    after = [pixel(page, cell(action, i)) for i in [answer, *others]]
    assert max(far(after[0], p) for p in after[1:]) > 30, after  # the row's own numbers show again
    if tensor == "probs":
        assert page.locator(".label.predicted.next").inner_text().split() == ["→", names[answer], "next"]
    page.screenshot(path=screenshots / f"walkthrough-guess-{tensor.split('.')[-1]}-after.png")


def test_escape_closes_one_thing_per_press(page: Page, live_server):
    open_view(page, f"{live_server}/?step=3.1")
    p = page.evaluate("window.__llmviz.blockScreenPoint('embed.W_E', 0, 1, 1)")
    page.mouse.dblclick(p["x"], p["y"])  # pins the block's description
    expect(page.locator("#selection")).to_be_visible()
    page.locator("#walk-time").focus()  # even from the timeline
    page.keyboard.press("Escape")
    expect(page.locator("#selection")).to_be_hidden()
    expect(page.locator("#walk")).to_be_visible()  # one thing per press
    settle(page)
    p = page.evaluate("window.__llmviz.blockScreenPoint('embed.W_E', 0, 1, 1)")
    page.mouse.click(p["x"], p["y"])  # a pinned tooltip (and the block's description)
    expect(page.locator("#tooltip.pinned")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#tooltip")).to_be_hidden()
    expect(page.locator("#selection")).to_be_hidden()
    expect(page.locator("#walk")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#walk")).to_be_hidden()
    assert "step=" not in page.evaluate("location.search")


@pytest.mark.parametrize("how", ["home", "key-home", "whole", "map", "model", "input"])
def test_a_pinned_block_description_goes_with_its_view(page: Page, live_server, how):
    open_view(page, live_server)
    p = page.evaluate("window.__llmviz.blockScreenPoint('embed.W_E', 0, 1, 1)")
    page.mouse.dblclick(p["x"], p["y"])
    expect(page.locator("#selection")).to_be_visible()
    if how == "home":
        page.click("#home")
    elif how == "key-home":
        page.locator("#view").focus()
        page.keyboard.press("Home")
    elif how == "whole":
        page.click("#fit")
    elif how == "map":
        page.click("#map-toggle")
        page.locator("#map [data-section]").nth(2).click()
    elif how == "model":
        page.select_option("#model", "gpt2")
        expect(page.locator("#notice")).to_contain_text("structure only")
    else:
        page.fill("#prompt", "CCAB")
        page.press("#prompt", "Enter")
        expect(page.locator("#readout")).to_contain_text("CCAB")
    expect(page.locator("#selection")).to_be_hidden()


@pytest.mark.parametrize("link", ["99.99", "5.99"])
def test_a_link_to_a_missing_step_says_so(page: Page, live_server, link):
    chapters = walkthrough(live_server, model="nano-gpt", input="CBABBC")["chapters"]
    n5 = len(next(c for c in chapters if c["number"] == 5)["steps"])
    said, shown = {
        "99.99": (f"There is no chapter 99: this walkthrough has chapters 1 to 14 and {chapters[-1]['number']}. "
                  "Showing 1.1.",  # (15–18 are the learning path's models' own)
                  f"Chapter 1 of {len(chapters)} · step 1 of"),
        "5.99": (f"There is no step 5.99: chapter 5 has {n5} steps. Showing 5.1.", f"Chapter 5 of {len(chapters)} · step 1 of {n5}"),
    }[link]
    open_view(page, f"{live_server}/?step={link}")
    expect(page.locator("#walk-where")).to_contain_text(shown)
    expect(page.locator("#notice")).to_be_visible()
    expect(page.locator("#notice")).to_have_text(said)
    page.keyboard.press("ArrowRight")  # moving on: the message was about the link
    expect(page.locator("#notice")).to_be_hidden()
    page.goto(f"{live_server}/?step=5.2")
    expect(page.locator("#walk-where")).to_contain_text("Chapter 5 of")
    expect(page.locator("#walk-where")).to_contain_text("step 2 of")
    expect(page.locator("#notice")).to_be_hidden()  # a step that exists says nothing


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_code_fits_its_panel(page: Page, live_server, viewport, screenshots):
    """Every step's code box fits inside the walkthrough panel: a long line wraps inside the box, never cut."""
    w = walkthrough(live_server, model="nano-gpt", input="CBABBC")
    steps = [f"{c['number']}.{i}" for c in w["chapters"] for i, s in enumerate(c["steps"], 1)
             if any(a["type"] == "code" for a in s["actions"])]
    assert steps
    page.set_viewport_size(viewport)
    page.emulate_media(reduced_motion="reduce")  # each step at its end: the code shown
    for n, step in enumerate(steps + steps[:1]):
        open_view(page, f"{live_server}/?step={step}")
        expect(page.locator("#walk-card pre").first).to_be_visible()
        # The real source behind its fold (when the step has a plain version) unfolded: every code box must fit.
        page.evaluate("document.querySelectorAll('#walk-card details').forEach(d => d.open = true)")
        if n == len(steps):  # and a line longer than any the chapters have today
            page.evaluate("""document.querySelectorAll('#walk-card pre code').forEach(c => c.textContent +=
                '\\n    return a_function_with_a_long_name(normalized_input_tensor, weight_matrix_of_the_layer, eps=1e-5)')""")
        for k in range(page.locator("#walk-card pre").count()):
            pre = page.locator("#walk-card pre").nth(k)
            expect(pre).to_be_visible()
            pre.scroll_into_view_if_needed()
            fit = pre.evaluate("""pre => {
                const walk = document.querySelector('#walk');
                const card = pre.closest('.walk-card'), w = walk.getBoundingClientRect(), c = card.getBoundingClientRect();
                const p = pre.getBoundingClientRect();
                return { panelRight: w.left + walk.clientWidth, cardRight: c.right, preRight: p.right, panelScrolls: walk.scrollWidth > walk.clientWidth,
                         preOverflows: pre.scrollWidth > pre.clientWidth }
            }""")
            assert fit["cardRight"] <= fit["panelRight"] + 0.5 and fit["preRight"] <= fit["panelRight"] + 0.5, (step, k, fit)
            assert not fit["panelScrolls"], (step, k, fit)  # the panel itself never scrolls sideways
            assert not fit["preOverflows"], (step, k, fit)  # a long line wraps: no part of it is hidden
    page.screenshot(path=screenshots / f"walkthrough-code-{'phone' if viewport is PHONE else 'desktop'}.png")


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory):
    """A served tiny Llama (random weights, no tokenizer): test_modern_view's."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_modern_view import serve_tiny_llama

    yield from serve_tiny_llama(tmp_path_factory)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_llamas_intro_card_reads_as_sentences(page: Page, llama_url, viewport, screenshots):
    url, model = llama_url
    page.set_viewport_size(viewport)
    open_view(page, f"{url}/?model={model.name}&input=5+17+3+60+2+41", first_visit=True)
    intro = page.locator("#intro")
    expect(intro).to_be_visible()
    said = " ".join(intro.inner_text().split())
    assert f"{model.name}: a Hugging Face llama model. Its input, “" in said, said
    assert "”, enters at the top as 6 tokens, flows down through 2 transformer layers" in said, said
    assert "␣" not in said and "model llama Its" not in said
    page.screenshot(path=screenshots / f"intro-llama-{'phone' if viewport is PHONE else 'desktop'}.png")


def test_a_steps_subject_is_lit_at_normal_zoom(page: Page, live_server, screenshots):
    """Step 3.1 lights token C's column of W_E: a lime halo with dark edges around it, its own cells unchanged."""
    page.emulate_media(reduced_motion="reduce")
    open_view(page, f"{live_server}/?step=3.1")
    expect(page.locator("#walk-title")).to_have_text("Each token picks its vector")
    a = page.evaluate("window.__llmviz.blockScreenPoint('embed.W_E', 0, 1, 20)")
    b = page.evaluate("window.__llmviz.blockScreenPoint('embed.W_E', 0, 2, 20)")  # token C's column (id 2)
    dx = b["x"] - a["x"]
    assert dx > 6, dx  # a cell is several pixels wide: normal zoom
    lime = lambda p: p[1] > 190 and p[0] < 160 and p[2] < 120
    band = [page.evaluate(f"window.__llmviz.readPixels({b['x'] - k * dx / 10}, {b['y']})") for k in range(5, 10)]
    assert any(lime(p) for p in band), band  # the halo, just left of the column
    assert not lime(page.evaluate(f"window.__llmviz.readPixels({b['x']}, {b['y']})"))  # the cell's own colour shows
    page.screenshot(path=screenshots / "walkthrough-subject-lit.png")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_legend_and_escape_stay_reachable_while_walking(page: Page, live_server, viewport, screenshots):
    page.set_viewport_size(viewport)
    open_view(page, f"{live_server}/?step=5.1")
    summary = page.locator("#legend-box summary")
    expect(summary).to_be_visible()  # folded beside the steps
    expect(page.locator("#legend-box")).not_to_have_attribute("open", "")
    summary.click()
    expect(page.locator("#legend .legend-row").first).to_be_visible()
    expect(page.locator("[data-walk=close]")).to_have_attribute("title", "Close the walkthrough (Esc)")
    page.screenshot(path=screenshots / f"walkthrough-legend-{'phone' if viewport is PHONE else 'desktop'}.png")
    page.keyboard.press("Escape")
    expect(page.locator("#walk")).to_be_hidden()


def test_a_missing_step_and_a_missing_block_are_both_said(page: Page, live_server):
    open_view(page, f"{live_server}/?step=5.99&block=no.such.block")
    notice = page.locator("#notice")
    expect(notice).to_contain_text("There is no step 5.99")
    expect(notice).to_contain_text("no.such.block")  # the link's other problem stays said
    page.keyboard.press("ArrowRight")
    expect(notice).not_to_contain_text("There is no step")
