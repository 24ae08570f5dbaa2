"""A matrix product with a weight, plus a bias: every projection of the model."""

from __future__ import annotations

import numpy as np

from .base import Op


def linear(x, W, b=None, *, contract, x_dims, w_dims):
    """b + x · W, summing over the axes named in `contract` (at x_dims in x, w_dims in W).

    The result's axes are x's remaining axes followed by W's remaining axes.
    """
    out = np.tensordot(x, W, axes=(x_dims, w_dims))
    if b is not None:
        out += b
    return out


LINEAR = Op('linear', 'b + Σ x · W', 'Matrix multiply by a weight, then add a bias.', linear)
