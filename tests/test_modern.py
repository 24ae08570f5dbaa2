"""Modern decoders (Llama, Mistral, Qwen2): tiny random transformers models of each type, saved offline, against
llmviz's graph: every hidden state, attention pattern and the logits within 1e-4; odd shapes; refusals."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import llmviz  # noqa: E402
from hf_models import random_net  # noqa: E402
from llmviz.core.errors import BadModelFile  # noqa: E402
from llmviz.core.model import KVCache  # noqa: E402

BASE = dict(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=2, max_position_embeddings=64,
            attn_implementation="eager")
CASES = {
    "llama-gqa3": ("LlamaConfig", "LlamaForCausalLM", dict(num_attention_heads=6, num_key_value_heads=2)),
    "llama3-rope": ("LlamaConfig", "LlamaForCausalLM", dict(num_attention_heads=4, num_key_value_heads=4, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16}, rope_theta=500000.0)),
    "mistral-mqa": ("MistralConfig", "MistralForCausalLM", dict(num_attention_heads=4, num_key_value_heads=1,
                                                                 sliding_window=None)),
    "qwen2-headdim": ("Qwen2Config", "Qwen2ForCausalLM", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                                              tie_word_embeddings=True)),
    "gemma-geglu": ("GemmaConfig", "GemmaForCausalLM", dict(num_attention_heads=4, num_key_value_heads=1, head_dim=16)),
}


def save(folder, case, seed=0, **extra):
    cfg_cls, model_cls, kw = CASES[case]
    net = random_net(cfg_cls, model_cls, {**BASE, **kw, **extra}, seed)
    net.save_pretrained(folder)
    return net


@pytest.fixture(scope="module", params=list(CASES))
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    net = save(folder, request.param)
    return request.param, net, llmviz.load_model(str(folder))


def test_every_hidden_state_pattern_and_logit_equals_transformers(pair):
    case, net, model = pair
    ids = [int(i) for i in np.random.default_rng(1).integers(0, 97, 11)]
    with torch.no_grad():
        out = net(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    t = model.run(ids)
    n = model.config.n_layer
    for i in range(n):
        np.testing.assert_allclose(t[f"blocks.{i}.hook_resid_pre"], out.hidden_states[i][0], atol=1e-4, err_msg=case)
        np.testing.assert_allclose(t[f"blocks.{i}.attn.hook_pattern"], out.attentions[i][0], atol=1e-4, err_msg=case)
    np.testing.assert_allclose(t["ln_final.hook_out"], out.hidden_states[n][0], atol=1e-4)  # after the final norm
    np.testing.assert_allclose(t["logits"], out.logits[0], atol=1e-4)
    assert model.config.n_params == sum(p.numel() for p in net.parameters())


def test_tensors_carry_the_modern_parts(pair):
    case, net, model = pair
    g, cfg = model.graph, model.config
    assert g["blocks.0.attn.hook_k"].axes == ("pos", "kv_head", "d_head")
    assert g["blocks.0.attn.hook_rot_q"].op == "rotary" and g["blocks.0.attn.hook_rot_k"].axes[1] == "kv_head"
    assert g["blocks.0.ln1.hook_scale"].op == "rms_scale"
    assert [g[f"blocks.0.mlp.{n}"].op for n in ("hook_pre", "hook_pre_linear", "hook_act", "hook_post")] == \
        ["linear", "linear", "gelu" if case.startswith("gemma") else "silu", "mul"]
    if case.startswith("gemma"):  # √C times the embedding, and gains of 1 + w
        np.testing.assert_allclose(model.weights["blocks.0.ln1.w"], net.model.layers[0].input_layernorm.weight.detach() + 1)
        assert g["hook_embed_scaled"].attrs["factor"] == pytest.approx(48 ** 0.5)
    t = model.run("1 2 3 4 5")
    x = t["blocks.1.hook_resid_mid"]
    np.testing.assert_allclose(t["blocks.1.ln2.hook_scale"], np.sqrt((x.astype(np.float64) ** 2).mean(-1) + cfg.layer_norm_eps),
                               rtol=1e-6)
    np.testing.assert_allclose(t["blocks.0.mlp.hook_post"], t["blocks.0.mlp.hook_act"] * t["blocks.0.mlp.hook_pre_linear"],
                               rtol=1e-6)
    assert ("tied_to" in g["unembed.W_U"].attrs) == (case in ("qwen2-headdim", "gemma-geglu"))


def test_greedy_generation_on_the_kv_cache_equals_transformers(pair):
    _case, net, model = pair
    ids = [5, 17, 3, 60, 2]
    net.generation_config.eos_token_id = None  # no stop token: five tokens from both
    with torch.no_grad():
        want = net.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False)[0, len(ids):].tolist()
    assert model.generate(ids, max_new_tokens=5).tokens == want
    cache = KVCache(model)
    model.step(cache, ids[:3])
    step = model.step(cache, ids[3:])
    full = model.run(ids)
    np.testing.assert_allclose(step["blocks.1.attn.hook_rot_k"][0], full["blocks.1.attn.hook_rot_k"][3], atol=1e-5)
    np.testing.assert_allclose(step["logits"][-1], full["logits"][-1], atol=1e-4)


def test_hover_explains_rotation_rms_gate_and_shared_kv_head(pair):
    from pagexplain import explain  # the page's explanation (explain.ts), in node

    _case, _net, model = pair
    t = model.run("1 2 3 4 5 6")
    A = model.config.d_head
    e = explain(t, "blocks.0.attn.hook_rot_k", (4, 0, 1))
    assert e["formula"]["rows"][0] == ["pair", f"channels 1 and {1 + A // 2}"]
    assert "θ = position × frequency" in e["formula"]["rows"][1][0]
    assert e["formula"]["result"] == pytest.approx(float(t["blocks.0.attn.hook_rot_k"][4, 0, 1]), abs=1e-5)
    assert explain(t, "blocks.1.ln1.hook_scale", (2,))["formula"]["result"] == pytest.approx(
        float(t["blocks.1.ln1.hook_scale"][2]), rel=1e-6)
    e = explain(t, "blocks.0.mlp.hook_post", (3, 7))
    assert e["formula"]["text"].startswith("gate × up")
    heads, kv = model.config.n_head, model.config.kv_heads
    if kv != heads:
        e = explain(t, "blocks.0.attn.hook_attn_scores", (heads - 1, 5, 2))
        kvh = (heads - 1) // (heads // kv)
        assert ["key head", f"{kvh} (shared by query heads {kvh * (heads // kv)} to {heads - 1})"] in e["formula"]["rows"]
        assert e["sources"][1]["ranges"]["kv_head"] == [kvh, kvh]
        assert e["formula"]["result"] == pytest.approx(float(t["blocks.0.attn.hook_attn_scores"][heads - 1, 5, 2]), abs=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_narrow_weights_load_narrow_and_compute_in_float32(tmp_path, dtype):
    net = save(tmp_path, "llama-gqa3")
    model = llmviz.load_model(str(tmp_path), dtype=dtype)
    assert model.weights["blocks.0.attn.W_K"].dtype == (np.float16 if dtype == "float16" else np.uint16)
    ids = [3, 9, 27, 81]
    with torch.no_grad():
        want = net(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(model.run(ids)["logits"], want, atol=0.1)


@pytest.mark.parametrize("change,message", [
    ({"rope_parameters": {"rope_type": "yarn", "factor": 2.0}}, "rope_scaling type 'yarn' is not supported"),
    ({"rope_parameters": None, "rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope_scaling type 'dynamic' is not supported"),
    ({"layer_types": ["full_attention", "sliding_attention"]}, "layer_types \\['sliding_attention'\\] is not supported"),
    ({"attention_bias": True}, "attention_bias true is not supported"),
    ({"partial_rotary_factor": 0.5}, "partial_rotary_factor 0.5 is not supported"),
    ({"hidden_act": "mish"}, "hidden_act 'mish' is not supported"),
    ({"model_type": "falcon"}, "unsupported architecture 'falcon': llmviz supports GPT-2-architecture models"),
])
def test_what_llmviz_does_not_compute_is_refused_by_name(tmp_path, change, message):
    save(tmp_path, "llama-gqa3")
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.update(change)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BadModelFile, match=message.replace("(", r"\(").replace(")", r"\)")):
        llmviz.load_model(str(tmp_path))


def test_mistral_sliding_window_shorter_than_the_context_is_refused(tmp_path):
    save(tmp_path, "mistral-mqa", sliding_window=16)
    with pytest.raises(BadModelFile, match=r"sliding_window 16 .attention limited to the last 16 positions. is not supported"):
        llmviz.load_model(str(tmp_path))


def test_sentencepiece_tokens_are_shown_readably(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from llmviz.io.tokenizer import HFTokenizer

    vocab = {"<unk>": 0, "<0x0A>": 1, "<0xE2>": 2, "▁": 3, "h": 4, "i": 5, "▁hi": 6, "hi": 7}
    tok = Tokenizer(models.BPE(vocab, [("h", "i"), ("▁", "hi")], unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.save(str(tmp_path / "tokenizer.json"))
    t = HFTokenizer(tmp_path / "tokenizer.json")
    assert t.token_strs([6, 1, 2, 7, 3]) == ["␣hi", "\\x0A", "\\xE2", "hi", "␣"]


def test_the_walkthrough_adapts_to_a_llama(pair):
    from llmviz.views.walkthrough import compile_chapters

    _case, _net, model = pair
    w = compile_chapters(model, model.run("1 2 3 4 5 6"))
    chapters = {c["title"]: c for c in w["chapters"]}
    assert "RMSNorm" in chapters and "Layer norm" not in chapters
    titles = [s["title"] for c in w["chapters"] for s in c["steps"]]
    assert "Positions by rotation" in titles and "Each position picks a vector too" not in titles
    assert "Gate and up" in titles and "GELU" not in titles
    assert ("Heads that share keys" in titles) == (model.config.kv_heads < model.config.n_head)
    rms = chapters["RMSNorm"]["steps"][0]["html"]
    assert f"{float(model.run('1 2 3 4 5 6')['blocks.0.ln1.hook_scale'][0]):.4g}".replace("-", "−") in rms


def test_sharded_checkpoint_loads(tmp_path):
    net = save(tmp_path / "whole", "qwen2-headdim")
    net.save_pretrained(tmp_path / "shards", max_shard_size="40KB")
    assert len(list((tmp_path / "shards").glob("model-*.safetensors"))) > 1
    assert (tmp_path / "shards" / "model.safetensors.index.json").is_file()
    ids = [4, 8, 15, 16, 23, 42]
    with torch.no_grad():
        want = net(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(llmviz.load_model(str(tmp_path / "shards")).run(ids)["logits"], want, atol=1e-4)
