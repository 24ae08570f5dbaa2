"""GPT-2 (and the nanoGPT and minGPT models that share its design): its graph, its parameter count, its Hugging
Face config and its checkpoints' weight names, in one place (see base.Architecture).

    x = x + attn(ln_1(x))      # a block, as nanoGPT's Block.forward reads
    x = x + mlp(ln_2(x))

Checkpoints of all three name their tensors alike (`wte.weight`, `h.0.attn.c_attn.weight`, `ln_f.weight`,
`lm_head.weight`, possibly behind `transformer.` or nanoGPT's `_orig_mod.`); they differ in layout: Hugging
Face's Conv1D stores matrices [in, out], torch's nn.Linear [out, in].
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ...io.convert import check_shape, kept, reader
from ..config import ModelConfig, explain
from ..errors import BadModelFile
from ..ops.activations import mlp
from ..ops.norm import layer_norm
from ..scope import Scope, token_embedding, unembedding

NAME = "gpt2"
MODEL_TYPES = ("gpt2",)
NAMES = "GPT-2-architecture models (Hugging Face model_type 'gpt2', e.g. gpt2, distilgpt2) and nanoGPT/minGPT checkpoints"


# ---- The parameters ----

def param_parts(cfg: ModelConfig) -> dict[str, int]:
    """The learned parameters by part (ModelConfig.param_parts): W_E and W_pos (and an untied W_U with its bias)
    as embedding; each layer's attention and MLP with their biases; two LayerNorms a layer and the final one."""
    C, V, N, M = cfg.n_embd, cfg.vocab_size, cfg.n_ctx, cfg.d_mlp
    b = 1 if cfg.bias else 0
    ln = C + b * C
    unembed = (0 if cfg.tied_unembed else C * V) + (V if cfg.unembed_bias else 0)
    return {"embedding": V * C + N * C + unembed,
            "attention": cfg.n_layer * (C * 3 * C + b * 3 * C + C * C + b * C),
            "mlp": cfg.n_layer * (C * M + b * M + M * C + b * C),
            "other": cfg.n_layer * 2 * ln + ln}


# ---- The graph ----

def build(g) -> None:
    cfg = g.config
    embed, tokens, W_E = token_embedding(g)
    W_pos = embed.weight("pos_embed.W_pos", ["n_ctx", "d_model"], "Position embedding matrix", label="W_pos")
    e = embed.op("hook_embed", ["pos", "d_model"], "embed", (W_E, tokens), "Token embedding", label="token emb")
    p = embed.op("hook_pos_embed", ["pos", "d_model"], "pos_embed", (W_pos, tokens), "Position embedding",
                 label="pos emb", offset=g.past)
    x = ""  # the stream into each layer: into layer 0, the two embeddings added
    for i in range(cfg.n_layer):
        blk = Scope(g, f"blocks.{i}", layer=i)
        x = blk.residual("hook_resid_pre", (e, p), f"Residual stream into layer {i}") if i == 0 else blk.carry(x, i)
        x = block(blk, i, x)
    unembedding(g, layer_norm(Scope(g), "ln_final", x, "Final LayerNorm"), W_E)


def block(blk: Scope, i: int, x: str) -> str:
    """x + attention(LayerNorm 1(x)), then + MLP(LayerNorm 2(·))."""
    mid = blk.residual("hook_resid_mid", (x, attention(blk, i, layer_norm(blk, "ln1", x, f"LayerNorm 1, layer {i}"))),
                       f"Residual stream after attention, layer {i}")
    return blk.residual("hook_resid_post", (mid, mlp(blk, i, layer_norm(blk, "ln2", mid, f"LayerNorm 2, layer {i}"))),
                        f"Residual stream after layer {i}")


def attention(blk: Scope, i: int, x: str) -> str:
    """Causal self-attention: per head, softmax(q · k / √A) · v, then the output projection."""
    at, g = blk.sub("attn"), blk.g
    qkv = {}
    for c, plain in (("Q", "Query"), ("K", "Key"), ("V", "Value")):
        W = at.weight(f"W_{c}", ["head", "d_model", "d_head"], f"{plain} weight, layer {i}", label=f"W_{c}")
        b = at.bias(f"b_{c}", ["head", "d_head"], f"{plain} bias, layer {i}", label=f"b_{c}")
        qkv[c] = at.linear(f"hook_{c.lower()}", x, W, b, f"{plain} vector, layer {i}", label=c)
    qkv["K"], qkv["V"] = at.kv_cache(qkv["K"], qkv["V"], "head", i)  # with a KV cache: the cached ones, then these
    scores = at.op("hook_attn_scores", ["head", "pos", "key_pos"], "attn_scores", (qkv["Q"], qkv["K"]),
                   f"Attention scores, layer {i}", label="scores", scale=g.config.attn_scale(i))
    pattern = at.softmax("hook_pattern", scores, f"Attention pattern, layer {i}", label="softmax")
    z = at.op("hook_z", ["pos", "head", "d_head"], "weighted_sum", (pattern, qkv["V"]),
              f"Attention output per head, layer {i}", label="z")
    W_O = at.weight("W_O", ["head", "d_head", "d_model"], f"Output projection weight, layer {i}", label="W_O")
    b_O = at.bias("b_O", ["d_model"], f"Output projection bias, layer {i}", label="b_O")
    return at.linear(blk.name("hook_attn_out"), z, W_O, b_O, f"Attention output, layer {i}", label="attn out")



# ---- Hugging Face's config.json ----

