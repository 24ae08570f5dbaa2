"""The guided walkthrough in Debian's headless Chromium: every step of every chapter, deep links, the keyboard,
the back button, trying your own input, a narrow screen and a model without weights."""

import json
import re
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, open_view  # noqa: F401

PAUSE, SLOT = 0.6, 1.0  # walkstate.ts: seconds before the first action, and for each action

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def walkthrough(live_server, **params) -> dict:
    q = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{live_server}/api/walkthrough?{q}") as r:
        return json.load(r)


def scrub(page: Page, fraction: float):
    """Move the step's timeline (which pauses the player) and wait for the frame."""
    page.evaluate(f"""(() => {{ const r = document.querySelector('#walk-time');
        r.value = String(Math.round({fraction} * 1000)); r.dispatchEvent(new Event('input')); }})()""")


def region_of(action: dict) -> dict | None:
    """The cells an action lights (the first, if several): where the canvas must change."""
    if action["type"] == "highlight":
        return action["regions"][0]
    for key in ("cell", "row"):
        if key in action:
            return action[key]
    if action["type"] in ("add", "mask", "reveal"):
        return {"tensor": action["tensor"], "ranges": {}, "role": "target"}
    return None


def differ(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b))


def test_every_step_of_every_chapter(page: Page, live_server, console_errors, screenshots):
    w = walkthrough(live_server)
    steps = [(c, i, s) for c in w["chapters"] for i, s in enumerate(c["steps"], 1)]
    assert len(w["chapters"]) >= 12
    open_view(page, f"{live_server}/?step=1.1")
    expect(page.locator("#walk")).to_be_visible()
    framed = None
    for n, (c, i, s) in enumerate(steps):
        if n:
            page.keyboard.press("ArrowRight")
        expect(page.locator("#walk-where")).to_have_text(
            f"Chapter {w['chapters'].index(c) + 1} of {len(w['chapters'])} · step {i} of {len(c['steps'])}")
        expect(page.locator("#walk-title")).to_have_text(s["title"])
        page.wait_for_function("window.__llmviz.walk().settled")  # the step's view (the scale view, ...) is drawn
        # (the URL names the step; a step that opens the Across-layers panel adds its tab, at times before this check)
        assert page.evaluate("new URLSearchParams(location.search).get('step')") == f"{c['number']}.{i}"
        frame = next((a["tensors"] for a in s["actions"] if a["type"] == "frame"), framed)
        if s["view"] and s["view"]["kind"] == "scale":  # its camera flies from model to model
            frame = [a["name"] for a in s["actions"] if a["type"] == "model"] or framed
        # (drawn on the canvas: not the cards, nor the Across-layers panel that @open shows beside it)
        drawn = [k for k, a in enumerate(s["actions"])
                 if a["type"] not in ("code", "travel", "tooltip", "frame", "open", "table", "generate", "model")]
        for a in s["actions"]:
            if a["type"] == "open" and a["tab"] == "map":  # the embedding map, a panel of its own
                expect(page.locator("#embmap .em-pt").first).to_be_visible()
            elif a["type"] == "open":
                expect(page.locator(f"#insights [data-tab={a['tab']}]")).to_have_attribute("aria-selected", "true")
                expect(page.locator(f"#ins-{a['tab']}")).to_be_visible()
        # The canvas changes while the step plays: halfway through its first drawn action (a reveal ends as it
        # began, all cells shown), or by its end when only the camera moves.
        total = PAUSE + max(1, len(s["actions"])) * SLOT
        when = (PAUSE + (drawn[0] + 0.5) * SLOT) / total if drawn else 1
        scrub(page, 0)
        before = page.evaluate("window.__llmviz.snapshot()")
        scrub(page, when)
        after = page.evaluate("window.__llmviz.snapshot()")
        if drawn or (n and frame != framed):
            assert differ(before, after) > 5, (c["number"], i)  # identical pictures differ by 0
        if drawn:  # and its cells are on screen
            region = region_of(s["actions"][drawn[0]])
            if region:
                p = page.evaluate("r => window.__llmviz.regionPoint(r)", region)
                assert p is not None and 0 <= p["x"] <= 900 and 40 <= p["y"] <= 800, (c["number"], i, region["tensor"], p)
        scrub(page, 1)
        framed = frame
        if i == 1:
            page.screenshot(path=screenshots / f"walkthrough-{c['number']:02d}.png")
    assert console_errors == []


