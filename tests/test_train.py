"""Training nano-gpt: a short run is deterministic and writes a loadable model with its card."""

import numpy as np
import pytest

pytest.importorskip("torch")

from llmviz import load_model  # noqa: E402
from llmviz.train import sort_batch, train_nano_gpt  # noqa: E402


def test_sort_batch_is_minGPT_sort_task():
    import torch
    x, y = sort_batch(4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 11)
    for xi, yi in zip(x.tolist(), y.tolist()):
        assert xi[6:] == sorted(xi[:6])[:5]  # the output part of the input is the sorted prefix
        assert yi[:5] == [-1] * 5 and yi[5:] == sorted(xi[:6])  # loss only on the six output predictions


def test_short_training_run_is_reproducible(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    stats = train_nano_gpt(a, steps=30, log=lambda *_: None)
    train_nano_gpt(b, steps=30, log=lambda *_: None)
    ma, mb = load_model(str(a)), load_model(str(b))
    for name in ma.graph.names("weight"):
        np.testing.assert_array_equal(ma.weights[name], mb.weights[name])
    card = a.with_suffix(".md").read_text()
    assert "30 steps" in card and f"{stats['final_loss']:.5f}" in card
    assert stats["final_loss"] < 1.1  # ln 3 = 1.0986 is chance
