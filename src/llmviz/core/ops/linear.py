"""A matrix product with a weight, plus a bias: every projection of the model."""

from __future__ import annotations

import numpy as np

from ..axes import AXES
from .base import TOP_TERMS, Op, fmt, region


def linear(x, W, b=None, *, contract, x_dims, w_dims):
    """b + x · W, summing over the axes named in `contract` (at x_dims in x, w_dims in W).

    The result's axes are x's remaining axes followed by W's remaining axes.
    """
    out = np.tensordot(x, W, axes=(x_dims, w_dims))
    if b is not None:
        out += b
    return out


def explain_linear(trace, t, at, value):
    graph = trace.graph
    x_name, w_name = t.inputs[0], t.inputs[1]
    b_name = t.inputs[2] if len(t.inputs) > 2 else None
    xs, ws = graph[x_name], graph[w_name]
    contract = t.attrs["contract"]
    x_fixed = {a: at[a] for a in xs.axes if a not in contract}
    w_fixed = {a: at[a] for a in ws.axes if a not in contract}
    x = trace[x_name][tuple(x_fixed.get(a, slice(None)) for a in xs.axes)].astype(np.float64)
    # W's slice, with its contracted axes in x's order so the products pair up.
    w_sel = trace[w_name][tuple(w_fixed.get(a, slice(None)) for a in ws.axes)].astype(np.float64)
    w_axes = [a for a in ws.axes if a in contract]
    w = np.transpose(w_sel, [w_axes.index(a) for a in contract])
    terms = (x * w).ravel()
    bias = float(trace[b_name][tuple(at[a] for a in graph[b_name].axes)]) if b_name else 0.0
    result = bias + float(terms.sum())
    order = np.argsort(-np.abs(terms), kind="stable")[:TOP_TERMS]
    shown = []
    for k in order:
        where = dict(zip(contract, (int(i) for i in np.unravel_index(int(k), x.shape))))
        shown.append({"at": where, "x": float(x.ravel()[k]), "w": float(w.ravel()[k]), "product": float(terms[k])})
    rest = float(terms.sum() - terms[order].sum())
    sum_label = "Σ " + ",".join(AXES[a][0] for a in contract)
    text = (f"{fmt(bias)} + {sum_label} x·W" if b_name else f"{sum_label} x·W") + \
        f" ({terms.size} terms) = {fmt(result)}"
    sources = [region(trace, x_name, x_fixed, "input"), region(trace, w_name, w_fixed, "weight")]
    if b_name:
        sources.append(region(trace, b_name, {a: at[a] for a in graph[b_name].axes}, "bias"))
    rows = [["bias b", fmt(bias)]] if b_name else []
    return {"text": text, "result": result, "rows": rows + [[sum_label + " x·W", fmt(float(terms.sum()))]],
            "terms": {"count": int(terms.size), "shown": shown, "rest": rest, "x": x_name, "w": w_name},
            "sources": sources}


LINEAR = Op('linear', 'b + Σ x · W', 'Matrix multiply by a weight, then add a bias.', linear, explain_linear)