def test_templated_numbers_are_shown(page: Page, live_server, nano):
    trace = nano.run("CBABBC")
    open_view(page, f"{live_server}/?step=3.3")
    from llmviz.core.ops import fmt

    want = " + ".join(fmt(float(trace[n][0, 0])) for n in ("hook_embed", "hook_pos_embed"))
    expect(page.locator("#walk-text")).to_contain_text(f"{want} = {fmt(float(trace['blocks.0.hook_resid_pre'][0, 0]))}")


@pytest.mark.parametrize("step", ["5.5", "8.2", "10.2"])  # the attention softmax, GELU, the next-token guess
def test_deep_link_and_stepping_give_the_same_picture(page: Page, live_server, step):
    chapter, n = (int(x) for x in step.split("."))
    open_view(page, f"{live_server}/?step={chapter}.{n - 1}")
    at = "(at) => JSON.stringify(window.__llmviz.walk().at) === JSON.stringify(at)"
    page.wait_for_function(at, arg=[chapter, n - 1])  # the link's step is open: the key moves on from it
    page.keyboard.press("ArrowRight")
    expect(page.locator("#walk-title")).not_to_have_text("")
    assert page.evaluate("window.__llmviz.walk().at") == [chapter, n]
    page.wait_for_function("document.querySelector('[data-walk=play]').textContent === 'Play'", timeout=15_000)
    stepped = page.evaluate("window.__llmviz.snapshot()")
    text = page.locator("#walk-body, #walk-text").first.inner_text()
    open_view(page, f"{live_server}/?step={step}")
    page.wait_for_function(at, arg=[chapter, n])
    page.wait_for_function("window.__llmviz.walk().settled && !window.__llmviz.flying()")
    linked = page.evaluate("window.__llmviz.snapshot()")
    assert differ(stepped, linked) < 6
    assert page.locator("#walk-text").inner_text() == text


def test_keyboard_timeline_and_back_button(page: Page, live_server):
    open_view(page, f"{live_server}/?step=2.1")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#walk-where")).to_contain_text("step 2 of")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#walk-where")).to_contain_text("Chapter 2 of 15 · step 1 of")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#walk-where")).to_contain_text("step 3 of")
    page.go_back()
    expect(page.locator("#walk-where")).to_contain_text("step 2 of")
    assert page.evaluate("location.search").endswith("step=2.2")
    page.keyboard.press(" ")  # Space plays: the timeline moves
    expect(page.locator("[data-walk=play]")).to_have_text("Pause")
    page.keyboard.press(" ")
    expect(page.locator("[data-walk=play]")).to_have_text("Play")
    page.click("#walk-map [data-chapter='10']")  # the map jumps anywhere
    expect(page.locator("#walk-chapter")).to_have_text("Output")
    page.click("[data-walk=close]")
    expect(page.locator("#walk")).to_be_hidden()
    assert "step=" not in page.evaluate("location.search")


def test_guess_then_see(page: Page, live_server, nano):
    open_view(page, f"{live_server}/?step=5.4")  # the attention guess, before its softmax (5.5)
    answer = int(nano.run("CBABBC")["blocks.0.attn.hook_pattern"][0, 5].argmax())
    wrong = (answer + 1) % 6
    page.click(f"[data-guess='{wrong}']")
    expect(page.locator(".walk-guess")).to_contain_text("no: it is A")
    expect(page.locator(f"[data-guess='{answer}']")).to_have_class("right")


