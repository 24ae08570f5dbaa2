"""End to end in Debian's headless Chromium: the bundled front-end loads, talks to the API, shows real numbers."""

import pytest
from playwright.sync_api import Page, expect


@pytest.fixture
def app(page: Page, live_server):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live_server)
    expect(page.locator("body[data-ready=true]")).to_be_visible()
    yield page
    assert errors == [] or all("422" in e for e in errors), errors  # 422s are the bad-input test's own requests


def test_model_list_comes_from_the_api(app: Page, screenshots):
    rows = app.locator("#models tbody tr")
    expect(rows).to_have_count(4)  # nano-gpt plus structure-only gpt2, gpt2-xl, gpt3
    expect(app.locator("tr[data-model=nano-gpt]")).to_contain_text("85.7 k")
    expect(app.locator("tr[data-model=nano-gpt]")).to_contain_text("real weights")
    expect(app.locator("tr[data-model=gpt3]")).to_contain_text("174.6 B")
    expect(app.locator("tr[data-model=gpt3]")).to_contain_text("structure only: no weights loaded")
    app.screenshot(path=screenshots / "foundation-models.png", full_page=True)


def test_forward_pass_numbers_equal_numpy(app: Page, nano):
    probs = nano.run("CBABBC")["probs"]
    rows = app.locator("#predictions tbody tr")
    expect(rows).to_have_count(6)
    last = rows.nth(5).locator("td")
    expect(last.nth(1)).to_have_text("C")
    expect(last.nth(2)).to_have_text("A")  # the first token of the sorted output
    expect(last.nth(3)).to_have_text(f"{probs[5].max() * 100:.2f} %")
    expect(app.locator("#result")).to_contain_text(f"{len(nano.run('CBABBC').computed())} tensors computed for 6 tokens")


def test_own_input_and_bad_input(app: Page, nano, screenshots):
    app.fill("#prompt", "AAC")
    app.click("button[type=submit]")
    expect(app.locator("#predictions tbody tr")).to_have_count(3)
    app.fill("#prompt", "CBD")
    app.click("button[type=submit]")
    alert = app.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_have_text("unknown token 'D' at position 2: this model accepts only A, B, C")
    app.screenshot(path=screenshots / "foundation-bad-input.png", full_page=True)
