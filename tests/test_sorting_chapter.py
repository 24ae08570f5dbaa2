"""The walkthrough's chapter on how nano-gpt sorts (views/chapters/13-how-it-sorts.md): nano-gpt's alone, each of its
one-click interventions (@edit) reads what Model.run gives with those edits, a wrong edit is refused at compile time
with its file and line, and every accuracy it prints equals one worked out here another way."""

import itertools
import json
import re
import shutil

import numpy as np
import pytest

from conftest import random_model
from llmviz.core.sampling import percent
from llmviz.io.loading import structure_only
from llmviz.views import walkthrough
from llmviz.views.walkthrough import CHAPTERS, TEMPLATE, Context, WalkthroughError, check, compile_chapters, template
from test_walkthrough import tiny_llama

CHAPTER = CHAPTERS / "13-how-it-sorts.md"
INPUTS = [list(ids) for ids in itertools.product(range(3), repeat=6)]


def sorting(w: dict) -> dict:
    """The chapter, compiled (an empty one if it is left out)."""
    return next((c for c in w["chapters"] if c["title"] == "How nano-gpt sorts"), {})


def edits_of(w: dict) -> list[dict]:
    return [a for s in sorting(w)["steps"] for a in s["actions"] if a["type"] == "edit"]


def accuracy_templates() -> list[tuple[int | None, list]]:
    """Each {{sort_accuracy [LETTER] [EDITS]}} of the chapter: (LETTER or None, the edits' JSON)."""
    out = []
    for m in TEMPLATE.finditer(CHAPTER.read_text().replace("\n", " ")):
        word, _, arg = m.group(1).partition(" ")
        if word == "sort_accuracy":
            letter, _, rest = arg.partition(" ") if arg[:1].isdigit() else ("", "", arg)
            raw = json.loads(rest) if rest.strip() else []
            out.append((int(letter) if letter else None, raw if isinstance(raw, list) else [raw]))
    return out


def cut(edits: list, n_pos: int) -> list:
    """The edits as the pass of n_pos tokens has them: "last" its last position; a position range cut at its end
    (an edit left with none dropped). (Only `pos` is ever cut: the chapter's edits name no other axis that grows.)"""
    out = []
    for e in edits:
        where = dict(e.get("where", {}))
        if "pos" in where:
            lo, hi = (where["pos"], where["pos"]) if not isinstance(where["pos"], list) else where["pos"]
            lo, hi = (n_pos - 1 if x == "last" else x for x in (lo, hi))
            if lo > n_pos - 1:
                continue
            where["pos"] = [lo, min(hi, n_pos - 1)]
        out.append({**e, "where": where})
    return out


def letters_right(nano, edits: list, inputs) -> np.ndarray:
    """[input, letter]: each letter's own pass (the input and the right letters before it), the edits made to it,
    its last position's top token against the sorted input."""
    ok = np.zeros((len(inputs), 6), dtype=bool)
    for i, ids in enumerate(inputs):
        answer = sorted(ids)
        for j in range(6):
            prompt = ids + answer[:j]
            ok[i, j] = nano.run(prompt, keep=(), edits=cut(edits, len(prompt))).predicted_ids[-1] == answer[j]
    return ok


# ---- nano-gpt's alone ----

def test_the_chapter_is_nano_gpts_with_an_intervention_in_every_step(nano):
    w = compile_chapters(nano, nano.run("CBABBC"))
    c = sorting(w)
    assert c and c["number"] == 13 and c["stage"] == "How it sorts" and w["chapters"][w["chapters"].index(c) + 1]["title"] == "How it learned"
    assert 4 <= len(c["steps"]) <= 8
    for s in c["steps"]:
        kinds = [a["type"] for a in s["actions"]]
        assert "edit" in kinds and "frame" in kinds and "highlight" in kinds, s["title"]
        assert s["html"].startswith("<p>") and "{{" not in s["html"]
        assert any("attn" in t or "mlp" in t or "embed" in t for t in s["tensors"]), s["title"]
    text = re.sub("<[^>]+>", "", " ".join(s["html"] for s in c["steps"]))
    assert "not worked out" in text and "not understood" in c["steps"][-1]["title"]


@pytest.mark.parametrize("which", ["gpt2", "smollm-135m", "gpt3", "nano-gpt structure", "tiny-llama", "wide"])
def test_no_other_model_gets_it_and_each_compiles_as_before(which, tmp_path):
    model = (tiny_llama() if which == "tiny-llama" else random_model("wide", vocab_size=300) if which == "wide"
             else structure_only(which.split()[0]))
    trace = model.run([1, 2, 3, 4, 5, 6]) if model.has_weights else None
    before = tmp_path / "before"
    before.mkdir()
    for p in sorted(CHAPTERS.glob("*.md")):
        if p != CHAPTER:
            shutil.copy(p, before / p.name)
    w = compile_chapters(model, trace)
    assert not sorting(w) and 13 not in [c["number"] for c in w["chapters"]]
    old = compile_chapters(model, trace, before)
    for c in old["chapters"]:  # (without chapter 13, the chapters after it are numbered one less)
        c["number"] += c["number"] >= 13
    if trace is None:  # (a structure-only nano-gpt leaves the chapter's steps out: they all need numbers)
        assert w["note"].split(" the ")[0] == old["note"].split(" the ")[0]
        w["note"] = old["note"] = ""
    assert w == old


