"""Generating token by token in the view, in Debian's headless Chromium: Step, Play, Undo, Reset, the sampling
chain, the KV-cache view, and a bad setting."""

import pytest
from playwright.sync_api import Page, expect

from test_e2e import console_errors, open_view, stats  # noqa: F401

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
    page.evaluate("window.__llmviz.flyToBlock('blocks.0.attn.cache_k')")
    page.wait_for_timeout(300)
    expect(page.locator(".label.cache-note[data-tensor='blocks.0.attn.cache_k']")).to_contain_text(
        "columns 0–6: from the cache · 7: new")
    page.screenshot(path=screenshots / "generate-kv-cache.png")
    page.evaluate("window.__llmviz.flyToBlock('blocks.0.attn.hook_attn_scores')")
    page.wait_for_timeout(300)
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.0.attn.hook_attn_scores', 0, 3, 0)")
    page.mouse.move(p["x"], p["y"])
    tip = page.get_by_role("tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-index", "[0,0,3]")  # the single new query row, key 3 (cached)
    expect(tip.locator(".tt-formula")).to_contain_text("q · k")
