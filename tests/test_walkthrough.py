"""The walkthrough: chapters compiled for a model and input, their numbers equal to the trace, the check."""

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import local_client

from llmviz.cli import main
from llmviz.config import PRESETS
from llmviz.loading import structure_only
from llmviz.provenance import fmt
from llmviz.server import create_app
from llmviz.walkthrough import CHAPTERS, TEMPLATE, Context, chapters, check, compile_chapters, template

BAD = Path(__file__).parent / "fixtures" / "bad-chapters"


def test_at_least_twelve_chapters_every_step_animated(nano):
    w = compile_chapters(nano, nano.run("CBABBC"))
    assert len(w["chapters"]) >= 12
    titles = [c["title"] for c in w["chapters"]]
    assert titles[:3] == ["Overview", "Tokens and vocabulary", "Embedding"] and titles[-1] == "Scale"
    for c in w["chapters"]:
        for s in c["steps"]:
            assert s["actions"], (c["title"], s["title"])  # every step shows something
            assert s["html"].startswith("<p>") and "{{" not in s["html"]


@pytest.mark.parametrize("text", ["CBABBC", "AAB", "CCCBBBAAAC"])
def test_every_templated_number_equals_the_trace(nano, text):
    trace = nano.run(text)
    ctx = Context(nano, trace)
    seen = 0
    for ch in chapters():
        for s in ch.steps:
            for _, line in s.text:
                for m in TEMPLATE.finditer(line):
                    word, _, arg = m.group(1).partition(" ")
                    if word == "value":
                        name, index = ctx.cell(arg)
                        assert template(ctx, m.group(1)) == fmt(float(trace[name][index]))
                        seen += 1
                    elif word == "token":
                        assert template(ctx, m.group(1)) == trace.token_strs[-1 if arg == "last" else int(arg)]
    assert seen >= 12
    w = compile_chapters(nano, trace)
    first = w["chapters"][0]["steps"][1]["html"]
    p = float(trace.next_probs[trace.predicted_ids[-1]])
    assert f"<strong>{trace.predicted[-1]}</strong> ({100 * p:.1f}%)" in first
    embed = w["chapters"][2]["steps"][2]["html"]
    want = [fmt(float(trace[n][0, 0])) for n in ("hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre")]
    assert f"{want[0]} + {want[1]} = {want[2]}" in embed


def test_actions_carry_the_trace(nano):
    trace = nano.run("CBABBC")
    w = compile_chapters(nano, trace)
    acts = {a["type"]: a for c in w["chapters"] for s in c["steps"] for a in s["actions"]}
    assert set(acts) >= {"frame", "highlight", "reveal", "dot", "softmax", "mask", "add", "travel", "tooltip", "code",
                         "guess"}
    sm = next(a for c in w["chapters"] for s in c["steps"] for a in s["actions"]
              if a["type"] == "softmax" and a["row"]["tensor"] == "blocks.0.attn.hook_pattern")
    np.testing.assert_allclose([e["p"] for e in sm["entries"]], trace["blocks.0.attn.hook_pattern"][0, 5], rtol=1e-6)
    np.testing.assert_allclose(sm["max"], trace["blocks.0.attn.hook_pattern_max"][0, 5], rtol=1e-6)
    np.testing.assert_allclose(sm["sum"], trace["blocks.0.attn.hook_pattern_sum_exp"][0, 5], rtol=1e-5)
    guesses = {a["row"]["tensor"]: a for c in w["chapters"] for s in c["steps"] for a in s["actions"] if a["type"] == "guess"}
    assert guesses["blocks.0.attn.hook_pattern"]["answer"] == int(np.argmax(trace["blocks.0.attn.hook_pattern"][0, 5]))
    assert guesses["probs"]["answer"] == trace.predicted_ids[-1]
    assert [c["name"] for c in guesses["probs"]["choices"]] == ["A", "B", "C"]
    dot = acts["dot"]
    assert dot["explain"]["value"] == pytest.approx(float(trace[dot["cell"]["tensor"]][
        tuple(r[0] for r in dot["cell"]["ranges"].values())]))
    assert "def attn_scores" in next(a["source"] for c in w["chapters"] for s in c["steps"] for a in s["actions"]
                                     if a["type"] == "code" and a["op"] == "attn_scores")
    assert acts["add"]["inputs"] == list(nano.graph[acts["add"]["tensor"]].inputs)


def test_terms_name_tensors_and_axes_in_colour(nano):
    w = compile_chapters(nano, nano.run("CBABBC"))
    html = "".join(s["html"] for c in w["chapters"] for s in c["steps"])
    assert 'class="term tensor" data-tensor="embed.W_E" data-kind="weight">W_E</span>' in html
    assert re.search(r'data-axis="d_model" style="--term:#[0-9a-f]{6}"', html)
    step = w["chapters"][2]["steps"][0]
    assert {"embed.W_E", "hook_embed"} <= set(step["tensors"])


def test_structure_only_model_gets_the_steps_without_numbers():
    w = compile_chapters(structure_only("gpt2"))
    assert "structure only" in w["note"] and re.search(r"the \d+ steps that need its numbers are left out", w["note"])
    steps = [s for c in w["chapters"] for s in c["steps"]]
    assert steps and all(a["type"] not in ("dot", "softmax", "tooltip", "travel", "guess")
                         for s in steps for a in s["actions"])
    assert any("768" in s["html"] for s in steps)  # the sizes are GPT-2's


def test_walkthrough_api():
    c = local_client(create_app())
    r = c.get("/api/walkthrough", params={"input": "AAB"})
    assert r.status_code == 200 and r.json()["input"] == "AAB" and len(r.json()["chapters"]) >= 12
    r = c.get("/api/walkthrough", params={"input": "XYZ"})
    assert r.status_code == 422 and "unknown token 'X'" in r.json()["detail"]
    r = c.get("/api/walkthrough", params={"model": "nope"})
    assert r.status_code == 404 and "unknown model" in r.json()["detail"]
    r = c.get("/api/walkthrough", params={"model": "gpt3"})
    assert r.status_code == 200 and "structure only" in r.json()["note"]


def test_check_passes_on_the_bundled_chapters(nano):
    assert check([nano] + [structure_only(n) for n in PRESETS if n != "nano-gpt"]) == []
    r = CliRunner().invoke(main, ["walkthrough", "check"])
    assert r.exit_code == 0 and "12 chapters" in r.output and "smollm-135m" in r.output


def test_check_catches_a_misspelled_tensor(nano):
    problems = check([nano, structure_only("gpt2")], BAD)
    assert problems[0] == (f"{BAD / '01-misspelled.md'}:5: unknown tensor 'blocks.0.attn.hook_atn_scores' "
                           "(did you mean blocks.0.attn.hook_attn_scores?) (nano-gpt, gpt2)")
    assert any(":8: index 7 is outside blocks.0.attn.hook_pattern's axis head (0 to 2)" in p for p in problems)
    assert any(":11: unknown template {{colour blue}}" in p for p in problems)
    assert any(":14: unknown action @zoom" in p for p in problems)
    assert any(":17: @only colour=red: give KEY=VALUE with KEY one of norm, positions, mlp, kv" in p for p in problems)
    r = CliRunner().invoke(main, ["walkthrough", "check", str(BAD)])
    assert r.exit_code == 1
    assert r.output.splitlines()[0].startswith(f"{BAD / '01-misspelled.md'}:5: unknown tensor")


def test_chapters_are_the_package_files():
    assert sorted(p.name for p in CHAPTERS.glob("*.md"))[0] == "01-overview.md"
