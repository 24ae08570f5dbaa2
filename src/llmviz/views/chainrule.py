"""The chain rule of one cell's gradient, with the pass's numbers (the gradients view's hover).

For a cell x of any activation or weight, ∂loss/∂x = Σ over the ops that read x (its readers: the residual stream is
read by the next add and by a norm; a weight by its projection at every position) of Σ over the cells each computed
from x of (the loss's gradient there, upstream) × (how much that cell moves with x, local). Each op's step is its own,
beside its backward (core/ops: `Op.chain`; `Op.chain_whole` where an op's other inputs are computed from x by the
steps before it, as the softmax's max and sum, or a norm's mean and scale: those steps are one reader, with the
backward's closed form, p · (g − Σ p·g)). The logits are read by the loss itself: (p − onehot(target)) / N
(core/backward.loss_chain). This module finds a cell's readers in the graph, asks each for its step and lays out what
a learner reads: each reader's formula with its numbers, its largest terms and the rest, and the total, beside the
gradient the backward pass computed (Model.gradients, float32).

    chain_rule(trace, model.gradients(ids), "blocks.0.mlp.hook_pre", [3, 17])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.axes import AXES
from ..core.backward import Gradients, loss_chain, weight_gradient
from ..core.errors import LlmvizError
from ..core.graph import Graph, TensorSpec
from ..core.model import Trace
from ..core.ops import OPS
from ..core.ops.base import Local, fmt

__all__ = ["TOP_TERMS", "chain_rule", "check_cell"]

TOP_TERMS = 5  # the terms of largest magnitude listed; the others are added up as "the rest"


def check_cell(graph: Graph, n_pos: int, tensor: str, index: Sequence[int], model: str) -> None:
    """A cell of this graph's pass of n_pos positions, or an LlmvizError that says what is wrong."""
    if tensor not in graph:
        raise LlmvizError(f"unknown tensor {tensor!r}: not in {model}'s graph")
    t = graph[tensor]
    shape = t.shape(graph.sizes(n_pos))
    if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape)):
        raise LlmvizError(f"index {list(index)} is outside {tensor}, whose axes are "
                          + ", ".join(f"{a} (0 to {n - 1})" for a, n in zip(t.axes, shape)))


def chain_rule(trace: Trace, grads: Gradients, tensor: str, index: Sequence[int]) -> dict:
    """The chain rule of the gradient of the loss of `grads` (the backward pass of `trace`'s pass) with respect to
    one cell (its `index`, one number per axis): the ChainRule body (serve/schemas.py)."""
    graph = trace.graph
    check_cell(graph, len(trace.tokens), tensor, index, trace.model.name)
    t, at = graph[tensor], tuple(int(i) for i in index)
    n = sum(1 for x in grads.targets if x >= 0)
    x = "w" if t.kind == "weight" else "x"
    out: dict = {"tensor": tensor, "title": t.title, "index": list(at), "where": where(trace, t, at), "symbol": x,
                 "loss": grads.loss,
                 "scored": n, "gradient": None, "parts": [], "total": None, "note": None}
    if t.kind == "input":
        out["note"] = ("the input's token ids are whole numbers picked from the vocabulary, not amounts the loss can "
                       "nudge: they have no gradient (the rows of the embedding they pick have)")
        return out
    if t.kind != "weight" and tensor not in grads.activations:
        out["note"] = ("the loss does not depend on this tensor: it is computed from the logits, after them, and the loss "
                       "reads the logits themselves (−log softmax of the logits at the target)")
        return out
    parts = [part(trace, grads, r, k, idx, whole, tied, x) for r, k, idx, whole, tied in reading(graph, grads, tensor, at)]
    logits = graph[graph.output].inputs[0]
    if tensor == logits:
        step = loss_chain(trace[logits], grads.targets, at)
        target = grads.targets[at[0]] if at[0] < len(grads.targets) else -1
        named = f"the target is {trace.index_name('vocab', target)!r} (id {target}): " if target >= 0 else ""
        parts.insert(0, {**laid_out(trace, None, step), "reader": "loss", "op": None, "via": [], "tied": None,
                         "title": f"the loss: −log p(target), averaged over the {n} positions scored",
                         "upstream": f"{named}onehot(target) is 1 at the target, 0 elsewhere"})
    out["parts"] = parts
    out["total"] = float(sum(p["value"] for p in parts))
    if t.kind == "weight":
        g = grads.weights.get(tensor)
        g = weight_gradient(graph, trace, grads.activations, tensor) if g is None else g  # (not kept: its readers')
    else:
        g = grads.activations[tensor]
    out["gradient"] = float(g[at])
    size = sum(p["size"] for p in parts)
    if out["gradient"] == 0:
        out["note"] = why_zero(t, at, grads, parts)
    if not out["note"] and abs(out["total"]) < 1e-5 * size:
        out["note"] = (f"the terms cancel: their sizes add up to {fmt(size)} and their sum to about 0 (what is left, "
                       f"{fmt(out['gradient'])} in the backward pass's float32, is rounding)")
    return out


