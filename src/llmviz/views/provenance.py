"""The numbers the page explains a cell with.

Where one number came from (its value, its op's formula filled in with the numbers of the pass, a result
recomputed from them and the cells it was computed from) is written once, in the page: frontend/src/explain.ts,
which the served page, the notebook widget and a static export all run. A page with a server asks here for just the
numbers an explanation reads (`cells`, answered by POST /api/cells); an export stores its passes' numbers whole.
"""

from __future__ import annotations

import base64
import math

import numpy as np

from ..core.errors import LlmvizError
from ..core.graph import Graph
from ..core.model import Trace

__all__ = ["cells", "slice_bytes"]


def slice_bytes(graph: Graph, n_pos: int, slices: list[dict], model: str) -> int:
    """The bytes `cells` answers these slices with (float32 in base64), each checked against the graph first: its
    tensor, and each fixed axis and index."""
    sizes, total = graph.sizes(n_pos), 0
    for s in slices:
        name, at = s["tensor"], s.get("at") or {}
        if name not in graph:
            raise LlmvizError(f"unknown tensor {name!r}: not in {model}'s graph")
        t = graph[name]
        shape = t.shape(sizes)
        for ax, i in at.items():
            if ax not in t.axes:
                raise LlmvizError(f"{name} has no axis {ax!r}: its axes are {', '.join(t.axes)}")
            n = shape[t.axes.index(ax)]
            if not 0 <= i < n:
                raise LlmvizError(f"{ax} {i} is outside {name}, whose {ax} runs from 0 to {n - 1}")
        total += 4 * math.prod(n for ax, n in zip(t.axes, shape) if ax not in at) * 4 // 3 + 4
    return total


def cells(trace: Trace, slices: list[dict]) -> dict:
    """Numbers of one pass for the page to explain a cell with: the shape of every tensor of the pass, and each
    asked slice (a tensor with the axes of `at` fixed, the others whole) as little-endian float32, base64."""
    graph = trace.graph
    slice_bytes(graph, len(trace.tokens), slices, trace.model.name)
    sizes = graph.sizes(len(trace.tokens))
    out = []
    for s in slices:
        name, at = s["tensor"], dict(s.get("at") or {})
        t = graph[name]
        a = trace[name][tuple(at.get(ax, slice(None)) for ax in t.axes)]
        a = np.ascontiguousarray(a, dtype="<f4")
        out.append({"tensor": name, "at": at, "axes": [ax for ax in t.axes if ax not in at], "shape": list(a.shape),
                    "values": base64.b64encode(a.tobytes()).decode("ascii")})
    return {"shapes": {n: list(graph[n].shape(sizes)) for n in graph.names()}, "slices": out}
