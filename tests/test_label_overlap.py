"""Issue #21, "The look": no label ever covers a cell in any standard view (home, whole model, each Map section, every
walkthrough step), in Debian's headless Chromium. Each label's rectangle on screen (what its element and the elements in
it draw) is compared with each block's: the rectangle its 3D box projects to."""

import json

import pytest
from playwright.sync_api import Page, expect

from test_e2e import open_view
from test_walkthrough_view import scrub, walkthrough

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SLACK = 1.0  # pixels a label may touch a block by, in each direction
SPECK = 2.0  # a block smaller than this on screen, in both directions, has no readable cells to cover


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


# Every label shown (a direct child of the label layer, displayed): the rectangle it and its content take (a model's
# title draws its text outside its own box), and every block's rectangle; both clipped to the view, where they show.
RECTS = f"""() => {{
    const view = document.querySelector('#view').getBoundingClientRect();
    const clip = (r) => ({{ left: Math.max(r.left, view.left), top: Math.max(r.top, view.top),
                           right: Math.min(r.right, view.right), bottom: Math.min(r.bottom, view.bottom) }});
    const labels = [];
    for (const node of document.querySelector('#labels').children) {{
        if (getComputedStyle(node).display === 'none') continue;
        let r = null;
        for (const e of [node, ...node.querySelectorAll('*')]) {{
            const b = e.getBoundingClientRect();
            if (b.width <= 0 && b.height <= 0) continue;
            r = r ? {{ left: Math.min(r.left, b.left), top: Math.min(r.top, b.top), right: Math.max(r.right, b.right),
                      bottom: Math.max(r.bottom, b.bottom) }} : {{ left: b.left, top: b.top, right: b.right, bottom: b.bottom }};
        }}
        if (!r) continue;
        const c = clip(r);
        if (c.right - c.left > 0 && c.bottom - c.top > 0)
            labels.push({{ text: node.textContent.trim(), cls: node.className, tensor: node.dataset.tensor || '', ...c }});
    }}
    const blocks = window.__llmviz.blockRects()
        .filter((b) => b.right - b.left >= {SPECK} || b.bottom - b.top >= {SPECK})
        .map((b) => ({{ ...b, ...clip(b) }}))
        .filter((b) => b.right > b.left && b.bottom > b.top);
    return {{ labels, blocks }};
}}"""


def overlaps(page: Page) -> tuple[list[str], int]:
    """Each label that covers a block (more than SLACK pixels both across and down), and how many labels show."""
    got = page.evaluate(RECTS)
    bad = []
    for lab in got["labels"]:
        for b in got["blocks"]:
            dx = min(lab["right"], b["right"]) - max(lab["left"], b["left"])
            dy = min(lab["bottom"], b["bottom"]) - max(lab["top"], b["top"])
            if dx > SLACK and dy > SLACK:
                bad.append(f"label {lab['text']!r} ({lab['cls']}) covers {b['model']}:{b['tensor']} by "
                           f"{dx:.0f}×{dy:.0f} px (label {lab['left']:.0f},{lab['top']:.0f}–{lab['right']:.0f},"
                           f"{lab['bottom']:.0f}; block {b['left']:.0f},{b['top']:.0f}–{b['right']:.0f},{b['bottom']:.0f})")
    return bad, len(got["labels"])


def still(page: Page):
    """The view is loaded (a walkthrough's step settled), no flight is under way, and two frames have been drawn since."""
    page.wait_for_function("window.__llmviz.walk().settled !== false || !window.__llmviz.walk().active")
    page.wait_for_function("window.__llmviz.flying() === false")
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def check(page: Page, where: str, failures: list[str], least: int = 3):
    still(page)
    bad, shown = overlaps(page)
    failures.extend(f"{where}: {b}" for b in bad)
    if shown < least:
        failures.append(f"{where}: only {shown} labels show")


def sections(page: Page) -> list[tuple[str, str]]:
    return page.evaluate("[...document.querySelectorAll('#map [data-section]')].map(b => [b.dataset.section, b.textContent])")


def test_no_label_covers_a_block_in_the_standard_views(page: Page, live_server, screenshots):
    """Home, Whole model and each Map section of nano-gpt at 1280×800."""
    failures: list[str] = []
    open_view(page, live_server)
    check(page, "home", failures)
    page.screenshot(path=screenshots / "label-overlap-home.png")
    page.click("#fit")
    check(page, "whole model", failures)
    page.screenshot(path=screenshots / "label-overlap-whole.png")
    page.click("#map-toggle")
    expect(page.locator("#map")).to_be_visible()
    keys = sections(page)
    assert len(keys) > 5, keys
    for key, title in keys:
        page.click(f"#map [data-section='{key}']")
        check(page, f"map: {title} ({key})", failures, least=1)
        if key in ("blocks.0.attn", "blocks.1.mlp"):
            page.screenshot(path=screenshots / f"label-overlap-{key}.png")
    assert not failures, "\n".join(failures)


def test_no_label_covers_a_block_in_any_walkthrough_step(page: Page, live_server, screenshots):
    """Every step of every chapter at 1280×800, stepped through with the arrow key, each at its end."""
    steps = [[c["number"], i] for c in walkthrough(live_server)["chapters"] for i in range(1, len(c["steps"]) + 1)]
    assert len(steps) >= 30
    failures: list[str] = []
    open_view(page, f"{live_server}/?step=1.1")
    expect(page.locator("#walk")).to_be_visible()
    for n, at in enumerate(steps):
        if n:
            page.keyboard.press("ArrowRight")
        page.wait_for_function(f"JSON.stringify(window.__llmviz.walk().at) === '{json.dumps(at, separators=(',', ':'))}'"
                               " && window.__llmviz.walk().settled")
        # The step at its end (its timeline paused there): where its camera stops and what it shows last.
        scrub(page, 1)
        check(page, f"step {at[0]}.{at[1]}", failures, least=1)
        if at in ([5, 1], [8, 1], [12, 1]):
            page.screenshot(path=screenshots / f"label-overlap-step-{at[0]}.{at[1]}.png")
    assert not failures, "\n".join(failures)


def test_no_label_covers_a_block_on_a_phone(browser, live_server, screenshots):
    """Home and Whole model on a phone (390×844, touch)."""
    from conftest import TEST_HOOKS

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone.add_init_script(path=TEST_HOOKS)
    page = phone.new_page()
    failures: list[str] = []
    try:
        open_view(page, live_server)
        check(page, "phone home", failures)
        page.screenshot(path=screenshots / "label-overlap-phone-home.png")
        page.click("#menu")  # the controls fold behind ☰
        page.click("#fit")
        page.click("#menu")
        check(page, "phone whole model", failures)
        page.screenshot(path=screenshots / "label-overlap-phone-whole.png")
    finally:
        phone.close()
    assert not failures, "\n".join(failures)