def reading(graph: Graph, grads: Gradients, tensor: str, at: tuple[int, ...]) -> list[tuple]:
    """Each step of the chain rule for the cell `at` of `tensor`: (the reader's tensor, which of its inputs, the
    cell's index there, whether through the steps before it too, the tied weight read instead) for every op that
    reads it (a weight: it, and any weight tied to it) and whose result the loss depends on. A reader whose other
    inputs are computed from the cell by the other readers (a softmax's m and s, a norm's μ and σ) takes them in."""
    t = graph[tensor]
    source = t.attrs.get("tied_to") or tensor
    family = [source] + [n for n in graph.names("weight") if graph[n].attrs.get("tied_to") == source] \
        if t.kind == "weight" else [tensor]
    steps = []
    for name in family:
        idx = tuple(at[t.axes.index(a)] for a in graph[name].axes)  # (a tied weight: the same number, its axes)
        readers = [(r, k) for r, k in readers_of(graph, name) if r.name in grads.activations]
        before: set[str] = set()  # steps taken in by the reader they lead to
        for r, k in readers:
            if k == 0 and OPS[r.op or ""].chain_whole is not None:
                group = {q.name for q, _ in readers if q.name in r.inputs[1:]}
                if group and all(u.name in group | {r.name} for q in group for u, _ in readers_of(graph, q)):
                    before |= group
        for r, k in readers:
            if r.name not in before:
                whole = k == 0 and any(q in before for q in r.inputs[1:])
                steps.append((r, k, idx, whole, name if name != tensor else None))
    return steps


def readers_of(graph: Graph, name: str) -> list[tuple[TensorSpec, int]]:
    """The tensors computed from `name`, each with which of its op's inputs it is, in graph order."""
    return [(r, k) for r in graph for k, i in enumerate(r.inputs) if i == name]


def part(trace: Trace, grads: Gradients, r: TensorSpec, k: int, at: tuple[int, ...], whole: bool, tied: str | None,
         x: str) -> dict:
    """One reader's step: its op's chain (or chain_whole) on the pass's numbers and the gradient of what it computed."""
    op = OPS[r.op or ""]
    inputs = [trace[i] for i in r.inputs]
    g, result = grads.activations[r.name], trace[r.name]
    if op.chain is None or (whole and op.chain_whole is None):
        raise LlmvizError(f"{r.name}'s op {op.name} has no chain rule to show")
    step = op.chain_whole(at, g, result, *inputs, **r.attrs) if whole and op.chain_whole else \
        op.chain(k, at, g, result, *inputs, **r.attrs)
    graph = trace.graph
    via = [i for i in r.inputs[1:] if whole and graph[i].kind != "weight"]
    title = f"{r.title} (with its {' and '.join(graph[i].label for i in via)})" if via else r.title
    return {**laid_out(trace, r, step), "reader": r.name, "op": r.op, "title": title, "tied": tied, "via": via,
            "upstream": f"g = ∂loss/∂({r.label or r.name}) at the cells it computes from {x} (lit)"}


def laid_out(trace: Trace, r: TensorSpec | None, step: Local) -> dict:
    """A step's formula, numbers and value, with its terms (g × ∂out/∂x at each cell of the reader's result) when
    there are more than one: the largest few, named by the axes they run over, and the rest added up."""
    body = {"formula": step.formula, "text": step.text, "value": step.value, "size": float(np.abs(step.g * step.d).sum()),
            "rows": [{"label": k, "value": v} for k, v in step.rows], "terms": None,
            "regions": [] if r is None else regions(r, step.cells)}
    if r is None or not len(step.g) or (len(step.g) == 1 and "Σ" not in step.formula):
        return body  # (one cell: its numbers are in the text; a sum of one still lists its term, for where it is)
    products = step.g * step.d
    over = [j for j in range(step.cells.shape[1]) if len(np.unique(step.cells[:, j])) > 1]
    order = np.argsort(-np.abs(products), kind="stable")[:TOP_TERMS]
    shown = [{"at": {r.axes[j]: int(step.cells[m, j]) for j in over},
              "where": where(trace, r, tuple(int(step.cells[m, j]) for j in over), [r.axes[j] for j in over]),
              "g": float(step.g[m]), "d": float(step.d[m]), "product": float(products[m])} for m in order]
    body["terms"] = {"over": [AXES[r.axes[j]][0] for j in over], "count": len(products), "shown": shown,
                     "rest": float(products.sum() - products[order].sum())}
    return body


def regions(r: TensorSpec, cells: np.ndarray) -> list[dict]:
    """The cells of the reader's result that a step runs over, as the view lights them: their box, if they fill it,
    else each cell (a rotation's two: a channel and its partner), else the box."""
    if not len(cells):
        return []
    lo, hi = cells.min(0), cells.max(0)
    box = {"tensor": r.name, "ranges": {a: (int(x), int(y)) for a, x, y in zip(r.axes, lo, hi)}, "role": "reader"}
    if len(cells) == int(np.prod(hi - lo + 1)) or len(cells) > 16:
        return [box]
    return [{"tensor": r.name, "ranges": {a: (int(i), int(i)) for a, i in zip(r.axes, c)}, "role": "reader"} for c in cells]


def where(trace: Trace, t: TensorSpec, at: Sequence[int], axes: Sequence[str] | None = None) -> str:
    """A cell's index as the view names it: each axis's label and index, and the token an index stands for."""
    parts = []
    for a, i in zip(axes if axes is not None else t.axes, at):
        name = trace.index_name(a, i)
        parts.append(f"{AXES[a][0]} {i}" + (f" {name!r}" if name is not None else ""))
    return ", ".join(parts)


def why_zero(t: TensorSpec, at: tuple[int, ...], grads: Gradients, parts: list[dict]) -> str | None:
    """Why a cell's gradient is exactly 0, where the reason is not in its steps' own words."""
    scored = [p for p, x in enumerate(grads.targets) if x >= 0]
    pos = at[t.axes.index("pos")] if "pos" in t.axes else None
    if pos is not None and pos > max(scored):
        return (f"position {pos} feeds only its own prediction and those after it, which the loss does not score "
                f"(it is over positions {min(scored)} … {max(scored)}): every gradient here is 0")
    if parts and all(p["terms"] is None and p["value"] == 0 for p in parts):
        return None  # (each step says why)
    return "every cell this number feeds has gradient 0 here" if all(p["value"] == 0 for p in parts) else None
