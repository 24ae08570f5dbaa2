"""The Llama family: Llama (with Llama 3's rope scaling), Mistral, Qwen2 and Gemma. Its graph, its parameter count,
its Hugging Face config.json and its checkpoints' weight names, in one place (see base.Architecture). Gemma differs in three details: its token
embedding is scaled by √C (`hook_embed_scaled`), its RMSNorm gains are 1 + w (the graph's `w` holds the sum,
as TransformerLens's does), and its MLP gate is GELU (GeGLU).

    x = x + attention(rms_1(x))     # rotary queries and keys; grouped-query attention
    x = x + mlp(rms_2(x))           # SwiGLU: (silu(x · W_gate) × x · W_in) · W_out

Names follow TransformerLens: `ln1.hook_scale` and `ln1.hook_normalized` (before the gain), `attn.hook_rot_q`
and `attn.hook_rot_k` (after the rotation), `attn.hook_k` and `attn.hook_v` with a `kv_head` axis, and the
gated MLP's `mlp.hook_pre` (gate), `mlp.hook_pre_linear` (up) and `mlp.hook_post` (their product), plus
`mlp.hook_act` (the activated gate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import numpy as np

from ...io.convert import check_shape, kept, reader
from ..config import ModelConfig, reading_hf_config
from ..errors import BadModelFile
from ..ops import OPS
from ..ops.activations import ACTIVATIONS
from ..ops.attention import rotate
from ..ops.norm import rms_norm
from ..scope import Scope, token_embedding, unembedding
from ..weights import widen

NAME = "llama"
MODEL_TYPES = ("llama", "mistral", "qwen2", "gemma")
NAMES = "Llama, Mistral, Qwen2 and Gemma (model_type 'llama', 'mistral', 'qwen2', 'gemma')"


# ---- The graph ----

def build(g) -> None:
    cfg = g.config
    embed, tokens, W_E = token_embedding(g)
    x = embed.op("hook_embed", ["pos", "d_model"], "embed", (W_E, tokens), "Token embedding", label="token emb")
    if cfg.embed_scale:
        x = embed.op("hook_embed_scaled", ["pos", "d_model"], "scale", (x,), "Token embedding × √C", label="emb × √C",
                     factor=float(np.float32(cfg.n_embd ** 0.5)), factor_name="√C")
    for i in range(cfg.n_layer):
        blk = Scope(g, f"blocks.{i}", layer=i)
        x = block(blk, i, blk.carry(x, i))
    unembedding(g, rms_norm(Scope(g), "ln_final", x, "Final RMSNorm"), W_E)


def block(blk: Scope, i: int, x: str) -> str:
    """x + attention(RMSNorm 1(x)), then + MLP(RMSNorm 2(·))."""
    mid = blk.residual("hook_resid_mid", (x, attention(blk, i, rms_norm(blk, "ln1", x, f"RMSNorm 1, layer {i}"))),
                       f"Residual stream after attention, layer {i}")
    return blk.residual("hook_resid_post", (mid, mlp(blk, i, rms_norm(blk, "ln2", mid, f"RMSNorm 2, layer {i}"))),
                        f"Residual stream after layer {i}")


def attention(blk: Scope, i: int, x: str) -> str:
    """Grouped-query attention with rotary positions: softmax(rot(q) · rot(k) / √A) · v per head, then W_O."""
    at, cfg = blk.sub("attn"), blk.config
    heads = {"Q": "head", "K": "kv_head", "V": "kv_head"}
    qkv = {}
    for c, plain in (("Q", "Query"), ("K", "Key"), ("V", "Value")):
        W = at.weight(f"W_{c}", [heads[c], "d_model", "d_head"], f"{plain} weight, layer {i}", label=f"W_{c}")
        b = at.weight(f"b_{c}", [heads[c], "d_head"], f"{plain} bias, layer {i}", label=f"b_{c}") if cfg.qkv_bias else None
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
    return at.linear(blk.name("hook_attn_out"), z, W_O, None, f"Attention output, layer {i}", label="attn out")


def mlp(blk: Scope, i: int, x: str) -> str:
    """SwiGLU: (act(x · W_gate) × x · W_in) · W_out."""
    ml = blk.sub("mlp")
    W_gate = ml.weight("W_gate", ["d_model", "d_mlp"], f"MLP gate weight, layer {i}", label="W_gate")
    gate = ml.linear("hook_pre", x, W_gate, None, f"MLP gate, layer {i}", label="gate")
    W_in = ml.weight("W_in", ["d_model", "d_mlp"], f"MLP up weight, layer {i}", label="W_in")
    up = ml.linear("hook_pre_linear", x, W_in, None, f"MLP up projection, layer {i}", label="up")
    act = ACTIVATIONS[blk.config.activation]
    a = ml.op("hook_act", ["pos", "d_mlp"], act, (gate,), f"MLP activated gate ({OPS[act].label}), layer {i}",
              label=f"{OPS[act].label}(gate)")
    post = ml.op("hook_post", ["pos", "d_mlp"], "mul", (a, up), f"MLP gate × up, layer {i}", label="gate × up")
    W_out = ml.weight("W_out", ["d_mlp", "d_model"], f"MLP down weight, layer {i}", label="W_out")
    return ml.linear(blk.name("hook_mlp_out"), post, W_out, None, f"MLP output, layer {i}", label="MLP out")


def param_parts(cfg: ModelConfig) -> dict[str, int]:
    """The learned parameters by part (ModelConfig.param_parts): an untied W_U counts as embedding; RMSNorm has
    gains only; grouped-query attention has G key-value heads of A channels."""
    C, V, M, H, G, A = cfg.n_embd, cfg.vocab_size, cfg.d_mlp, cfg.n_head, cfg.kv_heads, cfg.d_head
    attn = C * H * A + 2 * C * G * A + H * A * C + ((H + 2 * G) * A if cfg.qkv_bias else 0)
    return {"embedding": V * C + (0 if cfg.tied_unembed else C * V), "attention": cfg.n_layer * attn,
            "mlp": cfg.n_layer * 3 * C * M, "other": cfg.n_layer * 2 * C + C}


# ---- Hugging Face's config.json ----

def config_from_hf(cfg: dict, name: str, source, shown: str = "") -> ModelConfig:
    """Every setting llmviz computes is read; a setting it does not implement is refused by name. Values go to
    ModelConfig as they are in the file (no float() or int() that would take a string or a bool for a number), and
    ModelConfig's refusals name the field as config.json does."""
    kind = cfg.get("model_type")

    def refuse(what: str) -> NoReturn:
        raise BadModelFile(f"{source}: {what} is not supported: llmviz computes no approximation of it")

    # transformers 5 writes rope_parameters (rope_theta inside); earlier configs, rope_scaling and rope_theta.
    where = "rope_parameters" if cfg.get("rope_parameters") else "rope_scaling"
    rope = cfg.get(where) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else None
    if rope_type not in ("default", "llama3"):
        refuse(f"rope_scaling type {rope_type!r}")
    ctx = cfg.get("max_position_embeddings", 2048)
    window = cfg.get("sliding_window")
    if window and (kind == "mistral" or cfg.get("use_sliding_window")):
        if not isinstance(window, int) or isinstance(window, bool):
            raise BadModelFile(f"{source}: sliding_window must be null or a whole number (got {window!r})")
        if isinstance(ctx, int) and window < ctx:
            refuse(f"sliding_window {window} (attention limited to the last {window} positions)")
    other = sorted({t for t in cfg.get("layer_types") or [] if t != "full_attention"})
    if other:
        refuse(f"layer_types {other}")
    for key in ("attention_bias", "mlp_bias"):
        if cfg.get(key) and kind == "llama":
            refuse(f"{key} true")
    if cfg.get("partial_rotary_factor", 1.0) != 1.0:
        refuse(f"partial_rotary_factor {cfg['partial_rotary_factor']}")
    act = cfg.get("hidden_activation") or cfg.get("hidden_act", "silu")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        refuse(f"hidden_act {act!r}")
    theta = f"{where}.rope_theta" if "rope_theta" in rope else "rope_theta"
    names = {"n_layer": "num_hidden_layers", "n_head": "num_attention_heads", "n_embd": "hidden_size",
             "n_inner": "intermediate_size", "n_ctx": "max_position_embeddings", "layer_norm_eps": "rms_norm_eps",
             "n_kv_head": "num_key_value_heads", "tied_unembed": "tie_word_embeddings", "rope_theta": theta,
             "rope_factor": f"{where}.factor", "rope_low_freq_factor": f"{where}.low_freq_factor",
             "rope_high_freq_factor": f"{where}.high_freq_factor",
             "rope_original_max": f"{where}.original_max_position_embeddings"}
    scaling = {}
    if rope_type == "llama3":  # transformers requires all four
        for field, key in (("rope_factor", "factor"), ("rope_low_freq_factor", "low_freq_factor"),
                           ("rope_high_freq_factor", "high_freq_factor"),
                           ("rope_original_max", "original_max_position_embeddings")):
            if key not in rope:
                raise BadModelFile(f"{source}: {where} of type llama3 lacks {key!r}")
            scaling[field] = rope[key]
    with reading_hf_config(source, names):
        H = cfg["num_attention_heads"]
        gemma = kind == "gemma"
        return ModelConfig(
            name, arch="llama", embed_scale=gemma, rms_offset=1.0 if gemma else 0.0, n_layer=cfg["num_hidden_layers"], n_head=H, n_embd=cfg["hidden_size"],
            vocab_size=cfg["vocab_size"], n_ctx=ctx,
            layer_norm_eps=cfg.get("rms_norm_eps", 1e-6), activation=act,
            tied_unembed=cfg.get("tie_word_embeddings", gemma),
            bias=False, n_inner=cfg["intermediate_size"], norm="rms", mlp="gated",
            n_kv_head=cfg.get("num_key_value_heads") or H, head_dim=cfg.get("head_dim"), qkv_bias=kind == "qwen2",
            rope_theta=rope["rope_theta"] if "rope_theta" in rope else cfg.get("rope_theta", 10000.0),
            rope_type=rope_type, **scaling, description=f"Hugging Face {kind} model {shown or name}",
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

    def gain(name):  # Gemma's RMSNorm multiplies by 1 + w: the graph's gain is that sum
        return keep(widen(get(name, (C,))) + np.float32(config.rms_offset))

    w = {"embed.W_E": keep(get("embed_tokens.weight", (V, C)))}
    heads = {"q": H, "k": G, "v": G}
    for i in range(config.n_layer):
        h, L = f"layers.{i}.", f"blocks.{i}."
        w[L + "ln1.w"] = gain(h + "input_layernorm.weight")
        w[L + "ln2.w"] = gain(h + "post_attention_layernorm.weight")
        for c, n in heads.items():
            W = get(h + f"self_attn.{c}_proj.weight", (n * A, C))  # [heads · A, C]
            w[L + f"attn.W_{c.upper()}"] = keep(W.reshape(n, A, C).transpose(0, 2, 1))
            if config.qkv_bias:
                w[L + f"attn.b_{c.upper()}"] = keep(get(h + f"self_attn.{c}_proj.bias", (n * A,)).reshape(n, A))
        w[L + "attn.W_O"] = keep(get(h + "self_attn.o_proj.weight", (C, H * A)).reshape(C, H, A).transpose(1, 2, 0))
        w[L + "mlp.W_gate"] = keep(get(h + "mlp.gate_proj.weight", (M, C)).T)
        w[L + "mlp.W_in"] = keep(get(h + "mlp.up_proj.weight", (M, C)).T)
        w[L + "mlp.W_out"] = keep(get(h + "mlp.down_proj.weight", (C, M)).T)
    w["ln_final.w"] = gain("norm.weight")
    if not config.tied_unembed:
        w["unembed.W_U"] = keep(get("lm_head.weight", (V, C)).T)
    return w
