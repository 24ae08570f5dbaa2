"""Hugging Face GPT-2 models: loaded from a folder or the cache, faithful to transformers, refused clearly when broken."""

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from llmviz import load_model  # noqa: E402
from llmviz.core.errors import BadModelFile, ModelNotFound  # noqa: E402
from reference import hf_gpt2_folder, train_bpe  # noqa: E402

SHAPES = {
    # name: transformers GPT2Config arguments
    "tied-gelu-new": dict(n_layer=2, n_head=4, n_embd=64, n_positions=32),
    "untied-erf-gelu-40": dict(n_layer=3, n_head=5, n_embd=40, n_positions=24, tie_word_embeddings=False,
                               activation_function="gelu", n_inner=100, layer_norm_epsilon=1e-6),
    "relu-inverse-layer-scale": dict(n_layer=3, n_head=6, n_embd=48, n_positions=20, activation_function="relu",
                                     scale_attn_by_inverse_layer_idx=True),
}


@pytest.fixture(scope="module")
def bpe():
    return train_bpe()


@pytest.fixture(scope="module", params=list(SHAPES))
def hf_pair(request, tmp_path_factory, bpe):
    folder = tmp_path_factory.mktemp(request.param)
    hf = hf_gpt2_folder(folder, bpe, vocab_size=bpe.get_vocab_size(), **SHAPES[request.param])
    return hf, folder


def hf_outputs(hf, tokens):
    with torch.no_grad():
        out = hf(torch.tensor([tokens]), output_hidden_states=True, output_attentions=True)
    return out


