"""Issue #20, "Craft: every step, every chapter", as a learner sees it in Debian's headless Chromium: what a step talks
about is named on screen, framed inside the part of the view nothing covers, animated to its end within the step,
a lookup drawn as the copy it is, and code written for a newcomer first."""

import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, open_view  # noqa: F401
from test_learner import assert_no_label_covers_another
from test_walkthrough_view import scrub, walkthrough

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


@pytest.fixture(scope="module")
def walk(live_server):
    return walkthrough(live_server, model="nano-gpt", input="CBABBC")


def step_of(walk: dict, key: str) -> dict:
    chapter, step = (int(x) for x in key.split("."))
    return next(c for c in walk["chapters"] if c["number"] == chapter)["steps"][step - 1]


def find_step(walk: dict, test) -> tuple[str, dict]:
    """The first step (C.S) with an action for which test(action) holds, and that action."""
    for c in walk["chapters"]:
        for i, s in enumerate(c["steps"], 1):
            for a in s["actions"]:
                if test(a):
                    return f"{c['number']}.{i}", a
    raise AssertionError("no such step")


def subjects(step: dict) -> set[str]:
    """What a step frames or highlights."""
    out = set()
    for a in step["actions"]:
        if a["type"] == "frame":
            out |= set(a["tensors"])
        if a["type"] == "highlight":
            out |= {r["tensor"] for r in a["regions"]}
    return out


def landed(page: Page):
    """The step's view is loaded, its camera has arrived (no flight under way) and a frame has been drawn since."""
    # (a link to a step: the walkthrough has opened at it; its view is loaded; the camera has arrived)
    page.wait_for_function("(!new URLSearchParams(location.search).has('step') || window.__llmviz.walk().at !== null)"
                           " && window.__llmviz.walk().settled && !window.__llmviz.flying()")
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def inside(rect: dict, area: dict, slack: float = 1.0) -> bool:
    return (rect["left"] >= area["left"] - slack and rect["right"] <= area["right"] + slack
            and rect["top"] >= area["top"] - slack and rect["bottom"] <= area["bottom"] + slack)


def uncovered(page: Page) -> dict:
    """The canvas minus the walkthrough's panel (desktop: beside it; phone: the sheet under it) and the toolbar over it."""
    return page.evaluate("""() => {
        const c = document.querySelector('#view').getBoundingClientRect(), w = document.querySelector('#walk').getBoundingClientRect();
        const t = document.querySelector('#toolbar').getBoundingClientRect();
        let r = { left: c.left, top: Math.max(c.top, t.bottom), right: c.right, bottom: c.bottom };
        if (w.left > c.left + c.width / 2) r.right = Math.min(r.right, w.left); else r.bottom = Math.min(r.bottom, w.top);
        return r; }""")


@pytest.mark.parametrize("viewport", SIZES)
@pytest.mark.parametrize("key", ["5.1", "3.2", "4.1", "6.2", "11.2"])
def test_the_subject_is_labelled(page: Page, live_server, walk, key, viewport, screenshots):
    """Every tensor the step frames or highlights has its block label on screen, in the uncovered view, covering no other
    label and covered by none (K and V beside b_K and b_V, pos emb, μ beside x̂)."""
    page.set_viewport_size(viewport)
    open_view(page, f"{live_server}/?step={key}")
    landed(page)
    area = uncovered(page)
    for tensor in sorted(subjects(step_of(walk, key))):
        label = page.locator(f"#labels .label.block[data-tensor='{tensor}']:visible")
        expect(label).to_be_visible()
        box = label.bounding_box()
        assert box and inside({"left": box["x"], "right": box["x"] + box["width"], "top": box["y"],
                               "bottom": box["y"] + box["height"]}, area, slack=4), (key, tensor, box, area)
    assert_no_label_covers_another(page)
    page.screenshot(path=screenshots / f"craft-labels-{key}-{viewport['width']}.png")


