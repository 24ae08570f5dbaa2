"""The activation-patching sweep (views/patching.py): every cell equals the intervention it stands for
(`Model.run(corrupted, edits=[patch from clean])`) on nano-gpt and tiny random models of every family; nano-gpt's
sweep on a real pair says where the answer is decided; the suggested corruption; POST /api/patching."""

import numpy as np
import pytest

from conftest import local_client
from llmviz.core.errors import LlmvizError
from llmviz.serve.routes import analysis
from llmviz.serve.server import create_app
from llmviz.views.patching import patching, suggest
from test_attribution import FAMILIES, tiny

CLEAN, CORRUPTED = "CBABBCABB", "CBACBCABB"  # written so far: ABB of the sorted ABBBCC, then B; of ABBCCC, then C


def edited(model, corrupted, clean_ids, tensor, where, position, token) -> float:
    t = model.run(corrupted, edits=[{"tensor": tensor, "where": where, "set": {"from_tokens": clean_ids}}])
    return float(t["probs"][position, token])


def check_cells(model, clean, corrupted, position=None, token=None, every=1):
    s = patching(model, clean, corrupted, position, token)
    ids = model.encode(clean)
    p, t = s["position"], s["token"]
    assert s["clean_prob"] == pytest.approx(float(model.run(clean)["probs"][p, t]), abs=1e-7)
    assert s["corrupted_prob"] == pytest.approx(float(model.run(corrupted)["probs"][p, t]), abs=1e-7)
    cells = [(i, q) for i in range(len(s["resid"]["tensors"])) for q in range(len(ids))]
    for i, q in cells[::every]:
        got = s["resid"]["probs"][i][q]
        assert got == pytest.approx(edited(model, corrupted, ids, s["resid"]["tensors"][i], {"pos": q}, p, t), abs=1e-6), (i, q)
    heads = [(L, h) for L in range(model.config.n_layer) for h in range(model.config.n_head)]
    for L, h in heads[::every]:
        got = s["heads"]["probs"][L][h]
        assert got == pytest.approx(edited(model, corrupted, ids, s["heads"]["tensors"][L], {"head": h}, p, t), abs=1e-6), (L, h)
    return s


def test_every_nano_gpt_cell_is_its_intervention(nano):
    s = check_cells(nano, CLEAN, CORRUPTED)
    assert (s["position"], s["token_str"]) == (8, "B")
    assert s["resid"]["tensors"] == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.2.hook_resid_pre",
                                     "blocks.2.hook_resid_post"]
    assert s["heads"]["tensors"] == [f"blocks.{i}.attn.hook_z" for i in range(3)]
    check_cells(nano, CLEAN, CORRUPTED, position=5, token=2)  # an earlier target: later positions change nothing


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_cell_is_its_intervention(family):
    model = tiny(FAMILIES[family])
    rng = np.random.default_rng(2)
    clean = [int(i) for i in rng.integers(0, model.config.vocab_size, 7)]
    corrupted = list(clean)
    corrupted[2] = (clean[2] + 1) % model.config.vocab_size
    check_cells(model, clean, corrupted, every=2)


def test_nano_gpt_sweep_finds_where_the_answer_is_decided(nano):
    s = patching(nano, CLEAN, CORRUPTED)
    assert s["clean_prob"] > 0.99 and s["corrupted_prob"] < 0.01
    rec = np.array(s["resid"]["recovered"])
    assert rec[-1, 8] == pytest.approx(1.0, abs=1e-6)  # the last position's final residual: the clean answer whole
    assert rec[0, 3] == pytest.approx(1.0, abs=1e-6)  # the one token that differs, at the embeddings: the clean input
    np.testing.assert_array_equal(np.delete(rec[0], 3), 0.0)  # the same tokens elsewhere: nothing to patch
    np.testing.assert_array_equal(rec[-1, :8], 0.0)  # the final residual of another position reaches no target
    assert s["corrupted_text"] == CORRUPTED and s["corrupted_strs"][3] == "C" and s["token_strs"][3] == "B"


def test_positions_after_the_target_are_the_corrupted_probability(nano):
    s = patching(nano, CLEAN, CORRUPTED, position=4)
    assert all(row[q] == s["corrupted_prob"] for row in s["resid"]["probs"] for q in range(5, 9))
    assert len(s["tokens"]) == len(s["resid"]["probs"][0]) == 9


