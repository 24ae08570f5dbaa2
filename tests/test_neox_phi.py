"""GPT-NeoX (Pythia) and Phi: tiny random transformers models of each, saved offline with save_pretrained and loaded
through load_model, against llmviz's graph: every hidden state, attention pattern, each layer's norms and its
attention's and MLP's outputs, and the logits within 1e-4; greedy generation on the KV cache; refusals by name."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import llmviz  # noqa: E402
from hf_models import random_net  # noqa: E402
from llmviz.core.errors import BadModelFile  # noqa: E402
from llmviz.core.model import KVCache  # noqa: E402

pytestmark = pytest.mark.slow  # built with torch, as test_modern.py's

VOCAB = 97
NEOX = ("GPTNeoXConfig", "GPTNeoXForCausalLM")
PHI = ("PhiConfig", "PhiForCausalLM")
CASES = {  # several shapes: the rotary share, the block order, the GELU, heads, widths, tying
    "neox-quarter-parallel": (*NEOX, dict(hidden_size=64, num_attention_heads=4, intermediate_size=96, num_hidden_layers=3,
                                          rotary_pct=0.25, use_parallel_residual=True)),
    "neox-quarter-sequential": (*NEOX, dict(hidden_size=48, num_attention_heads=3, intermediate_size=80, num_hidden_layers=2,
                                            rotary_pct=0.25, use_parallel_residual=False)),
    "neox-whole-parallel": (*NEOX, dict(hidden_size=32, num_attention_heads=2, intermediate_size=128, num_hidden_layers=2,
                                        rotary_pct=1.0, use_parallel_residual=True, hidden_act="gelu_new",
                                        tie_word_embeddings=True, rotary_emb_base=500.0)),
    "neox-whole-sequential": (*NEOX, dict(hidden_size=64, num_attention_heads=8, intermediate_size=64, num_hidden_layers=3,
                                          rotary_pct=1.0, use_parallel_residual=False)),
    "phi-half": (*PHI, dict(hidden_size=64, num_attention_heads=4, intermediate_size=96, num_hidden_layers=3,
                            partial_rotary_factor=0.5)),
    "phi-half-gqa": (*PHI, dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=2, intermediate_size=80,
                                num_hidden_layers=2, partial_rotary_factor=0.5)),
}


def build(case, seed=0, **extra):
    cfg_cls, model_cls, kw = CASES[case]
    return random_net(cfg_cls, model_cls, {"vocab_size": VOCAB, "max_position_embeddings": 64,
                                           "attn_implementation": "eager", **kw, **extra}, seed)


def save(folder, case, **extra):
    net = build(case, **extra)
    net.save_pretrained(folder)
    return net


@pytest.fixture(scope="module", params=list(CASES))
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    net = save(folder, request.param)
    return request.param, net, llmviz.load_model(str(folder))


def layers_and_norm(net):
    """transformers' decoder layers and their modules under TransformerLens's names (block-relative), for hooks."""
    if hasattr(net, "gpt_neox"):
        return net.gpt_neox.layers, {"ln1.hook_out": "input_layernorm", "ln2.hook_out": "post_attention_layernorm",
                                     "hook_attn_out": "attention", "hook_mlp_out": "mlp"}
    return net.model.layers, {"ln1.hook_out": "input_layernorm", "hook_attn_out": "self_attn", "hook_mlp_out": "mlp"}


def test_every_intermediate_tensor_and_logit_equals_transformers(pair):
    case, net, model = pair
    layers, names = layers_and_norm(net)
    seen, hooks = {}, []
    for i, layer in enumerate(layers):
        for ours, theirs in names.items():
            def keep(_module, _args, out, key=f"blocks.{i}.{ours}"):
                seen[key] = (out[0] if isinstance(out, tuple) else out)[0].detach().numpy()
            hooks.append(getattr(layer, theirs).register_forward_hook(keep))
    ids = [int(i) for i in np.random.default_rng(1).integers(0, VOCAB, 13)]
    with torch.no_grad():
        out = net(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    for h in hooks:
        h.remove()
    t = model.run(ids)
    n = model.config.n_layer
    assert len(seen) == n * len(names)
    for name, want in seen.items():
        np.testing.assert_allclose(t[name], want, atol=1e-4, err_msg=f"{case} {name}")
    for i in range(n):
        np.testing.assert_allclose(t[f"blocks.{i}.hook_resid_pre"], out.hidden_states[i][0], atol=1e-4, err_msg=case)
        np.testing.assert_allclose(t[f"blocks.{i}.attn.hook_pattern"], out.attentions[i][0], atol=1e-4, err_msg=case)
    np.testing.assert_allclose(t["ln_final.hook_out"], out.hidden_states[n][0], atol=1e-4)  # after the final norm
    np.testing.assert_allclose(t["logits"], out.logits[0], atol=1e-4)
    assert (t["logits"].argmax(-1) == out.logits[0].numpy().argmax(-1)).all()
    assert model.config.n_params == sum(p.numel() for p in net.parameters())


def test_the_graph_carries_each_models_parts(pair):
    case, net, model = pair
    g, cfg = model.graph, model.config
    parallel = case.startswith("phi") or net.config.use_parallel_residual
    assert cfg.arch == case.split("-")[0] and cfg.parallel == parallel
    assert ("blocks.0.hook_resid_mid" in g) != parallel
    assert len(g["blocks.0.hook_resid_post"].inputs) == (3 if parallel else 2)
    assert ("blocks.0.ln2.hook_out" in g) == case.startswith("neox")  # Phi: one norm a layer, read by both
    A = cfg.d_head
    R = {"quarter": A // 4, "whole": A, "half": A // 2}[case.split("-")[1]]
    assert cfg.d_rotary == R and g["blocks.0.attn.hook_rot_k"].attrs["rotary_dims"] == R
    t = model.run([3, 1, 4, 1, 5, 9, 2, 6])
    for c in "qk":  # the channels after the first R pass through the rotation unchanged
        np.testing.assert_array_equal(t[f"blocks.1.attn.hook_rot_{c}"][..., R:], t[f"blocks.1.attn.hook_{c}"][..., R:])
    assert ("tied_to" in g["unembed.W_U"].attrs) == (case == "neox-whole-parallel")
    assert ("unembed.b_U" in g) == case.startswith("phi")
    assert g["blocks.0.mlp.hook_post"].op == {"neox-whole-parallel": "gelu", "phi-half": "gelu",
                                               "phi-half-gqa": "gelu"}.get(case, "gelu_erf")
    assert g["blocks.0.attn.hook_k"].axes[1] == ("kv_head" if case.startswith("phi") else "head")


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
    np.testing.assert_allclose(step["blocks.1.hook_resid_post"], full["blocks.1.hook_resid_post"][3:], atol=1e-4)
    np.testing.assert_allclose(step["logits"][-1], full["logits"][-1], atol=1e-4)


def test_a_pythia_config_as_the_hub_has_it_loads(tmp_path):
    """Pythia's config.json on the hub names the rotary settings rotary_pct and rotary_emb_base, at the top."""
    net = save(tmp_path, "neox-quarter-parallel")
    cfg = json.loads((tmp_path / "config.json").read_text())
    rope = cfg.pop("rope_parameters")
    cfg.update(rotary_pct=rope["partial_rotary_factor"], rotary_emb_base=rope["rope_theta"])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    model = llmviz.load_model(str(tmp_path))
    assert (model.config.d_rotary, model.config.rope_theta) == (4, 10000.0)
    ids = [4, 8, 15, 16, 23, 42]
    with torch.no_grad():
        want = net(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(model.run(ids)["logits"], want, atol=1e-4)


@pytest.mark.parametrize("case,change,message", [
    ("neox-quarter-parallel", {"attention_bias": False}, "attention_bias false is not supported"),
    ("neox-quarter-parallel", {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}},
     "rope_scaling type 'linear' is not supported"),
    ("neox-quarter-parallel", {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.1875}},
     r"rope_parameters.partial_rotary_factor \(0.1875\) turns 3 of each head's 16 channels"),
    ("neox-quarter-parallel", {"rope_parameters": None, "rotary_pct": 0}, r"rotary_pct must be a number above 0"),
    ("neox-quarter-parallel", {"hidden_act": "mish"}, "hidden_act 'mish' is not supported"),
    ("neox-quarter-parallel", {"use_parallel_residual": "yes"}, r"use_parallel_residual must be true or false \(got 'yes'\)"),
    ("phi-half", {"qk_layernorm": True}, "qk_layernorm true is not supported"),
    ("phi-half", {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}},
     "rope_scaling type 'dynamic' is not supported"),
    ("phi-half", {"num_key_value_heads": 3}, r"num_key_value_heads \(3\) must divide the number of heads \(4\)"),
    ("phi-half", {"intermediate_size": None} , "config.json lacks 'intermediate_size'"),
])
def test_what_llmviz_does_not_compute_is_refused_by_name(tmp_path, case, change, message):
    save(tmp_path, case)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.update(change)
    if change.get("intermediate_size", 0) is None:
        del cfg["intermediate_size"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BadModelFile, match=message):
        llmviz.load_model(str(tmp_path))


def test_a_missing_or_misshapen_weight_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    save(tmp_path, "phi-half")
    weights = load_file(tmp_path / "model.safetensors")
    del weights["lm_head.bias"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BadModelFile, match=r"tensor 'lm_head\.bias' is missing"):
        llmviz.load_model(str(tmp_path))
    save(tmp_path, "neox-quarter-sequential")
    weights = load_file(tmp_path / "model.safetensors")
    weights["gpt_neox.layers.1.attention.query_key_value.weight"] = np.zeros((100, 48), np.float32)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BadModelFile, match=r"'layers.1.attention.query_key_value.weight' has shape \[100, 48\], expected \[144, 48\]"):
        llmviz.load_model(str(tmp_path))
