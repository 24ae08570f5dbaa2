"""Where one number came from: the op that computed it, filled in with the real numbers of the trace.

`explain(trace, tensor, index)` answers for any cell of any tensor: its value, the formula of its op
(from the model graph) with the actual inputs, a result recomputed from those inputs in float64 that
ends in the same value, and the cells it was computed from (for highlighting). Nothing here is specific
to one model: it reads the op, the inputs and their named axes from the graph, and each op explains its
own numbers (see ops.base.Op). frontend/src/explain.ts is this module's copy for a static export's page
(tests/test_export.py checks that the two agree).
"""

from __future__ import annotations

import base64

import numpy as np

from ..core.axes import AXES, NAMED_BY
from ..core.errors import LlmvizError
from ..core.model import Trace
from ..core.ops import OPS, fmt
from ..core.ops.base import region

__all__ = ["cells", "explain", "fmt", "pick_in_region"]


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
        "formula": None, "sources": [], "target": region(trace, tensor, at, "target"),
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
    op = OPS[t.op]
    out["formula"] = op.explain(trace, t, at, value)
    out["formula"]["template"] = op.formula
    out["formula"]["description"] = op.description
    out["sources"] = out["formula"].pop("sources")
    return out


def cells(trace: Trace, slices: list[dict]) -> dict:
    """Numbers of one pass for the page to explain a cell with: the shape of every tensor of the pass, and each
    asked slice (a tensor with the axes of `at` fixed, the others whole) as little-endian float32, base64."""
    graph = trace.graph
    sizes = graph.sizes(len(trace.tokens))
    out = []
    for s in slices:
        name, at = s["tensor"], dict(s.get("at") or {})
        if name not in graph:
            raise LlmvizError(f"unknown tensor {name!r}: not in {trace.model.name}'s graph")
        t = graph[name]
        shape = t.shape(sizes)
        for ax, i in at.items():
            if ax not in t.axes:
                raise LlmvizError(f"{name} has no axis {ax!r}: its axes are {', '.join(t.axes)}")
            n = shape[t.axes.index(ax)]
            if not 0 <= i < n:
                raise LlmvizError(f"{ax} {i} is outside {name}, whose {ax} runs from 0 to {n - 1}")
        a = trace[name][tuple(at.get(ax, slice(None)) for ax in t.axes)]
        a = np.ascontiguousarray(a, dtype="<f4")
        out.append({"tensor": name, "at": at, "axes": [ax for ax in t.axes if ax not in at], "shape": list(a.shape),
                    "values": base64.b64encode(a.tobytes()).decode("ascii")})
    return {"shapes": {n: list(graph[n].shape(sizes)) for n in graph.names()}, "slices": out}
