"""The walkthrough: chapters compiled for a model and input, their numbers equal to the trace, the check."""

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import local_client
from llmviz.core.config import PRESETS
from llmviz.core.ops import fmt
from llmviz.core.sampling import percent
from llmviz.io.loading import structure_only
from llmviz.serve.cli import main
from llmviz.serve.server import create_app
from llmviz.views.walkthrough import CHAPTERS, TEMPLATE, Context, chapters, check, compile_chapters, template
from pagexplain import explain

BAD = Path(__file__).parent / "fixtures" / "bad-chapters"


def test_at_least_twelve_chapters_every_step_animated(nano):
    w = compile_chapters(nano, nano.run("CBABBC"))
    assert len(w["chapters"]) >= 12
    titles = [c["title"] for c in w["chapters"]]
    assert titles[:3] == ["Overview", "Tokens and vocabulary", "Embedding"] and titles[-4:] == ["Scale", "How nano-gpt sorts", "How it learned", "Precision"]
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
            if any(c.startswith("model=") and c != "model=nano-gpt" for _, c in s.only):  # another model's chapter
                continue
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
    softmax = w["chapters"][9]["steps"][2]["html"]  # 10.3, after the learner's guess (chapter 1 does not tell it)
    p = float(trace.next_probs[trace.predicted_ids[-1]])
    assert f"most probable next token is <strong>{trace.predicted[-1]}</strong>, at {percent(p)}" in softmax
    assert trace.predicted[-1] not in re.sub("<[^>]+>", "", w["chapters"][0]["steps"][1]["html"]).replace(text, "")
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
    dot = acts["dot"]  # a cell the page explains (explain.ts); the step is about what its op reads too
    assert dot["index"] == [r[0] for r in dot["cell"]["ranges"].values()]
    assert "explain" not in dot
    e = explain(trace, dot["cell"]["tensor"], dot["index"])
    assert e["value"] == float(trace[dot["cell"]["tensor"]][tuple(dot["index"])])
    step = next(s for c in w["chapters"] for s in c["steps"] if dot in s["actions"])
    assert {r["tensor"] for r in e["sources"]} <= set(step["tensors"])  # the tensors the step is about
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
    n = len(list(CHAPTERS.glob("*.md")))  # (the learning path's models each have their own)
    assert r.exit_code == 0 and f"{n} chapters" in r.output and "smollm-135m" in r.output and "attention-toy" in r.output


def test_check_catches_a_misspelled_tensor(nano):
    problems = check([nano, structure_only("gpt2")], BAD)
    assert problems[0] == (f"{BAD / '01-misspelled.md'}:5: unknown tensor 'blocks.0.attn.hook_atn_scores' "
                           "(did you mean blocks.0.attn.hook_attn_scores?) (nano-gpt, gpt2)")
    assert any(":8: index 7 is outside blocks.0.attn.hook_pattern's axis head (0 to 2)" in p for p in problems)
    assert any(":11: unknown template {{colour blue}}" in p for p in problems)
    assert any(":14: unknown action @zoom" in p for p in problems)
    assert any(":17: @only colour=red: give KEY=VALUE with KEY one of norm, positions, rotary, mlp, kv, block, tokens, weights" in p for p in problems)
    r = CliRunner().invoke(main, ["walkthrough", "check", str(BAD)])
    assert r.exit_code == 1
    assert r.output.splitlines()[0].startswith(f"{BAD / '01-misspelled.md'}:5: unknown tensor")


def test_chapters_are_the_package_files():
    assert sorted(p.name for p in CHAPTERS.glob("*.md"))[0] == "01-overview.md"


# ---- Issue #20: the walkthrough as a learner meets it ----

def tiny_llama(qkv_bias=False, seed=0):
    """A Llama-shaped model with 4 query heads and 2 key/value heads, random weights, no torch (text is token ids)."""
    from llmviz.core.config import ModelConfig
    from llmviz.core.graph import Graph
    from llmviz.core.model import Model

    cfg = ModelConfig("tiny-llama", n_layer=2, n_head=4, n_kv_head=2, n_embd=32, vocab_size=50, n_ctx=32, arch="llama",
                      norm="rms", mlp="gated", activation="silu", bias=False, rope_theta=10000.0, n_inner=64,
                      tied_unembed=False, qkv_bias=qkv_bias)
    graph, rng = Graph(cfg), np.random.default_rng(seed)
    weights = {n: rng.normal(0, 0.1, graph[n].shape(graph.sizes(0))).astype(np.float32) for n in graph.names("weight")}
    return Model(cfg, weights, None, source="tiny-llama")


