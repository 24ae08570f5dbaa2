"""Training nano-gpt (in numpy: no torch): a short run is deterministic and writes a loadable model with its card,
and `llmviz train` replaces a file only with --force."""

import numpy as np

from llmviz import load_model
from llmviz.io.files import card_path
from llmviz.io.safetensors_file import SafetensorsFile
from llmviz.training.tasks import sort_accuracy, sort_examples
from llmviz.training.train import train_nano_gpt
from test_cli import llmviz


def test_sort_examples_are_minGPTs_sort_task():
    batch = sort_examples(4, np.random.default_rng(0))
    assert len(batch) == 4
    for x, y in batch:
        assert len(x) == len(y) == 11
        assert x[6:] == sorted(x[:6])[:5]  # the output part of the input is the sorted prefix
        assert y[:5] == [-1] * 5 and y[5:] == sorted(x[:6])  # loss only on the six output predictions


def test_short_training_run_is_reproducible(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    stats = train_nano_gpt(a, steps=30, log=lambda *_: None)
    train_nano_gpt(b, steps=30, log=lambda *_: None)
    ma, mb = load_model(str(a)), load_model(str(b))
    for name in ma.graph.names("weight"):
        np.testing.assert_array_equal(ma.weights[name], mb.weights[name])
    card = card_path(a).read_text()
    assert card_path(a).name == "a.safetensors.md"
    assert "30 steps" in card and f"{stats['final_loss']:.5f}" in card
    assert SafetensorsFile(a).metadata["model_card"] == card  # the card travels with the weights too
    assert stats["final_loss"] < 1.1  # ln 3 = 1.0986 is chance
    # The accuracy it reports is the written model's, on all 729 inputs, and the card quotes it.
    assert stats["accuracy"] == sort_accuracy(ma) and 0 <= stats["accuracy"] <= 1
    assert f"sorts\n  {stats['accuracy']:.2%} of all 729" in card


def test_train_with_force_replaces_the_weights_and_the_card(tmp_path):
    out = tmp_path / "nano-gpt.safetensors"
    out.write_bytes(b"old weights")
    (tmp_path / "nano-gpt.safetensors.md").write_text("old card\n")
    r = llmviz("train", "nano-gpt", "--out", str(out), "--steps", "2", "--force", timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"wrote {out} ({out.stat().st_size} bytes) and {out}.md"
    card = (tmp_path / "nano-gpt.safetensors.md").read_text()
    assert "`llmviz train nano-gpt`, 2 steps" in card
    assert SafetensorsFile(out).metadata["model_card"] == card
    accuracy = sort_accuracy(load_model(str(out)))  # the file holds the model the card describes
    assert f"sorts\n  {accuracy:.2%} of all 729" in card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nano-gpt.safetensors", "nano-gpt.safetensors.md"]


def test_the_card_never_lands_on_a_file_of_another_name(tmp_path):
    """--out README.safetensors once wrote its card over README.md."""
    (tmp_path / "README.md").write_text("# my project\n")
    r = llmviz("train", "nano-gpt", "--out", str(tmp_path / "README.safetensors"), "--steps", "2", timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "README.md").read_text() == "# my project\n"
    assert "3-layer GPT that sorts" in (tmp_path / "README.safetensors.md").read_text()
    assert load_model(str(tmp_path / "README.safetensors")).config.n_layer == 3
