"""The model graph is the one definition: shapes, names and JSON all come from it."""

import json

import numpy as np

from llmviz import PRESETS, Graph
from llmviz.core.graph import AXES
from llmviz.core.ops import OPS

TL_NAMES = [
    "hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_scale",
    "blocks.0.ln1.hook_normalized", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
    "blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z",
    "blocks.0.hook_attn_out", "blocks.0.hook_resid_mid", "blocks.0.ln2.hook_normalized", "blocks.0.mlp.hook_pre",
    "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out", "blocks.2.hook_resid_post", "ln_final.hook_normalized",
    "embed.W_E", "pos_embed.W_pos", "blocks.1.attn.W_Q", "blocks.1.attn.b_Q", "blocks.1.attn.W_O",
    "blocks.1.mlp.W_in", "blocks.1.mlp.W_out", "unembed.W_U", "logits", "probs",
]


def test_transformer_lens_names_are_declared():
    g = Graph(PRESETS["nano-gpt"])
    for name in TL_NAMES:
        assert name in g, name


def test_every_trace_tensor_has_the_graph_shape(nano):
    for prompt in ["A", "CBABBC"]:
        t = nano.run(prompt)
        sizes = nano.graph.sizes(len(prompt))
        assert list(t) == nano.graph.names()
        for spec in nano.graph:
            assert t[spec.name].shape == spec.shape(sizes), spec.name


def test_shapes_follow_from_named_axes():
    g = Graph(PRESETS["gpt2"])
    s = g.sizes(7)
    assert g["blocks.0.attn.hook_q"].shape(s) == (7, 12, 64)
    assert g["blocks.0.attn.hook_pattern"].shape(s) == (12, 7, 7)
    assert g["blocks.11.mlp.hook_pre"].shape(s) == (7, 3072)
    assert g["logits"].shape(s) == (7, 50257)
    assert g["blocks.0.attn.W_O"].shape(s) == (12, 64, 768)
    assert g["blocks.0.hook_attn_out"].attrs["contract"] == ["head", "d_head"]


def test_weights_in_the_graph_add_up_to_the_parameter_count():
    for name in ["nano-gpt", "gpt2", "gpt3"]:
        cfg = PRESETS[name]
        g = Graph(cfg)
        total = sum(int(np.prod(g[n].shape(g.sizes(0)))) for n in g.names("weight"))
        if cfg.tied_unembed:
            total -= cfg.n_embd * cfg.vocab_size  # W_U is W_E transposed: not a parameter of its own
        assert total == cfg.n_params, name


def test_inputs_come_before_use_and_ops_are_known():
    g = Graph(PRESETS["nano-gpt"])
    seen = set()
    for t in g:
        assert set(t.inputs) <= seen, t.name
        assert (t.op is None) == (t.kind in ("weight", "input")), t.name
        assert t.op is None or t.op in OPS
        assert set(t.axes) <= set(AXES)
        seen.add(t.name)


def test_json_form_is_plain_and_complete():
    g = Graph(PRESETS["gpt3"])
    j = json.loads(json.dumps(g.to_json()))
    assert j["model"]["n_params"] == PRESETS["gpt3"].n_params
    assert len(j["tensors"]) == len(g.tensors)
    q = next(t for t in j["tensors"] if t["name"] == "blocks.95.attn.hook_q")
    assert q == {**q, "axes": ["pos", "head", "d_head"], "shape": [None, 96, 128], "op": "linear",
                 "inputs": ["blocks.95.ln1.hook_out", "blocks.95.attn.W_Q", "blocks.95.attn.b_Q"], "kind": "activation"}
    assert j["axes"]["d_head"]["label"] == "A" and j["axes"]["d_head"]["color"].startswith("#")
    assert len({a["color"] for a in j["axes"].values()}) == len(j["axes"])  # one colour per axis
