"""Looking up vectors, and the residual stream's plumbing: token and position embeddings, the KV cache's
concatenation, the residual add and the identity that carries the stream into a layer."""

from __future__ import annotations

import numpy as np

from .base import Op


def embed(W_E, tokens):
    return W_E[tokens]


EMBED = Op(
    'embed', 'W_E[token]',
    "Look up each token's vector in the token-embedding matrix (in the view, its column).",
    embed)


def pos_embed(W_pos, tokens, offset=0):
    """The rows of the positions these tokens sit at: after `offset` cached positions."""
    return W_pos[offset: offset + len(tokens)]


POS_EMBED = Op(
    'pos_embed', 'W_pos[t]',
    "Look up each position's vector in the position-embedding matrix (in the view, its column).",
    pos_embed)


def concat(past, new):
    """The cache so far, then this step's rows: [past_pos + pos, ...]."""
    return np.concatenate([past, new], axis=0)


CONCAT = Op(
    'concat', '[past; new]',
    "The keys (or values) so far: the cache from earlier steps, then this step's.",
    concat)


def add(*xs):
    """The sum of two tensors (the residual connection: the stream plus what a branch computed from it), or of three
    (a parallel block: the stream plus attention's output plus the MLP's, both computed from the same stream)."""
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out += x
    return out


ADD = Op('add', 'a + b', 'Add tensors element by element (the residual connection).', add, symbol='+')


def identity(x):
    return x


IDENTITY = Op(
    'identity', 'x',
    "The same tensor, passed on: the previous layer's output is this layer's input.",
    identity)


def scale(x, factor, factor_name=""):
    return x * np.float32(factor)


SCALE = Op('scale', 'x × c', 'Multiply every number by one constant (Gemma scales its token embedding by √C).',
           scale)