def config_from_hf(cfg: dict, name: str, source, shown: str = "") -> ModelConfig:
    try:
        return ModelConfig(
            name, n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"], vocab_size=cfg["vocab_size"],
            n_ctx=cfg.get("n_positions", cfg.get("n_ctx", 1024)), layer_norm_eps=cfg.get("layer_norm_epsilon", 1e-5),
            activation=cfg.get("activation_function", "gelu_new"), tied_unembed=cfg.get("tie_word_embeddings", True),
            n_inner=cfg.get("n_inner"), scale_attn_weights=cfg.get("scale_attn_weights", True),
            scale_attn_by_inverse_layer_idx=cfg.get("scale_attn_by_inverse_layer_idx", False),
            description=f"Hugging Face GPT-2 model {shown or name}",
        )
    except KeyError as e:
        raise BadModelFile(f"{source}: config.json lacks {e.args[0]!r}") from None
    except ValueError as e:
        names = {"n_ctx": "n_positions" if "n_positions" in cfg else "n_ctx", "tied_unembed": "tie_word_embeddings"}
        raise BadModelFile(f"{source}: {explain(e, names)}") from None


# ---- Checkpoint weight names -> the graph's weights ----

def canonical(name: str) -> str:
    """`_orig_mod.transformer.h.0.ln_1.weight` -> `h.0.ln_1.weight`."""
    for prefix in ("_orig_mod.", "module.", "transformer."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def canonical_state(state: Mapping) -> dict:
    return {canonical(k): v for k, v in state.items()}


def weights_from_state(state: Mapping[str, np.ndarray], config: ModelConfig, source: str = "", dtype: str = "float32",
                       layout: str = "conv1d") -> dict[str, np.ndarray]:
    """Convert a state dict with canonical names to graph weights, checking each tensor's presence and shape.

    `state` may read lazily (see huggingface.LazyState), one tensor at a time, so that loading never
    holds two copies of the model. layout: "conv1d" (matrices stored [in, out], as Hugging Face's GPT-2) or
    "linear" ([out, in], as nanoGPT's and minGPT's).
    A tied unembedding is not read: the graph says whose numbers it holds (see model.tie).
    """
    names = set(state.keys())
    check_shape(config, len({m.group(1) for k in names if (m := re.match(r"h\.(\d+)\.", k))}), dtype, source)
    C, H, A, M, V, N = config.n_embd, config.n_head, config.d_head, config.d_mlp, config.vocab_size, config.n_ctx
    matrices = {"attn.c_attn.weight": (C, 3 * C), "attn.c_proj.weight": (C, C),
                "mlp.c_fc.weight": (C, M), "mlp.c_proj.weight": (M, C)}
    biases = {"ln_1.bias": (C,), "ln_2.bias": (C,), "attn.c_attn.bias": (3 * C,), "attn.c_proj.bias": (C,),
              "mlp.c_fc.bias": (M,), "mlp.c_proj.bias": (C,)}
    expected = {"wte.weight": (V, C), "wpe.weight": (N, C), "ln_f.weight": (C,)}
    if config.bias:
        expected["ln_f.bias"] = (C,)
    if not config.tied_unembed:
        expected["lm_head.weight"] = (V, C)  # an nn.Linear in every layout
    for i in range(config.n_layer):
        expected.update({f"h.{i}.ln_1.weight": (C,), f"h.{i}.ln_2.weight": (C,)})
        expected.update({f"h.{i}.{k}": s if layout == "conv1d" else s[::-1] for k, s in matrices.items()})
        if config.bias:
            expected.update({f"h.{i}.{k}": s for k, s in biases.items()})

    for name in expected:
        if name not in names:
            raise BadModelFile(f"{source}: tensor {name!r} is missing")

    read = reader(state, dtype, source)

    def get(name: str) -> np.ndarray:
        a = read(name, expected[name])
        return a.T if (layout == "linear" and name.split(".", 2)[-1] in matrices) else a

    def keep(a):
        return kept(a, dtype)

    w = {"embed.W_E": keep(get("wte.weight")), "pos_embed.W_pos": keep(get("wpe.weight"))}
    for i in range(config.n_layer):
        h, L = f"h.{i}.", f"blocks.{i}."
        for src, dst in (("ln_1", "ln1"), ("ln_2", "ln2")):
            w[L + dst + ".w"] = keep(get(h + src + ".weight"))
            if config.bias:
                w[L + dst + ".b"] = keep(get(h + src + ".bias"))
        qkv = get(h + "attn.c_attn.weight")
        qkv_b = get(h + "attn.c_attn.bias") if config.bias else None
        for j, c in enumerate("QKV"):
            # Stored [d_model, head, d_head] contiguous, seen as [head, d_model, d_head]: matmuls read it in place.
            w[L + f"attn.W_{c}"] = keep(qkv[:, j * C:(j + 1) * C]).reshape(C, H, A).transpose(1, 0, 2)
            if qkv_b is not None:
                w[L + f"attn.b_{c}"] = keep(qkv_b[j * C:(j + 1) * C].reshape(H, A))
        del qkv
        w[L + "attn.W_O"] = keep(get(h + "attn.c_proj.weight")).reshape(H, A, C)
        w[L + "mlp.W_in"] = keep(get(h + "mlp.c_fc.weight"))
        w[L + "mlp.W_out"] = keep(get(h + "mlp.c_proj.weight"))
        if config.bias:
            w[L + "attn.b_O"] = keep(get(h + "attn.c_proj.bias"))
            w[L + "mlp.b_in"] = keep(get(h + "mlp.c_fc.bias"))
            w[L + "mlp.b_out"] = keep(get(h + "mlp.c_proj.bias"))
    w["ln_final.w"] = keep(get("ln_f.weight"))
    if config.bias:
        w["ln_final.b"] = keep(get("ln_f.bias"))
    if not config.tied_unembed:
        w["unembed.W_U"] = keep(get("lm_head.weight")).T
    return w
