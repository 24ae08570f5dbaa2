"""Every architecture is one module behind the Architecture Protocol, and declares each tensor's label with the tensor;
what GPT-NeoX and Phi brought (partial rotary, a parallel block's add of three tensors) computes what it says, lays
out, and reads right in the walkthrough. (Their numbers against transformers: test_neox_phi.py.)"""

import dataclasses
import inspect
import itertools
import json
import types

import numpy as np
import pytest

from llmviz import PRESETS, Graph, ModelConfig
from llmviz.core import arch
from llmviz.core.arch.base import Architecture
from llmviz.core.config import PARAM_PARTS
from llmviz.core.errors import BadModelFile
from llmviz.core.model import Model
from llmviz.core.ops import OPS
from llmviz.core.ops.activations import ACTIVATIONS
from llmviz.core.ops.attention import rotary
from llmviz.core.ops.embed import add
from llmviz.views.layout import build_layout
from llmviz.views.scene import build_scene
from llmviz.views.walkthrough import check, compile_chapters

ROPE = dict(rope_theta=10000.0, bias=False, norm="rms", mlp="gated", activation="silu")
CONFIGS = {
    "nano-gpt": PRESETS["nano-gpt"],
    "gpt2-nobias": ModelConfig("gpt2-nobias", 2, 2, 8, 10, 16, bias=False, tied_unembed=False, unembed_bias=True),
    "llama-gqa": ModelConfig("llama-gqa", 2, 4, 32, 50, 32, arch="llama", n_kv_head=2, n_inner=64, qkv_bias=True,
                             tied_unembed=False, **ROPE),
    "gemma": ModelConfig("gemma", 1, 2, 8, 10, 16, arch="llama", embed_scale=True, rms_offset=1.0,
                         **{**ROPE, "activation": "gelu"}),
    "neox-parallel": ModelConfig("neox-parallel", 2, 4, 64, 97, 64, arch="neox", activation="gelu", n_inner=80,
                                 tied_unembed=False, rope_theta=10000.0, rotary_fraction=0.25, parallel=True),
    "neox-sequential": ModelConfig("neox-sequential", 2, 4, 64, 97, 64, arch="neox", activation="gelu", n_inner=80,
                                   tied_unembed=False, rope_theta=10000.0, rotary_fraction=1.0),
    "phi": ModelConfig("phi", 2, 4, 64, 97, 64, arch="phi", n_kv_head=2, n_inner=80, tied_unembed=False,
                       unembed_bias=True, rope_theta=10000.0, rotary_fraction=0.5, parallel=True),
    "bigram": ModelConfig("bigram", 0, 1, 10, 10, 16, arch="bigram", tied_unembed=False),
    "attn-only": ModelConfig("attn-only", 1, 1, 8, 10, 16, arch="attn-only", tied_unembed=False),
}
NEW = ("neox-parallel", "neox-sequential", "phi")


def random_model(cfg: ModelConfig, seed: int = 0) -> Model:
    graph, rng = Graph(cfg), np.random.default_rng(seed)
    return Model(cfg, {n: rng.normal(0, 0.3, graph[n].shape(graph.sizes(0))).astype(np.float32)
                       for n in graph.names("weight")}, None, source=cfg.name)


# ---- One module per architecture, behind one Protocol ----

def protocol_members() -> tuple[set, dict]:
    """The Protocol's read-only data (its properties) and its functions."""
    data = {n for n, v in vars(Architecture).items() if isinstance(v, property)}
    methods = {n: v for n, v in vars(Architecture).items() if inspect.isfunction(v) and not n.startswith("_")}
    return data, methods


def test_every_registered_module_satisfies_the_architecture_protocol():
    data, methods = protocol_members()
    assert data == {"NAME", "MODEL_TYPES", "NAMES"}
    assert set(methods) == {"build", "param_parts", "config_from_hf", "canonical", "weights_from_state"}
    assert [m.NAME for m in arch.MODULES][:4] == ["gpt2", "llama", "neox", "phi"]
    assert {"bigram", "attn-only"} <= {m.NAME for m in arch.MODULES}  # the learning path's own
    partial = types.ModuleType("partial")  # a module without its parameter count is no architecture
    vars(partial).update({n: getattr(arch.gpt2, n) for n in (*data, *methods) if n != "param_parts"})
    assert not isinstance(partial, Architecture)
    for m in arch.MODULES:
        assert isinstance(m, Architecture), m.__name__
        assert isinstance(m.NAME, str) and isinstance(m.NAMES, str) and m.NAMES
        own = m.NAME in ("bigram", "attn-only", "mlp", "neuron")  # llmviz's own (the learning path): no Hugging Face model_type
        assert isinstance(m.MODEL_TYPES, tuple) and (own or m.MODEL_TYPES) and all(isinstance(t, str) for t in m.MODEL_TYPES)
        for name, proto in methods.items():
            want = list(inspect.signature(proto).parameters.values())[1:]  # (without self)
            have = list(inspect.signature(getattr(m, name)).parameters.values())
            assert [p.name for p in have[:len(want)]] == [p.name for p in want], (m.__name__, name)
            for p, q in zip(want, have):  # a default the Protocol gives, the module gives too
                assert (q.default is inspect.Parameter.empty) <= (p.default is inspect.Parameter.empty), (m.__name__, name)
            assert all(q.default is not inspect.Parameter.empty for q in have[len(want):]), (m.__name__, name)


