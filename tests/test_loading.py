"""llmviz's own weights files: round trip, and clear errors for bad files."""


import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from llmviz import load_model
from llmviz.core.errors import BadModelFile
from llmviz.io.loading import bundled_path, save_weights


def test_round_trip_gives_the_same_trace(nano, tmp_path):
    path = tmp_path / "copy.safetensors"
    save_weights(nano, path)
    again = load_model(str(path))
    np.testing.assert_array_equal(again.run("CBABBC")["probs"], nano.run("CBABBC")["probs"])
    assert again.tokenizer.chars == ["A", "B", "C"]


def test_bundled_weights_are_small_and_carry_a_model_card():
    path = bundled_path("nano-gpt")
    assert path.stat().st_size < 1_000_000
    card = path.with_name(path.name + ".md").read_text()  # nano-gpt.safetensors.md, as `llmviz train` names it
    assert "100.00% of all 729" in card and "sort" in card


def _rewrite(tmp_path, change):
    src = bundled_path("nano-gpt")
    from safetensors import safe_open
    with safe_open(str(src), "numpy") as f:
        meta = f.metadata()
    tensors = load_file(str(src))
    change(tensors)
    out = tmp_path / "bad.safetensors"
    save_file(tensors, str(out), metadata=meta)
    return out


def test_missing_tensor_is_named(tmp_path):
    path = _rewrite(tmp_path, lambda t: t.pop("blocks.1.mlp.W_in"))
    with pytest.raises(BadModelFile, match=r"bad.safetensors: tensor 'blocks.1.mlp.W_in' is missing"):
        load_model(str(path))


def test_wrong_shape_is_named(tmp_path):
    def shrink(t):
        t["blocks.0.attn.W_Q"] = t["blocks.0.attn.W_Q"][:, :10]
    path = _rewrite(tmp_path, shrink)
    with pytest.raises(BadModelFile, match=r"'blocks.0.attn.W_Q' has shape \[3, 10, 16\], expected \[3, 48, 16\]"):
        load_model(str(path))


def test_truncated_file_is_refused(tmp_path):
    data = bundled_path("nano-gpt").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadModelFile, match=r"cut.safetensors: the file is truncated: tensor '[^']+' ends at byte [0-9,]+ but the file has [0-9,]+ bytes"):
        load_model(str(path))


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(BadModelFile, match="not an llmviz weights file"):
        load_model(str(path))
