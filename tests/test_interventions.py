"""Interventions (core/edits.py) on nano-gpt, without torch: every kind of `set` against a numpy reference, edits on
tensors a trace recomputes, every refusal, POST /api/intervene and `llmviz trace --edit`."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import local_client
from llmviz.core.errors import LlmvizError, NoWeights
from llmviz.io.loading import structure_only
from llmviz.serve.server import create_app
from test_cli import llmviz

TEXT, OTHER = "CBABBC", "AACBCA"
Z = "blocks.0.attn.hook_z"


@pytest.fixture(scope="module")
def clean(nano):
    return nano.run(TEXT)


def attn_out(nano, z, layer=0):
    """hook_attn_out from hook_z ([pos, head, d_head]), in numpy."""
    w = nano.weights
    return np.einsum("phd,hdm->pm", z, w[f"blocks.{layer}.attn.W_O"]) + w[f"blocks.{layer}.attn.b_O"]


def test_zero_one_head_at_one_position(nano, clean):
    t = nano.run(TEXT, edits=[{"tensor": Z, "where": {"head": 1, "pos": 3}, "set": "zero"}])
    z = clean[Z].copy()
    z[3, 1] = 0
    np.testing.assert_array_equal(t[Z], z)
    np.testing.assert_allclose(t["blocks.0.hook_attn_out"], attn_out(nano, z), atol=1e-6)
    for upstream in ("blocks.0.attn.hook_pattern", "blocks.0.attn.hook_v", "blocks.0.hook_resid_pre"):
        np.testing.assert_array_equal(t[upstream], clean[upstream])
    # positions before the edit see no change anywhere downstream (attention is causal); position 3 does
    np.testing.assert_array_equal(t["logits"][:3], clean["logits"][:3])
    assert np.abs(t["logits"][3] - clean["logits"][3]).max() > 1e-4


def test_mean_is_the_mean_over_positions(nano, clean):
    t = nano.run(TEXT, edits=[{"tensor": Z, "where": {"head": 2}, "set": "mean"}])
    z = clean[Z].copy()
    z[:, 2] = clean[Z][:, 2].mean(0)
    np.testing.assert_allclose(t[Z], z, atol=1e-7)
    np.testing.assert_allclose(t["blocks.0.hook_attn_out"], attn_out(nano, z), atol=1e-6)


def test_mean_of_some_positions_is_still_over_all_of_them(nano, clean):
    name = "blocks.1.mlp.hook_post"
    t = nano.run(TEXT, edits=[{"tensor": name, "where": {"pos": [1, 2], "d_mlp": [0, 9]}, "set": "mean"}])
    ref = clean[name].copy()
    ref[1:3, :10] = clean[name][:, :10].mean(0)
    np.testing.assert_allclose(t[name], ref, atol=1e-7)


def test_scale_and_value_in_order(nano, clean):
    name = "blocks.0.mlp.hook_post"
    t = nano.run(TEXT, edits=[{"tensor": name, "where": {"pos": [0, 4]}, "set": {"scale": 2.5}},
                              {"tensor": name, "where": {"d_mlp": 7}, "set": {"value": -1}}])
    ref = clean[name].copy()
    ref[:5] *= np.float32(2.5)
    ref[:, 7] = -1
    np.testing.assert_array_equal(t[name], ref)
    w = nano.weights
    np.testing.assert_allclose(t["blocks.0.hook_mlp_out"], ref @ w["blocks.0.mlp.W_out"] + w["blocks.0.mlp.b_out"],
                               atol=1e-5)


@pytest.mark.parametrize("source", [{"from_text": OTHER}, {"from_tokens": [0, 0, 2, 1, 2, 0]}])
def test_patch_takes_the_source_pass_at_the_cells(nano, clean, source):
    name, p = "blocks.1.hook_resid_post", 2
    other = nano.run(OTHER)
    t = nano.run(TEXT, edits=[{"tensor": name, "where": {"pos": p}, "set": source}])
    np.testing.assert_array_equal(t[name][p], other[name][p])
    np.testing.assert_array_equal(np.delete(t[name], p, 0), np.delete(clean[name], p, 0))
    np.testing.assert_array_equal(t["blocks.1.hook_resid_mid"], clean["blocks.1.hook_resid_mid"])  # upstream
    np.testing.assert_array_equal(t["blocks.2.hook_resid_pre"][:p], clean["blocks.2.hook_resid_pre"][:p])
    assert np.abs(t["probs"][p] - clean["probs"][p]).max() > 1e-4
    assert t.edits[0].source_tokens == (0, 0, 2, 1, 2, 0)


def test_a_recomputed_tensor_is_edited_too(nano):
    edits = [{"tensor": Z, "where": {"head": 0}, "set": {"scale": 0.5}},
             {"tensor": "blocks.1.attn.hook_pattern", "where": {"head": 1, "pos": 4}, "set": {"from_text": OTHER}}]
    whole = nano.run(TEXT, edits=edits)
    light = nano.run(TEXT, edits=edits, keep=nano.graph.checkpoints())
    for name in (Z, "blocks.0.hook_attn_out", "blocks.1.attn.hook_pattern", "blocks.1.hook_attn_out", "probs"):
        assert name not in light.kept
        np.testing.assert_array_equal(light[name], whole[name])
    np.testing.assert_array_equal(light["blocks.1.attn.hook_pattern"][1, 4], nano.run(OTHER)["blocks.1.attn.hook_pattern"][1, 4])


def test_an_edit_changes_no_weight_and_no_later_pass(nano, clean):
    w = nano.weights["pos_embed.W_pos"].copy()
    nano.run(TEXT, edits=[{"tensor": "hook_pos_embed", "set": {"value": 3}},
                          {"tensor": "blocks.1.hook_resid_pre", "set": "zero"}])  # an identity of block 0's output
    np.testing.assert_array_equal(nano.weights["pos_embed.W_pos"], w)
    np.testing.assert_array_equal(nano.run(TEXT)["probs"], clean["probs"])


def test_the_trace_says_its_edits(nano):
    e = {"tensor": Z, "where": {"head": 1, "pos": [0, 2]}, "set": "zero"}
    meta = nano.run(TEXT, edits=[e]).metadata()
    assert json.loads(meta["edits"]) == [{"tensor": Z, "where": {"head": [1, 1], "pos": [0, 2]}, "set": "zero"}]
    assert "edits" not in nano.run(TEXT).metadata()


@pytest.mark.parametrize("edit,message", [
    ({"tensor": "blocks.0.attn.hook_zz", "set": "zero"},
     "unknown tensor 'blocks.0.attn.hook_zz': not in nano-gpt's graph (did you mean 'blocks.0.attn.hook_z'?)"),
    ({"tensor": Z, "where": {"heads": 1}, "set": "zero"},
     "blocks.0.attn.hook_z has no axis 'heads': its axes are pos (0 to 5), head (0 to 2), d_head (0 to 15)"),
    ({"tensor": Z, "where": {"head": 3}, "set": "zero"},
     "where head=3 is out of range for blocks.0.attn.hook_z: head goes from 0 to 2"),
    ({"tensor": Z, "where": {"pos": [2, 6]}, "set": "zero"},
     "where pos=[2, 6] is out of range for blocks.0.attn.hook_z: pos goes from 0 to 5"),
    ({"tensor": Z, "where": {"pos": -1}, "set": "zero"},
     "where pos=-1 is out of range for blocks.0.attn.hook_z: pos goes from 0 to 5"),
    ({"tensor": Z, "where": {"pos": [3, 1]}, "set": "zero"},
     "where pos=[3, 1] of blocks.0.attn.hook_z: [start, end] needs start <= end (both inclusive)"),
    ({"tensor": Z, "where": {"pos": "all"}, "set": "zero"},
     "where pos of blocks.0.attn.hook_z must be an index or [start, end] (inclusive), not \"all\""),
    ({"tensor": Z, "set": {"from_text": "CBA"}},
     "the patch's input has 3 tokens and this input 6: activation patching takes the same cells from an input of "
     "the same length"),
    ({"tensor": Z, "set": {"from_tokens": [0, 1, 2, 0, 1, 7]}}, "token id 7 is out of range: nano-gpt has ids 0 to 2"),
    ({"tensor": Z, "set": {"from_text": "CBABBD"}}, "unknown token 'D'"),
    ({"tensor": Z, "set": "one"}, "set must be 'zero', 'mean', {\"value\": x}, {\"scale\": k}, {\"from_text\": "
                                  "\"...\"} or {\"from_tokens\": [...]}; got \"one\""),
    ({"tensor": Z, "set": {"value": "1"}}, "set {\"value\": ...} takes a finite number within float32's range, not \"1\""),
    ({"tensor": Z, "set": {"scale": 1e39}}, "takes a finite number within float32's range, not 1e+39"),
    ({"tensor": Z, "set": {"value": 1, "scale": 2}}, "set must be"),
    ({"tensor": Z}, "an edit needs 'set'"),
    ({"tensor": Z, "set": "zero", "at": {}}, "an edit has the keys tensor, where and set; \"at\" is not one of them"),
    ({"tensor": "tokens", "set": "zero"}, "tokens is the input: give other text or tokens instead"),
    ({"tensor": "blocks.0.attn.W_O", "set": "zero"},
     "blocks.0.attn.W_O is a weight: editing weights is not supported; edit an activation (such as "
     "blocks.0.hook_attn_out, which reads it)"),
    ("zero", "an edit is {\"tensor\": ..., \"where\": {...}, \"set\": ...}, not \"zero\""),
])
def test_bad_edits_are_refused_in_one_line(nano, edit, message):
    with pytest.raises(Exception) as e:
        nano.run(TEXT, edits=[edit])
    assert isinstance(e.value, LlmvizError) and e.value.status == 422
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_structure_only_model_has_nothing_to_edit():
    with pytest.raises(NoWeights, match="gpt2 is structure only"):
        structure_only("gpt2").run([1, 2], edits=[{"tensor": Z, "set": "zero"}])


@pytest.fixture(scope="module")
def client(nano):
    return local_client(create_app([nano]))


def test_intervene_answers_both_passes(client, nano, clean):
    edits = [{"tensor": Z, "where": {"head": 1, "pos": [2, 3]}, "set": "zero"},
             {"tensor": "blocks.1.hook_resid_post", "where": {"pos": 4}, "set": {"from_text": OTHER}}]
    r = client.post("/api/intervene", json={"model": "nano-gpt", "text": TEXT, "edits": edits})
    assert r.status_code == 200, r.text
    a, ref = r.json(), nano.run(TEXT, edits=edits)
    np.testing.assert_array_equal(np.array(a["probs"], np.float32), ref["probs"])
    np.testing.assert_array_equal(np.array(a["clean_probs"], np.float32), clean["probs"])
    assert a["tokens"] == [2, 1, 0, 1, 1, 2] and a["predicted"] == ref.predicted and a["clean_predicted"] == clean.predicted
    assert a["edits"] == [
        {"tensor": Z, "where": {"pos": [2, 3], "head": [1, 1], "d_head": [0, 15]}, "set": "zero", "cells": 32,
         "label": f"zero {Z} at token positions 2–3, attention head 1"},
        {"tensor": "blocks.1.hook_resid_post", "where": {"pos": [4, 4], "d_model": [0, 47]}, "set": {"from_text": OTHER},
         "cells": 48, "label": f"patch blocks.1.hook_resid_post at token position 4 from “{OTHER}”"}]
    computed = nano.graph.names("activation", "aggregate")
    assert list(a["changed"]) == computed
    for name in computed:
        with np.errstate(invalid="ignore"):
            d = np.where(ref[name] == clean[name], 0, np.abs(ref[name].astype(np.float64) - clean[name]))
        assert a["changed"][name] == pytest.approx(d.max(), abs=0), name
    assert a["changed"]["blocks.0.attn.hook_v"] == 0 and a["changed"][Z] > 0 and a["changed"]["probs"] > 0


@pytest.mark.parametrize("body,status,message", [
    ({"text": TEXT, "edits": [{"tensor": Z, "where": {"head": 9}, "set": "zero"}]}, 422, "head goes from 0 to 2"),
    ({"text": TEXT, "edits": [{"tensor": "nope", "set": "zero"}]}, 422, "unknown tensor 'nope': not in nano-gpt's graph"),
    ({"text": TEXT, "edits": [{"tensor": Z, "set": {"from_text": "CB"}}]}, 422, "has 2 tokens and this input 6"),
    ({"text": TEXT, "edits": [{"tensor": Z, "set": "one"}]}, 422, "edits.0.set"),
    ({"model": "gpt2", "tokens": [1, 2], "edits": [{"tensor": Z, "set": "zero"}]}, 409, "gpt2 is structure only"),
])
def test_intervene_refuses_with_a_detail(client, body, status, message):
    r = client.post("/api/intervene", json={"model": "nano-gpt", **body})
    assert r.status_code == status and message in r.json()["detail"], r.text


def scene_of(r):
    """An /api/scene answer: its JSON and its atlases."""
    assert r.status_code == 200, r.text
    from safetensors.numpy import load

    n = int.from_bytes(r.content[:8], "little")
    meta = json.loads(r.content[8:8 + n])["__metadata__"]
    return json.loads(meta["scene"]), load(r.content)


def test_the_scene_of_an_edited_pass_and_its_change(client, nano, clean):
    """The page's view of an edit: the edited pass's numbers, a second atlas of edited − clean packed the same way,
    each block's largest change, the edits and the clean pass's prediction."""
    from test_scene import atlas_slab

    edits = [{"tensor": Z, "where": {"head": 1}, "set": "zero"}]
    scene, atlases = scene_of(client.post("/api/scene", json={"model": "nano-gpt", "text": TEXT, "edits": edits}))
    ref = nano.run(TEXT, edits=edits)
    for name, slab in (("blocks.1.attn.hook_q", 2), ("blocks.2.hook_resid_post", 0), ("blocks.0.attn.hook_z", 1)):
        b, got = atlas_slab(scene, atlases["atlas"], name, slab)
        shown = ref[name][:, slab, :].T if ref[name].ndim == 3 else ref[name].T
        np.testing.assert_allclose(got, shown, rtol=1e-3, atol=1e-4)
        _, change = atlas_slab(scene, atlases["change"], name, slab)
        before = clean[name][:, slab, :].T if clean[name].ndim == 3 else clean[name].T
        np.testing.assert_allclose(change, shown - before, rtol=1e-3, atol=1e-4)
        assert b["change"] == pytest.approx(float(np.abs(ref[name] - clean[name]).max()), rel=1e-6)
    _, z1 = atlas_slab(scene, atlases["atlas"], Z, 1)
    assert not z1.any()  # the zeroed head
    blocks = {b["tensor"]: b for b in scene["blocks"]}
    assert blocks["blocks.0.attn.hook_v"]["change"] == 0 and blocks["embed.W_E"]["change"] == 0  # upstream, weights
    _, scores = atlas_slab(scene, atlases["change"], "blocks.1.attn.hook_attn_scores", 0)
    assert np.array_equal(np.isinf(scores), np.triu(np.ones((6, 6), bool), 1))  # masked in both: still masked
    assert scene["edits"] == [{"tensor": Z, "where": {"pos": [0, 5], "head": [1, 1], "d_head": [0, 15]}, "set": "zero",
                               "cells": 96, "label": f"zero {Z} at attention head 1"}]
    assert scene["predicted"] == ref.predicted and scene["clean_predicted"] == clean.predicted
    top = scene["prediction"]["top"][0]
    assert top["prob"] == pytest.approx(float(ref["probs"][-1].max())) and scene["prediction"]["answer"] is None
    assert scene["clean_prediction"]["top"][0]["prob"] == pytest.approx(float(clean["probs"][-1].max()))


def test_the_cells_of_an_edited_pass(client, nano):
    """A hover in an edited view reads the edited pass's numbers (/api/cells with the same edits)."""
    edits = [{"tensor": "blocks.1.hook_resid_post", "where": {"pos": 4}, "set": {"from_text": OTHER}}]
    r = client.post("/api/cells", json={"model": "nano-gpt", "text": TEXT, "edits": edits,
                                        "slices": [{"tensor": "blocks.2.attn.hook_pattern", "at": {"head": 0}}]})
    assert r.status_code == 200, r.text
    (got,) = r.json()["slices"]
    values = np.frombuffer(__import__("base64").b64decode(got["values"]), np.float32).reshape(got["shape"])
    np.testing.assert_array_equal(values, nano.run(TEXT, edits=edits)["blocks.2.attn.hook_pattern"][0])
    assert not np.array_equal(values, nano.run(TEXT)["blocks.2.attn.hook_pattern"][0])


