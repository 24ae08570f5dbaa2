"""What every op is, and the helpers its explanation uses.

An op holds, in one place: its formula and one sentence (shown in the view), its numpy forward (the graph's
inputs in order, plus its attributes; one float32 array back, with the axes the graph declares), how to
explain one number it computed (the formula with the real numbers, a result recomputed in float64, and the
cells it came from), where it has one, a short label or a symbol for the view, and, where it has one, its plain
version: a few lines of plain numpy that compute the same thing for one example (the walkthrough's code box shows
them first, the real forward behind them; tests/test_ops_plain.py runs them against the forward).

An explanation has a second copy in frontend/src/explain.ts, which a static export (llmviz export) runs in the
page: change both, and tests/test_export.py checks that they still agree, text for text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TOP_TERMS = 5  # terms of a sum shown one by one; the rest are added up
CURVE_POINTS = 48


@dataclass(frozen=True)
class Op:
    name: str
    formula: str
    description: str
    forward: Callable[..., np.ndarray]
    explain: Callable[..., dict]  # (trace, tensor spec, index by axis, value) -> text, result, rows, sources, ...
    symbol: str | None = None  # drawn where the op's inputs meet (the residual add's +)
    label: str | None = None  # a short name (an activation's: GELU)
    plain: str | None = None  # the op for one example in plain numpy, for a newcomer; its last line assigns the result

    def __call__(self, *inputs, **attrs) -> np.ndarray:
        return self.forward(*inputs, **attrs)


def fmt(v: float) -> str:
    """4 significant digits; −∞ written out."""
    if v == -math.inf:
        return "−∞"
    if v == math.inf:
        return "∞"
    return f"{v:.4g}".replace("-", "−")


def full(trace, name: str) -> dict[str, list[int]]:
    """The whole extent of a tensor, as ranges per axis."""
    t = trace.graph[name]
    return {a: [0, n - 1] for a, n in zip(t.axes, trace[name].shape)}


def region(trace, name: str, fixed: dict[str, int], role: str) -> dict:
    """Cells of `name`: the fixed axes at one index, the others whole."""
    ranges = full(trace, name)
    for a, i in fixed.items():
        if a in ranges:
            ranges[a] = [i, i]
    return {"tensor": name, "ranges": ranges, "role": role}


def row_of(trace, t, at):
    """The row (last axis) of the op's first input that the cell at `at` reads, in float64."""
    x_name = t.inputs[0]
    row_at = {a: at[a] for a in trace.graph[x_name].axes[:-1]}
    return x_name, row_at, trace[x_name][tuple(row_at.values())].astype(np.float64)
