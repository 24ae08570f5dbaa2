"""The numpy implementation of every op the model graph names (see graph.OPS).

Each op takes its input arrays in the graph's order plus the graph's attributes
and returns one float32 array whose axes are the ones the graph declares.
"""

from __future__ import annotations

import numpy as np

GELU_C = np.float32(np.sqrt(2.0 / np.pi))


def embed(W_E, tokens):
    return W_E[tokens]


def pos_embed(W_pos, tokens):
    return W_pos[: len(tokens)]


def add(a, b):
    return a + b


def identity(x):
    return x


def ln_mean(x):
    return x.mean(-1)


def ln_scale(x, mean, eps):
    centred = x - mean[..., None]
    return np.sqrt((centred * centred).mean(-1) + np.float32(eps))


def ln_normalize(x, mean, scale):
    return (x - mean[..., None]) / scale[..., None]


def ln_affine(normalized, w, b):
    return normalized * w + b


def linear(x, W, b=None, *, contract, x_dims, w_dims):
    """b + x · W, summing over the axes named in `contract` (at x_dims in x, w_dims in W).

    The result's axes are x's remaining axes followed by W's remaining axes.
    """
    out = np.tensordot(x, W, axes=(x_dims, w_dims))
    return out if b is None else out + b


def attn_scores(q, k, scale):
    """[pos, head, d_head] x [key_pos, head, d_head] -> [head, pos, key_pos], future keys = -inf."""
    s = np.matmul(q.transpose(1, 0, 2), k.transpose(1, 2, 0)) / np.float32(scale)
    n = s.shape[-1]
    future = np.triu(np.ones((n, n), dtype=bool), 1)
    s[:, future] = -np.inf
    return s


def softmax_max(x):
    return x.max(-1)


def softmax_sum_exp(x, m):
    return np.exp(x - m[..., None]).sum(-1)


def softmax(x, m, s):
    return np.exp(x - m[..., None]) / s[..., None]


def weighted_sum(pattern, v):
    """[head, pos, key_pos] x [key_pos, head, d_head] -> [pos, head, d_head]."""
    return np.matmul(pattern, v.transpose(1, 0, 2)).transpose(1, 0, 2)


def gelu(x, activation="gelu_new"):
    if activation in ("gelu_new", "gelu_pytorch_tanh"):
        return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(GELU_C * (x + np.float32(0.044715) * x * x * x)))
    raise ValueError(f"unsupported activation {activation!r}")


OPS = {
    f.__name__: f
    for f in (embed, pos_embed, add, identity, ln_mean, ln_scale, ln_normalize, ln_affine, linear,
              attn_scores, softmax_max, softmax_sum_exp, softmax, weighted_sum, gelu)
}