def test_a_chapter_header_only_holds_for_each_step(nano, tmp_path):
    (tmp_path / "01-one.md").write_text("# One\nonly: model=gpt2\n\n## A\nText.\n\n@frame logits\n\n"
                                        "## B\nText.\n@only weights=loaded\n\n@frame logits\n")
    (tmp_path / "02-two.md").write_text("# Two\nonly: model=nano-gpt|gpt2\n\n## C\nText.\n\n@frame logits\n")
    w = compile_chapters(nano, nano.run("CAB"), tmp_path)
    assert [c["title"] for c in w["chapters"]] == ["Two"]
    assert [c["title"] for c in compile_chapters(structure_only("gpt2"), None, tmp_path)["chapters"]] == ["One", "Two"]


# ---- @edit: what the page's readout shows, before and after ----

@pytest.mark.parametrize("text", ["CBABBC", "CBABBCAB", "CAB", "CBCBBCABBBC"])
def test_each_edit_reads_what_model_run_gives(nano, text):
    trace = nano.run(text)
    edits = edits_of(compile_chapters(nano, trace))
    assert len(edits) >= 6
    n = len(trace.tokens)
    for a in edits:
        assert a["pos"] == n - 1  # (the chapter reads every edit at the last position)
        assert [e.to_json() for e in nano.edits(a["edits"], n)] == a["edits"]  # in /api/intervene's form
        for key, probs in (("before", nano.run(text)["probs"][a["pos"]]),
                           ("after", nano.run(text, edits=a["edits"])["probs"][a["pos"]])):
            i = int(np.argmax(probs))
            want = {"token": "ABC"[i], "id": i, "prob": float(probs[i]), "percent": percent(float(probs[i]))}
            assert a[key] == want, (a["label"], key)
    labels = {a["label"]: a for a in edits}
    pos = labels[f"Zero the position embedding at position {n - 1}"]
    assert pos["edits"] == [{"tensor": "hook_pos_embed", "where": {"pos": [n - 1, n - 1]}, "set": "zero"}]
    assert labels["Zero every head"]["edits"] == [{"tensor": f"blocks.{L}.attn.hook_z", "where": {}, "set": "zero"}
                                                  for L in range(3)]


def test_the_position_embedding_edit_changes_the_first_letter_of_cbabbc(nano):
    a = edits_of(compile_chapters(nano, nano.run("CBABBC")))[0]
    assert (a["before"]["token"], a["before"]["percent"]) == ("A", "99.99 %")
    assert a["after"]["token"] == "B"
    step = re.sub("<[^>]+>", "", sorting(compile_chapters(nano, nano.run("CBABBC")))["steps"][0]["html"])
    assert "Here the model says A; with the position embedding of position 5 zeroed, B." in step


def test_edit_top_and_edit_percent_are_the_edits_readout(nano):
    ctx = Context(nano, nano.run("CBABBC"))
    edit = '{"tensor": "blocks.0.hook_mlp_out", "set": "zero"}'
    probs = nano.run("CBABBC", edits=[json.loads(edit)])["probs"][5]
    assert template(ctx, f"edit_top {edit}") == "ABC"[int(np.argmax(probs))] == "B"
    assert template(ctx, f"edit_percent {edit}") == percent(float(probs.max()))
    last = '{"tensor": "hook_pos_embed", "where": {"pos": "last"}, "set": "zero"}'
    assert template(ctx, f"edit_top {last}") == "B"
    assert ctx.edited(edit, "2")["pos"] == 2  # (`:: at POS` reads another position)


# ---- a wrong edit: refused at compile time, with its file and line ----

