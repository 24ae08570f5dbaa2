"""Issue #20's chapters that operate the real features: the temperature slider's numbers, the generator's step
on a KV cache, the logit lens and all-heads steps, the scale view's flight; and the directives behind them."""

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from llmviz.core.config import PRESETS
from llmviz.core.model import KVCache
from llmviz.core.sampling import percent
from llmviz.io.loading import structure_only
from llmviz.views.lens import logit_lens
from llmviz.views.walkthrough import (
    TEMPERATURES,
    Context,
    WalkthroughError,
    _lens_path,
    compile_chapters,
    template,
)
from test_walkthrough import steps_of, tiny_llama


def actions(step, kind):
    return [a for a in step["actions"] if a["type"] == kind]


def test_temperature_slider_is_the_softmax_of_the_real_logits_at_each_stop(nano):
    trace = nano.run("CBABBC")
    step = steps_of(compile_chapters(nano, trace))["Temperature"][0]
    assert step["at"] == "10.4"
    [a] = actions(step, "temperature")
    logits = np.asarray(trace["logits"][-1], dtype=np.float64)
    assert a["temperatures"] == list(TEMPERATURES) and a["temperatures"][a["start"]] == 1.0 and a["rest"] is None
    for k, t in enumerate(a["temperatures"]):
        if t == 0:
            want = np.eye(3)[np.argmax(logits)]  # greedy: all on the most probable token
        else:
            z = logits / t
            want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        got = np.array([e["p"][k] for e in sorted(a["entries"], key=lambda e: e["i"])])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)
        assert [e["percent"][k] for e in a["entries"]] == [percent(e["p"][k]) for e in a["entries"]]
    # at 1 the bars are the model's own probabilities, as the readout shows them
    np.testing.assert_allclose([e["p"][a["start"]] for e in a["entries"]], trace["probs"][-1], rtol=1e-5)
    assert [e["name"] for e in a["entries"]] == ["A", "B", "C"]


def test_temperature_over_a_long_vocabulary_shows_the_rest_share():
    llama = tiny_llama()
    trace = llama.run("1 2 3 4 5 6")
    [a] = actions(steps_of(compile_chapters(llama, trace))["Temperature"][0], "temperature")
    assert len(a["entries"]) == 12 and a["rest"] is not None
    for k in range(len(TEMPERATURES)):
        assert sum(e["p"][k] for e in a["entries"]) + a["rest"]["p"][k] == pytest.approx(1.0)
        assert a["rest"]["percent"][k] == percent(a["rest"]["p"][k])
    # the shown tokens are the 12 most probable at temperature 1
    top = set(np.argsort(-trace["probs"][-1])[:12].tolist())
    assert {e["i"] for e in a["entries"]} == top


def test_generating_chapter_steps_the_generator_on_a_kv_cache(nano):
    trace = nano.run("CBABBC")
    steps = steps_of(compile_chapters(nano, trace))
    step = steps["One step on the KV cache"][0]
    pred = nano.token_strs([trace.predicted_ids[-1]])[0]
    assert step["at"] == "11.2"
    assert step["view"] == {"kind": "generated", "input": "CBABBC", "past": 6, "text": "CBABBC" + pred}
    assert actions(step, "generate") == [{"type": "generate", "token": pred}]
    # the new position's key is lit: key_pos 6 of 7 (the cache holds 0-5)
    cached, new = (a["regions"] for a in actions(step, "highlight"))
    assert {r["tensor"] for r in new} == {"blocks.0.attn.cache_k"}
    assert all(r["ranges"]["key_pos"] == [6, 6] and r["role"] == "target" for r in new)
    # the cache itself, kept in view beside it (@light): the past positions' keys, 0-5
    assert {r["tensor"] for r in cached} == {"blocks.0.attn.past_k"}
    assert all(r["ranges"]["past_pos"] == [0, 5] and r["role"] == "kept" for r in cached)
    assert f"the input is now {'CBABBC' + pred}" in step["text"] and "first 6 positions" in step["text"]
    assert "× 4 bytes = 1,152 bytes per position" in step["text"] and nano.config.kv_cache_bytes(1) == 1152
    # the step is the one the generator takes: the same keys as a cache built by hand
    cache = KVCache(nano)
    nano.step(cache, trace.tokens, keep=())
    nano.step(cache, [trace.predicted_ids[-1]])
    assert len(cache) == 7 and step["view"]["text"] == nano.decode(cache.tokens)
    assert steps["Feed it back"][0]["view"] is None  # the step before is on the input's own pass


def test_generated_step_of_a_grouped_query_model_and_of_a_structure_only_one():
    llama = tiny_llama()
    steps = steps_of(compile_chapters(llama, llama.run("1 2 3 4 5 6")))
    shared = steps["A cache of shared heads"][0]
    assert shared["view"]["kind"] == "generated" and shared["view"]["past"] == 6
    assert "The KV cache" not in steps  # its structure-only twin
    gpt2 = steps_of(compile_chapters(structure_only("gpt2")))
    assert "One step on the KV cache" not in gpt2 and gpt2["The KV cache"][0]["view"] is None
    smol = steps_of(compile_chapters(structure_only("smollm-135m")))  # grouped, no weights: the pass's structure
    assert smol["A cache of shared heads"][0]["view"] is None


