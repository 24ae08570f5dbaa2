"""Generating token by token in the view, in Debian's headless Chromium: Step, Play, Undo, Reset, the sampling
chain, the KV-cache view, and a bad setting."""

import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, fly_to_block, open_view, stats  # noqa: F401

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def chips(page: Page) -> str:
    return "".join(page.locator("#gen-tokens .gen-chip").all_text_contents())


def step(page: Page, n: int = 1):
    for _ in range(n):
        before = page.locator("#gen").get_attribute("data-steps-done")
        page.click("[data-gen=step]")
        page.wait_for_function(f"document.querySelector('#gen').dataset.stepsDone !== {repr(before) if before else 'undefined'}")


def test_six_steps_write_the_sorted_answer_token_by_token(page: Page, live_server, console_errors, screenshots):
    open_view(page, live_server)
    page.click("#gen-toggle")
    answer = "ABBBCC"
    for i in range(6):
        step(page)
        assert chips(page) == "CBABBC" + answer[: i + 1]
        expect(page.locator("#gen-chain .ch-token")).to_have_text(answer[i])
        shown = ("CBABBC" + answer)[: min(7 + i, 11)]  # the view grows by one position, up to the context
        expect(page.locator("#prompt")).to_have_value(shown)
        expect(page.locator(".label.block.kind-input")).to_contain_text("tokens " + " ".join(shown))
    expect(page.locator("#gen-message")).to_contain_text("the context is full")
    expect(page.locator("[data-gen=step]")).to_be_disabled()
    expect(page.locator("#gen-cache")).to_contain_text("2 · 3 · 3 · 16 · 11 · 4 bytes = 12,672 bytes")
    page.screenshot(path=screenshots / "generate-steps.png")
    page.locator("#gen-tokens [data-step='1']").click()  # an earlier token: the distribution it was drawn from
    expect(page.locator("#gen-chain .ch-head")).to_contain_text("position 7")  # counted from 0, as t is
    expect(page.locator("#gen-chain .ch-token")).to_have_text("B")
    assert console_errors == []


def test_seeded_sampling_reproduces_and_shows_its_chain(page: Page, live_server, screenshots):
    open_view(page, live_server)
    page.click("#gen-toggle")
    page.fill("#gen-temperature", "2.5")
    page.fill("#gen-top-k", "2")
    page.fill("#gen-seed", "5")
    page.fill("#gen-max", "4")
    page.click("[data-gen=play]")
    page.wait_for_function("document.querySelectorAll('#gen-tokens button.gen-chip').length === 4")
    first = chips(page)
    stages = page.locator("#gen-chain .ch-stage").evaluate_all("es => es.map(e => e.dataset.stage)")
    assert stages == ["probabilities", "÷ temperature 2.5", "top-k 2", "renormalised"]
    u = float(page.locator("#gen-chain .ch-u").get_attribute("data-u"))
    assert 0 <= u < 1
    page.screenshot(path=screenshots / "generate-sampling.png")
    page.click("[data-gen=reset]")
    expect(page.locator("#gen-tokens .gen-chip")).to_have_count(0)
    page.click("[data-gen=play]")
    page.wait_for_function("document.querySelectorAll('#gen-tokens button.gen-chip').length === 4")
    assert chips(page) == first  # the same seed and settings: the same tokens


def test_undo_and_reset_restore_the_earlier_state(page: Page, live_server):
    open_view(page, live_server)
    page.click("#gen-toggle")
    step(page, 2)
    expect(page.locator("#prompt")).to_have_value("CBABBCAB")
    page.click("[data-gen=undo]")
    expect(page.locator("#prompt")).to_have_value("CBABBCA")
    assert chips(page) == "CBABBCA"
    step(page)
    assert chips(page) == "CBABBCAB"  # the same token again
    page.click("[data-gen=reset]")
    expect(page.locator("#prompt")).to_have_value("CBABBC")
    expect(page.locator("#readout [data-token]")).to_have_text("A")
    expect(page.locator("#gen-tokens .gen-chip")).to_have_count(0)


def test_a_bad_setting_shows_a_message_and_keeps_the_state(page: Page, live_server):
    open_view(page, live_server)
    page.click("#gen-toggle")
    step(page)
    page.fill("#gen-top-p", "1.5")
    page.locator("#gen-top-p").dispatch_event("change")
    page.click("[data-gen=step]")
    expect(page.locator("#error")).to_contain_text("top_p")
    expect(page.locator("#prompt")).to_have_value("CBABBCA")  # the view as it was
    assert stats(page)["blocks"] > 0