def test_the_registry_finds_each_module_by_name_and_model_type():
    assert {n: m.NAME for n, m in arch.ARCHITECTURES.items() if n not in ("bigram", "attn-only", "mlp", "neuron")} == {
        "gpt2": "gpt2", "llama": "llama", "neox": "neox", "phi": "phi"}
    assert {t: m.NAME for t, m in arch.BY_MODEL_TYPE.items()} == {
        "gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama", "gemma": "llama", "gpt_neox": "neox",
        "phi": "phi"}
    assert set(PARAM_PARTS) == set(arch.ARCHITECTURES)  # ModelConfig.param_parts asks each architecture's module
    with pytest.raises(BadModelFile, match=r"cfg: unsupported architecture 'falcon': llmviz supports .*GPT-NeoX.*Phi"):
        arch.for_model_type("falcon", "cfg")
    with pytest.raises(BadModelFile, match="unknown architecture 'neo': llmviz has gpt2, llama, neox, phi"):
        Graph(dataclasses.replace(CONFIGS["neox-parallel"], arch="neo"))


@pytest.mark.parametrize("name", CONFIGS)
def test_each_architectures_count_is_its_graphs_weights(name):
    cfg = CONFIGS[name]
    g = Graph(cfg)
    weights = sum(int(np.prod(g[n].shape(g.sizes(0)))) for n in g.names("weight") if "tied_to" not in g[n].attrs)
    assert cfg.n_params == weights == sum(arch.architecture(cfg.arch).param_parts(cfg).values())


def test_the_activations_table_lives_with_the_activations():
    assert set(ACTIVATIONS.values()) <= set(OPS) and {"gelu", "gelu_new", "relu", "silu"} <= set(ACTIVATIONS)
    with pytest.raises(ValueError, match="unsupported activation 'mish': llmviz supports gelu_new"):
        ModelConfig("m", 1, 1, 4, 4, 4, activation="mish")


# ---- Labels: declared with each tensor ----

@pytest.mark.parametrize("name", CONFIGS)
def test_every_tensor_declares_a_short_readable_label(name):
    for past in (0, 3):
        for t in Graph(CONFIGS[name], past=past):
            assert t.label and len(t.label) <= 12 and "hook_" not in t.label and "." not in t.label, (t.name, t.label)


def test_equivalent_tensors_have_the_same_words_in_every_architecture():
    """A tensor of the same name and op (and kind of MLP or norm) reads the same in every architecture: GPT-2's
    words, or the Llama family's for its RMSNorm and gated MLP."""
    words: dict[tuple, dict[str, str]] = {}
    for name, cfg in CONFIGS.items():
        for t in Graph(cfg, past=2):
            local = t.name.split(".", 2)[-1] if t.name.startswith("blocks.") else t.name
            kind = cfg.mlp if local.startswith("mlp.") else cfg.norm if local.startswith(("ln1.", "ln2.", "ln_final.")) else ""
            key = (local, t.op, kind)
            words.setdefault(key, {})[name] = t.label
    for key, labels in words.items():
        assert len(set(labels.values())) == 1, (key, labels)
    gpt2 = {t.name: t.label for t in Graph(PRESETS["gpt2"], past=2)}
    assert {n: gpt2[n] for n in ("hook_embed", "blocks.0.hook_resid_mid", "blocks.0.ln1.hook_normalized",
                                 "blocks.0.attn.hook_pattern_sum_exp", "blocks.0.attn.cache_v", "blocks.0.hook_mlp_out",
                                 "blocks.0.mlp.hook_post", "probs")} == {
        "hook_embed": "token emb", "blocks.0.hook_resid_mid": "residual", "blocks.0.ln1.hook_normalized": "x̂",
        "blocks.0.attn.hook_pattern_sum_exp": "Σexp", "blocks.0.attn.cache_v": "V so far",
        "blocks.0.hook_mlp_out": "MLP out", "blocks.0.mlp.hook_post": "activation", "probs": "probs"}
    llama = {t.name: t.label for t in Graph(CONFIGS["llama-gqa"])}
    assert [llama[f"blocks.0.{n}"] for n in ("ln1.hook_scale", "attn.hook_rot_k", "mlp.hook_pre", "mlp.hook_act")] == \
        ["s (rms)", "K rotated", "gate", "SiLU(gate)"]