@pytest.mark.parametrize("route,body,message", [
    ("/api/scene", {"edits": [{"tensor": Z, "where": {"head": 3}, "set": "zero"}]}, "head goes from 0 to 2"),
    ("/api/scene", {"edits": [{"tensor": Z, "set": {"from_text": "CB"}}]}, "has 2 tokens and this input 6"),
    ("/api/scene", {"past": 2, "edits": [{"tensor": Z, "set": "zero"}]}, "give 'edits' or 'past', not both"),
    ("/api/cells", {"edits": [{"tensor": "embed.W_E", "set": "zero"}], "slices": []}, "embed.W_E is a weight"),
])
def test_an_edited_view_refuses_with_a_detail(client, route, body, message):
    r = client.post(route, json={"model": "nano-gpt", "text": TEXT, **body})
    assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_intervene_is_budgeted(nano):
    from conftest import random_model
    from llmviz.serve.limits import Limits

    wide = random_model("wide", vocab_size=5000, n_ctx=512)
    c = local_client(create_app([wide], Limits(request_mb=16)))
    r = c.post("/api/intervene", json={"model": "wide", "tokens": list(range(100)),
                                       "edits": [{"tensor": "blocks.0.attn.hook_z", "set": "zero"}]})
    assert r.status_code == 413 and "an intervention on 100 tokens (two passes, 0 patched tensors" in r.json()["detail"] and "give fewer tokens" in \
        r.json()["detail"]


