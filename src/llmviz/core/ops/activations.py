"""The MLP's activations, each with its curve for the hover, and which of them each Hugging Face activation name
means (ACTIVATIONS)."""

from __future__ import annotations

import math

import numpy as np

from .base import Op, fmt, local, paren
from .rows import rowwise

GELU_C = np.float32(np.sqrt(2.0 / np.pi))


@rowwise


def gelu(out, x):
    """GPT-2's GELU, tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))."""
    np.multiply(x, x, out=out)
    out *= np.float32(0.044715)
    out += np.float32(1.0)
    out *= x
    out *= GELU_C
    np.tanh(out, out=out)
    out += np.float32(1.0)
    out *= x
    out *= np.float32(0.5)


def _gelu_tanh64(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


GELU = Op(
    'gelu', '0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))',
    "GPT-2's smooth ReLU-like activation.",
    gelu, label='GELU', backward=lambda g, out, x: (g * gelu_grad(x),), chain=lambda k, at, g, out, x: slope(
        "GELU", gelu_grad, at, g, x),
    plain='y = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))')


def gelu_erf(x):
    """Exact GELU, 0.5 x (1 + erf(x / √2)), in float64 then rounded to float32."""
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + _erf(x64 / np.sqrt(2.0)))).astype(np.float32)


def _erf(x):
    # erf = 1 - erfc, with Numerical Recipes' Chebyshev fit of erfc (relative error < 1.2e-7).
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0)


def _gelu_erf64(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


GELU_ERF = Op(
    'gelu_erf', '0.5 x (1 + erf(x / √2))',
    'The exact GELU activation.',
    gelu_erf, label='GELU', backward=lambda g, out, x: (g * gelu_erf_grad(x),),
    chain=lambda k, at, g, out, x: slope("GELU", gelu_erf_grad, at, g, x))


def relu(x):
    return np.maximum(x, np.float32(0))


RELU = Op(
    'relu', 'max(0, x)',
    'Keep positive values, zero the rest.',
    relu, label='ReLU', plain='y = np.maximum(x, 0)', backward=lambda g, out, x: (g * (x > 0),),
    chain=lambda k, at, g, out, x: slope("ReLU", lambda v: (v > 0).astype(np.float32), at, g, x))


def silu(x):
    with np.errstate(over="ignore"):  # exp(−x) overflows for x below about −88: x / inf is the right −0
        return x / (x.dtype.type(1) + np.exp(-x))


SILU = Op(
    'silu', 'x / (1 + exp(−x))',
    'SiLU (swish) activation.',
    silu, label='SiLU', plain='y = x / (1 + np.exp(-x))', backward=lambda g, out, x: (g * silu_grad(x),),
    chain=lambda k, at, g, out, x: slope("SiLU", silu_grad, at, g, x))


def sigmoid(x):
    """1 / (1 + exp(−x)), computed without overflow for large |x|: exp of a number ≤ 0 only."""
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e)).astype(x.dtype)


SIGMOID = Op(
    'sigmoid', '1 / (1 + exp(−x))',
    'Squash any number into 0 … 1: a probability.',
    sigmoid, label='σ', plain='y = 1 / (1 + np.exp(-x))', backward=lambda g, out, x: (g * out * (1 - out),),
    chain=lambda k, at, g, out, x: slope("σ", lambda v: sigmoid(v) * (1 - sigmoid(v)), at, g, x))


def mul(a, b):
    return a * b


MUL = Op('mul', 'gate × up', "A gated MLP's product: the activated gate scales the up projection, unit by unit.",
         mul, plain='y = gate * up  # unit by unit', backward=lambda g, out, a, b: (g * b, g * a),
         chain=lambda k, at, g, out, a, b: local("g · up" if k == 0 else "g · gate", np.array([at]), g[at],
                                                 (b if k == 0 else a)[at], rows=[("up" if k == 0 else "gate",
                                                                                  (b if k == 0 else a)[at])]))


# ---- The activations' derivatives (their backward) ----

def gelu_grad(x):
    """d/dx of the tanh GELU: 0.5 (1 + t) + 0.5 x (1 − t²) √(2/π) (1 + 3 · 0.044715 x²), t = tanh(√(2/π) (x + 0.044715 x³))."""
    f = np.float32  # in float32, as the forward (and torch's backward)
    x2 = x * x  # (not x ** 3: a power is many times slower than two products)
    t = np.tanh(GELU_C * x * (f(1) + f(0.044715) * x2))
    return f(0.5) * (f(1) + t) + f(0.5) * x * (f(1) - t * t) * GELU_C * (f(1) + f(3 * 0.044715) * x2)


def gelu_erf_grad(x):
    """d/dx of the exact GELU: Φ(x) + x φ(x)."""
    x = x.astype(np.float64)
    return (0.5 * (1 + _erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)).astype(np.float32)


def silu_grad(x):
    """d/dx of x σ(x): σ(x) (1 + x (1 − σ(x)))."""
    with np.errstate(over="ignore"):
        s = 1 / (1 + np.exp(-x.astype(np.float64)))
    return (s * (1 + x * (1 - s))).astype(np.float32)


def slope(name: str, grad, at, g, x):
    """An activation's chain step: g · f′(x), f′ as its backward computes it."""
    d = grad(x[at][None])[0]
    return local(f"g · {name}′(x)", np.array([at]), g[at], d, rows=[("x", x[at]), (f"{name}′(x)", d)],
                 text=lambda v: f"{fmt(g[at])} × {name}′({fmt(x[at])}) = {fmt(g[at])} × {paren(d)} = {fmt(v)}")


# Hugging Face's activation names (config.json's `activation_function` or `hidden_act`) -> the op that computes each.
ACTIVATIONS = {
    "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "gelu_fast": "gelu",
    "gelu": "gelu_erf", "relu": "relu", "silu": "silu", "swish": "silu",
}
ACTIVATION_OPS = {op.name: op for op in (GELU, GELU_ERF, RELU, SILU)}


def mlp(blk, i: int, x: str) -> str:
    """Declare a plain MLP into the block scope `blk` (layer i) on its input x: W_out · act(W_in · x + b_in) + b_out,
    the activation the config names (GPT-2's, GPT-NeoX's and Phi's; a model without biases has none)."""
    ml = blk.sub("mlp")
    W_in = ml.weight("W_in", ["d_model", "d_mlp"], f"MLP input weight, layer {i}", label="W_in")
    b_in = ml.bias("b_in", ["d_mlp"], f"MLP input bias, layer {i}", label="b_in")
    pre = ml.linear("hook_pre", x, W_in, b_in, f"MLP pre-activation, layer {i}", label="MLP pre")
    act = ACTIVATIONS[blk.config.activation]
    post = ml.op("hook_post", ["pos", "d_mlp"], act, (pre,), f"MLP activation ({ACTIVATION_OPS[act].label}), layer {i}",
                 label="activation")
    W_out = ml.weight("W_out", ["d_mlp", "d_model"], f"MLP output weight, layer {i}", label="W_out")
    b_out = ml.bias("b_out", ["d_model"], f"MLP output bias, layer {i}", label="b_out")
    return ml.linear(blk.name("hook_mlp_out"), post, W_out, b_out, f"MLP output, layer {i}", label="MLP out")

