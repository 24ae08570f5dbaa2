"""GGUF files as llama.cpp's converter writes them: a llama (with GQA, rotary and Llama 3's rope scaling) and a gpt2,
in every tensor type llmviz reads, equal to transformers run on the same weights dequantized; their tokenizers from
the metadata; and every broken file refused in one line."""

import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

import llmviz  # noqa: E402
from gguf_files import gpt2_gguf, llama_gguf, write  # noqa: E402
from hf_models import random_net  # noqa: E402
from llmviz.core.errors import BadModelFile, LlmvizError  # noqa: E402
from llmviz.io.gguf_file import LLAMA3_SPLIT  # noqa: E402
from reference import train_bpe  # noqa: E402

T = gguf.GGMLQuantizationType
SENTENCE = "the lazy fox jumps, 12345 times!\n"
IDS = [3, 17, 42, 99, 5, 250, 7, 128]


@pytest.fixture(scope="module")
def bpe():
    return train_bpe()


@pytest.fixture(scope="module")
def llama3_bpe():
    """A byte-level BPE split as Llama 3's tokenizer.json splits text (its regex, then bytes)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    text = ["the quick brown fox jumps over the lazy dog", "hello world, hello attention 12345",
            "a transformer sorts the tokens", "the residual stream flows down the model"] * 20
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|begin_of_text|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


@pytest.fixture(scope="module")
def spm():
    """A Llama-2-style SentencePiece BPE (pieces with ▁ for spaces, byte fallback), laid out as transformers converts
    a Llama tokenizer.model: a space prefix and ▁ for spaces, no pre-tokenizer, the merges of training."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    trainer = Tokenizer(models.BPE())
    trainer.pre_tokenizer = pre_tokenizers.Metaspace()
    text = ["the quick brown fox jumps over the lazy dog", "hello world, hello attention 12345",
            "a transformer sorts the tokens", "the residual stream flows down the model"] * 20
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    trainer.train_from_iterator(text, trainers.BpeTrainer(vocab_size=420, special_tokens=specials))
    model = json.loads(trainer.to_str())["model"]
    tok = Tokenizer(models.BPE(model["vocab"], [tuple(m) for m in model["merges"]], unk_token="<unk>", fuse_unk=True,
                               byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    return tok


def llama(vocab: int, wide: bool = False, **extra):
    shape = (dict(hidden_size=256, intermediate_size=512, num_hidden_layers=1, num_attention_heads=4,
                  num_key_value_heads=2) if wide else
             dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2))
    config = dict(vocab_size=vocab, max_position_embeddings=32, attn_implementation="eager", **shape)
    return random_net("LlamaConfig", "LlamaForCausalLM", {**config, **extra})


def gpt2(vocab: int, **extra):
    return random_net("GPT2Config", "GPT2LMHeadModel", dict(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4,
                                                            n_positions=32, attn_implementation="eager", **extra))


def logits(net, ids=IDS):
    with torch.no_grad():
        return net(torch.tensor([ids])).logits[0].numpy()


@pytest.mark.parametrize("qtype", ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"])
def test_llama_equals_transformers_on_the_dequantized_weights(tmp_path, llama3_bpe, qtype):
    net = llama(llama3_bpe.get_vocab_size())
    path = tmp_path / f"llama-{qtype}.gguf"
    llama_gguf(path, net, T[qtype], llama3_bpe)
    model = llmviz.load_model(str(path))
    assert (model.config.arch, model.config.n_kv_head, model.config.n_head) == ("llama", 2, 4)
    np.testing.assert_allclose(model.run(IDS)["logits"], logits(net), atol=1e-4, rtol=0)


@pytest.mark.parametrize("qtype", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
def test_k_quants_equal_transformers_on_the_dequantized_weights(tmp_path, llama3_bpe, qtype):
    net = llama(llama3_bpe.get_vocab_size(), wide=True)  # K-quant blocks are 256 weights: rows of 256 and 512
    path = tmp_path / f"llama-{qtype}.gguf"
    llama_gguf(path, net, T[qtype], llama3_bpe)
    np.testing.assert_allclose(llmviz.load_model(str(path)).run(IDS)["logits"], logits(net), atol=1e-4, rtol=0)


@pytest.mark.parametrize("qtype", ["F32", "F16", "Q8_0", "Q4_0"])
def test_gpt2_equals_transformers_on_the_dequantized_weights(tmp_path, bpe, qtype):
    net = gpt2(bpe.get_vocab_size())
    path = tmp_path / f"gpt2-{qtype}.gguf"
    gpt2_gguf(path, net, T[qtype], bpe)
    model = llmviz.load_model(str(path))
    assert model.config.tied_unembed  # the converter's copy of the token embedding is the same bytes: tied again
    trace = model.run(IDS)
    np.testing.assert_allclose(trace["logits"], logits(net), atol=1e-4, rtol=0)
    with torch.no_grad():
        hidden = net(torch.tensor([IDS]), output_hidden_states=True).hidden_states
    np.testing.assert_allclose(trace["blocks.0.hook_resid_post"], hidden[1][0], atol=1e-4, rtol=0)


def test_an_output_tensor_of_its_own_is_the_unembedding(tmp_path, bpe):
    """llama.cpp computes the logits with output.weight: where it is not the token embedding's bytes (an untied
    model, or a quantizer that stored it in another type), it is llmviz's W_U."""
    net = gpt2(bpe.get_vocab_size(), tie_word_embeddings=False)
    gpt2_gguf(tmp_path / "untied.gguf", net, T.Q8_0, bpe)
    model = llmviz.load_model(str(tmp_path / "untied.gguf"))
    assert not model.config.tied_unembed
    np.testing.assert_allclose(model.run(IDS)["logits"], logits(net), atol=1e-4, rtol=0)


def test_the_rotary_permutation_is_undone(tmp_path, llama3_bpe):
    """Query and key rows come back in Hugging Face's order: llmviz's W_Q is transformers' q_proj, head by head."""
    net = llama(llama3_bpe.get_vocab_size())
    llama_gguf(tmp_path / "l.gguf", net, T.F32, llama3_bpe)
    model = llmviz.load_model(str(tmp_path / "l.gguf"))
    for c, heads in (("q", 4), ("k", 2)):
        want = net.model.layers[1].self_attn.__getattr__(f"{c}_proj").weight.detach().numpy()
        got = model.weights[f"blocks.1.attn.W_{c.upper()}"]  # [head, d_model, d_head]
        np.testing.assert_array_equal(got.transpose(0, 2, 1).reshape(heads * 16, 64), want)


def test_llama3_rope_scaling_is_read_back_from_rope_freqs(tmp_path, llama3_bpe):
    rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    net = llama(llama3_bpe.get_vocab_size(), rope_parameters=rope, max_position_embeddings=128)
    llama_gguf(tmp_path / "l3.gguf", net, T.F16, llama3_bpe)
    model = llmviz.load_model(str(tmp_path / "l3.gguf"))
    cfg = model.config
    assert (cfg.rope_type, cfg.rope_factor, cfg.rope_low_freq_factor, cfg.rope_high_freq_factor,
            cfg.rope_original_max) == ("llama3", 8.0, 1.0, 4.0, 64)
    ids = list(range(3, 131))  # the whole context: long enough for the slowest pairs to turn
    np.testing.assert_allclose(model.run(ids)["logits"], logits(net, ids), atol=1e-4, rtol=0)


def test_tied_llama_has_no_output_tensor(tmp_path, llama3_bpe):
    net = llama(llama3_bpe.get_vocab_size(), tie_word_embeddings=True)
    llama_gguf(tmp_path / "tied.gguf", net, T.Q8_0, llama3_bpe)
    model = llmviz.load_model(str(tmp_path / "tied.gguf"))
    assert model.config.tied_unembed
    np.testing.assert_allclose(model.run(IDS)["logits"], logits(net), atol=1e-4, rtol=0)


def test_tokenizers_come_from_the_metadata(tmp_path, bpe, llama3_bpe, spm):
    gpt2_gguf(tmp_path / "g.gguf", gpt2(bpe.get_vocab_size()), T.F32, bpe)
    llama_gguf(tmp_path / "l.gguf", llama(llama3_bpe.get_vocab_size()), T.F32, llama3_bpe)
    llama_gguf(tmp_path / "spm.gguf", llama(spm.get_vocab_size()), T.F32, spm, pre="sentencepiece")
    for path, tok in ((tmp_path / "g.gguf", bpe), (tmp_path / "l.gguf", llama3_bpe), (tmp_path / "spm.gguf", spm)):
        model = llmviz.load_model(str(path))
        ids = model.encode(SENTENCE)
        assert ids == tok.encode(SENTENCE, add_special_tokens=False).ids
        assert model.decode(ids) == SENTENCE
        if tok is not spm:  # (SentencePiece shows "!" and the newline, which it has no pieces for, as bytes: below)
            assert "".join(model.token_strs(ids)).replace("␣", " ").replace("↵", "\n") == SENTENCE
    spm_model = llmviz.load_model(str(tmp_path / "spm.gguf"))
    ids = spm_model.encode("the fox é")  # é is in no piece: its two bytes
    assert ids == spm.encode("the fox é", add_special_tokens=False).ids
    assert spm_model.token_strs(ids)[-2:] == ["\\xC3", "\\xA9"] and spm_model.decode(ids) == "the fox é"
    special = llmviz.load_model(str(tmp_path / "l.gguf")).encode("<|begin_of_text|>the")
    assert special == llama3_bpe.encode("<|begin_of_text|>the").ids and special[0] == 0  # one control token


# ---- Bad files: each refused in one line that names the file and the problem ----

def refused(path, match: str):
    with pytest.raises(BadModelFile, match=match) as e:
        llmviz.load_model(str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.fixture
def good(tmp_path, bpe):
    path = tmp_path / "good.gguf"
    gpt2_gguf(path, gpt2(bpe.get_vocab_size()), T.Q8_0, bpe)
    return path


@pytest.mark.parametrize("keep", [0.5, 0.9999, 0.01, 0.001])  # in the tensors' data, then in the header
def test_truncated_file(tmp_path, good, keep):
    data = good.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:int(len(data) * keep)])
    refused(cut, r"truncated")


def test_unknown_tensor_type(good):
    reader = gguf.GGUFReader(good, "r+")
    reader.tensors[0].field.parts[4][0] = 99  # the first tensor's ggml type
    reader.data.flush()
    del reader
    refused(good, r"a tensor has ggml type 99, a type the gguf package does not know; llmviz reads F32, F16, BF16")


def test_a_type_llmviz_does_not_read(tmp_path):
    def meta(w):
        w.add_block_count(0)
    path = tmp_path / "ints.gguf"
    write(path, "gpt2", {"token_embd.weight": (np.zeros((4, 8), np.int32), None)}, meta)
    refused(path, r"tensor 'token_embd.weight' is stored as I32, a type llmviz does not read")


def test_unsupported_architecture(tmp_path):
    path = tmp_path / "mamba.gguf"
    write(path, "mamba", {"token_embd.weight": (np.zeros((4, 8), np.float32), None)}, lambda w: None)
    refused(path, r"unsupported architecture 'mamba': llmviz reads GGUF files of llama and gpt2")


def test_mismatched_shapes(tmp_path, bpe):
    net = gpt2(bpe.get_vocab_size())
    path = tmp_path / "shapes.gguf"
    gpt2_gguf(path, net, T.F32, bpe)
    reader = gguf.GGUFReader(path, "r+")
    reader.fields["gpt2.feed_forward_length"].parts[-1][0] = 128  # the MLP is 256 wide
    reader.data.flush()
    del reader
    refused(path, r"tensor 'blk.0.ffn_up.weight' has shape \[256, 64\], expected \[128, 64\]")


def test_a_weight_that_is_not_a_number_is_named_as_the_file_names_it(tmp_path, bpe):
    net = gpt2(bpe.get_vocab_size())
    with torch.no_grad():
        net.transformer.h[1].mlp.c_fc.weight[3, 5] = float("nan")
    gpt2_gguf(tmp_path / "nan.gguf", net, T.F32, bpe)
    refused(tmp_path / "nan.gguf", r"tensor 'blk.1.ffn_up.weight' holds 1 values that are not finite numbers")


def test_missing_tensor(tmp_path, bpe):
    net = gpt2(bpe.get_vocab_size())
    gpt2_gguf(tmp_path / "full.gguf", net, T.F32, bpe)
    reader = gguf.GGUFReader(tmp_path / "full.gguf")
    tensors = {t.name: (np.array(t.data), None) for t in reader.tensors if t.name != "blk.1.attn_qkv.bias"}
    fields = {k: f.contents() for k, f in reader.fields.items() if k.startswith("gpt2.")}
    del reader

    def meta(w):
        for k, v in fields.items():
            (w.add_uint32 if isinstance(v, int) else w.add_float32)(k, v)
    write(tmp_path / "short.gguf", "gpt2", tensors, meta)
    refused(tmp_path / "short.gguf", r"tensor 'blk.1.attn_qkv.bias' is missing")


def test_missing_metadata(tmp_path):
    path = tmp_path / "empty.gguf"
    write(path, "llama", {}, lambda w: None)
    refused(path, r"the metadata lacks 'llama.embedding_length'")


def test_one_shard_of_a_split_model(tmp_path):
    path = tmp_path / "model-00001-of-00003.gguf"
    write(path, "llama", {}, lambda w: w.add_uint16("split.count", 3))
    refused(path, r"one shard of a model split in 3 files \(split.count\); llmviz reads a model in one file")


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "text.gguf"
    path.write_text("hello, this is not a model")
    refused(path, r"not a GGUF file")


def test_another_tokenizer_is_refused(tmp_path, bpe, good):
    reader = gguf.GGUFReader(good)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    del reader

    def meta(w):
        w.add_block_count(1)
        w.add_context_length(8)
        w.add_embedding_length(8)
        w.add_feed_forward_length(16)
        w.add_head_count(2)
        w.add_head_count_kv(2)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_tokenizer_model("rwkv")
        w.add_token_list(tokens)
    V, C = len(tokens), 8
    tensors = {"token_embd.weight": np.zeros((V, C)), "output_norm.weight": np.ones(C)}
    for name, shape in (("attn_norm", (C,)), ("ffn_norm", (C,)), ("attn_q", (C, C)), ("attn_k", (C, C)),
                        ("attn_v", (C, C)), ("attn_output", (C, C)), ("ffn_gate", (16, C)), ("ffn_up", (16, C)),
                        ("ffn_down", (C, 16))):
        tensors[f"blk.0.{name}.weight"] = np.full(shape, 0.01)
    path = tmp_path / "spm.gguf"
    write(path, "llama", {k: (v.astype(np.float32), None) for k, v in tensors.items()}, meta)
    refused(path, r"tokenizer.ggml.model 'rwkv' is not supported: llmviz reads byte-level BPE")


def test_without_the_gguf_package(good, monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(LlmvizError, match=r"^reading .gguf files needs the gguf package: pip install llmviz\[gguf\]$"):
        llmviz.load_model(str(good))


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1"])
def test_a_files_stored_blocks_are_kept_for_hover(tmp_path, llama3_bpe, qtype):
    """A block-quantized file's weights keep what the file stores, in the graph's axes (through the converter's
    permutation and the heads' reshaping): each weight is its block's d times its code (q4_0: code − 8; q4_1: plus the
    block's minimum), a block is 32 neighbours along the input of one output, and there is no float original."""
    from llmviz.views.provenance import stored_cell

    net = llama(llama3_bpe.get_vocab_size())
    path = tmp_path / f"llama-{qtype}.gguf"
    llama_gguf(path, net, T[qtype], llama3_bpe)
    model = llmviz.load_model(str(path))
    fmt = qtype.lower()
    assert model.precision == fmt and set(model.stored) >= {"embed.W_E", "blocks.0.attn.W_Q", "blocks.1.mlp.W_out"}
    for name, s in model.stored.items():
        assert s.fmt == fmt and s.original is None and s.error is None, name
        codes = s.codes.astype(np.float32)
        want = s.scales * (codes - 8 if fmt == "q4_0" else codes) + (s.mins if fmt == "q4_1" else 0)
        np.testing.assert_array_equal(want, s.values, err_msg=name)
        assert np.array_equal(s.values, model.weights[name].astype(np.float32))
    W_Q = model.stored["blocks.0.attn.W_Q"]  # [head, d_model, d_head]: blocks run along d_model (its input)
    cells = np.argwhere(W_Q.block == W_Q.block[1, 40, 3])
    assert len(cells) == 32 and (cells[:, [0, 2]] == [1, 3]).all() and sorted(cells[:, 1]) == list(range(32, 64))
    cell = stored_cell(model, "blocks.0.attn.W_Q", [1, 40, 3])
    assert cell["from_file"] and cell["original"] is None and cell["code"] == int(W_Q.codes[1, 40, 3])
    assert (cell["min"] is not None) == (fmt == "q4_1")
    assert cell["regions"] == [{"head": [1, 1], "d_model": [32, 63], "d_head": [3, 3]}]


def test_a_gguf_model_offers_no_other_precision_and_f32_tensors_keep_none(tmp_path, llama3_bpe):
    from conftest import local_client
    from llmviz.serve.server import create_app

    net = llama(llama3_bpe.get_vocab_size())
    llama_gguf(tmp_path / "q.gguf", net, T.Q4_0, llama3_bpe)
    llama_gguf(tmp_path / "f.gguf", net, T.F32, llama3_bpe)
    q, f = llmviz.load_model(str(tmp_path / "q.gguf")), llmviz.load_model(str(tmp_path / "f.gguf"))
    assert f.stored == {} and f.precision == "f32"
    info = {m["name"]: m for m in local_client(create_app([q, f])).get("/api/models").json()}
    assert info["q"]["precisions"] == [] and len(info["f"]["precisions"]) == 6
