"""Chapter 17, "Reading a digit" (issue 25, the learning path's step 2): digits-mlp's own chapter, and only its. Every
number it tells (the pixels inked, the most and least active hidden units and their sums, the units ReLU leaves on, the
highest and lowest logits, the prediction) is recomputed here from the weights in float64 (test_digits.reference), for
the bundled example and for a held-out digit of another class; the general templates it reads (argmin, max, min,
nonzero, size) are checked on nano-gpt too. In Chromium: the chapter opens at its first step
with the model's prediction, its ReLU step draws the most active unit's weights beside the drawing, and a digit drawn
on the pad retells the step with the new drawing's numbers."""

import re

import numpy as np
import pytest

from llmviz import load_model
from llmviz.core.config import PRESETS
from llmviz.core.ops import fmt
from llmviz.core.sampling import percent
from llmviz.data import TEST, digits
from llmviz.io.loading import BUNDLED, structure_only
from llmviz.views.walkthrough import WalkthroughError, check, compile_chapters
from test_digits import reference

NAME, FILE = "digits-mlp", "17-digits.md"
TITLES = ["Numbers in, a digit out", "One unit: a weighted sum of every pixel", "ReLU, and what a unit looks for",
          "The second layer combines the first", "Ten scores become probabilities", "Your turn: draw a digit"]


@pytest.fixture(scope="module")
def model():
    return load_model(NAME)


def held_out(model) -> np.ndarray:
    """The first held-out image (never trained on) that the model reads as another digit than the example's."""
    images, _ = digits()
    example = model.run(model.config.example).predicted
    return next(im for im in images[TEST] if model.run(im).predicted != example)


def plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub("<[^>]+>", "", html)).replace("&#x27;", "'")


def told(model, image) -> tuple[dict, dict]:
    """What the chapter must say of this image, step by step: every number recomputed from the weights in float64.
    Which unit, which digit and how many come from that; a number is printed as the page prints the pass's own
    float32 value, once it is checked to be the recomputed one (a probability of 0.9999999 in float64 may be 1 in
    float32: 99.99 % against 100.00 %)."""
    r64 = reference(model.require_weights(), np.asarray(image, np.float64).reshape(-1))
    trace = model.run(image)
    for name, want in r64.items():
        np.testing.assert_allclose(trace[name], want, rtol=1e-5, atol=1e-5, err_msg=name)
    r = {name: np.asarray(trace[name], np.float64) for name in r64}
    pre0, post0, pre1 = r["blocks.0.mlp.hook_pre"], r["blocks.0.mlp.hook_post"], r["blocks.1.mlp.hook_pre"]
    hi, lo, hi1, top, bottom = (int(r64["blocks.0.mlp.hook_pre"].argmax()), int(r64["blocks.0.mlp.hook_pre"].argmin()),
                                int(r64["blocks.1.mlp.hook_pre"].argmax()), int(r64["logits"].argmax()),
                                int(r64["logits"].argmin()))
    on0, on1 = (int(np.count_nonzero(r64[f"blocks.{i}.mlp.hook_post"])) for i in (0, 1))
    return {
        "Numbers in, a digit out": [
            "your drawing is 64 numbers", f"This drawing inks {np.count_nonzero(image)} of them.",
            f"the model says {top}, with probability {percent(float(r['probs'][top]))}.",
            "two layers of hidden units, 32 and then 16, and one score for each of the 10 digits"],
        "One unit: a weighted sum of every pixel": [
            "adds up the 64 products", f"the sum that comes out highest is unit {hi}'s: {fmt(pre0[hi])}."],
        "ReLU, and what a unit looks for": [
            f"Unit {hi}'s sum, the highest, leaves ReLU as {fmt(post0[hi])}.",
            f"Unit {lo}'s, the lowest, is {fmt(pre0[lo])} and leaves it as {fmt(post0[lo])}.",
            f"In all, {on0} of the 32 units are on.",
            f"Beside your drawing, unit {hi}'s picture"],
        "The second layer combines the first": [
            "first layer's 32 outputs: each of its 16 units",
            f"its most active unit is unit {hi1}, with a sum of {fmt(pre1[hi1])}; {on1} of its 16 units"],
        "Ten scores become probabilities": [
            f"Digit {top} scores highest, {fmt(r['logits'][top])}; digit {bottom} lowest, {fmt(r['logits'][bottom])}.",
            f"Here {top} gets {percent(float(r['probs'][top]))}."],
        "Your turn: draw a digit": ["Press Clear and draw another digit on the pad."],
    }, {"hi": hi, "hi1": hi1, "top": top}


