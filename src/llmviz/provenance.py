"""Where one number came from: the op that computed it, filled in with the real numbers of the trace.

`explain(trace, tensor, index)` answers for any cell of any tensor: its value, the formula of its op
(from the model graph) with the actual inputs, a result recomputed from those inputs in float64 that
ends in the same value, and the cells it was computed from (for highlighting). Nothing here is specific
to one model: it reads the op, the inputs and their named axes from the graph.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import LlmvizError
from .graph import AXES, NAMED_BY, OPS
from .model import Trace

TOP_TERMS = 5  # terms of a sum shown one by one; the rest are added up
CURVE_POINTS = 48


def fmt(v: float) -> str:
    """4 significant digits; −∞ written out."""
    if v == -math.inf:
        return "−∞"
    if v == math.inf:
        return "∞"
    return f"{v:.4g}".replace("-", "−")


def _full(trace: Trace, name: str) -> dict[str, list[int]]:
    """The whole extent of a tensor, as ranges per axis."""
    t = trace.graph[name]
    return {a: [0, n - 1] for a, n in zip(t.axes, trace[name].shape)}


def _region(trace: Trace, name: str, fixed: dict[str, int], role: str) -> dict:
    """Cells of `name`: the fixed axes at one index, the others whole."""
    ranges = _full(trace, name)
    for a, i in fixed.items():
        if a in ranges:
            ranges[a] = [i, i]
    return {"tensor": name, "ranges": ranges, "role": role}


def pick_in_region(trace: Trace, tensor: str, ranges: dict[str, list[int]]) -> tuple[int, ...]:
    """The index of largest magnitude inside a region (a downsampled cell stands for a tile)."""
    t = trace.graph[tensor]
    a = trace[tensor]
    for ax, r in ranges.items():
        size = a.shape[t.axes.index(ax)] if ax in t.axes else None
        if size is None or len(r) != 2 or not 0 <= r[0] <= r[1] < size:
            raise LlmvizError(f"region {ax}={list(r)} does not fit {tensor}, whose axes are "
                              + ", ".join(f"{x} (0 to {n - 1})" for x, n in zip(t.axes, a.shape)))
    sl = tuple(slice(ranges[ax][0], ranges[ax][1] + 1) if ax in ranges else slice(None) for ax in t.axes)
    sub = a[sl]
    mag = np.where(np.isfinite(sub), np.abs(sub), -1.0)
    local = np.unravel_index(int(np.argmax(mag)), sub.shape)
    return tuple(int(s.start or 0) + int(i) for s, i in zip(sl, local))


def _index_entry(trace: Trace, axis: str, i: int) -> dict:
    """One axis of a cell's index, with how a person reads it: a vocabulary entry as its token (`v = A`), any
    other axis as its number (`name` still gives a position's token)."""
    name = trace.index_name(axis, i)
    shown = name if NAMED_BY.get(axis) == "vocabulary" else str(i)
    return {"axis": axis, "label": AXES[axis][0], "i": i, "color": AXES[axis][2], "name": name, "shown": shown}


def explain(trace: Trace, tensor: str, index) -> dict:
    graph = trace.graph
    if tensor not in graph:
        raise LlmvizError(f"unknown tensor {tensor!r}: not in {trace.model.name}'s graph")
    t = graph[tensor]
    shape = trace[tensor].shape
    index = tuple(int(i) for i in index)
    if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape)):
        raise LlmvizError(f"index {list(index)} is outside {tensor} of shape {list(shape)}")
    at = dict(zip(t.axes, index))
    value = float(trace[tensor][index])
    title = t.title + (f", head {at['head']}" if "head" in at else "")
    out = {
        "tensor": tensor, "title": title, "kind": t.kind, "op": t.op,
        "index": [_index_entry(trace, a, i) for a, i in at.items()],
        "value": value, "value_text": fmt(value),
        "code": f'trace["{tensor}"][{", ".join(str(i) for i in index)}]',
        "formula": None, "sources": [], "target": _region(trace, tensor, at, "target"),
    }
    if t.kind == "weight":
        n = int(np.prod(shape))
        out["parameter"] = {"name": tensor, "title": t.title, "numbers": n,
                            "text": f"one of the {n:,} numbers of the parameter {tensor} ({t.title}); "
                                    f"learned in training, the same for every input"}
        return out
    if t.kind == "input" and "pos" not in at:  # a KV cache: keys or values computed at an earlier step
        out["note"] = (f"cached at an earlier step: position {at['past_pos']} "
                       f"({trace.index_name('past_pos', at['past_pos'])!r}); this step reads it, nothing recomputes it")
        return out
    if t.kind == "input":
        tok = trace.tokens[at["pos"]]
        out["note"] = f"token {trace.token_strs[at['pos']]!r} (id {tok}) at position {at['pos'] + trace.graph.past}"
        return out
    out["formula"] = OP_EXPLAINERS[t.op](trace, t, at, value)
    out["formula"]["template"] = OPS[t.op][0]
    out["formula"]["description"] = OPS[t.op][1]
    out["sources"] = out["formula"].pop("sources")
    return out