def steps_of(w) -> dict[str, list[dict]]:
    """Each step title -> the compiled steps of that title, with their chapter number."""
    out: dict[str, list[dict]] = {}
    for c in w["chapters"]:
        for i, s in enumerate(c["steps"], 1):
            out.setdefault(s["title"], []).append({**s, "at": f"{c['number']}.{i}", "text": re.sub("<[^>]+>", "", s["html"])})
    return out


def test_scale_quotes_each_models_own_sizes(nano):
    w = compile_chapters(nano, nano.run("CBABBC"))
    text = steps_of(w)["Where the parameters live"][0]["text"]
    assert ("In a large model most are in the MLPs' matrices (GPT-2 small's are 768 × 3072, GPT-3's "
            "12288 × 49152)") in text
    assert "nano-gpt's MLP matrices are 48 × 192." in text and "MLPs' 48 × 192" not in text
    ctx = Context(nano, None)
    assert template(ctx, "d_mlp gpt2") == "3072" and template(ctx, "n_embd gpt3") == "12288"
    assert template(ctx, "params gpt2") == f"{PRESETS['gpt2'].n_params:,}" and template(ctx, "d_mlp") == "192"
    with pytest.raises(ValueError, match="d_mlp of an unknown model 'gpt5'"):
        template(ctx, "d_mlp gpt5")


def test_kv_cache_counts_key_value_heads():
    llama = tiny_llama()
    steps = steps_of(compile_chapters(llama, llama.run("1 2 3 4 5 6")))
    assert llama.config.kv_cache_bytes(1) == 256
    cache = steps["One step on the KV cache"][0]
    assert cache["at"].startswith("11.")
    assert ("The cache's memory: 2 (keys and values) × 2 layers × 2 key/value heads × 8 numbers × 4 bytes = 256 bytes "
            "per position") in cache["text"]
    shared = steps["A cache of shared heads"][0]["text"]
    assert "it counts key/value heads: 2, not the 4 query heads" in shared and "(chapter 5)" in shared
    assert "each key/value head serves 2 query heads, so the cache is 2 times smaller" in shared
    gqa = steps["Heads that share keys"][0]
    assert gqa["at"] == "5.2" and "each key/value head serves 2 query heads (grouped-query attention)" in gqa["text"]
    assert "4 / 2" not in gqa["text"] and "(the KV cache, in chapter 11) take 2 times less memory" in gqa["text"]
    gpt2 = steps_of(compile_chapters(structure_only("gpt2")))  # one key/value head per query head: no shared-heads step
    assert "× 12 key/value heads × 64 numbers × 4 bytes = 73,728 bytes per position" in gpt2["The KV cache"][0]["text"]
    assert "A cache of shared heads" not in gpt2 and PRESETS["gpt2"].kv_cache_bytes(1) == 73_728


def test_guesses_come_before_their_answers(nano):
    trace = nano.run("CBABBC")
    w = compile_chapters(nano, trace)
    attention = next(c for c in w["chapters"] if c["title"] == "Self-attention")
    kinds = [[a["type"] for a in s["actions"]] for s in attention["steps"]]
    guess = next(i for i, k in enumerate(kinds) if "guess" in k)
    softmax = next(i for i, k in enumerate(kinds) if "softmax" in k)
    assert (guess, softmax) == (3, 4)  # 5.4 the guess, 5.5 its softmax
    before = "".join(s["html"] for s in attention["steps"][:guess + 1])
    row = trace["blocks.0.attn.hook_pattern"][0, 5]
    assert not any(x in before for x in (percent(float(p)) for p in row)) and not any(fmt(float(p)) in before for p in row)
    assert "Before the softmax turns these scores into weights" in attention["steps"][guess]["html"]
    out = next(c for c in w["chapters"] if c["title"] == "Output")
    step = out["steps"][1]  # 10.2: guess the next token
    p = float(trace.next_probs[trace.predicted_ids[-1]])
    assert [a["type"] for a in step["actions"]] == ["frame", "guess"]
    assert step["html"] == "<p>After <strong>CBABBC</strong>, which token will the model put next? Pick one, then see.</p>"
    assert percent(p) not in step["html"] and "→" not in step["html"] and "next" not in step["title"]
    assert "travel" not in str(step["actions"])  # the predicted token does not fly to the input before the pick


