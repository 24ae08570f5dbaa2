"""The numpy implementation of every op the model graph names (see graph.OPS).

Each op takes its input arrays in the graph's order plus the graph's attributes
and returns one float32 array whose axes are the ones the graph declares.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

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
    tq, tk = s.shape[-2:]
    keys = np.arange(tk)

    def scale_and_mask(rows):
        block = s[:, rows]
        block /= np.float32(scale)
        future = keys > np.arange(rows.start, rows.stop)[:, None] + (tk - tq)  # after each query's own position
        np.copyto(block, -np.inf, where=future)

    by_rows(scale_and_mask, tq, s.size)
    return s


def softmax_max(x):
    return x.max(-1)


# Element-wise work on a large array runs in row blocks on every core, as BLAS does for the matmuls (numpy
# releases the GIL inside its loops). The result is the same numbers whichever thread computes a block.
_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="llmviz-ops")
_PARALLEL_FROM = 1 << 20  # elements: below this, one thread is quicker than handing work out


def by_rows(work, n_rows: int, size: int) -> None:
    """Call work(slice) over row blocks that cover range(n_rows): in parallel for a large array. Each block
    is about 256 KB, so temporaries stay small."""
    step = max(1, (1 << 16) * n_rows // max(size, 1))
    blocks = [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]
    if size < _PARALLEL_FROM or _POOL._max_workers == 1:
        for b in blocks:
            work(b)
        return
    chunk = -(-len(blocks) // _POOL._max_workers)
    for f in [_POOL.submit(lambda bs: [work(b) for b in bs], blocks[i:i + chunk])
              for i in range(0, len(blocks), chunk)]:
        f.result()


def rowwise(op):
    """An element-wise op computed row block by row block (a row: the last axis), on every core for a large
    array. op(out, x, *per_row) writes the rows of x it is given into out; per_row inputs hold one number per
    row (a row's max, its sum)."""
    @functools.wraps(op)
    def run(x, *per_row):
        n = x.shape[-1]
        out = np.empty(x.shape, np.float32)
        rows, flat, cols = x.reshape(-1, n), out.reshape(-1, n), [r.reshape(-1, 1) for r in per_row]
        by_rows(lambda b: op(flat[b], rows[b], *(c[b] for c in cols)), len(rows), x.size)
        return out
    return run


def softmax_sum_exp(x, m):
    """Row by row, in blocks: the exp of a vocabulary-sized softmax is never one full-size temporary."""
    n = x.shape[-1]
    rows, mrows, out = x.reshape(-1, n), m.reshape(-1, 1), np.empty(m.size, np.float32)

    def work(b):
        e = np.subtract(rows[b], mrows[b])
        np.exp(e, out=e)
        e.sum(-1, out=out[b])

    by_rows(work, len(rows), x.size)
    return out.reshape(m.shape)


@rowwise
def softmax(out, x, m, s):
    """exp(x − m) / s along each row: m is the row's max, s the sum of its exponentials."""
    np.subtract(x, m, out=out)
    np.exp(out, out=out)
    out /= s


def weighted_sum(pattern, v):
    """[head, pos, key_pos] x [key_pos, head, d_head] -> [pos, head, d_head]."""
    z = np.matmul(pattern, np.ascontiguousarray(v.transpose(1, 0, 2)))
    return np.ascontiguousarray(z.transpose(1, 0, 2))


@rowwise
def gelu(out, x):
    """GPT-2's GELU, tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))."""
    np.multiply(x, x, out=out)
    out *= np.float32(0.044715)
    out += np.float32(1.0)
    out *= x
    out *= GELU_C
    np.tanh(out, out=out)
    out += np.float32(1.0)
    out *= x
    out *= np.float32(0.5)


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
