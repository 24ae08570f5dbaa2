"""The numbers the page explains a cell with.

Where one number came from (its value, its op's formula filled in with the numbers of the pass, a result
recomputed from them and the cells it was computed from) is written once, in the page: frontend/src/explain.ts,
which the served page, the notebook widget and a static export all run. A page with a server asks here for just the
numbers an explanation reads (`cells`, answered by POST /api/cells); an export stores its passes' numbers whole.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence

import numpy as np

from ..core.errors import LlmvizError
from ..core.graph import Graph
from ..core.model import Trace, tie
from ..core.quant import Stored, input_axes
from ..core.weights import widen

__all__ = ["block_regions", "cells", "slice_bytes", "stored_cell"]


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


def cells(trace: Trace, slices: list[dict], stored: Sequence[dict] = ()) -> dict:
    """Numbers of one pass for the page to explain a cell with: the shape of every tensor of the pass, each
    asked slice (a tensor with the axes of `at` fixed, the others whole) as little-endian float32, base64, and for
    each weight cell of `stored` ({tensor, index}) how the model stores it (`stored_cell`)."""
    graph = trace.graph
    slice_bytes(graph, len(trace.tokens), slices, trace.model.name)
    sizes = graph.sizes(len(trace.tokens))
    out = []
    for s in slices:
        name, at = s["tensor"], dict(s.get("at") or {})
        t = graph[name]
        index = tuple(at.get(ax, slice(None)) for ax in t.axes)
        if t.kind == "weight" and trace.model.engine == "numpy":  # just this slice widened: a weight may be 2 GB
            a = widen(trace.model.require_weights()[name][index])
        else:
            a = trace[name][index]
        a = np.ascontiguousarray(a, dtype="<f4")
        out.append({"tensor": name, "at": at, "axes": [ax for ax in t.axes if ax not in at], "shape": list(a.shape),
                    "values": base64.b64encode(a.tobytes()).decode("ascii")})
    return {"shapes": {n: list(graph[n].shape(sizes)) for n in graph.names()}, "slices": out,
            "stored": [stored_cell(trace.model, c["tensor"], list(c["index"])) for c in stored]}


def stored_cell(model, name: str, index: list[int]) -> dict:
    """One weight cell as the model stores it (core/quant.py's Stored): the format (a matrix a block format cannot
    cut: f16), the number the pass computes with, the original float32 number and the error; for int8, q8_0 and q4_0
    the stored integer, its scale and its block (int8: its output channel) with the block's cells as regions; for
    f16 and bf16 the stored 16 bits. A tied weight is the weight it names. A weight the model keeps in float32: its format
    "f32" and nothing else."""
    graph = model.graph
    if name not in graph or graph[name].kind != "weight":
        raise LlmvizError(f"stored: {name!r} is not a weight of {model.name}'s graph")
    t = graph[name]
    shape = t.shape(graph.sizes(1))
    if len(index) != len(shape) or not all(0 <= i < n for i, n in zip(index, shape)):
        raise LlmvizError(f"stored: index {index} is outside {name}, whose shape is {list(shape)}")
    at = tuple(index)
    s, source = model.stored.get(name), t.attrs.get("tied_to")
    if s is None and source in model.stored:  # a tied weight: the numbers of the weight it names, in its own axes
        s = Stored(*(model.stored[source].fmt, *(None if a is None else tie(graph, name, a) for a in (
            model.stored[source].original, model.stored[source].values, model.stored[source].codes,
            model.stored[source].scales, model.stored[source].block, model.stored[source].mins))))
    out: dict = {"tensor": name, "index": index, "precision": model.precision, "fmt": "f32", "row": None,
                 "inputs": [], "value": None, "original": None, "error": None, "code": None, "scale": None,
                 "block": None, "bits": None, "regions": [], "min": None, "from_file": False}
    if s is None:
        return file_cell(model, name, at, out)
    inputs = input_axes(graph)[source if name not in model.stored else name]
    value = float(s.values[at])
    out.update(fmt=s.fmt, inputs=list(inputs), row=math.prod(shape[t.axes.index(a)] for a in inputs), value=value,
               from_file=s.original is None)
    if s.original is not None:
        out.update(original=float(s.original[at]), error=float(s.values[at] - s.original[at]))
    if s.mins is not None:
        out["min"] = float(s.mins[at])
    if s.fmt == "f16":
        out["bits"] = f"0x{int(np.float16(value).view(np.uint16)):04X}"
    elif s.fmt == "bf16":
        out["bits"] = f"0x{int(np.float32(value).view(np.uint32)) >> 16:04X}"
    if s.codes is not None and s.scales is not None and s.block is not None:
        block = int(s.block[at])
        out.update(code=int(s.codes[at]), scale=float(s.scales[at]), block=block,
                   regions=block_regions(t.axes, np.argwhere(s.block == block)))
    return out


def file_cell(model, name: str, at: tuple, out: dict) -> dict:
    """A weight the model keeps as its file stores it, in 16 bits (a bfloat16 or float16 folder mapped in place:
    core/weights.py): its format and bits, read from the file; any other: `out` as it is (float32)."""
    if model.engine != "numpy" or model.weights is None or model.stored:
        return out
    w = model.weights[name]
    fmt = {np.dtype(np.uint16): "bf16", np.dtype(np.float16): "f16"}.get(w.dtype)
    if fmt is None:  # (a norm's gain, widened at load: nothing to say of its storage)
        return {**out, "precision": "f32"}
    bits = int(w[at].view(np.uint16))
    return {**out, "fmt": fmt, "value": float(widen(w[at])), "bits": f"0x{bits:04X}", "from_file": True}


def block_regions(axes: tuple[str, ...], cells: np.ndarray) -> list[dict]:
    """Cells (each row an index in `axes`) as few boxes as runs allow: each a range [first, last] per axis. Boxes
    that differ only along one axis, where they are adjacent, are merged (the innermost axis first)."""
    boxes = [[(int(i), int(i)) for i in c] for c in cells]
    for k in reversed(range(len(axes))):
        groups: dict[tuple, list] = {}
        for b in boxes:
            groups.setdefault(tuple(b[:k] + b[k + 1:]), []).append(b)
        merged = []
        for group in groups.values():
            group.sort(key=lambda b: b[k][0])
            run = group[0]
            for b in group[1:]:
                if b[k][0] == run[k][1] + 1:
                    run = run[:k] + [(run[k][0], b[k][1])] + run[k + 1:]
                else:
                    merged.append(run)
                    run = b
            merged.append(run)
        boxes = merged
    return [{a: list(r) for a, r in zip(axes, b)} for b in sorted(boxes)]