def test_gain_and_bias_shows_the_gain_and_bias_code(nano):
    steps = steps_of(compile_chapters(nano, nano.run("CBABBC")))
    gain = steps["Gain and bias"][0]
    code = next(a for a in gain["actions"] if a["type"] == "code")
    assert code["op"] == "ln_affine" and "normalized * w" in code["source"] and "+= b" in code["source"]
    assert "γ · x̂ + β" in gain["text"]
    assert next(a for a in steps["Divide by σ"][0]["actions"] if a["type"] == "code")["op"] == "ln_normalize"
    llama = tiny_llama()
    steps = steps_of(compile_chapters(llama, llama.run("1 2 3 4 5 6")))
    assert next(a for a in steps["The gain"][0]["actions"] if a["type"] == "code")["op"] == "ln_affine"
    assert "γ · x / s" in steps["The gain"][0]["text"]
    assert next(a for a in steps["Scale each vector"][0]["actions"] if a["type"] == "code")["op"] == "rms_normalize"


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "nano-gpt"])
def test_structure_only_steps_read_whole(name):
    w = compile_chapters(structure_only(name))
    steps = [s for ss in steps_of(w).values() for s in ss]
    for s in steps:
        # (the scale chapter is on the scale view, where nano-gpt stands beside the others)
        assert ("nano-gpt" not in s["text"] or s["at"].startswith("12.")) and "every one of them is on this screen" not in s["text"], s["at"]
        # a step that a model without numbers keeps may not lean on one it lost
        assert not re.match(r"(Finally|Then|Next|Also|These|That|It|Its|The two|This (stream|step|row))\b", s["text"]), (s["at"], s["text"])
        assert "this stream" not in s["text"] and "The input has" not in s["text"], s["at"]
    first = steps[0]["text"]
    assert "Its weights are not loaded here, so this screen shows its structure only" in first
    vocab = steps_of(w)["How big is the vocabulary?"][0]["text"]
    assert vocab.startswith(f"{name} knows {PRESETS[name].vocab_size} tokens: pieces of text")
    norm = steps_of({"chapters": [w["chapters"][3]]})[w["chapters"][3]["steps"][0]["title"]][0]["text"]
    assert norm.startswith("A layer norm turns" if PRESETS[name].norm == "layer" else "RMSNorm divides")
    mlp = steps_of(w)["Project back"][0]["text"]
    assert mlp.startswith(f"The MLP works on {PRESETS[name].d_mlp} numbers per position")
    assert "the attention score of a query with a key after it" in steps_of(w)["The causal mask"][0]["text"]


def test_a_model_with_numbers_keeps_its_own_sentences(nano):
    steps = steps_of(compile_chapters(nano, nano.run("CBABBC")))
    assert "every one of them is on this screen" in steps["What this model does"][0]["text"]
    assert len(steps["What this model does"]) == 1 and len(steps["How big is the vocabulary?"]) == 1
    assert "nano-gpt knows 3 tokens: it reads one character at a time" in steps["How big is the vocabulary?"][0]["text"]


def test_probabilities_are_printed_as_the_readout_prints_them(nano):
    from llmviz.views.scene import prediction

    trace = nano.run("CBABBC")
    p = float(trace.next_probs[trace.predicted_ids[-1]])
    shown = template(Context(nano, trace), "prediction_percent")
    assert shown == percent(p) == prediction(trace)["top"][0]["percent"] == "99.99 %"
    steps = steps_of(compile_chapters(nano, trace))
    assert f"A, at {shown}" in steps["Softmax over the vocabulary"][0]["text"]
    assert "100.0%" not in str(steps)
    weight = float(trace["blocks.0.attn.hook_pattern"][0, 5, 0])
    assert f"gives {percent(weight)} of its attention" in steps["Softmax: scores become weights"][0]["text"]


# ---- Issue #20, craft and a real why: names, colours, the why at each chapter's end ----

def map_of(w) -> list[str]:
    """The walkthrough's map, as the view draws it: chapters in a row with one stage share its place."""
    stages: list[str] = []
    for c in w["chapters"]:
        if not stages or stages[-1] != c["stage"]:
            stages.append(c["stage"])
    return stages


