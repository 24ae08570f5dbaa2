"""An attention-only transformer: one layer of attention and nothing else (no MLP, no LayerNorm), the step of the
learning path where Q, K, V and the causal mask are seen working alone:

    x = W_E[token] + W_pos[position]     # the residual stream
    x = x + attention(x)                 # each head: softmax(q · k / √A, masked) · v, then W_O
    logits = x · W_U

Its attention is GPT-2's (gpt2.attention: the same tensors, names and labels, blocks.L.attn.hook_pattern ...). Without
LayerNorm every number of the stream is the sum of what was added to it. llmviz's own model: no Hugging Face
model_type, no checkpoint names of its own.
"""

from __future__ import annotations

from ..config import ModelConfig
from ..scope import Scope, token_embedding, unembedding
from .base import own_model
from .gpt2 import attention

NAME = "attn-only"
MODEL_TYPES: tuple[str, ...] = ()
LEARNING_PATH = True  # a step of the learning path: its walkthrough is its own chapters (views/walkthrough.py)
NAMES = "attention-only transformers (llmviz's attention-toy)"


def param_parts(cfg: ModelConfig) -> dict[str, int]:
    """W_E, W_pos and an untied W_U as embedding; each layer's Q, K, V, O with their biases as attention."""
    C, V, N = cfg.n_embd, cfg.vocab_size, cfg.n_ctx
    b = 1 if cfg.bias else 0
    unembed = (0 if cfg.tied_unembed else C * V) + (V if cfg.unembed_bias else 0)
    return {"embedding": V * C + N * C + unembed,
            "attention": cfg.n_layer * (C * 3 * C + b * 3 * C + C * C + b * C), "mlp": 0, "other": 0}


def build(g) -> None:
    embed, tokens, W_E = token_embedding(g)
    W_pos = embed.weight("pos_embed.W_pos", ["n_ctx", "d_model"], "Position embedding matrix", label="W_pos")
    e = embed.op("hook_embed", ["pos", "d_model"], "embed", (W_E, tokens), "Token embedding", label="token emb")
    p = embed.op("hook_pos_embed", ["pos", "d_model"], "pos_embed", (W_pos, tokens), "Position embedding",
                 label="pos emb", offset=g.past)
    x = ""
    for i in range(g.config.n_layer):
        blk = Scope(g, f"blocks.{i}", layer=i)
        x = blk.residual("hook_resid_pre", (e, p), f"Residual stream into layer {i}") if i == 0 else blk.carry(x, i)
        x = blk.residual("hook_resid_post", (x, attention(blk, i, x)), f"Residual stream after layer {i}")
    unembedding(g, x, W_E)


config_from_hf, canonical, weights_from_state = own_model("an attention-only model")