@pytest.mark.parametrize("viewport", SIZES)
def test_the_first_view_names_the_token_path_and_the_first_layer(page: Page, live_server, viewport):
    page.set_viewport_size(viewport)
    open_view(page, live_server)
    landed(page)
    expect(page.locator("#labels .label.block[data-tensor='hook_embed']")).to_be_visible()  # "token emb"
    expect(page.locator("#labels .label.block[data-tensor='hook_pos_embed']")).to_be_visible()  # "pos emb", beside W_pos
    assert_no_label_covers_another(page)
    open_view(page, f"{live_server}/?model=gpt2")  # structure only: its first view is its stack of layers, from Layer 0
    landed(page)
    expect(page.locator("#labels .label.section", has_text="Layer 0").first).to_be_visible()
    assert_no_label_covers_another(page)


@pytest.mark.parametrize("viewport", SIZES)
@pytest.mark.parametrize("key", ["6.2", "11.2", "10.3"])
def test_framing_allows_for_the_panel(page: Page, live_server, walk, key, viewport, screenshots):
    """Each block the step frames (and W_O, which 6.2 is about) lies whole inside the view the panel leaves uncovered;
    10.3's note under the predictions is not cut off."""
    page.set_viewport_size(viewport)
    open_view(page, f"{live_server}/?step={key}")
    landed(page)
    area = uncovered(page)
    framed = next(a["tensors"] for a in step_of(walk, key)["actions"] if a["type"] == "frame")
    for tensor in framed + (["blocks.0.attn.W_O"] if key == "6.2" else []):
        rect = page.evaluate(f"window.__llmviz.blockScreenRect('{tensor}')")
        assert rect and inside(rect, area), (key, tensor, rect, area)
    if key == "10.3":
        note = page.locator(".label.prediction-note")
        expect(note).to_be_visible()
        box = note.bounding_box()
        assert inside({"left": box["x"], "right": box["x"] + box["width"], "top": box["y"], "bottom": box["y"] + box["height"]},
                      area), (box, area)
    page.screenshot(path=screenshots / f"craft-framing-{key}-{viewport['width']}.png")


def test_the_softmax_table_is_filled_by_the_end_of_its_step(page: Page, live_server, walk, screenshots):
    """Next into the attention softmax step: its timeline runs in real time (2.6 s at 1×, however slowly a software GPU
    draws), and by its end every p cell of the table is filled."""
    key, action = find_step(walk, lambda a: a["type"] == "softmax" and "attn_scores" in a["of"])
    chapter, step = (int(x) for x in key.split("."))
    before = f"{chapter}.{step - 1}"
    open_view(page, f"{live_server}/?step={before}")
    page.locator("#view").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#walk-title")).to_have_text(step_of(walk, key)["title"])
    # 3.5 s after Next (the step lasts 2.6 s): its timeline has ended and every p is there.
    page.wait_for_function("document.querySelector('#walk-time').value === '1000'", timeout=3500)
    rows = page.locator("#walk-card table tr")
    assert rows.count() == len(action["entries"]) + 1
    for r in range(1, rows.count()):
        p = rows.nth(r).locator("td").nth(3).inner_text().strip()
        assert p, (r, rows.nth(r).inner_text())
    expect(page.locator(".walk-phases span.on")).to_have_count(4)
    page.screenshot(path=screenshots / "craft-softmax-end.png")


@pytest.mark.parametrize("viewport", SIZES)
def test_the_lookup_is_a_copy(page: Page, live_server, walk, viewport, screenshots):
    """In the embedding step, the token's W_E row and its token-emb column show the same numbers in the same colours."""
    def lights_both(a):
        return a["type"] == "highlight" and {r["tensor"] for r in a["regions"]} >= {"embed.W_E", "hook_embed"}
    key, action = find_step(walk, lights_both)
    row = next(r for r in action["regions"] if r["tensor"] == "embed.W_E")
    col = next(r for r in action["regions"] if r["tensor"] == "hook_embed")
    page.set_viewport_size(viewport)
    open_view(page, f"{live_server}/?step={key}")
    landed(page)
    expect(page.locator(".walk-same")).to_contain_text("same colour")

    # The same token elsewhere in the input is the same copy: the last such position, clear of the block's left edge
    # (drawn in its axis's colour).
    token = row["ranges"]["vocab"][0]
    pos = max(i for i, t in enumerate(walk["tokens"]) if t == token)
    col = {**col, "ranges": {**col["ranges"], "pos": [pos, pos]}}

    def pixel(region: dict, i: int) -> list[int]:
        r = {**region, "ranges": {**region["ranges"], "d_model": [i, i]}, "role": "target"}
        p = page.evaluate("r => window.__llmviz.regionPoint(r)", r)
        return page.evaluate(f"window.__llmviz.readPixels({p['x']}, {p['y']})")

    coloured = 0
    for i in (3, 11, 20, 33, 46):  # (not row 0: the top edge is drawn in its axis's colour)
        a, b = pixel(row, i), pixel(col, i)
        assert sum(abs(x - y) for x, y in zip(a, b)) <= 15, (i, a, b)
        coloured += sum(255 - x for x in a) > 60  # not all white: the colours say something
    assert coloured >= 3
    page.screenshot(path=screenshots / f"craft-lookup-{viewport['width']}.png")


