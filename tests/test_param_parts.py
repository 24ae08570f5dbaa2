"""Where a model's parameters live: embedding, attention, MLP and the norms, adding up to its parameter count,
each part equal to the sizes of the graph's weights of that part."""

import dataclasses

import numpy as np
import pytest

from conftest import local_client
from llmviz import PRESETS, ModelConfig
from llmviz.core.graph import Graph
from llmviz.io.loading import structure_only
from llmviz.serve.server import create_app
from llmviz.views.scene import build_scene

# A Llama-family model of every kind the count must handle: grouped-query attention, q/k/v biases, untied W_U.
LLAMA = dataclasses.replace(PRESETS["smollm-135m"], name="llama-t", n_layer=3, qkv_bias=True, tied_unembed=False)
# GPT-NeoX in both block orders, tied and untied; Phi (one LayerNorm a layer, a bias on W_U) with grouped-query heads.
NEOX = ModelConfig("neox-t", 3, 4, 64, 97, 64, arch="neox", activation="gelu", tied_unembed=False, n_inner=80,
                   rope_theta=10000.0, rotary_fraction=0.25, parallel=True)
NEOX_SEQ = dataclasses.replace(NEOX, name="neox-seq", parallel=False, tied_unembed=True, rotary_fraction=1.0)
PHI = ModelConfig("phi-t", 2, 4, 64, 97, 64, arch="phi", n_kv_head=2, tied_unembed=False, unembed_bias=True, n_inner=80,
                  rope_theta=10000.0, rotary_fraction=0.5, parallel=True)


def part_of(weight: str) -> str:
    """Which part a graph weight belongs to, by its name."""
    if ".attn." in weight:
        return "attention"
    if ".mlp." in weight:
        return "mlp"
    if weight.startswith("ln_final.") or ".ln1." in weight or ".ln2." in weight:
        return "other"
    return "embedding"  # W_E, W_pos, an untied W_U and its bias


def graph_parts(cfg) -> dict[str, int]:
    """The reference: every weight of the graph, sized and summed by part (a tied W_U is W_E: not counted twice)."""
    g = Graph(cfg)
    parts = dict.fromkeys(("embedding", "attention", "mlp", "other"), 0)
    for name in g.names("weight"):
        if name == "unembed.W_U" and cfg.tied_unembed:
            continue
        parts[part_of(name)] += int(np.prod(g[name].shape(g.sizes(0))))
    return parts


def test_gpt2_parts_are_its_published_count_split():
    parts = PRESETS["gpt2"].param_parts()
    assert parts == {"embedding": 50257 * 768 + 1024 * 768, "attention": 28_348_416, "mlp": 56_669_184, "other": 38_400}
    assert parts["embedding"] == 39_383_808
    assert sum(parts.values()) == PRESETS["gpt2"].n_params == 124_439_808


@pytest.mark.parametrize("cfg", [PRESETS["nano-gpt"], PRESETS["gpt2"], PRESETS["gpt2-xl"], PRESETS["gpt3"],
                                 PRESETS["smollm-135m"], LLAMA, NEOX, NEOX_SEQ, PHI], ids=lambda c: c.name)
def test_parts_add_up_and_equal_the_graph_weights(cfg):
    parts = cfg.param_parts()
    assert sum(parts.values()) == cfg.n_params
    assert parts == graph_parts(cfg)


def test_gpt3_is_mostly_mlp_and_attention():
    parts = PRESETS["gpt3"].param_parts()
    assert sum(parts.values()) == PRESETS["gpt3"].n_params == 174_604_259_328
    C = 12288
    assert parts["attention"] == 96 * (4 * C * C + 4 * C) and parts["mlp"] == 96 * (8 * C * C + 5 * C)
    assert parts["mlp"] + parts["attention"] > 0.99 * PRESETS["gpt3"].n_params


def test_an_untied_unembedding_counts_as_embedding():
    tied, untied = PRESETS["smollm-135m"], dataclasses.replace(PRESETS["smollm-135m"], tied_unembed=False)
    assert untied.param_parts()["embedding"] - tied.param_parts()["embedding"] == 49152 * 576
    assert LLAMA.param_parts()["other"] == 3 * 2 * 576 + 576  # RMSNorm: gains only


def test_the_scene_and_the_model_list_carry_the_parts():
    scene, _ = build_scene(structure_only("gpt2"), None, 4)
    assert scene["model"]["param_parts"] == PRESETS["gpt2"].param_parts()
    models = {m["name"]: m for m in local_client(create_app()).get("/api/models").json()}
    assert models["gpt3"]["param_parts"] == PRESETS["gpt3"].param_parts()
    assert sum(models["nano-gpt"]["param_parts"].values()) == models["nano-gpt"]["n_params"] == 85_728