def test_your_own_input_changes_the_numbers_and_a_bad_one_keeps_them(page: Page, live_server, nano):
    open_view(page, f"{live_server}/?step=10.3")
    expect(page.locator("#walk-text")).to_contain_text("After CBABBC the most probable next token is")
    page.fill("#walk-input", "CCAB")
    page.click("#walk-try button")
    t = nano.run("CCAB")
    expect(page.locator("#walk-text")).to_contain_text(f"After CCAB the most probable next token is {t.predicted[-1]}")
    expect(page.locator("#prompt")).to_have_value("CCAB")
    assert page.evaluate("window.__llmviz.walk().at") == [10, 3]
    page.fill("#walk-input", "XYZ")
    page.click("#walk-try button")
    expect(page.locator("#walk-message")).to_contain_text("unknown token 'X'")
    expect(page.locator("#walk-text")).to_contain_text("After CCAB the most probable")


def test_no_motion_shows_each_step_at_its_end(page: Page, live_server):
    page.emulate_media(reduced_motion="reduce")
    open_view(page, f"{live_server}/?step=4.1")
    expect(page.locator("#walk-reduced")).to_be_checked()
    page.keyboard.press("ArrowRight")
    expect(page.locator("[data-walk=play]")).to_have_text("Play")  # nothing to play: already at the end
    assert page.evaluate("document.querySelector('#walk-time').value") == "1000"


def test_narrow_screen_bottom_sheet(page: Page, live_server, screenshots):
    page.set_viewport_size({"width": 390, "height": 800})
    open_view(page, f"{live_server}/?step=5.2")
    walk, stage = page.locator("#walk").bounding_box(), page.locator("#stage").bounding_box()
    assert walk["y"] >= stage["y"] + stage["height"] - 1 and walk["width"] > 380
    page.screenshot(path=screenshots / "walkthrough-narrow.png")
    page.click("[data-walk=collapse]")
    expect(page.locator("#walk-text")).to_be_hidden()


def test_structure_only_model_says_so(page: Page, live_server):
    open_view(page, f"{live_server}/?model=gpt2&step=1.1")
    expect(page.locator("#walk-note")).to_contain_text("gpt2 is structure only")
    expect(page.locator("#walk-try")).to_be_hidden()


def test_terms_and_blocks_light_each_other(page: Page, live_server):
    open_view(page, f"{live_server}/?step=3.2")  # the position embedding, named by a term in the text
    term = page.locator("#walk-text .term[data-tensor='pos_embed.W_pos']")
    assert page.evaluate("window.__llmviz.highlighted()") == 2  # the step's own: a row of W_pos, one of its output
    p = page.evaluate("window.__llmviz.blockScreenPoint('pos_embed.W_pos', 0, 1, 1)")
    page.mouse.move(p["x"], p["y"])  # pointing at the block lights its term
    expect(term).to_have_class(re.compile(r"\blit\b"))
    page.mouse.move(p["x"], 5)  # off the canvas: the term goes back, and so do the step's highlights
    expect(term).not_to_have_class(re.compile(r"\blit\b"))
    page.wait_for_function("window.__llmviz.highlighted() === 2")
    term.hover()  # pointing at the term lights its block: the whole of W_pos, one rectangle
    page.wait_for_function("window.__llmviz.highlighted() === 1")


def test_first_visit_offers_the_walkthrough_and_a_model_change_keeps_the_step(page: Page, live_server):
    open_view(page, live_server, first_visit=True)
    page.click("[data-intro=walk]")
    expect(page.locator("#walk-where")).to_have_text("Chapter 1 of 15 · step 1 of 3")
    page.keyboard.press("ArrowRight")
    page.select_option("#model", "gpt2")  # structure only: the same place, told without numbers
    expect(page.locator("#walk-note")).to_contain_text("gpt2 is structure only")
    expect(page.locator("#walk-chapter")).to_have_text("Overview")
