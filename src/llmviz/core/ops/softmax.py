"""The softmax in three visible steps: each row's max, the sum of exponentials, and the probabilities."""

from __future__ import annotations

import math

import numpy as np

from ..axes import AXES
from .base import Op, fmt, region, row_of
from .rows import by_rows, rowwise


def softmax_max(x):
    return x.max(-1)


def explain_softmax_max(trace, t, at, value):
    x_name, row_at, row = row_of(trace, t, at)
    finite = row[np.isfinite(row)]
    j = int(np.argmax(np.where(np.isfinite(row), row, -np.inf)))
    result = float(finite.max())
    return {"text": f"max of {finite.size} values = {fmt(result)} (at {AXES[trace.graph[x_name].axes[-1]][0]} = {j})",
            "result": result, "rows": [], "sources": [region(trace, x_name, row_at, "input")]}


SOFTMAX_MAX = Op(
    'softmax_max', 'm = max x',
    "Largest of the values being normalised (one query's scores, or one position's logits), subtracted for numerical safety.",
    softmax_max, explain_softmax_max)


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


def explain_softmax_sum_exp(trace, t, at, value):
    x_name, row_at, row = row_of(trace, t, at)
    m = float(trace[t.inputs[1]][tuple(row_at.values())])
    e = np.exp(row - m)
    result = float(e.sum())
    return {"text": f"Σ exp(x − {fmt(m)}) over {row.size} values = {fmt(result)}", "result": result,
            "rows": [["m (row max)", fmt(m)]],
            "sources": [region(trace, x_name, row_at, "input"), region(trace, t.inputs[1], row_at, "aggregate")]}


SOFTMAX_SUM_EXP = Op(
    'softmax_sum_exp', 's = Σ exp(x − m)',
    'Sum of the exponentials of those values.',
    softmax_sum_exp, explain_softmax_sum_exp)


@rowwise


def softmax(out, x, m, s):
    """exp(x − m) / s along each row: m is the row's max, s the sum of its exponentials."""
    np.subtract(x, m, out=out)
    np.exp(out, out=out)
    out /= s


def explain_softmax(trace, t, at, value):
    graph = trace.graph
    x_name, m_name, s_name = t.inputs
    row_at = {a: at[a] for a in graph[x_name].axes[:-1]}
    x = float(trace[x_name][tuple(at[a] for a in graph[x_name].axes)])
    m, s = float(trace[m_name][tuple(row_at.values())]), float(trace[s_name][tuple(row_at.values())])
    result = math.exp(x - m) / s
    sources = [region(trace, x_name, dict(at), "input"), region(trace, m_name, row_at, "aggregate"),
               region(trace, s_name, row_at, "aggregate")]
    if x == -math.inf:
        return {"text": f"exp(−∞ − {fmt(m)}) / {fmt(s)} = 0: a masked (future) position gets no attention",
                "result": 0.0, "rows": [["max m", fmt(m)], ["Σ exp(x − m)", fmt(s)]], "sources": sources}
    return {"text": f"exp({fmt(x)} − {fmt(m)}) / {fmt(s)} = {fmt(math.exp(x - m))} / {fmt(s)} = {fmt(result)}",
            "result": result, "rows": [["x", fmt(x)], ["max m", fmt(m)], ["Σ exp(x − m)", fmt(s)]], "sources": sources}


SOFTMAX = Op(
    'softmax', 'exp(x − m) / s',
    "Turn one query's scores (a row of the pattern), or one position's logits (a column of the probabilities), into probabilities that sum to 1.",
    softmax, explain_softmax, plain=(
        'm = x.max(-1, keepdims=True)  # x: one row of scores or logits\n'
        'e = np.exp(x - m)\n'
        'p = e / e.sum(-1, keepdims=True)'))
