"""Phi (Microsoft's phi-1, phi-1.5 and phi-2): its graph, its parameter count, its Hugging Face config.json and its
checkpoints' weight names, in one place (see base.Architecture).

    h = ln1(x)                              # one LayerNorm a layer, read by both
    x = x + attention(h) + mlp(h)           # attention and the MLP in parallel

Rotary on the first partial_rotary_factor of each head's channels (the rest pass through), biases on the query,
key, value and output projections and on the MLP's two, GELU in its tanh form (gelu_new), a final LayerNorm, and an
unembedding with a bias. Names follow TransformerLens where the parts are the same; the MLP reads `ln1.hook_out`
(TransformerLens copies ln1 into an ln2 of the same numbers; here there is one norm, as in the model), and there is
no `hook_resid_mid`: `hook_resid_post` adds three tensors.
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

NAME = "phi"
MODEL_TYPES = ("phi",)
NAMES = "Phi (model_type 'phi': phi-1, phi-1.5, phi-2)"


# ---- The graph ----

def build(g) -> None:
    if not g.config.parallel:
        raise ValueError(f"{g.config.name}: a Phi block reads one LayerNorm into attention and the MLP at once: its "
                         "config must have parallel true")
    embed, tokens, W_E = token_embedding(g)
    x = embed.op("hook_embed", ["pos", "d_model"], "embed", (W_E, tokens), "Token embedding", label="token emb")
    for i in range(g.config.n_layer):
        blk = Scope(g, f"blocks.{i}", layer=i)
        x = block(blk, i, blk.carry(x, i))
    unembedding(g, layer_norm(Scope(g), "ln_final", x, "Final LayerNorm"), W_E)


def block(blk: Scope, i: int, x: str) -> str:
    """x + attention(LayerNorm(x)) + MLP(LayerNorm(x)): one norm, read by both."""
    h = layer_norm(blk, "ln1", x, f"LayerNorm, layer {i}")
    return blk.residual("hook_resid_post", (x, attention(blk, i, h), mlp(blk, i, h)), f"Residual stream after layer {i}")


def attention(blk: Scope, i: int, x: str) -> str:
    """Grouped-query attention (when the config has fewer key-value heads) with partial rotary positions and a bias
    on every projection: softmax(rot(q) · rot(k) / √A) · v per head, then W_O."""
    at, cfg = blk.sub("attn"), blk.config
    heads = {"Q": "head", "K": "kv_head", "V": "kv_head"}
    qkv = {}
    for c, plain in (("Q", "Query"), ("K", "Key"), ("V", "Value")):
        W = at.weight(f"W_{c}", [heads[c], "d_model", "d_head"], f"{plain} weight, layer {i}", label=f"W_{c}")
        b = at.weight(f"b_{c}", [heads[c], "d_head"], f"{plain} bias, layer {i}", label=f"b_{c}")
        qkv[c] = at.linear(f"hook_{c.lower()}", x, W, b, f"{plain} vector, layer {i}", label=c)
        if c != "V":
            qkv[c] = rotate(at, c, qkv[c], heads[c], f"{plain} vector after rotary embedding, layer {i}")
    qkv["K"], qkv["V"] = at.kv_cache(qkv["K"], qkv["V"], "kv_head", i)  # with a KV cache: the cached ones, then these
    group = {"kv_group": cfg.n_head // cfg.kv_heads} if cfg.kv_heads != cfg.n_head else {}
    scores = at.op("hook_attn_scores", ["head", "pos", "key_pos"], "attn_scores", (qkv["Q"], qkv["K"]),
                   f"Attention scores, layer {i}", label="scores", scale=cfg.attn_scale(i), **group)
    pattern = at.softmax("hook_pattern", scores, f"Attention pattern, layer {i}", label="softmax")
    z = at.op("hook_z", ["pos", "head", "d_head"], "weighted_sum", (pattern, qkv["V"]),
              f"Attention output per head, layer {i}", label="z", **group)
    W_O = at.weight("W_O", ["head", "d_head", "d_model"], f"Output projection weight, layer {i}", label="W_O")
    b_O = at.weight("b_O", ["d_model"], f"Output projection bias, layer {i}", label="b_O")
    return at.linear(blk.name("hook_attn_out"), z, W_O, b_O, f"Attention output, layer {i}", label="attn out")



# ---- The parameters ----

def param_parts(cfg: ModelConfig) -> dict[str, int]:
    """The learned parameters by part (ModelConfig.param_parts): W_E, an untied W_U and the unembedding's bias as
    embedding; each layer's attention (G key-value heads of A channels) and MLP with their biases; one LayerNorm a
    layer (gain and bias) and the final one."""
    C, V, M, H, G, A, L = cfg.n_embd, cfg.vocab_size, cfg.d_mlp, cfg.n_head, cfg.kv_heads, cfg.d_head, cfg.n_layer
    attn = C * H * A + 2 * C * G * A + (H + 2 * G) * A + H * A * C + C
    return {"embedding": V * C + (0 if cfg.tied_unembed else C * V) + V, "attention": L * attn,
            "mlp": L * (2 * C * M + M + C), "other": L * 2 * C + 2 * C}


# ---- Hugging Face's config.json ----

def config_from_hf(cfg: dict, name: str, source, shown: str = "") -> ModelConfig:
    """Every setting llmviz computes is read (rope_theta and partial_rotary_factor inside rope_parameters, as
    transformers 5 writes them, or at the top as earlier configs have them); a setting it does not implement is
    refused by name."""
    def refuse(what: str):
        raise BadModelFile(f"{source}: {what} is not supported: llmviz computes no approximation of it")

    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if not isinstance(rope, dict):
        raise BadModelFile(f"{source}: rope_parameters must be an object (got {rope!r})")
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        refuse(f"rope_scaling type {rope.get('rope_type', rope.get('type'))!r}")
    if cfg.get("qk_layernorm"):
        refuse("qk_layernorm true")
    act = cfg.get("hidden_act", "gelu_new")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        refuse(f"hidden_act {act!r}")
    theta = "rope_parameters.rope_theta" if "rope_theta" in rope else "rope_theta"
    fraction = "rope_parameters.partial_rotary_factor" if "partial_rotary_factor" in rope else "partial_rotary_factor"
    names = {"n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_embd": "hidden_size",
             "n_inner": "intermediate_size", "n_ctx": "max_position_embeddings", "layer_norm_eps": "layer_norm_eps",
             "n_kv_head": "num_key_value_heads", "tied_unembed": "tie_word_embeddings", "rope_theta": theta,
             "rotary_fraction": fraction}
    with reading_hf_config(source, names):
        H = cfg["num_attention_heads"]
        return ModelConfig(
            name, arch=NAME, n_layer=cfg["num_hidden_layers"], n_head=H, n_embd=cfg["hidden_size"],
            vocab_size=cfg["vocab_size"], n_ctx=cfg.get("max_position_embeddings", 2048),
            layer_norm_eps=cfg.get("layer_norm_eps", 1e-5), activation=act,
            tied_unembed=cfg.get("tie_word_embeddings", False), unembed_bias=True, n_inner=cfg["intermediate_size"],
            n_kv_head=cfg.get("num_key_value_heads") or H, head_dim=cfg.get("head_dim"),
            rope_theta=rope.get("rope_theta", cfg.get("rope_theta", 10000.0)),
            rotary_fraction=rope.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 0.5)), parallel=True,
            description=f"Hugging Face Phi model {shown or name}",
        )


# ---- Checkpoint weight names -> the graph's weights ----

def canonical(name: str) -> str:
    """`model.layers.0.self_attn.q_proj.weight` -> `layers.0.self_attn.q_proj.weight`."""
    return name[len("model."):] if name.startswith("model.") else name


def weights_from_state(state: Mapping[str, np.ndarray], config: ModelConfig, source: str = "",
                       dtype: str = "float32") -> dict[str, np.ndarray]:
    """Hugging Face's nn.Linear weights ([out, in]) to the graph's per-head weights, each checked."""
    names = set(state.keys())
    check_shape(config, len({k.split(".")[1] for k in names if k.startswith("layers.")}), dtype, source)
    C, H, G, A, M, V = config.n_embd, config.n_head, config.kv_heads, config.d_head, config.d_mlp, config.vocab_size

    get = reader(state, dtype, source)

    def keep(a):
        return kept(a, dtype)

    w = {"embed.W_E": keep(get("embed_tokens.weight", (V, C)))}
    heads = {"q": H, "k": G, "v": G}
    for i in range(config.n_layer):
        h, L = f"layers.{i}.", f"blocks.{i}."
        w[L + "ln1.w"] = keep(get(h + "input_layernorm.weight", (C,)))
        w[L + "ln1.b"] = keep(get(h + "input_layernorm.bias", (C,)))
        for c, n in heads.items():
            W = get(h + f"self_attn.{c}_proj.weight", (n * A, C))  # [heads · A, C]
            w[L + f"attn.W_{c.upper()}"] = keep(W.reshape(n, A, C).transpose(0, 2, 1))
            w[L + f"attn.b_{c.upper()}"] = keep(get(h + f"self_attn.{c}_proj.bias", (n * A,)).reshape(n, A))
        w[L + "attn.W_O"] = keep(get(h + "self_attn.dense.weight", (C, H * A)).reshape(C, H, A).transpose(1, 2, 0))
        w[L + "attn.b_O"] = keep(get(h + "self_attn.dense.bias", (C,)))
        w[L + "mlp.W_in"] = keep(get(h + "mlp.fc1.weight", (M, C)).T)
        w[L + "mlp.b_in"] = keep(get(h + "mlp.fc1.bias", (M,)))
        w[L + "mlp.W_out"] = keep(get(h + "mlp.fc2.weight", (C, M)).T)
        w[L + "mlp.b_out"] = keep(get(h + "mlp.fc2.bias", (C,)))
    w["ln_final.w"] = keep(get("final_layernorm.weight", (C,)))
    w["ln_final.b"] = keep(get("final_layernorm.bias", (C,)))
    if not config.tied_unembed:
        w["unembed.W_U"] = keep(get("lm_head.weight", (V, C)).T)
    w["unembed.b_U"] = keep(get("lm_head.bias", (V,)))
    return w
