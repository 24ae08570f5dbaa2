"""A bigram model: the next token from the current one alone, by one table (the first step of the learning path, before
attention). Its graph is built from the ops every architecture uses, so hover, the scene and the backward pass need
nothing new:

    x = W_E[token]             # the current token as a vector; the bundled model's W_E is the identity: a one-hot
    logits = x · W_U           # so the logits are row `token` of W_U, the table [current token, next token]
    probs = softmax(logits)

With W_E the identity, W_U *is* the bigram table: W_U[a, b] is the score of b following a (for the bundled model, the
log of how often b follows a in the text, smoothed). Trained from random weights, both matrices learn (their product
is then the table). llmviz's own model: no Hugging Face model_type, no checkpoint names of its own.
"""

from __future__ import annotations

from ..config import ModelConfig
from ..scope import token_embedding, unembedding
from .base import own_model

NAME = "bigram"
MODEL_TYPES: tuple[str, ...] = ()
LEARNING_PATH = True  # a step of the learning path: its walkthrough is its own chapters (views/walkthrough.py)
NAMES = "bigram tables (llmviz's bigram-char)"


def param_parts(cfg: ModelConfig) -> dict[str, int]:
    """W_E and W_U (and W_U's bias, if any): all of it is the vocabulary's own matrices."""
    V, C = cfg.vocab_size, cfg.n_embd
    return {"embedding": V * C + (0 if cfg.tied_unembed else C * V) + (V if cfg.unembed_bias else 0),
            "attention": 0, "mlp": 0, "other": 0}


def build(g) -> None:
    embed, tokens, W_E = token_embedding(g)
    x = embed.op("hook_embed", ["pos", "d_model"], "embed", (W_E, tokens), "Token embedding: the current token's row",
                 label="token emb")
    unembedding(g, x, W_E)


config_from_hf, canonical, weights_from_state = own_model("a bigram table")
