"""GPT-NeoX (EleutherAI's GPT-NeoX-20B, the Pythia suite): its graph, its parameter count, its Hugging Face
config.json and its checkpoints' weight names, in one place (see base.Architecture).

    h = ln1(x); a = attention(h)            # rotary on the first rotary_pct of each head's channels only
    x = x + a + mlp(ln2(x))                 # use_parallel_residual: attention and the MLP read the same x
    x = x + a; x = x + mlp(ln2(x))          # otherwise, one after the other (as GPT-2)

LayerNorms with biases, biases on every projection, an MLP of exact GELU (or the config's hidden_act), and an
untied unembedding (`embed_out`). Names follow TransformerLens: `attn.hook_rot_q` and `attn.hook_rot_k` after the
rotation; a parallel block has no `hook_resid_mid`, and its `hook_resid_post` adds three tensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...io.convert import check_shape, kept, reader
from ..config import ModelConfig, reading_hf_config
from ..errors import BadModelFile
from ..ops.activations import ACTIVATIONS, mlp
from ..ops.attention import rotate
from ..ops.norm import layer_norm
from ..scope import Scope, token_embedding, unembedding

NAME = "neox"
MODEL_TYPES = ("gpt_neox",)
NAMES = "GPT-NeoX and Pythia (model_type 'gpt_neox')"


# ---- The graph ----

def build(g) -> None:
    embed, tokens, W_E = token_embedding(g)
    x = embed.op("hook_embed", ["pos", "d_model"], "embed", (W_E, tokens), "Token embedding", label="token emb")
    for i in range(g.config.n_layer):
        blk = Scope(g, f"blocks.{i}", layer=i)
        x = block(blk, i, blk.carry(x, i))
    unembedding(g, layer_norm(Scope(g), "ln_final", x, "Final LayerNorm"), W_E)


def block(blk: Scope, i: int, x: str) -> str:
    """Parallel: x + attention(LayerNorm 1(x)) + MLP(LayerNorm 2(x)). Otherwise GPT-2's order: x + attention, then
    + MLP of the sum."""
    attn = attention(blk, i, layer_norm(blk, "ln1", x, f"LayerNorm 1, layer {i}"))
    if blk.config.parallel:
        out = mlp(blk, i, layer_norm(blk, "ln2", x, f"LayerNorm 2, layer {i}"))
        return blk.residual("hook_resid_post", (x, attn, out), f"Residual stream after layer {i}")
    mid = blk.residual("hook_resid_mid", (x, attn), f"Residual stream after attention, layer {i}")
    return blk.residual("hook_resid_post", (mid, mlp(blk, i, layer_norm(blk, "ln2", mid, f"LayerNorm 2, layer {i}"))),
                        f"Residual stream after layer {i}")


def attention(blk: Scope, i: int, x: str) -> str:
    """Per head, softmax(rot(q) · rot(k) / √A) · v, every projection with its bias; the rotation turns the first
    d_rotary channels of each query and key."""
    at, cfg = blk.sub("attn"), blk.config
    qkv = {}
    for c, plain in (("Q", "Query"), ("K", "Key"), ("V", "Value")):
        W = at.weight(f"W_{c}", ["head", "d_model", "d_head"], f"{plain} weight, layer {i}", label=f"W_{c}")
        b = at.weight(f"b_{c}", ["head", "d_head"], f"{plain} bias, layer {i}", label=f"b_{c}")
        qkv[c] = at.linear(f"hook_{c.lower()}", x, W, b, f"{plain} vector, layer {i}", label=c)
        if c != "V":
            qkv[c] = rotate(at, c, qkv[c], "head", f"{plain} vector after rotary embedding, layer {i}")
    qkv["K"], qkv["V"] = at.kv_cache(qkv["K"], qkv["V"], "head", i)  # with a KV cache: the cached ones, then these
    scores = at.op("hook_attn_scores", ["head", "pos", "key_pos"], "attn_scores", (qkv["Q"], qkv["K"]),
                   f"Attention scores, layer {i}", label="scores", scale=cfg.attn_scale(i))
    pattern = at.softmax("hook_pattern", scores, f"Attention pattern, layer {i}", label="softmax")
    z = at.op("hook_z", ["pos", "head", "d_head"], "weighted_sum", (pattern, qkv["V"]),
              f"Attention output per head, layer {i}", label="z")
    W_O = at.weight("W_O", ["head", "d_head", "d_model"], f"Output projection weight, layer {i}", label="W_O")
    b_O = at.weight("b_O", ["d_model"], f"Output projection bias, layer {i}", label="b_O")
    return at.linear(blk.name("hook_attn_out"), z, W_O, b_O, f"Attention output, layer {i}", label="attn out")



# ---- The parameters ----

def param_parts(cfg: ModelConfig) -> dict[str, int]:
    """The learned parameters by part (ModelConfig.param_parts): W_E (and an untied W_U) as embedding; each layer's
    attention and MLP with their biases; two LayerNorms a layer (gain and bias) and the final one."""
    C, V, M, L = cfg.n_embd, cfg.vocab_size, cfg.d_mlp, cfg.n_layer
    return {"embedding": V * C + (0 if cfg.tied_unembed else C * V), "attention": L * (4 * C * C + 4 * C),
            "mlp": L * (2 * C * M + M + C), "other": L * 2 * 2 * C + 2 * C}


# ---- Hugging Face's config.json ----

def config_from_hf(cfg: dict, name: str, source, shown: str = "") -> ModelConfig:
    """transformers 5 writes rope_parameters (rope_theta and partial_rotary_factor inside); earlier configs, as
    Pythia's on the hub, rotary_emb_base and rotary_pct. Every other setting that changes the numbers is read, or
    refused by name."""
    def refuse(what: str):
        raise BadModelFile(f"{source}: {what} is not supported: llmviz computes no approximation of it")

    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise BadModelFile(f"{source}: rope_parameters must be an object (got {rope!r})")
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        refuse(f"rope_scaling type {rope.get('rope_type', rope.get('type'))!r}")
    if cfg.get("attention_bias", True) is not True:
        refuse("attention_bias false")
    act = cfg.get("hidden_act", "gelu")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        refuse(f"hidden_act {act!r}")
    where = "rope_parameters.partial_rotary_factor" if "partial_rotary_factor" in rope else "rotary_pct"
    pct = rope.get("partial_rotary_factor", cfg.get("rotary_pct", 0.25))
    theta = "rope_parameters.rope_theta" if "rope_theta" in rope else "rotary_emb_base"
    names = {"n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_embd": "hidden_size",
             "n_inner": "intermediate_size", "n_ctx": "max_position_embeddings", "layer_norm_eps": "layer_norm_eps",
             "tied_unembed": "tie_word_embeddings", "rope_theta": theta, "rotary_fraction": where,
             "parallel": "use_parallel_residual"}
    with reading_hf_config(source, names):
        return ModelConfig(
            name, arch=NAME, n_layer=cfg["num_hidden_layers"], n_head=cfg["num_attention_heads"], n_embd=cfg["hidden_size"],
            vocab_size=cfg["vocab_size"], n_ctx=cfg.get("max_position_embeddings", 2048),
            layer_norm_eps=cfg.get("layer_norm_eps", 1e-5), activation=act,
            tied_unembed=cfg.get("tie_word_embeddings", False), n_inner=cfg["intermediate_size"],
            rope_theta=rope.get("rope_theta", cfg.get("rotary_emb_base", 10000.0)), rotary_fraction=pct,
            parallel=cfg.get("use_parallel_residual", True), description=f"Hugging Face GPT-NeoX model {shown or name}",
        )


# ---- Checkpoint weight names -> the graph's weights ----

def canonical(name: str) -> str:
    """`gpt_neox.layers.0.attention.dense.weight` -> `layers.0.attention.dense.weight`."""
    return name[len("gpt_neox."):] if name.startswith("gpt_neox.") else name


def weights_from_state(state: Mapping[str, np.ndarray], config: ModelConfig, source: str = "",
                       dtype: str = "float32") -> dict[str, np.ndarray]:
    """nn.Linear weights ([out, in]) to the graph's per-head weights, each checked. The fused query_key_value holds,
    for each head in turn, its query, key and value rows ([head, 3, d_head] of its 3C outputs)."""
    names = set(state.keys())
    check_shape(config, len({k.split(".")[1] for k in names if k.startswith("layers.")}), dtype, source)
    C, H, A, M, V = config.n_embd, config.n_head, config.d_head, config.d_mlp, config.vocab_size

    get = reader(state, dtype, source)

    def keep(a):
        return kept(a, dtype)

    w = {"embed.W_E": keep(get("embed_in.weight", (V, C)))}
    for i in range(config.n_layer):
        h, L = f"layers.{i}.", f"blocks.{i}."
        for src, dst in (("input_layernorm", "ln1"), ("post_attention_layernorm", "ln2")):
            w[L + dst + ".w"] = keep(get(h + src + ".weight", (C,)))
            w[L + dst + ".b"] = keep(get(h + src + ".bias", (C,)))
        qkv = get(h + "attention.query_key_value.weight", (3 * C, C)).reshape(H, 3, A, C)
        qkv_b = get(h + "attention.query_key_value.bias", (3 * C,)).reshape(H, 3, A)
        for j, c in enumerate("QKV"):
            w[L + f"attn.W_{c}"] = keep(qkv[:, j].transpose(0, 2, 1))
            w[L + f"attn.b_{c}"] = keep(qkv_b[:, j])
        del qkv
        w[L + "attn.W_O"] = keep(get(h + "attention.dense.weight", (C, C)).reshape(C, H, A).transpose(1, 2, 0))
        w[L + "attn.b_O"] = keep(get(h + "attention.dense.bias", (C,)))
        w[L + "mlp.W_in"] = keep(get(h + "mlp.dense_h_to_4h.weight", (M, C)).T)
        w[L + "mlp.b_in"] = keep(get(h + "mlp.dense_h_to_4h.bias", (M,)))
        w[L + "mlp.W_out"] = keep(get(h + "mlp.dense_4h_to_h.weight", (C, M)).T)
        w[L + "mlp.b_out"] = keep(get(h + "mlp.dense_4h_to_h.bias", (C,)))
    w["ln_final.w"] = keep(get("final_layer_norm.weight", (C,)))
    w["ln_final.b"] = keep(get("final_layer_norm.bias", (C,)))
    if not config.tied_unembed:  # `embed_out` (the name on the hub, and transformers' save_pretrained), or `lm_head`
        w["unembed.W_U"] = keep(get("embed_out.weight" if "embed_out.weight" in names else "lm_head.weight", (V, C)).T)
    return w