def test_cli_trace_saves_the_edited_pass(tmp_path, nano):
    out, e = tmp_path / "t.safetensors", {"tensor": Z, "where": {"head": 1}, "set": "zero"}
    r = llmviz("trace", TEXT, "--out", str(out), "--no-weights", "--edit", json.dumps(e),
               "--edit", json.dumps({"tensor": "blocks.2.hook_resid_post", "where": {"pos": 5}, "set": {"from_text": OTHER}}))
    assert r.returncode == 0 and "with 2 edits" in r.stdout, r.stderr
    saved, ref = load_file(str(out)), nano.run(TEXT, edits=[e, {"tensor": "blocks.2.hook_resid_post", "where": {"pos": 5},
                                                               "set": {"from_text": OTHER}}])
    for name in (Z, "blocks.0.hook_attn_out", "blocks.2.hook_resid_post", "probs"):
        np.testing.assert_array_equal(saved[name], ref[name])


@pytest.mark.parametrize("edit,message", [
    ('{"tensor": "blocks.0.attn.hook_z", "where": {"head": 5}, "set": "zero"}',
     "where head=5 is out of range for blocks.0.attn.hook_z: head goes from 0 to 2"),
    ("{tensor", "Invalid value for --edit: not JSON"),
])
def test_cli_refuses_a_bad_edit_in_one_line(tmp_path, edit, message):
    out = tmp_path / "t.safetensors"
    r = llmviz("trace", TEXT, "--out", str(out), "--edit", edit)
    assert r.returncode != 0 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()