def test_a_label_reaches_the_scene_as_the_graph_declares_it():
    model = Model(CONFIGS["phi"], None, None, source="phi")
    spec = model.graph["blocks.0.attn.hook_rot_q"]
    model.graph.tensors[spec.name] = dataclasses.replace(spec, label="Q turned")  # no other table can answer for it
    scene, _ = build_scene(model, None, 5)
    short = {b["tensor"]: b["short"] for b in scene["blocks"]}
    assert short == {t.name: t.label for t in model.graph} and short["blocks.0.attn.hook_rot_q"] == "Q turned"


def test_a_tensor_without_a_label_is_refused_where_it_is_declared():
    g = Graph(CONFIGS["nano-gpt"])
    with pytest.raises(AssertionError, match="extra has no label: declare its short label in the view with it"):
        g.add("extra", ["pos"], "activation", "An extra", "x", "identity", ("tokens",))


# ---- What GPT-NeoX and Phi brought: partial rotary, a parallel block ----

def test_partial_rotary_turns_the_first_channels_and_passes_the_rest():
    x = np.random.default_rng(0).normal(0, 1, (5, 3, 16)).astype(np.float32)  # [pos, head, d_head]
    freq = [1.0, 0.1]  # R = 4: two pairs, (0, 2) and (1, 3)
    out = rotary(x, freq, offset=2, rotary_dims=4)
    np.testing.assert_array_equal(out[..., 4:], x[..., 4:])  # bit for bit
    np.testing.assert_array_equal(out[..., :4], rotary(x[..., :4], freq, offset=2))
    theta = np.float32(3) * np.float32(0.1)  # position 1 after 2 cached, pair (1, 3)
    np.testing.assert_allclose(out[1, 2, 1], x[1, 2, 1] * np.cos(theta) - x[1, 2, 3] * np.sin(theta), rtol=1e-6)
    g = Graph(CONFIGS["neox-parallel"], past=2)
    rot = g["blocks.1.attn.hook_rot_k"]
    assert rot.attrs["rotary_dims"] == 4 and len(rot.attrs["inv_freq"]) == 2 and rot.attrs["offset"] == 2
    assert Graph(CONFIGS["llama-gqa"])["blocks.0.attn.hook_rot_q"].attrs["rotary_dims"] == 8  # all of its channels


def test_a_parallel_block_adds_three_tensors():
    a, b, c = (np.random.default_rng(i).normal(0, 1, (3, 4)).astype(np.float32) for i in range(3))
    np.testing.assert_array_equal(add(a, b, c), a + b + c)
    for name in ("neox-parallel", "phi"):
        g = Graph(CONFIGS[name])
        assert "blocks.0.hook_resid_mid" not in g
        assert g["blocks.1.hook_resid_post"].inputs == ("blocks.1.hook_resid_pre", "blocks.1.hook_attn_out",
                                                         "blocks.1.hook_mlp_out")
    norms = {n: Graph(CONFIGS[n])["blocks.0.mlp.hook_pre"].inputs[0] for n in NEW}
    assert norms == {"neox-parallel": "blocks.0.ln2.hook_out", "neox-sequential": "blocks.0.ln2.hook_out",
                     "phi": "blocks.0.ln1.hook_out"}  # Phi: one norm a layer, read by both
    assert Graph(CONFIGS["neox-parallel"])["blocks.0.ln2.hook_mean"].inputs == ("blocks.0.hook_resid_pre",)
    assert Graph(CONFIGS["neox-sequential"])["blocks.0.ln2.hook_mean"].inputs == ("blocks.0.hook_resid_mid",)
    model = random_model(CONFIGS["phi"])
    t = model.run([1, 2, 3, 4])
    np.testing.assert_allclose(t["blocks.0.hook_resid_post"], t["blocks.0.hook_resid_pre"] + t["blocks.0.hook_attn_out"]
                               + t["blocks.0.hook_mlp_out"], rtol=1e-6, atol=1e-6)