def test_its_numbers_are_the_forward_pass_recomputed_for_two_digits(model):
    example = np.array(model.config.example.split(), float)
    other = held_out(model)
    seen = set()
    for image in (example, other):
        trace = model.run(image)
        w = compile_chapters(model, trace)
        assert [c["file"] for c in w["chapters"]] == [FILE]  # the transformer's chapters speak of parts it lacks
        (c,) = w["chapters"]
        assert (c["title"], c["stage"]) == ("Reading a digit", "Digits")
        assert [s["title"] for s in c["steps"]] == TITLES
        want, at = told(model, image)
        for s in c["steps"]:
            words = plain(s["html"])
            for phrase in want[s["title"]]:
                assert phrase in words, (s["title"], phrase, words)
        assert trace.predicted == [str(at["top"])]
        seen.add((at["top"], at["hi"]))
        # the actions act on the cells the text names: the dot of the most active unit, its tooltip (the pad draws its
        # weights from it), the second layer's dot, the softmax of the ten scores
        acts = {s["title"]: {a["type"]: a for a in s["actions"]} for s in c["steps"]}
        assert acts[TITLES[0]]["highlight"]["regions"][1] == {"tensor": "probs", "ranges": {"class": [at["top"]] * 2},
                                                               "role": "target"}
        assert acts[TITLES[1]]["dot"]["index"] == [at["hi"]]
        assert acts[TITLES[1]]["dot"]["cell"]["tensor"] == "blocks.0.mlp.hook_pre"
        assert acts[TITLES[2]]["tooltip"]["cell"] == {"tensor": "blocks.0.mlp.hook_post",
                                                      "ranges": {"unit1": [at["hi"]] * 2}, "role": "target"}
        assert acts[TITLES[3]]["dot"]["index"] == [at["hi1"]]
        softmax = acts[TITLES[4]]["softmax"]
        assert softmax["n"] == 10 and [e["name"] for e in softmax["entries"]] == [str(d) for d in range(10)]
        np.testing.assert_allclose([e["p"] for e in softmax["entries"]], trace["probs"], rtol=1e-6)
    assert len(seen) == 2 and len({top for top, _ in seen}) == 2  # two digits, told each with its own numbers


def test_no_other_model_picks_it_up(model):
    for other in [load_model(n) for n in BUNDLED if n != NAME]:
        trace = other.run(other.config.example)
        assert FILE not in {c["file"] for c in compile_chapters(other, trace)["chapters"]}, other.name
    assert FILE not in {c["file"] for c in compile_chapters(structure_only("gpt2"))["chapters"]}


def test_every_chapter_fits_every_bundled_model_and_preset():
    """What `llmviz walkthrough check` checks: each chapter against each bundled model on its example, and each preset
    without weights."""
    assert check([load_model(n) for n in BUNDLED] + [structure_only(n) for n in PRESETS if n not in BUNDLED]) == []


# ---- The general templates it reads ----

def test_argmin_max_min_nonzero_and_size(tmp_path, nano):
    (tmp_path / "01-t.md").write_text(
        "# T\n\n## S\n{{argmin probs[last]}} {{argmax probs[last]}} | {{min logits[last]}} {{max logits[last]}} | "
        "{{nonzero blocks.0.attn.hook_pattern[0, 0]}} {{nonzero blocks.0.attn.hook_pattern[0, 2]}} "
        "{{nonzero blocks.0.attn.hook_pattern[0]}} | {{max blocks.0.attn.hook_pattern[0, :, 0]}} | "
        "{{size pos}} {{size d_mlp}}\n"
        "@dot probs[last, {{argmin probs[last]}}]\n", encoding="utf-8")
    trace = nano.run("CBABBC")
    (c,) = compile_chapters(nano, trace, tmp_path)["chapters"]
    p, logits = trace["probs"][-1], trace["logits"][-1]
    lo, hi = int(p.argmin()), int(p.argmax())
    # the causal mask's zeros: position 0 attends to itself alone, position 2 to three; the whole pattern, 1 + ... + 6;
    # the first key's largest weight, over every query (position 0's: 1)
    assert plain(c["steps"][0]["html"]) == (f"{lo} {hi} | {fmt(float(logits.min()))} {fmt(float(logits.max()))} | "
                                            f"1 3 21 | {fmt(float(trace['blocks.0.attn.hook_pattern'][0, :, 0].max()))} "
                                            f"| 6 {nano.config.d_mlp}")
    assert c["steps"][0]["actions"][-1]["index"] == [5, lo]  # (an action's templates: filled before it is read)