@pytest.mark.parametrize("viewport", SIZES)
def test_code_for_a_newcomer(page: Page, live_server, walk, viewport, screenshots):
    """A @code step shows the plain code under "the code" and folds the real source under "how it is really computed
    (llmviz/<file>)"; without a plain version, the real source as before. The fold stays open as the step is re-drawn."""
    page.set_viewport_size(viewport)
    key, action = find_step(walk, lambda a: a["type"] == "code")
    open_view(page, f"{live_server}/?step={key}")
    card = page.locator(".walk-code")
    expect(card).to_be_visible()
    first_line = action["source"].strip().splitlines()[0].strip()
    if action.get("plain"):
        expect(card.locator("pre.plain")).to_contain_text(action["plain"].strip().splitlines()[0].strip())
        summary = card.locator("details.real summary")
        expect(summary).to_have_text(f"how it is really computed (llmviz/{action['file']})")
        expect(card.locator("details.real pre")).to_be_hidden()
        summary.click()
        expect(card.locator("details.real pre")).to_contain_text(first_line)
        for f in (0.97, 0.99, 1.0):  # the step re-drawn (as when it plays, or a term is pointed at): the fold stays open
            scrub(page, f)
        expect(card.locator("details.real pre")).to_be_visible()
    else:
        expect(card).to_contain_text(f"the code (llmviz/{action['file']})")
        expect(card.locator("pre")).to_contain_text(first_line)
        expect(card.locator("details")).to_have_count(0)
    card.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / f"craft-code-{viewport['width']}.png")


@pytest.mark.parametrize("viewport", SIZES)
def test_a_dot_product_is_framed_close(page: Page, live_server, walk, viewport, screenshots, nano):
    """Expand to 4C (8.1): the MLP's 192-long row no longer sets the framing, so the sum's cells are big enough to see."""
    from pagexplain import explain

    key, action = find_step(walk, lambda a: a["type"] == "dot" and a["cell"]["tensor"].endswith("mlp.hook_pre"))
    page.set_viewport_size(viewport)
    open_view(page, f"{live_server}/?step={key}")
    landed(page)
    target = action["cell"]
    axis = next(a for a in target["ranges"] if a.startswith("d_mlp"))
    at = [page.evaluate("r => window.__llmviz.regionPoint(r)", {**target, "ranges": {**target["ranges"], axis: [i, i]}})
          for i in (0, 1)]
    cell = max(abs(at[1]["x"] - at[0]["x"]), abs(at[1]["y"] - at[0]["y"]))
    assert cell >= (7.5 if viewport is DESKTOP else 3.4), cell  # pixels per cell (it was 2 at 1280×800; on a phone the
    # chapter map takes a line more since chapter 14: 3.47)
    area = uncovered(page)
    for region in explain(nano.run("CBABBC"), target["tensor"], action["index"])["sources"] + [target]:  # as the page lights them
        p = page.evaluate("r => window.__llmviz.regionPoint(r)", region)
        assert inside({"left": p["x"], "right": p["x"], "top": p["y"], "bottom": p["y"]}, area), (region, p, area)
    page.screenshot(path=screenshots / f"craft-close-{key}-{viewport['width']}.png")
