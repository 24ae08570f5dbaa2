"""The softmax in three visible steps: each row's max, the sum of exponentials, and the probabilities."""

from __future__ import annotations

import numpy as np

from .base import Op, at_cells, cells_along, fmt, local, paren
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
    softmax_max, backward=softmax_max_backward, chain=lambda k, at, g, out, x: softmax_max_chain(at, g, x))


def softmax_max_chain(at, g, x):
    """The max moves with the row's largest number (the first, if several are) and with no other."""
    row = at[:-1]
    top = int(np.argmax(x[row]))
    if at[-1] != top:
        return local("g if x is the row's max, else 0", np.zeros((0, len(row))), [], [],
                     text=lambda v: f"0: not the row's largest (that is at {top})")
    return local("g if x is the row's max, else 0", np.array([row]), g[row], 1.0, text=lambda v: f"{fmt(v)} (× 1: the max)")


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
    softmax_sum_exp, backward=softmax_sum_exp_backward, chain=lambda k, at, g, out, x, m: softmax_sum_exp_chain(
        k, at, g, out, x, m))


def softmax_sum_exp_chain(k, at, g, out, x, m):
    """x's number: ∂s/∂x = exp(x − m); m: ∂s/∂m = −s."""
    row = at[:-1] if k == 0 else at
    if k == 0:
        e = np.exp(np.float64(x[at]) - np.float64(m[row]))
        return local("g · exp(x − m)", np.array([row]), g[row], e, rows=[("x", x[at]), ("m", m[row])])
    return local("−g · s", np.array([row]), g[row], -np.float64(out[row]), rows=[("s", out[row])])


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
        'p = e / e.sum(-1, keepdims=True)'), backward=softmax_backward, chain=lambda k, at, g, out, x, m, s:
    softmax_chain(k, at, g, out, s), chain_whole=lambda at, g, out, x, m, s: softmax_whole(at, g, out))


def softmax_chain(k, at, g, out, s):
    """x's number: ∂p/∂x = p (m and s held); m: each p of the row moves by −p; s: by −p / s."""
    if k == 0:
        return local("g · p", np.array([at]), g[at], out[at], rows=[("p", out[at])])
    cells = cells_along(out.shape, dict(enumerate(at)))
    cells = cells[at_cells(out, cells) > 0]  # (a masked p is 0 whatever m and s are)
    p = at_cells(out, cells).astype(np.float64)
    if k == 1:
        return local("−Σ g · p", cells, at_cells(g, cells), -p)
    return local("−Σ g · p / s", cells, at_cells(g, cells), -p / np.float64(s[at]), rows=[("s", s[at])])


def softmax_whole(at, g, out):
    """x's number through m, s and p at once (the softmax's backward): p · (g − Σ p·g), the sum over the row; term by
    term, ∂p_j/∂x_i = p_j (δ_ij − p_i)."""
    row, i = at[:-1], at[-1]
    p, gr = out[row].astype(np.float64), g[row].astype(np.float64)
    d = -p * p[i]
    d[i] += p[i]
    pg = float(p @ gr)
    live = p > 0  # (a masked p is 0 whatever x is)
    cells = cells_along(out.shape, dict(enumerate(row)))[live]
    return local("p · (g − Σ p·g)", cells, gr[live], d[live], rows=[("p", p[i]), ("g", gr[i]), ("Σ p·g", pg)],
                 text=lambda v: f"{fmt(p[i])} × ({fmt(gr[i])} − {paren(pg)}) = {fmt(v)}" + (
                     ": p = 0 (a masked key), so no gradient" if p[i] == 0 else ""))
