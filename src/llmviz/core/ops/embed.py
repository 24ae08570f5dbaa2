"""Looking up vectors, and the residual stream's plumbing: token and position embeddings, the KV cache's
concatenation, the residual add and the identity that carries the stream into a layer."""

from __future__ import annotations

import numpy as np

from ..weights import widen
from .base import Op, at_cells, cells_along, fmt, local, passed_on, unbroadcast


def embed(W_E, tokens):
    """The tokens' rows (of a weight stored narrower than float32: just these rows widened)."""
    return widen(W_E[tokens])


def embed_backward(g, out, W_E, tokens):
    """Each token's row of W_E gets the gradients of every position that looked it up, added."""
    gW = np.zeros(W_E.shape, np.float32)
    np.add.at(gW, tokens, g)
    return gW, None


def embed_chain(k, at, g, out, W_E, tokens):
    """W_E[v, c] is copied to every position that holds token v: the gradients there, added (none: not in the input)."""
    cells = np.array([(p, at[1]) for p in np.flatnonzero(np.asarray(tokens) == at[0])], np.int64).reshape(-1, 2)
    return local("Σ g over the positions that hold this token", cells, at_cells(g, cells), 1.0,
                 text=lambda v: fmt(v) if len(cells) else "0: no position of the input holds this token")


EMBED = Op(
    'embed', 'W_E[token]',
    "Look up each token's vector in the token-embedding matrix (in the view, its column).",
    embed, backward=embed_backward, chain=embed_chain)


def pos_embed(W_pos, tokens, offset=0):
    """The rows of the positions these tokens sit at: after `offset` cached positions (tokens: [pos], or a batch's
    [batch, pos], whose examples share them)."""
    return W_pos[offset: offset + np.shape(tokens)[-1]]


def pos_embed_backward(g, out, W_pos, tokens, offset=0):
    gW = np.zeros(W_pos.shape, np.float32)
    gW[offset: offset + np.shape(tokens)[-1]] = g.reshape(-1, *g.shape[-2:]).sum(0)
    return gW, None


def pos_embed_chain(k, at, g, out, W_pos, tokens, offset=0):
    """W_pos[n, c] is copied to position n (after `offset` cached ones), if the input reaches it."""
    p = at[0] - offset
    cells = np.array([(p, at[1])] if 0 <= p < out.shape[0] else [], np.int64).reshape(-1, 2)
    return local("g at this position", cells, at_cells(g, cells), 1.0,
                 text=lambda v: f"{fmt(v)} (× 1)" if len(cells) else "0: the input does not reach this position")


POS_EMBED = Op(
    'pos_embed', 'W_pos[t]',
    "Look up each position's vector in the position-embedding matrix (in the view, its column).",
    pos_embed, backward=pos_embed_backward, chain=pos_embed_chain)


def concat(past, new):
    """The cache so far, then this step's rows: [past_pos + pos, ...]."""
    return np.concatenate([past, new], axis=0)


CONCAT = Op(
    'concat', '[past; new]',
    "The keys (or values) so far: the cache from earlier steps, then this step's.",
    concat, backward=lambda g, out, past, new: (g[:len(past)], g[len(past):]), chain=lambda k, at, g, out, past, new:
    passed_on(0, (at[0] + (len(past) if k else 0), *at[1:]), g, out, out))  # (its cell of the result)


def add(*xs):
    """The sum of two tensors (the residual connection: the stream plus what a branch computed from it), or of three
    (a parallel block: the stream plus attention's output plus the MLP's, both computed from the same stream)."""
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out += x
    return out


ADD = Op('add', 'a + b', 'Add tensors element by element (the residual connection).', add, symbol='+',
         backward=lambda g, out, *xs: tuple(unbroadcast(g, x.shape) for x in xs), chain=passed_on)


def identity(x):
    return x


IDENTITY = Op(
    'identity', 'x',
    "The same tensor, passed on: the previous layer's output is this layer's input.",
    identity, backward=lambda g, out, x: (g,), chain=passed_on)


def scale(x, factor, factor_name=""):
    return x * np.float32(factor)


SCALE = Op('scale', 'x × c', 'Multiply every number by one constant (Gemma scales its token embedding by √C).',
           scale, backward=lambda g, out, x, factor, factor_name="": (g * np.float32(factor),),
           chain=lambda k, at, g, out, x, factor, factor_name="": local(
               f"g · {factor_name or 'c'}", cells_along(out.shape, dict(enumerate(at))), g[at], np.float32(factor)))