def test_equal_baselines_recover_nothing_measurable(nano):
    s = patching(nano, CLEAN, CLEAN)
    assert s["clean_prob"] == s["corrupted_prob"]
    assert all(v is None for row in s["resid"]["recovered"] + s["heads"]["recovered"] for v in row)


@pytest.mark.parametrize("clean,corrupted,kw,message", [
    ("CBABBC", "CBA", {}, "the clean input has 6 tokens and the corrupted one 3"),
    ("CBABBC", "CBABBA", {"position": 6}, "position 6 is out of range: the input has 6 tokens (positions 0 to 5)"),
    ("CBABBC", "CBABBA", {"token": 3}, "token 3 is out of range: nano-gpt has token ids 0 to 2"),
    ("CBABBC", "CBABBD", {}, "unknown token 'D'"),
])
def test_bad_pairs_are_refused(nano, clean, corrupted, kw, message):
    with pytest.raises(LlmvizError) as e:
        patching(nano, clean, corrupted, **kw)
    assert message in str(e.value)


def test_the_suggestion_changes_one_token_and_lowers_the_answer(nano):
    ids = nano.encode(CLEAN)
    got = suggest(nano, CLEAN)
    assert len(got) == len(ids) and sum(a != b for a, b in zip(got, ids)) == 1
    t = int(np.argmax(nano.run(CLEAN).next_probs))
    low = nano.run(got).next_probs[t]
    for q in range(len(ids)):  # the lowest of every one-token change
        for v in range(3):
            if v != ids[q]:
                assert low <= nano.run(ids[:q] + [v] + ids[q + 1:]).next_probs[t]
    assert suggest(nano, CLEAN, position=3)[4:] == ids[4:]  # a change after the target would change nothing


@pytest.fixture(scope="module")
def client(nano):
    return local_client(create_app([nano]))


def test_the_endpoint_answers_the_sweep(client, nano):
    r = client.post("/api/patching", json={"model": "nano-gpt", "clean": CLEAN, "corrupted": CORRUPTED})
    assert r.status_code == 200, r.text
    assert r.json() == patching(nano, CLEAN, CORRUPTED)
    ids = nano.encode(CLEAN)
    r = client.post("/api/patching", json={"clean": ids, "corrupted": nano.encode(CORRUPTED), "position": 5, "token": 1})
    assert r.json() == patching(nano, CLEAN, CORRUPTED, 5, 1)
    r = client.post("/api/patching", json={"clean": CLEAN})  # no corrupted input: the suggested one
    assert r.status_code == 200 and r.json()["corrupted_tokens"] == suggest(nano, CLEAN)


@pytest.mark.parametrize("body,status,message", [
    ({"clean": "CBABBC", "corrupted": "CBAB"}, 422, "the clean input has 6 tokens and the corrupted one 4"),
    ({"clean": "CBABBC", "corrupted": "CBABBA", "position": 9}, 422, "position 9 is out of range"),
    ({"clean": "CBABBC", "corrupted": "CBABBA", "token": -1}, 422, "token -1 is out of range"),
    ({"clean": "CBABBC", "corrupted": [0, 1, 2, 0, 1, 7]}, 422, "token id 7 is out of range"),
    ({"clean": 3}, 422, "clean"),
    ({"model": "gpt2", "clean": [1, 2], "corrupted": [2, 1]}, 409, "gpt2 is structure only"),
])
def test_the_endpoint_refuses_with_a_detail(client, body, status, message):
    r = client.post("/api/patching", json={"model": "nano-gpt", **body})
    assert r.status_code == status and message in r.json()["detail"], r.text


def test_the_endpoint_refuses_a_sweep_over_its_limit(client, monkeypatch):
    monkeypatch.setattr(analysis, "MAX_SWEEP", 10**6)
    r = client.post("/api/patching", json={"clean": CLEAN, "corrupted": CORRUPTED})
    assert r.status_code == 413 and "a patching sweep of 9 tokens of nano-gpt costs about" in r.json()["detail"], r.text
    assert "give fewer tokens, or an earlier position" in r.json()["detail"]