@pytest.mark.parametrize("which", ["nano-gpt", "tiny-llama", "gpt2", "smollm-135m"])
def test_chapter_titles_and_stages_are_distinct(which, nano):
    model = nano if which == "nano-gpt" else tiny_llama() if which == "tiny-llama" else structure_only(which)
    trace = model.run("CBABBC" if which == "nano-gpt" else "1 2 3 4 5 6") if model.has_weights else None
    w = compile_chapters(model, trace)
    titles, stages = [c["title"] for c in w["chapters"]], map_of(w)
    assert len(set(titles)) == len(titles), titles
    assert len(set(stages)) == len(stages), stages  # no place on the map comes twice
    assert "Layer" not in stages and "Layer" not in titles
    norm = "RMSNorm" if model.config.norm == "rms" else "Layer norm"
    by_title = {c["title"]: c["stage"] for c in w["chapters"]}
    assert by_title[norm] == norm and by_title["The residual stream"] == "The residual stream"
    assert stages[:5] == ["Overview", "Tokens", "Embedding", norm, "Attention"]


def test_the_overview_names_the_colours_of_colors_ts(nano):
    """The colours the text names are colors.ts's: activations' and weights' pairs, each hue named by its angle."""
    import colorsys

    ts = (Path(__file__).parent.parent / "frontend" / "src" / "colors.ts").read_text()
    hexes = {kind: dict(re.findall(r'(negative|positive): "(#[0-9a-f]{6})"', body))
             for kind, body in re.findall(r"(\w+): \{([^}]*)\}", ts.split("FAMILIES")[1])}

    def hue(h: str) -> str:  # a plain word for a colour's hue (0-360°)
        r, g, b = (int(h[i:i + 2], 16) / 255 for i in (1, 3, 5))
        deg = colorsys.rgb_to_hsv(r, g, b)[0] * 360
        return next(name for top, name in ((10, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "teal"),
                                          (255, "blue"), (320, "purple"), (360, "red")) if deg < top)

    act, weight = hexes["activation"], hexes["weight"]
    w = compile_chapters(nano, nano.run("CBABBC"))
    text = steps_of(w)["How to read the view"][0]["text"]
    assert (f"for activations (the numbers computed from your input) {hue(act['positive'])} is positive and "
            f"{hue(act['negative'])} is negative") in text
    assert f"weights have their own pair, {hue(weight['positive'])} for positive and {hue(weight['negative'])} for negative" in text
    assert "blue is positive and orange is negative" in text  # colors.ts today
    assert "White is zero, and the darker a cell, the farther its number is from zero" in text


WHY = {  # chapter: the key phrase of the "why" in its last step (for every model and every model kind)
    1: "at a glance",
    2: "an id is only an index into the vocabulary",
    3: "What the embedding's numbers are: learned coordinates",
    4: "Why normalise at all",
    5: "the same situation as when it generates",
    6: "each position can gather from several places at once",
    7: "Why add rather than replace: a layer only needs to learn a change to the stream",
    8: "the MLP works on each position alone",
    9: "Why stack layers at all",
    10: "choosing one token is a separate step",
    11: "Why ",
    12: "grows only with C",
    13: "every one of its inputs can be tried",  # (nano-gpt's alone)
    14: "Training is this step repeated thousands of times",  # (a model with weights)
    19: "Why store fewer bits at all",  # (a model with weights)
}


@pytest.mark.parametrize("which", ["nano-gpt", "tiny-llama", "gpt2", "smollm-135m"])
def test_each_chapter_ends_with_its_why(which, nano):
    model = nano if which == "nano-gpt" else tiny_llama() if which == "tiny-llama" else structure_only(which)
    trace = model.run("CBABBC" if which == "nano-gpt" else "1 2 3 4 5 6") if model.has_weights else None
    w = compile_chapters(model, trace)
    assert [c["number"] for c in w["chapters"]] == [n for n in WHY if (n != 13 or which == "nano-gpt") and
                                                    (n not in (14, 19) or trace is not None)]
    for c in w["chapters"]:
        last = re.sub("<[^>]+>", "", c["steps"][-1]["html"])
        assert WHY[c["number"]] in last, (which, c["number"], c["steps"][-1]["title"])
    last = {c["number"]: re.sub("<[^>]+>", "", c["steps"][-1]["html"]) for c in w["chapters"]}
    grouped = model.config.kv_heads < model.config.n_head
    assert ("the whole cache is read again for every new token" if grouped else
            "a position's keys and values never depend on the tokens after it") in last[11]
    assert ("blue is positive" in last[1]) == (trace is not None)  # colours are for numbers on screen
    assert f"What each of its {model.config.d_mlp} units responds to is learned, and for most units not known" in last[8]