# Each explainer returns: text (the formula with numbers, ending "= result"), result (float64 recomputed
# from the numbers shown), rows (named numbers), optional terms / curve / masked, and sources.

def _linear(trace, t, at, value):
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
    order = np.argsort(-np.abs(terms))[:TOP_TERMS]
    shown = []
    for k in order:
        where = dict(zip(contract, (int(i) for i in np.unravel_index(int(k), x.shape))))
        shown.append({"at": where, "x": float(x.ravel()[k]), "w": float(w.ravel()[k]), "product": float(terms[k])})
    rest = float(terms.sum() - terms[order].sum())
    sum_label = "Σ " + ",".join(AXES[a][0] for a in contract)
    text = (f"{fmt(bias)} + {sum_label} x·W" if b_name else f"{sum_label} x·W") + \
        f" ({terms.size} terms) = {fmt(result)}"
    sources = [_region(trace, x_name, x_fixed, "input"), _region(trace, w_name, w_fixed, "weight")]
    if b_name:
        sources.append(_region(trace, b_name, {a: at[a] for a in graph[b_name].axes}, "bias"))
    rows = [["bias b", fmt(bias)]] if b_name else []
    return {"text": text, "result": result, "rows": rows + [[sum_label + " x·W", fmt(float(terms.sum()))]],
            "terms": {"count": int(terms.size), "shown": shown, "rest": rest, "x": x_name, "w": w_name},
            "sources": sources}


def _attn_scores(trace, t, at, value):
    q_name, k_name = t.inputs
    h, i, j = at["head"], at["pos"], at["key_pos"]
    k_pos = trace.graph[k_name].axes[0]  # `pos`, or with a KV cache `key_pos` (the cache and the new keys)
    sources = [_region(trace, q_name, {"pos": i, "head": h}, "input"), _region(trace, k_name, {k_pos: j, "head": h}, "input")]
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


def _row_of(trace, t, at):
    x_name = t.inputs[0]
    row_at = {a: at[a] for a in trace.graph[x_name].axes[:-1]}
    return x_name, row_at, trace[x_name][tuple(row_at.values())].astype(np.float64)


def _softmax_max(trace, t, at, value):
    x_name, row_at, row = _row_of(trace, t, at)
    finite = row[np.isfinite(row)]
    j = int(np.argmax(np.where(np.isfinite(row), row, -np.inf)))
    result = float(finite.max())
    return {"text": f"max of {finite.size} values = {fmt(result)} (at {AXES[trace.graph[x_name].axes[-1]][0]} = {j})",
            "result": result, "rows": [], "sources": [_region(trace, x_name, row_at, "input")]}


def _softmax_sum_exp(trace, t, at, value):
    x_name, row_at, row = _row_of(trace, t, at)
    m = float(trace[t.inputs[1]][tuple(row_at.values())])
    e = np.exp(row - m)
    result = float(e.sum())
    return {"text": f"Σ exp(x − {fmt(m)}) over {row.size} values = {fmt(result)}", "result": result,
            "rows": [["m (row max)", fmt(m)]],
            "sources": [_region(trace, x_name, row_at, "input"), _region(trace, t.inputs[1], row_at, "aggregate")]}