BAD = [
    ('@edit Zero :: {"tensor": "blocks.0.attn.hook_zz", "set": "zero"}',
     "unknown tensor 'blocks.0.attn.hook_zz': not in nano-gpt's graph (did you mean 'blocks.0.attn.hook_z'?)"),
    ('@edit Zero :: {"tensor": "blocks.0.hook_mlp_out", "where": {"head": 1}, "set": "zero"}',
     "blocks.0.hook_mlp_out has no axis 'head': its axes are pos (0 to 5), d_model (0 to 47)"),
    ('@edit Zero :: {"tensor": "blocks.0.attn.hook_z", "where": {"head": 3}, "set": "zero"}',
     "where head=3 is out of range for blocks.0.attn.hook_z: head goes from 0 to 2"),
    ('@edit Zero :: {"tensor": "blocks.0.attn.W_O", "set": "zero"}', "blocks.0.attn.W_O is a weight"),
    ('@edit Zero :: {tensor: 1}', "edits are JSON"),
    ('@edit :: {"tensor": "logits", "set": "zero"}', "@edit LABEL :: EDITS"),
    ('Right for {{sort_accuracy {"tensor": "blocks.9.attn.hook_z", "set": "zero"}}}.', "unknown tensor 'blocks.9.attn.hook_z'"),
    ('Right for {{sort_accuracy 7}}.', "sort_accuracy 7: the answer has letters 1 to 6"),
    ('Now {{edit_top {"tensor": "logits", "set": "twice"}}}.', "set must be"),
]


@pytest.mark.parametrize(("line", "message"), BAD)
def test_a_wrong_edit_fails_with_its_file_and_line(nano, tmp_path, line, message):
    (tmp_path / "01-bad.md").write_text(f"# Bad\nonly: model=nano-gpt\n\n## A step\nSome text.\n{line}\n\n@frame logits\n")
    with pytest.raises(WalkthroughError) as e:
        compile_chapters(nano, nano.run("CBABBC"), tmp_path)
    assert str(e.value).startswith("01-bad.md:6: ") and message in str(e.value), str(e.value)
    problems = check([nano], tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / '01-bad.md'}:6: ") and problems[0].endswith("(nano-gpt)")


def test_a_wrong_edit_fails_for_a_model_without_weights_too(tmp_path):
    (tmp_path / "01-bad.md").write_text('# Bad\n\n## A step\nText.\n\n@edit Zero :: {"tensor": "hook_z", "set": "zero"}\n')
    with pytest.raises(WalkthroughError, match=r"^01-bad.md:6: unknown tensor 'hook_z'"):
        compile_chapters(structure_only("gpt2"), None, tmp_path)


def test_sort_accuracy_is_for_a_model_that_sorts(tmp_path):
    (tmp_path / "01-x.md").write_text("# X\n\n## A step\nRight for {{sort_accuracy}}.\n\n@frame logits\n")
    model = random_model("wide", vocab_size=300)
    with pytest.raises(WalkthroughError, match=re.escape("01-x.md:4: sort_accuracy is for a model trained to sort")):
        compile_chapters(model, model.run([1, 2, 3]), tmp_path)


# ---- the numbers: each equal to another way of working it out ----

def test_the_whole_answer_is_greedy_decodings(nano):
    greedy = np.array([nano.generate(ids, 6).tokens == sorted(ids) for ids in INPUTS])  # on a KV cache
    ok = walkthrough.sort_results(nano, [])
    assert ok.shape == (729, 6) and (ok.all(axis=1) == greedy).all()
    text = re.sub("<[^>]+>", "", sorting(compile_chapters(nano, nano.run("CBABBC")))["steps"][0]["html"])
    assert f"right for {percent(float(greedy.mean()))} of the 729 inputs" in text and greedy.all()


def test_every_accuracy_printed_is_its_share_of_the_results(nano):
    """Each {{sort_accuracy}} of the chapter prints its share of sort_results, and the chapter's text holds it; the
    results of a sample of inputs equal each letter's own pass, edited here (unit speed: the whole, below, is slow)."""
    ctx = Context(nano, nano.run("CBABBC"))
    html = " ".join(s["html"] for s in sorting(compile_chapters(nano, ctx.trace))["steps"])
    rng = np.random.default_rng(0)
    sample = rng.choice(len(INPUTS), 24, replace=False)
    templates = accuracy_templates()
    assert len(templates) >= 10 and any(letter for letter, _ in templates)
    for letter, edits in templates:
        ok = walkthrough.sort_results(nano, edits)
        share = ok[:, letter - 1].mean() if letter else ok.all(axis=1).mean()
        shown = template(ctx, "sort_accuracy" + (f" {letter}" if letter else "") + (f" {json.dumps(edits)}" if edits else ""))
        assert shown == percent(float(share)) and shown in html
        assert (letters_right(nano, edits, [INPUTS[i] for i in sample]) == ok[sample]).all(), edits


@pytest.mark.slow
def test_every_accuracy_printed_equals_each_letters_own_pass_over_all_729_inputs(nano):
    html = " ".join(s["html"] for s in sorting(compile_chapters(nano, nano.run("CBABBC")))["steps"])
    done: dict[str, np.ndarray] = {}
    for letter, edits in accuracy_templates():
        key = json.dumps(edits)
        if key not in done:
            done[key] = letters_right(nano, edits, INPUTS)
        ok = done[key]
        assert percent(float(ok[:, letter - 1].mean() if letter else ok.all(axis=1).mean())) in html, (letter, edits)
