"""nanoGPT ckpt.pt and minGPT state dicts: loaded safely, computing what the torch model computes."""

import pickle

import pytest

torch = pytest.importorskip("torch")

from llmviz import LlmvizError, ModelConfig, load_model  # noqa: E402
from llmviz.core.errors import BadModelFile  # noqa: E402
from reference import random_torch_gpt, torch_record  # noqa: E402
from test_forward import assert_trace_matches  # noqa: E402


def test_nanogpt_checkpoint_without_biases(tmp_path):
    # nanoGPT: bias=False (no biases in linears and layer norms), exact GELU, tied head, compiled-model prefix.
    cfg = ModelConfig("t", n_layer=2, n_head=4, n_embd=32, vocab_size=65, n_ctx=16, bias=False,
                      activation="gelu", tied_unembed=True)
    net = random_torch_gpt(cfg, seed=3)
    chars = ["\n", " "] + [chr(c) for c in range(ord("!"), ord("!") + 63)]
    ckpt = {
        "model": {"_orig_mod." + k: v for k, v in net.state_dict().items()},
        "model_args": dict(n_layer=2, n_head=4, n_embd=32, block_size=16, bias=False, vocab_size=65, dropout=0.0),
        "iter_num": 250, "best_val_loss": torch.tensor(1.5), "config": {"dataset": "shakespeare_char"},
    }
    (tmp_path / "out").mkdir()
    torch.save(ckpt, tmp_path / "out" / "ckpt.pt")
    with open(tmp_path / "out" / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": 65, "itos": dict(enumerate(chars)), "stoi": {c: i for i, c in enumerate(chars)}}, f)

    model = load_model(str(tmp_path / "out" / "ckpt.pt"))
    assert model.name == "out" and not model.config.bias and model.config.n_params == sum(p.numel() for p in net.parameters())
    assert "blocks.0.attn.b_Q" not in model.graph and "blocks.0.ln1.b" not in model.graph
    trace = model.run("TO BE, OR\nNOT")
    assert trace.token_strs[:3] == ["T", "O", "␣"] and trace.token_strs[9] == "↵"
    assert_trace_matches(trace, torch_record(net, trace.tokens), atol=1e-5)


@pytest.mark.parametrize("shape,n_head", [((3, 48), None), ((2, 40), 5)])
def test_mingpt_state_dict(tmp_path, shape, n_head):
    n_layer, n_embd = shape
    cfg = ModelConfig("t", n_layer=n_layer, n_head=n_head or 3, n_embd=n_embd, vocab_size=3, n_ctx=11,
                      tied_unembed=False)
    net = random_torch_gpt(cfg, seed=n_embd)
    torch.save(net.state_dict(), tmp_path / "sorter.pt")
    if n_head is not None:  # not one of minGPT's named sizes: the head count must be given
        with pytest.raises(LlmvizError, match=r"does not record its number of heads .* pass n_head"):
            load_model(str(tmp_path / "sorter.pt"))
    model = load_model(str(tmp_path / "sorter.pt"), n_head=n_head)
    assert model.config.n_head == cfg.n_head and not model.config.tied_unembed
    tokens = [2, 1, 0, 1, 1, 2]
    assert_trace_matches(model.run(tokens), torch_record(net, tokens))


class Payload:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_arbitrary_pickles_are_never_run(tmp_path, capsys):
    torch.save({"model": Payload(), "model_args": {}}, tmp_path / "evil.pt")
    with pytest.raises(BadModelFile, match="never unpickles arbitrary objects"):
        load_model(str(tmp_path / "evil.pt"))
    assert "this would have run" not in capsys.readouterr().out


def test_meta_pkl_with_objects_is_refused(tmp_path):
    cfg = ModelConfig("t", n_layer=1, n_head=2, n_embd=16, vocab_size=3, n_ctx=8, tied_unembed=True)
    torch.save({"model": random_torch_gpt(cfg).state_dict(),
                "model_args": dict(n_layer=1, n_head=2, n_embd=16, block_size=8, bias=True, vocab_size=3)},
               tmp_path / "ckpt.pt")
    with open(tmp_path / "meta.pkl", "wb") as f:
        pickle.dump({"itos": Payload()}, f)
    with pytest.raises(BadModelFile, match=r"meta.pkl: not a plain nanoGPT vocabulary"):
        load_model(str(tmp_path / "ckpt.pt"))


def test_corrupt_checkpoint_is_refused(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(BadModelFile, match=r"bad.pt: cannot read it as a PyTorch checkpoint"):
        load_model(str(tmp_path / "bad.pt"))


def test_unknown_file_type_is_refused(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(BadModelFile, match="not a model file llmviz reads"):
        load_model(str(tmp_path / "model.onnx"))
