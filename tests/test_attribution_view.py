"""The Attribution and Patching tabs of the "Across layers" panel in Debian's headless Chromium, on nano-gpt: the bars'
numbers are the API's, the choice of position and token, a bar's click flies the camera to its block; the patching
grids, their suggested corruption, a run on another one, the hover sentence and a cell's click."""

import pytest
from playwright.sync_api import Page, expect

from llmviz.views.attribution import attribution
from llmviz.views.patching import patching, suggest
from test_e2e import console_errors, open_view  # noqa: F401

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


def shown(text: str) -> float:
    return float(text.replace("−", "-"))


def bars_equal(page: Page, answer: dict) -> None:
    rows = page.locator("#ins-attribution .at-row")
    expect(rows).to_have_count(len(answer["parts"]))
    labels = rows.locator(".at-label").all_text_contents()
    values = rows.locator(".at-value").all_text_contents()
    exact = [float(v) for v in page.eval_on_selector_all("#ins-attribution .at-row", "rs => rs.map(r => r.dataset.value)")]
    assert labels == [p["label"] for p in answer["parts"]]
    assert exact == [p["value"] for p in answer["parts"]]
    for text, p in zip(values, answer["parts"]):
        assert shown(text) == pytest.approx(p["value"], rel=5e-4, abs=1e-12), p["label"]
    assert float(page.get_attribute(".at-logit", "data-value")) == answer["logit"]
    assert shown(page.text_content(".at-logit")) == pytest.approx(answer["logit"], rel=5e-4)
    assert shown(page.text_content(".at-total")) == pytest.approx(answer["total"], rel=5e-4)


def test_attribution_bars_choices_and_flight(page: Page, live_server, console_errors, screenshots, nano):
    open_view(page, f"{live_server}/?insights=attribution")
    box = page.locator("#ins-attribution")
    expect(box).to_have_attribute("data-loaded", "5:0")  # the last position, its prediction A
    trace = nano.run("CBABBC")
    bars_equal(page, attribution(trace))
    expect(page.locator(".at-sum")).to_contain_text("The logit of A after position 5")
    page.screenshot(path=screenshots / "insights-attribution.png")
    # another position: its prediction by default; then another token there
    page.select_option("select[data-at=position]", "2")
    expect(box).to_have_attribute("data-loaded", f"2:{trace.predicted_ids[2]}")
    bars_equal(page, attribution(trace, 2))
    page.select_option("select[data-at=token]", "2")
    expect(box).to_have_attribute("data-loaded", "2:2")
    bars_equal(page, attribution(trace, 2, 2))
    # a bar's click flies the view to its block, beside the panel
    before = page.evaluate("window.__llmviz.camera()")
    page.locator(".at-row", has_text="L2 MLP").click()
    page.wait_for_function("!window.__llmviz.flying()")
    assert page.evaluate("window.__llmviz.camera()") != before
    r = page.evaluate("window.__llmviz.blockScreenRect('blocks.2.hook_mlp_out')")
    panel = page.locator("#insights").bounding_box()
    assert r["right"] > 0 and r["left"] < panel["x"] and r["bottom"] > 40 and r["top"] < 800
    head = page.evaluate("window.__llmviz.camera()")
    page.locator(".at-row", has_text="L1 head 2").click()
    page.wait_for_function("!window.__llmviz.flying()")
    assert page.evaluate("window.__llmviz.camera()") != head
    p = page.evaluate("window.__llmviz.blockScreenPoint('blocks.1.attn.hook_z', 2, 0, 2)")
    assert 0 < p["x"] < panel["x"] and 40 < p["y"] < 800
    assert page.evaluate("location.search").endswith("insights=attribution")
    assert console_errors == []


def test_patching_grids_run_hover_and_flight(page: Page, live_server, console_errors, screenshots, nano):
    open_view(page, f"{live_server}/?insights=patching")
    box = page.locator("#ins-patching")
    suggested = nano.decode(suggest(nano, "CBABBC"))
    expect(box).to_have_attribute("data-loaded", suggested)
    expect(page.locator(".pg-corrupted")).to_have_value(suggested)
    sweep = patching(nano, "CBABBC", suggested)
    expect(page.locator("td[data-kind=resid]")).to_have_count(4 * 6)
    expect(page.locator("td[data-kind=head]")).to_have_count(3 * 3)
    # run another corruption: the grid is the API's sweep of it
    page.fill(".pg-corrupted", "CBCBBC")
    page.click(".pg-form button")
    expect(box).to_have_attribute("data-loaded", "CBCBBC")
    sweep = patching(nano, "CBABBC", "CBCBBC")
    for i, row in enumerate(sweep["resid"]["recovered"]):
        for q, r in enumerate(row):
            expect(page.locator(f"td[data-kind=resid][data-row='{i}'][data-pos='{q}']")).to_have_text(
                "" if r is None else str(round(100 * r)).replace("-", "−"))
    for L, row in enumerate(sweep["heads"]["recovered"]):
        for h, r in enumerate(row):
            assert page.text_content(f"td[data-kind=head][data-layer='{L}'][data-head='{h}']") == \
                ("" if r is None else str(round(100 * r)).replace("-", "−"))
    expect(page.locator("th.pg-differs")).to_have_count(1)  # position 2: A, corrupted to C
    page.screenshot(path=screenshots / "insights-patching.png")
    # hover: what was patched, and what it gave
    page.locator("td[data-kind=resid][data-row='0'][data-pos='2']").hover()
    r = sweep["resid"]["recovered"][0][2]
    prob = sweep["resid"]["probs"][0][2]
    expect(page.locator(".pg-readout")).to_contain_text(
        f"patch resid_pre of layer 0 at position 2 (A) from the clean run: P({sweep['token_str']}) = ")
    expect(page.locator(".pg-readout")).to_contain_text(f"{round(100 * r)} % recovered")
    said = page.text_content(".pg-readout").split(" = ")[1].split(",")[0]
    assert shown(said) == pytest.approx(prob, rel=5e-4)
    page.locator("td[data-kind=head][data-layer='1'][data-head='0']").hover()
    expect(page.locator(".pg-readout")).to_contain_text("patch head 0 of layer 1 (its hook_z at every position)")
    # a cell's click flies there
    before = page.evaluate("window.__llmviz.camera()")
    page.locator("td[data-kind=resid][data-row='2'][data-pos='4']").click()
    page.wait_for_function("!window.__llmviz.flying()")
    assert page.evaluate("window.__llmviz.camera()") != before
    # a corruption of another length says why, and keeps the grid
    page.fill(".pg-corrupted", "CBA")
    page.click(".pg-form button")
    expect(page.locator(".pg-message")).to_contain_text("the clean input has 6 tokens and the corrupted one 3")
    expect(box).to_have_attribute("data-loaded", "CBCBBC")
    assert page.evaluate("location.search").endswith("insights=patching")
    assert [e for e in console_errors if "422" not in e] == []