@pytest.mark.parametrize("text, says", [
    ("{{size unit1}}", "01-t.md:4: size unit1: nano-gpt's axes are"),
    ("{{nonzero probs[9]}}", "01-t.md:4: index 9 is outside probs's axis pos"),
    ("{{argmin logits}}", "01-t.md:4: argmin logits: give every index but the last"),
    ("{{max nope}}", "01-t.md:4: unknown tensor 'nope'"),
])
def test_a_wrong_template_names_its_line(tmp_path, nano, text, says):
    (tmp_path / "01-t.md").write_text(f"# T\n\n## S\n{text}\n", encoding="utf-8")
    with pytest.raises(WalkthroughError, match=re.escape(says)):
        compile_chapters(nano, nano.run("CBABBC"), tmp_path)


# ---- In the page ----

@pytest.mark.browser
def test_the_chapter_opens_with_the_prediction_and_follows_a_drawn_digit(page, live_server, model, screenshots):
    from playwright.sync_api import expect

    from test_digits_view import draw
    from test_e2e import open_view

    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_viewport_size({"width": 1280, "height": 800})
    trace = model.run(model.config.example)
    top = int(trace.next_probs.argmax())
    open_view(page, f"{live_server}/?model={NAME}&step=17.1")
    assert page.evaluate("window.__llmviz.walk().at") == [17, 1]
    expect(page.locator("#walk-chapter")).to_have_text("Reading a digit")
    expect(page.locator("#walk-title")).to_have_text(TITLES[0])
    expect(page.locator("#walk-text")).to_contain_text(
        f"the model says {top}, with probability {percent(float(trace.next_probs[top]))}.")
    expect(page.locator("#walk-where")).to_have_text("Chapter 1 of 1 · step 1 of 6")

    # the ReLU step opens the most active unit's tooltip, and the pad draws that unit's weights beside the drawing
    hi = int(trace["blocks.0.mlp.hook_pre"].argmax())
    open_view(page, f"{live_server}/?model={NAME}&step=17.3")
    expect(page.get_by_role("tooltip")).to_have_attribute("data-tensor", "blocks.0.mlp.hook_post")
    expect(page.locator("#digitpad")).to_have_attribute("data-unit", f"blocks.0.mlp.W_in:{hi}")
    expect(page.locator("#digitpad .dp-unit")).to_contain_text(f"unit {hi}'s weight on each pixel")
    expect(page.locator("#walk-text")).to_contain_text(f"Beside your drawing, unit {hi}'s picture")
    page.screenshot(path=screenshots / "learning-path-digits-step3.png")

    # a 1 drawn on the pad: the same step, told with the new drawing's numbers
    open_view(page, f"{live_server}/?model={NAME}&step=17.1")
    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("() => (new URLSearchParams(location.search).get('input') || '').split(' ').every(v => v === '0')")
    pixels = draw(page, [[(4.3, 0.8), (4.2, 4.0), (4.0, 7.2)]])
    one = model.run(pixels)
    page.wait_for_function("window.__llmviz.walk().at !== null && window.__llmviz.walk().settled")
    assert one.predicted == ["1"] and page.evaluate("window.__llmviz.walk().at") == [17, 1]
    inked = sum(float(v) > 0 for v in pixels.split())
    expect(page.locator("#walk-text")).to_contain_text(f"This drawing inks {inked} of them.")
    expect(page.locator("#walk-text")).to_contain_text(
        f"the model says 1, with probability {percent(float(one.next_probs[1]))}.")
    assert errors == []