def test_a_phi_config_must_be_parallel_and_a_rotary_share_must_turn_pairs():
    with pytest.raises(ValueError, match="a Phi block reads one LayerNorm into attention and the MLP at once"):
        Graph(dataclasses.replace(CONFIGS["phi"], parallel=False))
    with pytest.raises(ValueError, match=r"rotary_fraction \(0.1875\) turns 3 of each head's 16 channels: the rotary "
                                         "embedding turns pairs"):
        dataclasses.replace(CONFIGS["neox-parallel"], rotary_fraction=0.1875)
    with pytest.raises(ValueError, match=r"rotary_fraction must be a number above 0 and at most 1 \(got 1.5\)"):
        dataclasses.replace(CONFIGS["neox-parallel"], rotary_fraction=1.5)
    with pytest.raises(ValueError, match=r"rope_theta must be a number > 0 \(got None\): neox-parallel's positions are "):
        Graph(dataclasses.replace(CONFIGS["neox-parallel"], rope_theta=None))


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("beside", [True, False])
def test_the_new_blocks_lay_out_with_data_flowing_down_and_no_overlap(name, beside):
    graph = Graph(CONFIGS[name], past=0)
    layout = build_layout(graph, 6, arranged=(beside, 2))
    blocks = {b.tensor: b for b in layout.blocks}
    assert list(blocks) == graph.names()
    for t in graph:
        for i in t.inputs:
            a, b = blocks[i], blocks[t.name]
            if graph[i].kind in ("activation", "input") and a.x + a.width > b.x:  # not read across from the left
                assert b.y <= a.y, f"{t.name} sits above its input {i}"
    for a, b in itertools.combinations(layout.blocks, 2):
        assert not (a.z == b.z and a.x < b.x + b.width and b.x < a.x + a.width and a.y - a.height < b.y
                    and b.y - b.height < a.y), (a.tensor, b.tensor)
    columns = [band[0] + 1 for band in layout.bands]
    assert all(b.residual == (b.x in columns) for b in layout.blocks)  # the stream down the left of each column
    post, attn, mlp = (blocks[f"blocks.0.{n}"] for n in ("hook_resid_post", "hook_attn_out", "hook_mlp_out"))
    assert post.y < attn.y - attn.height and post.y <= mlp.y  # the add below attention's output, level with the MLP's
    sections = {s["key"]: s for s in layout.sections}
    assert {"embed", "blocks.0", "blocks.0.attn", "blocks.0.mlp", "blocks.1", "output"} <= set(sections)


# ---- The walkthrough on a parallel block ----

def walk_tensors(w: dict) -> set[str]:
    """Every tensor the compiled walkthrough names: in its steps' lists, and anywhere in their actions."""
    text = json.dumps(w)
    named = {n for c in w["chapters"] for s in c["steps"] for n in s["tensors"]}
    return named | {n for n in CONFIGS_ALL_NAMES if f'"{n}"' in text}


CONFIGS_ALL_NAMES = {t.name for cfg in CONFIGS.values() for past in (0, 1) for t in Graph(cfg, past=past)}


@pytest.mark.parametrize("name", NEW)
def test_the_walkthrough_compiles_for_the_new_blocks_and_tells_the_parallel_reading(name):
    model = random_model(CONFIGS[name])
    assert check([model]) == []
    for w in (compile_chapters(model, model.run([5, 1, 4, 2, 3, 6])), compile_chapters(Model(model.config, None, None))):
        graphs = {t.name for past in (0, 1) for t in Graph(model.config, past=past)}  # (a generated step's too)
        assert walk_tensors(w) <= graphs, walk_tensors(w) - graphs
        steps = {s["title"]: s for c in w["chapters"] for s in c["steps"]}
        layers = steps[f"The same layer, {model.config.n_layer} times"]["html"]
        assert ("side by side" in layers) == model.config.parallel
        assert ("Only part of each head turns" in steps) == (name != "neox-sequential")
    w = compile_chapters(model, model.run([5, 1, 4, 2, 3, 6]))
    expand = next(s for c in w["chapters"] for s in c["steps"] if s["title"] == "Expand to 4C")
    assert expand["actions"][0]["tensors"][0] == model.graph["blocks.0.mlp.hook_pre"].inputs[0]  # its own norm's output
    residual = next(c for c in w["chapters"] if c["title"] == "The residual stream")["steps"][0]
    if model.config.parallel:
        assert "both read the same residual stream" in residual["html"] and "no stream lies between them" in residual["html"]
        act = next(a for a in residual["actions"] if a["type"] == "add")
        assert act["inputs"] == ["blocks.0.hook_resid_pre", "blocks.0.hook_attn_out", "blocks.0.hook_mlp_out"]
        t = model.run([5, 1, 4, 2, 3, 6])
        parts = [f"{float(t[n][-1, 0]):.4g}".replace("-", "−") for n in act["inputs"] + ["blocks.0.hook_resid_post"]]
        assert f"{parts[0]} + {parts[1]} + {parts[2]} = {parts[3]}" in residual["html"]
    else:
        assert "Attention's output is added to its input" in residual["html"]
    if model.config.d_rotary < model.config.d_head:
        turns = next(s for c in w["chapters"] for s in c["steps"] if s["title"] == "Only part of each head turns")
        assert f"only the first {model.config.d_rotary} of each head's {model.config.d_head} channels" in turns["html"]
        assert turns["actions"][1]["regions"][1]["ranges"]["d_head"] == [model.config.d_rotary, model.config.d_head - 1]
