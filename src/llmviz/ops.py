"""The numpy implementation of every op the model graph names (see graph.OPS).

Each op takes its input arrays in the graph's order plus the graph's attributes
and returns one float32 array whose axes are the ones the graph declares.
"""

from __future__ import annotations

import numpy as np

GELU_C = np.float32(np.sqrt(2.0 / np.pi))


def embed(W_E, tokens):
    return W_E[tokens]


def pos_embed(W_pos, tokens, offset=0):
    """The rows of the positions these tokens sit at: after `offset` cached positions."""
    return W_pos[offset: offset + len(tokens)]


def concat(past, new):
    """The cache so far, then this step's rows: [past_pos + pos, ...]."""
    return np.concatenate([past, new], axis=0)


def add(a, b):
    return a + b


def identity(x):
    return x


def ln_mean(x):
    """Accumulated in float64, then rounded: a mean near zero is a sum that cancels, and float32
    accumulation would leave it off in the fourth digit from the value its formula shows."""
    return x.mean(-1, dtype=np.float64).astype(np.float32)


def ln_scale(x, mean, eps):
    centred = x - mean[..., None]
    return np.sqrt((centred * centred).mean(-1, dtype=np.float64) + eps).astype(np.float32)


def ln_normalize(x, mean, scale):
    return (x - mean[..., None]) / scale[..., None]


def ln_affine(normalized, w, b=None):
    out = normalized * w
    if b is not None:
        out += b
    return out


def linear(x, W, b=None, *, contract, x_dims, w_dims):
    """b + x · W, summing over the axes named in `contract` (at x_dims in x, w_dims in W).

    The result's axes are x's remaining axes followed by W's remaining axes.
    """
    out = np.tensordot(x, W, axes=(x_dims, w_dims))
    if b is not None:
        out += b
    return out


def attn_scores(q, k, scale):
    """[pos, head, d_head] x [key_pos, head, d_head] -> [head, pos, key_pos], future keys = -inf. With a KV
    cache there are more keys than queries: the queries are the last positions, so query i sits at key
    position i + (keys - queries)."""
    qh = np.ascontiguousarray(q.transpose(1, 0, 2))  # contiguous per head: matmul then uses BLAS
    kh = np.ascontiguousarray(k.transpose(1, 2, 0))
    s = np.matmul(qh, kh)
    s /= np.float32(scale)
    tq, tk = s.shape[-2:]
    s += np.triu(np.full((tq, tk), -np.inf, np.float32), 1 + tk - tq)  # -inf after each query's own position
    return s


def softmax_max(x):
    return x.max(-1)


def _row_blocks(x, m):
    """Rows of x (last axis) with their row max, in blocks of about 256 KB: the exp of a
    vocabulary-sized softmax is made block by block, never as one full-size temporary."""
    n = x.shape[-1]
    rows, mrows = x.reshape(-1, n), m.reshape(-1)
    step = max(1, (1 << 16) // n)
    for i in range(0, len(rows), step):
        yield slice(i, i + step), rows[i:i + step], mrows[i:i + step, None]


def softmax_sum_exp(x, m):
    out = np.empty(m.size, np.float32)
    for rows, xb, mb in _row_blocks(x, m):
        e = np.subtract(xb, mb)
        np.exp(e, out=e)
        e.sum(-1, out=out[rows])
    return out.reshape(m.shape)


def softmax(x, m, s):
    out = np.empty(x.shape, np.float32)
    flat, inv = out.reshape(-1, x.shape[-1]), (np.float32(1) / s).reshape(-1, 1)
    for rows, xb, mb in _row_blocks(x, m):
        e = flat[rows]
        np.subtract(xb, mb, out=e)
        np.exp(e, out=e)
        e *= inv[rows]
    return out


def weighted_sum(pattern, v):
    """[head, pos, key_pos] x [key_pos, head, d_head] -> [pos, head, d_head]."""
    z = np.matmul(pattern, np.ascontiguousarray(v.transpose(1, 0, 2)))
    return np.ascontiguousarray(z.transpose(1, 0, 2))


def gelu(x):
    """GPT-2's GELU, tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), computed in place."""
    y = x * x
    y *= np.float32(0.044715)
    y += np.float32(1.0)
    y *= x
    y *= GELU_C
    np.tanh(y, out=y)
    y += np.float32(1.0)
    y *= x
    y *= np.float32(0.5)
    return y


def gelu_erf(x):
    """Exact GELU, 0.5 x (1 + erf(x / √2)), in float64 then rounded to float32."""
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + _erf(x64 / np.sqrt(2.0)))).astype(np.float32)


def _erf(x):
    # erf = 1 - erfc, with Numerical Recipes' Chebyshev fit of erfc (relative error < 1.2e-7).
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def relu(x):
    return np.maximum(x, np.float32(0))


def silu(x):
    return x / (np.float32(1) + np.exp(-x))


OPS = {
    f.__name__: f
    for f in (embed, pos_embed, concat, add, identity, ln_mean, ln_scale, ln_normalize, ln_affine, linear,
              attn_scores, softmax_max, softmax_sum_exp, softmax, weighted_sum, gelu, gelu_erf, relu, silu)
}
