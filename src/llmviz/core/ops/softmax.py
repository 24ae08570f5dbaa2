"""The softmax in three visible steps: each row's max, the sum of exponentials, and the probabilities."""

from __future__ import annotations

import numpy as np

from .base import Op
from .rows import by_rows, rowwise


def softmax_max(x):
    return x.max(-1)


def softmax_max_backward(g, out, x):
    """The gradient goes to each row's largest entry (the first, if several are)."""
    gx = np.zeros(x.shape, np.float32)
    np.put_along_axis(gx, x.argmax(-1)[..., None], g[..., None], -1)
    return (gx,)


SOFTMAX_MAX = Op(
    'softmax_max', 'm = max x',
    "Largest of the values being normalised (one query's scores, or one position's logits), subtracted for numerical safety.",
    softmax_max, backward=softmax_max_backward)


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


def softmax_sum_exp_backward(g, out, x, m):
    """∂s/∂x = exp(x − m) (0 for a masked score); ∂s/∂m = −s."""
    return g[..., None] * np.exp(x - m[..., None]), -g * out


SOFTMAX_SUM_EXP = Op(
    'softmax_sum_exp', 's = Σ exp(x − m)',
    'Sum of the exponentials of those values.',
    softmax_sum_exp, backward=softmax_sum_exp_backward)


@rowwise


def softmax(out, x, m, s):
    """exp(x − m) / s along each row: m is the row's max, s the sum of its exponentials."""
    np.subtract(x, m, out=out)
    np.exp(out, out=out)
    out /= s


def softmax_backward(g, out, x, m, s):
    """p = exp(x − m) / s: ∂p/∂x = p, ∂p/∂m = −p, ∂p/∂s = −p / s (each element's own; the row's sums meet in m and s,
    whose paths back to x make the usual p · (g − Σ p g))."""
    gp = g * out
    return gp, -gp.sum(-1), -gp.sum(-1) / s


SOFTMAX = Op(
    'softmax', 'exp(x − m) / s',
    "Turn one query's scores (a row of the pattern), or one position's logits (a column of the probabilities), into probabilities that sum to 1.",
    softmax, plain=(
        'm = x.max(-1, keepdims=True)  # x: one row of scores or logits\n'
        'e = np.exp(x - m)\n'
        'p = e / e.sum(-1, keepdims=True)'), backward=softmax_backward)