def test_a_full_context_has_no_generation_step(nano):
    full = nano.run("CBABBCABCAB")  # 11 tokens: nano-gpt's whole context
    steps = steps_of(compile_chapters(nano, full))
    assert "One step on the KV cache" not in steps and "Feed it back" in steps


def test_lens_steps_quote_the_logit_lens(nano):
    trace = nano.run("CBABBC")
    steps = steps_of(compile_chapters(nano, trace))
    lens = logit_lens(trace, k=1)
    last = [layer[-1][0]["token"] for layer in lens["top"]]
    form = steps["Watch the prediction form"][0]
    assert form["at"] == "9.2" and actions(form, "open") == [{"type": "open", "tab": "lens"}]
    assert re.sub("<[^>]+>", "", _lens_path(last)) in form["text"]
    heads = steps["Every head at once"][0]
    assert heads["at"] == "9.3" and actions(heads, "open") == [{"type": "open", "tab": "attention"}]
    assert "3 layers × 3 heads" in heads["text"]
    # the busiest position: where the top token changes most often (the latest such)
    tops = [[p[0]["token"] for p in layer] for layer in lens["top"]]
    changes = [sum(a[i] != b[i] for a, b in itertools.pairwise(tops)) for i in range(6)]
    busiest = max(range(6), key=lambda i: (changes[i], i))
    ctx = Context(nano, trace)
    assert template(ctx, "lens_busiest") == str(busiest)
    assert template(ctx, "lens_path busiest") == _lens_path([t[busiest] for t in tops])
    assert "Watch the prediction form" not in steps_of(compile_chapters(structure_only("gpt2")))  # needs numbers


def test_lens_path_tells_each_run_once():
    assert _lens_path(["A", "A", "A", "A"]) == "<strong>A</strong> at every depth, from the embeddings on"
    assert _lens_path(["C", "A", "A", "B"]) == ("<strong>C</strong> (embeddings), then <strong>A</strong> (after layers "
                                                "0–1), then <strong>B</strong> (after layer 2)")
    assert _lens_path(["C", "C", "A"]) == "<strong>C</strong> (embeddings to after layer 0), then <strong>A</strong> (after layer 1)"


def test_scale_chapter_flies_nano_gpt_gpt2_gpt3_in_the_scale_view(nano):
    for w in (compile_chapters(nano, nano.run("CBABBC")), compile_chapters(structure_only("gpt2"))):
        scale = next(c for c in w["chapters"] if c["title"] == "Scale")  # (nano-gpt's last chapter is its own)
        assert all(s["view"] == {"kind": "scale"} for s in scale["steps"])
        fly = [a["name"] for a in scale["steps"][0]["actions"]]
        assert fly == ["nano-gpt", "gpt2", "gpt3"]
        assert actions(scale["steps"][1], "table") == [{"type": "table", "models": ["nano-gpt", "gpt2", "gpt3"]}]
    text = steps_of(compile_chapters(nano, nano.run("CBABBC")))["Same structure, bigger numbers"][0]["text"]
    assert f"GPT-3 ({PRESETS['gpt3'].n_params:,})" in text and f"nano-gpt ({PRESETS['nano-gpt'].n_params:,}" in text


def chapter(tmp_path: Path, body: str) -> Path:
    (tmp_path / "01-x.md").write_text("# X\n\n## Step\nSome text.\n\n" + body + "\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("body, message", [
    ("@model gpt2", "01-x.md:3: @model flies in the scale view: give the step `@view scale`"),
    ("@view scale\n@frame probs", "01-x.md:3: a `@view scale` step's actions are @model and @table"),
    ("@view scale\n@model gpt5", "01-x.md:7: @model takes one model of the scale view: one of nano-gpt"),
    ("@generate", "01-x.md:6: @generate makes the view of a `@view generated` step"),
    ("@view sideways", "01-x.md:6: @view sideways: one of generated, gradients, scale"),
    ("@open branches", "01-x.md:6: @open lens|attention"),
    ("@temperature logits[last]", "01-x.md:6: @temperature takes a row of a softmax's output"),
    ("@highlight logits[4:2]", "01-x.md:6: range 4:2 of logits's axis pos is empty"),
])
def test_new_directives_explain_their_mistakes(nano, tmp_path, body, message):
    with pytest.raises(WalkthroughError, match=re.escape(message)):
        compile_chapters(nano, nano.run("CBABBC"), folder=chapter(tmp_path, body))


def test_a_range_lights_those_positions(nano, tmp_path):
    w = compile_chapters(nano, nano.run("CBABBC"), folder=chapter(tmp_path, "@highlight logits[:3] logits[-2:]"))
    regions = w["chapters"][0]["steps"][0]["actions"][1]["regions"]
    assert [r["ranges"]["pos"] for r in regions] == [[0, 2], [4, 5]]