def _softmax(trace, t, at, value):
    graph = trace.graph
    x_name, m_name, s_name = t.inputs
    row_at = {a: at[a] for a in graph[x_name].axes[:-1]}
    x = float(trace[x_name][tuple(at[a] for a in graph[x_name].axes)])
    m, s = float(trace[m_name][tuple(row_at.values())]), float(trace[s_name][tuple(row_at.values())])
    result = math.exp(x - m) / s
    sources = [_region(trace, x_name, dict(at), "input"), _region(trace, m_name, row_at, "aggregate"),
               _region(trace, s_name, row_at, "aggregate")]
    if x == -math.inf:
        return {"text": f"exp(−∞ − {fmt(m)}) / {fmt(s)} = 0: a masked (future) position gets no attention",
                "result": 0.0, "rows": [["max m", fmt(m)], ["Σ exp(x − m)", fmt(s)]], "sources": sources}
    return {"text": f"exp({fmt(x)} − {fmt(m)}) / {fmt(s)} = {fmt(math.exp(x - m))} / {fmt(s)} = {fmt(result)}",
            "result": result, "rows": [["x", fmt(x)], ["max m", fmt(m)], ["Σ exp(x − m)", fmt(s)]], "sources": sources}


def _weighted_sum(trace, t, at, value):
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
            "sources": [_region(trace, p_name, {"head": h, "pos": i}, "input"),
                        _region(trace, v_name, {"head": h, "d_head": a}, "input")]}


def _ln_mean(trace, t, at, value):
    x_name = t.inputs[0]
    row = trace[x_name][at["pos"]].astype(np.float64)
    result = float(row.mean())
    return {"text": f"Σ x / {row.size} = {fmt(float(row.sum()))} / {row.size} = {fmt(result)}", "result": result,
            "rows": [], "sources": [_region(trace, x_name, {"pos": at["pos"]}, "input")]}


def _ln_scale(trace, t, at, value):
    x_name, m_name = t.inputs
    row = trace[x_name][at["pos"]].astype(np.float64)
    mu, eps = float(trace[m_name][at["pos"]]), float(t.attrs["eps"])
    var = float(((row - mu) ** 2).mean())
    result = math.sqrt(var + eps)
    return {"text": f"√({fmt(var)} + {eps:g}) = {fmt(result)}", "result": result,
            "rows": [["μ", fmt(mu)], ["variance Σ(x − μ)²/C", fmt(var)], ["ε", f"{eps:g}"]],
            "sources": [_region(trace, x_name, {"pos": at["pos"]}, "input"), _region(trace, m_name, {"pos": at["pos"]}, "aggregate")]}


def _ln_normalize(trace, t, at, value):
    x_name, m_name, s_name = t.inputs
    x = float(trace[x_name][at["pos"], at["d_model"]])
    mu, sigma = float(trace[m_name][at["pos"]]), float(trace[s_name][at["pos"]])
    result = (x - mu) / sigma
    return {"text": f"({fmt(x)} − {fmt(mu)}) / {fmt(sigma)} = {fmt(result)}", "result": result,
            "rows": [["x", fmt(x)], ["μ", fmt(mu)], ["σ", fmt(sigma)]],
            "sources": [_region(trace, x_name, dict(at), "input"), _region(trace, m_name, {"pos": at["pos"]}, "aggregate"),
                        _region(trace, s_name, {"pos": at["pos"]}, "aggregate")]}


def _ln_affine(trace, t, at, value):
    n_name, w_name = t.inputs[:2]
    b_name = t.inputs[2] if len(t.inputs) > 2 else None
    graph = trace.graph
    n = float(trace[n_name][at["pos"], at["d_model"]])
    g = float(trace[w_name][at["d_model"]])
    b = float(trace[b_name][at["d_model"]]) if b_name else 0.0
    result = n * g + b
    mu_name, sigma_name = graph[n_name].inputs[1:3]
    mu, sigma = float(trace[mu_name][at["pos"]]), float(trace[sigma_name][at["pos"]])
    sources = [_region(trace, n_name, dict(at), "input"), _region(trace, w_name, {"d_model": at["d_model"]}, "weight")]
    if b_name:
        sources.append(_region(trace, b_name, {"d_model": at["d_model"]}, "bias"))
    return {"text": f"(x − μ) / σ · γ + β = {fmt(n)} × {fmt(g)} + {fmt(b)} = {fmt(result)}", "result": result,
            "rows": [["x̂ = (x − μ) / σ", fmt(n)], ["μ", fmt(mu)], ["σ", fmt(sigma)], ["γ", fmt(g)], ["β", fmt(b)]],
            "sources": sources}