def test_the_kv_cache_view_shows_one_new_query_against_the_cache(page: Page, live_server, screenshots):
    open_view(page, live_server)
    page.click("#gen-toggle")
    page.check("#gen-kv")
    step(page, 2)
    page.wait_for_function("window.__llmviz.stats().blocks > 0")
    fly_to_block(page, "blocks.0.attn.cache_k")
    expect(page.locator(".label.cache-note[data-tensor='blocks.0.attn.cache_k']")).to_contain_text(
        "columns 0–6: from the cache · 7: new")
    page.screenshot(path=screenshots / "generate-kv-cache.png")
    fly_to_block(page, "blocks.0.attn.hook_attn_scores")
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.0.attn.hook_attn_scores', 0, 3, 0)")
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-index", "[0,0,3]")  # the single new query row, key 3 (cached)
    expect(tip.locator(".tt-formula")).to_contain_text("q · k")


def camera(page: Page) -> list[float]:
    """Where the camera is, once any flight has ended."""
    page.wait_for_function("!window.__llmviz.flying()")
    return page.evaluate("window.__llmviz.camera()")


def test_reset_returns_the_view_and_the_panel_to_the_prompt(page: Page, live_server):
    """Reset goes back to the view before the first Step (the prompt, the camera), after a setting change too, and
    a Play under way stops: no token is written after it."""
    open_view(page, live_server)
    first = camera(page)  # the first view's flight has ended
    page.locator("#view").focus()
    page.keyboard.press("ArrowRight")  # the learner has moved the camera
    page.wait_for_function("""first => new Promise(done => {  // moved, and still for two frames
        const now = () => JSON.stringify(window.__llmviz.camera()), a = now();
        requestAnimationFrame(() => requestAnimationFrame(() => done(a !== JSON.stringify(first) && now() === a))); })""",
                           arg=first)
    before = camera(page)
    page.click("#gen-toggle")
    step(page, 2)
    page.fill("#gen-temperature", "1.5")
    page.locator("#gen-temperature").dispatch_event("change")  # a new setting: a new session from CBABBCAB
    step(page)
    expect(page.locator("#prompt")).to_have_value("CBABBCABB")
    page.click("[data-gen=reset]")
    expect(page.locator("#prompt")).to_have_value("CBABBC")
    expect(page.locator(".label.block.kind-input")).to_contain_text("tokens C B A B B C")
    expect(page.locator("#gen-tokens .gen-chip")).to_have_count(0)
    expect(page.locator("#gen-tokens")).to_have_text("Step draws the next token and feeds it back.")
    after = camera(page)
    assert after == pytest.approx(before, abs=1e-3), f"first view {first}, moved to {before}, after Reset {after}"

    page.fill("#gen-temperature", "0")
    page.locator("#gen-temperature").dispatch_event("change")
    done = int(page.locator("#gen").get_attribute("data-steps-done"))
    page.click("[data-gen=play]")
    page.wait_for_function(f"Number(document.querySelector('#gen').dataset.stepsDone) > {done}")
    page.click("[data-gen=reset]")  # while Play runs
    expect(page.locator("[data-gen=play]")).to_have_text("Play")
    expect(page.locator("#prompt")).to_have_value("CBABBC")
    step(page)  # one Step from the prompt writes one token: nothing of the stopped Play is left
    assert chips(page) == "CBABBCA"
    expect(page.locator("#prompt")).to_have_value("CBABBCA")


@pytest.mark.parametrize("how", ["button", "escape"])
def test_the_panel_closes_on_a_phone(browser, live_server, screenshots, how):
    """On a phone the panel covers the toolbar's Generate button: its × (or Escape) closes it."""
    from conftest import TEST_HOOKS

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone.add_init_script(path=TEST_HOOKS)
    page = phone.new_page()
    open_view(page, live_server)
    page.click("#gen-toggle")
    close = page.get_by_role("button", name="close").and_(page.locator("[data-gen=close]"))
    expect(close).to_be_visible()
    box = close.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] >= 0
    page.screenshot(path=screenshots / "generate-phone.png")
    if how == "button":
        close.tap()
    else:
        page.keyboard.press("Escape")
    expect(page.locator("#gen")).to_be_hidden()
    page.click("#gen-toggle")  # the button is reachable again
    expect(page.locator("#gen")).to_be_visible()
    phone.close()


def test_escape_closes_the_panel_and_only_the_panel(page: Page, live_server):
    open_view(page, live_server)
    p = page.evaluate("window.__llmviz.blockScreenPoint('hook_embed', 0, 2, 7)")
    page.mouse.click(p["x"], p["y"])  # a pinned cell
    tip = page.get_by_role("tooltip")
    expect(tip).to_be_visible()
    page.click("#gen-toggle")
    expect(page.locator("#gen")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#gen")).to_be_hidden()
    expect(tip).to_be_visible()  # the pinned cell stays for the next Escape
    expect(page.locator("#gen-toggle")).to_be_focused()
    page.keyboard.press("Escape")
    expect(tip).to_be_hidden()
