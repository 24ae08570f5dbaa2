"""The learning path's entry: GET /api/learning-path lists the five steps in order, says which models this server has
and where each one's walkthrough starts and ends (equal to the walkthrough the server compiles); its pictures are
small files of the page and of no export; in Chromium, the panel lists the steps, marks the model on screen, opens a
step's model with its walkthrough, and offers the next step at the end of a chapter."""

import json
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import llmviz
from conftest import local_client
from llmviz.io.loading import structure_only
from llmviz.serve.export import PAGE_FILES
from llmviz.serve.routes.page import static_dir
from llmviz.serve.server import create_app
from llmviz.views.learning_steps import STEPS
from test_e2e import open_view

ORDER = ["neuron", "digits-mlp", "bigram-char", "attention-toy", "nano-gpt"]
PUBLIC = Path(__file__).resolve().parent.parent / "frontend" / "public"


@pytest.fixture(scope="module")
def some():
    """A server of two of the path's models, a third without weights, and none of the other two."""
    return local_client(create_app([llmviz.load_model("bigram-char"), llmviz.load_model("attention-toy"),
                                    structure_only("nano-gpt")]))


def test_five_steps_in_order_and_which_models_this_server_has(some):
    r = some.get("/api/learning-path")
    assert r.status_code == 200
    steps = r.json()["steps"]
    assert [s["model"] for s in steps] == ORDER
    assert [s["title"] for s in steps] == ["A single neuron", "A digit classifier", "A bigram table",
                                           "One attention head", "A whole GPT"]
    by = {s["model"]: s for s in steps}
    assert [m for m in ORDER if by[m]["served"]] == ["bigram-char", "attention-toy"]
    for m in ("neuron", "digits-mlp", "nano-gpt"):  # absent, or structure only: to come, nowhere to open
        assert by[m]["start"] is None and by[m]["end"] is None
    assert by["bigram-char"]["start"] == [15, 1] and by["bigram-char"]["end"] == [15, 5]
    assert by["attention-toy"]["start"] == [16, 1] and by["attention-toy"]["end"] == [16, 6]
    assert all(s["learn"] and s["picture"] == f"path/{s['model']}.{'png' if s['model'] == 'neuron' else 'webp'}"
               for s in steps)


