"""A matrix product with a weight, plus a bias: every projection of the model."""

from __future__ import annotations

import numpy as np

from ..weights import blocks, streamed, widen
from .base import Op, at_cells, broadcast_cells, cells_along, local, unbroadcast


def linear(x, W, b=None, *, contract, x_dims, w_dims):
    """b + x · W, summing over the axes named in `contract` (at x_dims in x, counted from its end, and w_dims in W).

    The result's axes are x's remaining axes (a batch's leading axis first) followed by W's remaining axes. A weight
    stored narrower than float32 is widened here; a large one a block at a time, along its longest remaining axis.
    """
    out = streamed_product(x, W, x_dims, w_dims) if streamed(W) else np.tensordot(x, widen(W), axes=(x_dims, w_dims))
    if b is not None:
        out += widen(b)
    return out


def streamed_product(x, W, x_dims, w_dims):
    """x · W over these axes, W widened to float32 a block at a time (core/weights.py): no float32 copy of it whole."""
    w_dims = [j % W.ndim for j in w_dims]
    w_keep = [j for j in range(W.ndim) if j not in w_dims]
    axis = max(w_keep, key=lambda j: W.shape[j])
    n_x = x.ndim - len(x_dims)
    out = np.empty((*[x.shape[i] for i in range(x.ndim) if i not in [d % x.ndim for d in x_dims]],
                    *[W.shape[j] for j in w_keep]), np.float32)
    at = n_x + w_keep.index(axis)
    for part in blocks(W.shape[axis], W.size // W.shape[axis]):
        block = widen(W[(slice(None),) * axis + (part,)])
        out[(slice(None),) * at + (part,)] = np.tensordot(x, block, axes=(x_dims, w_dims))
    return out


def linear_backward(g, out, x, W, b=None, *, contract, x_dims, w_dims):
    """g (the result's axes: x's kept axes, then W's) back to x, W and b: each a contraction of g with the other."""
    x_dims = [i % x.ndim for i in x_dims]
    x_keep = [i for i in range(x.ndim) if i not in x_dims]
    w_keep = [j for j in range(W.ndim) if j not in w_dims]
    pair = dict(zip(w_dims, x_dims))
    gx = np.tensordot(g, W, axes=(list(range(len(x_keep), g.ndim)), w_keep))  # x's kept axes, then W's summed ones
    gx = gx.transpose(np.argsort(x_keep + [pair[j] for j in sorted(w_dims)]))
    gW = np.tensordot(x, g, axes=(x_keep, list(range(len(x_keep)))))  # x's summed axes, then W's kept ones
    gW = gW.transpose(np.argsort([dict(zip(x_dims, w_dims))[i] for i in sorted(x_dims)] + w_keep))
    return gx, gW, None if b is None else unbroadcast(g, b.shape)


def linear_chain(k, at, g, out, x, W, b=None, *, contract, x_dims, w_dims):
    """x[at] is multiplied by W's numbers along W's kept axes (its row), one output cell each: Σ g · W over them. W[at]
    multiplies x at every position (x's kept axes): Σ g · x. b[at] is added to every output cell it is broadcast to."""
    x_dims = [i % x.ndim for i in x_dims]
    x_keep = [i for i in range(x.ndim) if i not in x_dims]
    w_keep = [j for j in range(W.ndim) if j not in w_dims]
    if k == 0:  # the output cells at x's position: x's kept indices, then every index of W's kept axes
        cells = cells_along(out.shape, {a: at[i] for a, i in enumerate(x_keep)})
        row = W[tuple(at[x_dims[w_dims.index(j)]] if j in w_dims else slice(None) for j in range(W.ndim))]
        return local("Σ g · W", cells, at_cells(g, cells), row)
    if k == 1:  # every position's output cell at W's kept indices
        cells = cells_along(out.shape, {len(x_keep) + a: at[j] for a, j in enumerate(w_keep)})
        column = x[tuple(at[w_dims[x_dims.index(i)]] if i in x_dims else slice(None) for i in range(x.ndim))]
        return local("Σ g · x", cells, at_cells(g, cells), column)
    cells = broadcast_cells(out.shape, b.shape, at)
    return local("Σ g", cells, at_cells(g, cells), 1.0)


LINEAR = Op('linear', 'b + Σ x · W', 'Matrix multiply by a weight, then add a bias.', linear, backward=linear_backward,
            chain=linear_chain)
