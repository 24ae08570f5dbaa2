"""What every op is.

An op holds, in one place: its formula and one sentence (shown in the view), its numpy forward (the graph's
inputs in order, plus its attributes; one float32 array back, with the axes the graph declares), its backward (the
vector-Jacobian product: given the loss's gradient with respect to its output, the gradient with respect to each
input, or None for an input with none, such as the tokens; core/backward.py runs them), where it has one,
a short label or a symbol for the view, and, where it has one, its plain version: a few lines of plain numpy that
compute the same thing for one example (the walkthrough's code box shows them first, the real forward behind them;
tests/test_ops_plain.py runs them against the forward).

How one number an op computed came about (its formula with the real numbers, a result recomputed in float64, the
cells it read) is explained by the page, for every op, in frontend/src/explain.ts: the one copy, which the served
page, the notebook widget and a static export all run (tests/test_export.py checks every op of every architecture).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Op:
    name: str
    formula: str
    description: str
    forward: Callable[..., np.ndarray]
    symbol: str | None = None  # drawn where the op's inputs meet (the residual add's +)
    label: str | None = None  # a short name (an activation's: GELU)
    plain: str | None = None  # the op for one example in plain numpy, for a newcomer; its last line assigns the result
    backward: Callable[..., tuple] | None = None  # backward(g, out, *inputs, **attrs): each input's gradient

    def __call__(self, *inputs, **attrs) -> np.ndarray:
        return self.forward(*inputs, **attrs)


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A gradient summed down to the shape of an input that was broadcast to make it (a bias added to every position)."""
    while g.ndim > len(shape):
        g = g.sum(0)
    return g.sum(tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1), keepdims=True) if g.shape != shape else g


def fmt(v: float) -> str:
    """4 significant digits; −∞ written out."""
    if v == -math.inf:
        return "−∞"
    if v == math.inf:
        return "∞"
    return f"{v:.4g}".replace("-", "−")