def _activation(name, fn):
    def explain_act(trace, t, at, value):
        x_name = t.inputs[0]
        x = float(trace[x_name][tuple(at[a] for a in trace.graph[x_name].axes)])
        result = float(fn(np.array([x], np.float64))[0])
        lo, hi = min(-4.0, x - 0.5), max(4.0, x + 0.5)
        xs = np.linspace(lo, hi, CURVE_POINTS)
        return {"text": f"{name}({fmt(x)}) = {fmt(result)}", "result": result, "rows": [["x", fmt(x)]],
                "curve": {"name": name, "xs": xs.tolist(), "ys": fn(xs).tolist(), "x": x, "y": result},
                "sources": [_region(trace, x_name, dict(at), "input")]}
    return explain_act


def _embed(trace, t, at, value):
    W_name, tok_name = t.inputs
    tok = trace.tokens[at["pos"]]
    result = float(trace[W_name][tok, at["d_model"]])
    return {"text": f"W_E[{tok}, {at['d_model']}] = {fmt(result)}: token {trace.token_strs[at['pos']]!r} (id {tok}) picks "
                    f"W_E[{tok}], the vector of id {tok}", "result": result, "rows": [["token id", str(tok)]],
            "sources": [_region(trace, tok_name, {"pos": at["pos"]}, "input"),
                        _region(trace, W_name, {"vocab": tok, "d_model": at["d_model"]}, "weight")]}


def _pos_embed(trace, t, at, value):
    W_name, tok_name = t.inputs
    n = at["pos"] + t.attrs.get("offset", 0)  # after the cached positions, with a KV cache
    result = float(trace[W_name][n, at["d_model"]])
    return {"text": f"W_pos[{n}, {at['d_model']}] = {fmt(result)}: position {n} picks W_pos[{n}], the vector of position {n}",
            "result": result, "rows": [],
            "sources": [_region(trace, W_name, {"n_ctx": n, "d_model": at["d_model"]}, "weight")]}


def _concat(trace, t, at, value):
    past_name, new_name = t.inputs
    j, past = at["key_pos"], trace.graph.past
    rest = {a: at[a] for a in at if a != "key_pos"}
    if j < past:
        result = float(trace[past_name][(j, *rest.values())])
        return {"text": f"from the cache: computed at an earlier step, position {j} = {fmt(result)}", "result": result,
                "rows": [], "sources": [_region(trace, past_name, {"past_pos": j, **rest}, "input")]}
    result = float(trace[new_name][(j - past, *rest.values())])
    return {"text": f"new at this step: position {j} = {fmt(result)}", "result": result, "rows": [],
            "sources": [_region(trace, new_name, {"pos": j - past, **rest}, "input")]}


def _add(trace, t, at, value):
    a_name, b_name = t.inputs
    graph = trace.graph
    a = float(trace[a_name][tuple(at[x] for x in graph[a_name].axes)])
    b = float(trace[b_name][tuple(at[x] for x in graph[b_name].axes)])
    result = a + b
    return {"text": f"a + b = {fmt(a)} + {fmt(b)} = {fmt(result)}", "result": result,
            "rows": [[f"a: {graph[a_name].title}", fmt(a)], [f"b: {graph[b_name].title}", fmt(b)]],
            "sources": [_region(trace, a_name, dict(at), "input"), _region(trace, b_name, dict(at), "input")]}


def _identity(trace, t, at, value):
    x_name = t.inputs[0]
    result = float(trace[x_name][tuple(at[a] for a in trace.graph[x_name].axes)])
    return {"text": f"the same number as {x_name}: {fmt(result)}", "result": result, "rows": [],
            "sources": [_region(trace, x_name, dict(at), "input")]}


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _gelu_erf(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


OP_EXPLAINERS = {
    "linear": _linear, "attn_scores": _attn_scores, "softmax_max": _softmax_max, "softmax_sum_exp": _softmax_sum_exp,
    "softmax": _softmax, "weighted_sum": _weighted_sum, "ln_mean": _ln_mean, "ln_scale": _ln_scale,
    "ln_normalize": _ln_normalize, "ln_affine": _ln_affine, "embed": _embed, "pos_embed": _pos_embed, "add": _add,
    "concat": _concat,
    "identity": _identity, "gelu": _activation("GELU", _gelu_tanh), "gelu_erf": _activation("GELU", _gelu_erf),
    "relu": _activation("ReLU", lambda x: np.maximum(x, 0.0)),
    "silu": _activation("SiLU", lambda x: x / (1 + np.exp(-x))),
}
