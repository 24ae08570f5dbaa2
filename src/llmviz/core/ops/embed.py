"""Looking up vectors, and the residual stream's plumbing: token and position embeddings, the KV cache's
concatenation, the residual add and the identity that carries the stream into a layer."""

from __future__ import annotations

import numpy as np

from .base import Op, unbroadcast


def embed(W_E, tokens):
    return W_E[tokens]


def embed_backward(g, out, W_E, tokens):
    """Each token's row of W_E gets the gradients of every position that looked it up, added."""
    gW = np.zeros(W_E.shape, np.float32)
    np.add.at(gW, tokens, g)
    return gW, None


EMBED = Op(
    'embed', 'W_E[token]',
    "Look up each token's vector in the token-embedding matrix (in the view, its column).",
    embed, backward=embed_backward)


def pos_embed(W_pos, tokens, offset=0):
    """The rows of the positions these tokens sit at: after `offset` cached positions (tokens: [pos], or a batch's
    [batch, pos], whose examples share them)."""
    return W_pos[offset: offset + np.shape(tokens)[-1]]


def pos_embed_backward(g, out, W_pos, tokens, offset=0):
    gW = np.zeros(W_pos.shape, np.float32)
    gW[offset: offset + np.shape(tokens)[-1]] = g.reshape(-1, *g.shape[-2:]).sum(0)
    return gW, None


POS_EMBED = Op(
    'pos_embed', 'W_pos[t]',
    "Look up each position's vector in the position-embedding matrix (in the view, its column).",
    pos_embed, backward=pos_embed_backward)


def concat(past, new):
    """The cache so far, then this step's rows: [past_pos + pos, ...]."""
    return np.concatenate([past, new], axis=0)


CONCAT = Op(
    'concat', '[past; new]',
    "The keys (or values) so far: the cache from earlier steps, then this step's.",
    concat, backward=lambda g, out, past, new: (g[:len(past)], g[len(past):]))


def add(*xs):
    """The sum of two tensors (the residual connection: the stream plus what a branch computed from it), or of three
    (a parallel block: the stream plus attention's output plus the MLP's, both computed from the same stream)."""
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out += x
    return out


ADD = Op('add', 'a + b', 'Add tensors element by element (the residual connection).', add, symbol='+',
         backward=lambda g, out, *xs: tuple(unbroadcast(g, x.shape) for x in xs))


def identity(x):
    return x


IDENTITY = Op(
    'identity', 'x',
    "The same tensor, passed on: the previous layer's output is this layer's input.",
    identity, backward=lambda g, out, x: (g,))


def scale(x, factor, factor_name=""):
    return x * np.float32(factor)


SCALE = Op('scale', 'x × c', 'Multiply every number by one constant (Gemma scales its token embedding by √C).',
           scale, backward=lambda g, out, x, factor, factor_name="": (g * np.float32(factor),))