def test_the_openapi_schema_declares_it(some):
    op = some.get("/openapi.json").json()["paths"]["/api/learning-path"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LearningPath"}


@pytest.mark.parametrize("model", ["bigram-char", "attention-toy", "digits-mlp",
                                   pytest.param("nano-gpt", marks=pytest.mark.slow)])  # (nano-gpt's: 6 s to compile)
def test_where_a_step_starts_and_ends_is_its_compiled_walkthrough(model):
    """The walkthrough the server compiles for the model's example: its first step and its last."""
    client = local_client(create_app([llmviz.load_model(model)]))
    (step,) = [s for s in client.get("/api/learning-path").json()["steps"] if s["model"] == model]
    chapters = client.get(f"/api/walkthrough?model={model}").json()["chapters"]
    assert step["served"]
    if not chapters:
        assert step["start"] is None and step["end"] is None
        return
    assert step["start"] == [chapters[0]["number"], 1]
    assert step["end"] == [chapters[-1]["number"], len(chapters[-1]["steps"])]


def test_the_pictures_are_small_files_of_the_page_and_of_no_export():
    for s in STEPS:
        for folder in (PUBLIC, static_dir()):
            data = (folder / s.picture).read_bytes()
            assert 1_000 < len(data) <= 25_000, (s.picture, len(data))
            assert data[:8] == b"\x89PNG\r\n\x1a\n" if s.picture.endswith(".png") else data[8:12] == b"WEBP"
    assert not any(f.startswith("path") for f in PAGE_FILES)  # an export writes these files of the page, and no other


# In Chromium


def learning_path(live_server) -> list[dict]:
    with urllib.request.urlopen(f"{live_server}/api/learning-path") as r:
        return json.load(r)["steps"]


def test_the_panel_marks_where_you_are_and_opens_the_digit_classifier_with_its_walkthrough(page: Page, live_server,
                                                                                            screenshots):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    steps = {s["model"]: s for s in learning_path(live_server)}
    open_view(page, f"{live_server}/?model=attention-toy")
    page.click("#path-toggle")
    panel = page.locator("#path")
    items = panel.locator(".path-steps li")
    expect(items).to_have_count(5)
    for i, s in enumerate(steps.values()):
        expect(items.nth(i)).to_contain_text(f"{i + 1}. {s['title']}")
        expect(items.nth(i)).to_contain_text(s["learn"])
        assert items.nth(i).locator("button").is_disabled() is not s["served"]
    expect(panel.locator(".path-mark.here")).to_have_count(1)
    expect(items.nth(3)).to_contain_text("you are here")
    page.wait_for_function("[...document.querySelectorAll('#path img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=screenshots / "learning-path-panel.png")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()

    page.click("#path-toggle")
    page.click("[data-path=digits-mlp]")
    expect(panel).to_be_hidden()
    expect(page.locator("#model")).to_have_value("digits-mlp")
    start = steps["digits-mlp"]["start"]
    if start:  # its chapter: the walkthrough opens at its first step
        page.wait_for_function("a => JSON.stringify(window.__llmviz.walk().at) === JSON.stringify(a)", arg=start)
        with urllib.request.urlopen(f"{live_server}/api/walkthrough?model=digits-mlp") as r:
            first = json.load(r)["chapters"][0]["steps"][0]["title"]
        expect(page.locator("#walk-title")).to_have_text(first)
        assert f"step={start[0]}.1" in page.url and "model=digits-mlp" in page.url
    page.click("#path-toggle")
    expect(items.nth(1)).to_contain_text("you are here")
    assert errors == []


def test_the_end_of_a_chapter_offers_the_next_step_and_counts_as_done(page: Page, live_server):
    steps = {s["model"]: s for s in learning_path(live_server)}
    end, nxt = steps["bigram-char"]["end"], steps["attention-toy"]["start"]
    open_view(page, f"{live_server}/?model=bigram-char&step={end[0]}.{end[1] - 1}")
    expect(page.locator("#walk-next")).to_be_hidden()
    page.click("[data-walk=next]")
    link = page.locator("#walk-next")
    expect(link).to_have_text("Learning path: Next step: One attention head →")
    progress = page.evaluate("JSON.parse(localStorage.getItem('llmviz.path'))")
    assert progress == {"visited": ["bigram-char"], "done": ["bigram-char"]}
    link.locator("button").click()
    page.wait_for_function("a => JSON.stringify(window.__llmviz.walk().at) === JSON.stringify(a)", arg=nxt)
    expect(page.locator("#model")).to_have_value("attention-toy")
    expect(link).to_be_hidden()
    page.click("#path-toggle")
    expect(page.locator(".path-steps li").nth(2)).to_contain_text("✓ done")
    expect(page.locator(".path-steps li").nth(3)).to_contain_text("you are here")


def test_a_first_visit_offers_the_path_on_the_intro_card(page: Page, live_server):
    open_view(page, f"{live_server}/?model=nano-gpt", first_visit=True)
    intro = page.locator("#intro")
    expect(intro).to_contain_text("New to neural networks? Start with the learning path")
    intro.locator("[data-intro=path]").click()
    expect(intro).to_be_hidden()
    expect(page.locator("#path .path-steps li")).to_have_count(5)
    expect(page.locator("#path .path-steps li").nth(4)).to_contain_text("you are here")


def test_an_export_has_no_learning_path(page: Page, tmp_path, nano):
    """A static export holds one model's answers: no entry to other models, on the toolbar or the intro card."""
    from llmviz.serve.export import export
    from test_export_view import serve_folder

    export(nano, ["CBABBC"], tmp_path / "site")
    server = serve_folder(tmp_path / "site")
    try:
        open_view(page, f"http://127.0.0.1:{server.server_address[1]}/", first_visit=True)
        expect(page.locator("#intro")).to_be_visible()
        expect(page.locator("#intro")).not_to_contain_text("learning path")
        expect(page.locator("#path-toggle")).to_be_hidden()
    finally:
        server.shutdown()
