"""Attention's two products: each query against each key (scaled, the future masked), and the pattern's
mix of the values."""

from __future__ import annotations

import math

import numpy as np

from .base import TOP_TERMS, Op, fmt, region
from .rows import by_rows


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


def explain_attn_scores(trace, t, at, value):
    q_name, k_name = t.inputs
    h, i, j = at["head"], at["pos"], at["key_pos"]
    k_pos = trace.graph[k_name].axes[0]  # `pos`, or with a KV cache `key_pos` (the cache and the new keys)
    sources = [region(trace, q_name, {"pos": i, "head": h}, "input"), region(trace, k_name, {k_pos: j, "head": h}, "input")]
    if j > i + trace.graph.past:  # query i sits at key position i + past: a later key is its future
        return {"text": "future position: masked to −∞", "result": -math.inf, "masked": True,
                "rows": [["query position", str(i)], ["key position", str(j)]], "sources": sources}
    q = trace[q_name][i, h].astype(np.float64)
    k = trace[k_name][j, h].astype(np.float64)
    dot, scale = float(q @ k), float(t.attrs["scale"])
    result = dot / scale
    terms = q * k
    order = np.argsort(-np.abs(terms))[:TOP_TERMS]
    shown = [{"at": {"d_head": int(a)}, "x": float(q[a]), "w": float(k[a]), "product": float(terms[a])} for a in order]
    return {"text": f"q · k / {fmt(scale)} = {fmt(dot)} / {fmt(scale)} = {fmt(result)}", "result": result,
            "rows": [["q · k", fmt(dot)], ["√A", fmt(scale)]],
            "terms": {"count": int(terms.size), "shown": shown, "rest": float(terms.sum() - terms[order].sum()),
                      "x": q_name, "w": k_name},
            "sources": sources}


ATTN_SCORES = Op(
    'attn_scores', 'q · k / √A, −∞ for future keys',
    'Dot product of each query with each earlier key, scaled; future keys are masked.',
    attn_scores, explain_attn_scores)


def weighted_sum(pattern, v):
    """[head, pos, key_pos] x [key_pos, head, d_head] -> [pos, head, d_head]."""
    z = np.matmul(pattern, np.ascontiguousarray(v.transpose(1, 0, 2)))
    return np.ascontiguousarray(z.transpose(1, 0, 2))


def explain_weighted_sum(trace, t, at, value):
    p_name, v_name = t.inputs
    h, i, a = at["head"], at["pos"], at["d_head"]
    p = trace[p_name][h, i].astype(np.float64)
    v = trace[v_name][:, h, a].astype(np.float64)
    terms = p * v
    result = float(terms.sum())
    order = np.argsort(-np.abs(terms))[:TOP_TERMS]
    shown = [{"at": {"key_pos": int(j)}, "x": float(p[j]), "w": float(v[j]), "product": float(terms[j])} for j in order]
    return {"text": f"Σ T' p·v ({terms.size} terms) = {fmt(result)}", "result": result,
            "rows": [["Σ T' p·v", fmt(result)]],
            "terms": {"count": int(terms.size), "shown": shown, "rest": float(terms.sum() - terms[order].sum()),
                      "x": p_name, "w": v_name},
            "sources": [region(trace, p_name, {"head": h, "pos": i}, "input"),
                        region(trace, v_name, {"head": h, "d_head": a}, "input")]}


WEIGHTED_SUM = Op(
    'weighted_sum', 'Σ p · v',
    'Mix the value vectors, weighted by the attention pattern.',
    weighted_sum, explain_weighted_sum)
