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

How one number's gradient came about is the op's too, beside its backward: `chain` gives the chain rule's step for
one cell of one of its inputs (a `Local`: the output cells that read it, the loss's gradient at each, the derivative
of each with respect to that cell, the backward's formula with the numbers filled in); `chain_whole`, for an op whose
other inputs are computed from its first (the softmax's max and sum, a norm's mean and scale), the same step through
all of them at once (p · (g − Σ p·g)). views/chainrule.py puts each reader's step together for a hovered cell.
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
    chain: Callable[..., Local] | None = None  # chain(k, at, g, out, *inputs, **attrs): input k's cell `at`, its step
    chain_whole: Callable[..., Local] | None = None  # chain_whole(at, g, out, *inputs, **attrs): input 0's, through all

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




@dataclass(frozen=True)
class Local:
    """One op's step of the chain rule for one cell x of one of its inputs (one example, no batch axis): the cells
    of the op's output that read x (`cells`, an index into the output on each row), the loss's gradient at each
    (`g`, upstream) and the derivative of each with respect to x (`d`, local). Their products add up to the op's part
    of ∂loss/∂x (`value`). `formula`: the backward's formula for this input; `text`: it with the numbers filled in;
    `rows`: the named numbers it reads."""

    formula: str
    cells: np.ndarray  # int [n, output's ndim]
    g: np.ndarray  # float64 [n]
    d: np.ndarray  # float64 [n]
    value: float
    text: str
    rows: tuple[tuple[str, float], ...] = ()


def local(formula: str, cells: np.ndarray, g, d, rows=(), text: Callable[[float], str] | None = None) -> Local:
    """A Local from its output cells (rows of indices), upstream gradients and local derivatives (float64, so the
    products and their sum show the float32 numbers exactly); text(value): the formula with its numbers, by default
    g × d for one cell."""
    g64, d64 = np.asarray(g, np.float64).reshape(-1), np.asarray(d, np.float64).reshape(-1)
    d64 = np.broadcast_to(d64, g64.shape) if d64.size == 1 else d64
    value = float(g64 @ d64) if g64.size else 0.0
    if text is None:
        text = (lambda v: f"{fmt(g64[0])} × {paren(d64[0])} = {fmt(v)}") if g64.size == 1 else (lambda v: fmt(v))
    return Local(formula, np.asarray(cells, np.int64), g64, np.array(d64), value, text(value),
                 tuple((k, float(v)) for k, v in rows))


def cells_along(shape, fixed: dict[int, int]) -> np.ndarray:
    """Every index into an array of `shape` whose axes in `fixed` have those indices, in C order: [n, len(shape)]."""
    grids = [np.array([fixed[a]]) if a in fixed else np.arange(n) for a, n in enumerate(shape)]
    return np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, len(shape))


def at_cells(a: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The numbers of `a` at these cells (rows of indices)."""
    return a[tuple(cells.T)] if len(cells) else np.zeros(0, a.dtype)


def broadcast_cells(shape, in_shape, at) -> np.ndarray:
    """The cells of an output of `shape` that read an input of `in_shape` at `at` when it is broadcast to it (numpy's
    rule: the axes aligned at the end; an axis of size 1 is read by every index of the output's)."""
    off = len(shape) - len(in_shape)
    return cells_along(shape, {off + a: i for a, (i, n) in enumerate(zip(at, in_shape)) if n == shape[off + a]})


def passed_on(k, at, g, out, *inputs, **attrs) -> Local:
    """The chain step of an op that passes each input number on as it is, to the output cells that read it (an add,
    the identity, a lookup's copy): ∂out/∂x = 1, so each gets g."""
    cells = broadcast_cells(out.shape, inputs[k].shape, at)
    return local("g", cells, at_cells(g, cells), 1.0,
                 text=(lambda v: f"{fmt(v)} (× 1)") if len(cells) == 1 else None)


def paren(v: float) -> str:
    """fmt, in parentheses if negative: a number after an operator (a − (−b), a × (−b))."""
    return f"({fmt(v)})" if v < 0 else fmt(v)