def test_every_exposed_tensor_matches_transformers(hf_pair):
    hf, folder = hf_pair
    model = load_model(str(folder))
    cfg = model.config
    tokens = list(np.random.default_rng(1).integers(0, cfg.vocab_size, cfg.n_ctx))
    trace, out = model.run(tokens), hf_outputs(hf, tokens)
    L = cfg.n_layer
    assert len(out.hidden_states) == L + 1 and len(out.attentions) == L
    for i in range(L):
        np.testing.assert_allclose(trace[f"blocks.{i}.hook_resid_pre"], out.hidden_states[i][0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(trace[f"blocks.{i}.attn.hook_pattern"], out.attentions[i][0], atol=1e-4, rtol=0)
    if L > 1:
        np.testing.assert_allclose(trace[f"blocks.{L - 2}.hook_resid_post"], out.hidden_states[L - 1][0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(trace["ln_final.hook_out"], out.hidden_states[L][0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(trace["logits"], out.logits[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(trace["probs"], torch.softmax(out.logits[0], -1), atol=1e-6, rtol=0)


def test_config_is_read_in_full(hf_pair):
    hf, folder = hf_pair
    cfg = load_model(str(folder)).config
    assert cfg.n_params == hf.num_parameters()
    assert cfg.d_mlp == (hf.config.n_inner or 4 * hf.config.n_embd)
    assert cfg.tied_unembed == hf.config.tie_word_embeddings


def test_bpe_tokens_are_readable(hf_pair, bpe):
    _, folder = hf_pair
    model = load_model(str(folder))
    text = "the lazy fox"
    ids = model.encode(text)
    assert ids == bpe.encode(text).ids
    strs = model.token_strs(ids)
    assert "".join(strs).replace("␣", " ") == text
    assert any(s.startswith("␣") for s in strs)  # GPT-2's Ġ shown as a visible space
    assert model.token_strs(model.encode("é")) in (["é"], ["\\xc3", "\\xa9"])  # a split character shows its bytes
    assert model.decode(ids) == text


def test_prompt_longer_than_context_is_refused(hf_pair):
    _, folder = hf_pair
    model = load_model(str(folder))
    with pytest.raises(Exception, match=f"context holds at most {model.config.n_ctx}"):
        model.run("the quick brown fox jumps over the lazy dog " * 10)


@pytest.mark.parametrize("dtype,atol,ratio", [("float16", 5e-3, 0.5), ("bfloat16", 5e-2, 0.5)])
def test_narrow_weight_dtypes(hf_pair, dtype, atol, ratio):
    _, folder = hf_pair
    full, narrow = load_model(str(folder)), load_model(str(folder), dtype=dtype)
    tokens = [1, 5, 9, 20]
    np.testing.assert_allclose(narrow.run(tokens)["probs"], full.run(tokens)["probs"], atol=atol)

    def nbytes(m):
        return sum(w.nbytes for n, w in m.weights.items() if w.base is None or n != "unembed.W_U")
    assert nbytes(narrow) <= ratio * nbytes(full) + 1024


@pytest.fixture
def folder(tmp_path, bpe):
    hf_gpt2_folder(tmp_path, bpe, vocab_size=bpe.get_vocab_size(), n_layer=2, n_head=2, n_embd=32, n_positions=16)
    return tmp_path


def _rewrite_safetensors(folder, change):
    from safetensors.numpy import load_file, save_file
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_missing_tensor_is_named(folder):
    _rewrite_safetensors(folder, lambda t: t.pop("transformer.h.1.mlp.c_fc.bias"))
    with pytest.raises(BadModelFile, match=r"model.safetensors: tensor 'h.1.mlp.c_fc.bias' is missing"):
        load_model(str(folder))


def test_wrong_shape_is_named(folder):
    def change(t):
        t["transformer.h.0.attn.c_attn.weight"] = t["transformer.h.0.attn.c_attn.weight"][:, :90]
    _rewrite_safetensors(folder, change)
    with pytest.raises(BadModelFile, match=r"'h.0.attn.c_attn.weight' has shape \[32, 90\], expected \[32, 96\]"):
        load_model(str(folder))


def test_truncated_weights_are_refused(folder):
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BadModelFile, match=r"model.safetensors: the file is truncated: tensor '.+' ends at byte"):
        load_model(str(folder))


def test_garbage_weights_are_refused(folder):
    (folder / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(BadModelFile, match="not a safetensors file"):
        load_model(str(folder))


def test_other_architectures_are_refused(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(model_type="falcon", architectures=["FalconForCausalLM"])
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BadModelFile, match=r"unsupported architecture .falcon.: llmviz supports GPT-2-architecture"):
        load_model(str(folder))


def test_unknown_activation_is_refused(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["activation_function"] = "mish"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BadModelFile, match="unsupported activation 'mish': llmviz supports gelu_new"):
        load_model(str(folder))


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(BadModelFile, match=r"no config.json"):
        load_model(str(tmp_path))


def test_folder_without_tokenizer_takes_ids(folder):
    (folder / "tokenizer.json").unlink()
    model = load_model(str(folder))
    assert model.run([1, 2, 3])["logits"].shape == (3, model.config.vocab_size)
    with pytest.raises(Exception, match="has no tokenizer: give token ids separated by spaces"):
        model.run("hello")
    np.testing.assert_array_equal(model.run("1 2, 3")["logits"], model.run([1, 2, 3])["logits"])


def test_hub_id_offline_says_where_to_put_files():
    with pytest.raises(ModelNotFound, match=r"unknown model 'distilgpt2'.*put config.json, model.safetensors and "
                                            r"tokenizer.json from https://huggingface.co/distilgpt2 in a folder"):
        load_model("distilgpt2")


def test_hub_id_found_in_the_cache(folder, tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("hf-cache")
    repo = cache / "models--someone--tiny-gpt2"
    snap = repo / "snapshots" / ("0" * 40)
    shutil.copytree(folder, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    model = load_model("someone/tiny-gpt2")
    assert model.name == "someone/tiny-gpt2"
    np.testing.assert_array_equal(model.run([1, 2])["logits"], load_model(str(folder)).run([1, 2])["logits"])


def test_served_like_nano_gpt(folder, nano):
    from safetensors.numpy import load

    from conftest import local_client
    from llmviz.serve.server import create_app

    model = load_model(str(folder))
    client = local_client(create_app([model, nano, load_model(str(folder))]))
    listed = {m["name"]: m for m in client.get("/api/models").json()}
    name = folder.name
    assert list(listed)[:3] == [name, "nano-gpt", f"{name}-2"]  # several models, names kept apart
    assert listed[name]["has_weights"] and listed[name]["n_params"] == model.config.n_params
    graph = client.get(f"/api/models/{name}/graph").json()
    assert [t["name"] for t in graph["tensors"]] == model.graph.names()
    assert graph["tokenizer"] == {"type": "bpe", "vocab_size": model.config.vocab_size}
    r = client.post("/api/trace", json={"model": name, "text": "the lazy fox"})
    got, ref = load(r.content), model.run("the lazy fox")
    for t in ["blocks.1.attn.hook_pattern", "logits", "ln_final.hook_out"]:
        np.testing.assert_array_equal(got[t], ref[t])
    gen = client.post("/api/generate", json={"model": name, "text": "the", "max_new_tokens": 3}).json()
    assert gen["text"] == model.generate("the", 3).text and len(gen["tokens"]) == 3
    too_long = client.post("/api/trace", json={"model": name, "text": "the quick brown fox " * 20})
    assert too_long.status_code == 413 and "context holds at most 16" in too_long.json()["detail"]


def test_cli_generates_from_a_folder(folder):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "llmviz.serve.cli", "generate", "--model", str(folder), "-n", "4", "the lazy"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == load_model(str(folder)).generate("the lazy", 4).text + "\n"
    bad = subprocess.run([sys.executable, "-m", "llmviz.serve.cli", "generate", "--model", "no/such/dir/", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown model 'no/such/dir/': no such file or folder" in bad.stderr
