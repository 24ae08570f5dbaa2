"""Layer norm, in four steps that each show: the mean, the standard deviation, the normalised vector, and
the learned gain and bias. RMSNorm: the root mean square, the normalised vector, and the gain. Each norm's ops,
and how an architecture declares the norm's tensors in its graph (`layer_norm`, `rms_norm`)."""

from __future__ import annotations

import numpy as np

from .base import Op, unbroadcast


def ln_mean(x):
    """Accumulated in float64, then rounded: a mean near zero is a sum that cancels, and float32
    accumulation would leave it off in the fourth digit from the value its formula shows."""
    return x.mean(-1, dtype=np.float64).astype(np.float32)


LN_MEAN = Op('ln_mean', 'μ = Σ x / C', "Mean of each position's vector.", ln_mean,
             backward=lambda g, out, x: (np.broadcast_to(g[..., None] / np.float32(x.shape[-1]), x.shape),))


def ln_scale_backward(g, out, x, mean, eps):
    """∂σ/∂x = (x − μ) / (C σ); ∂σ/∂μ = −Σ (x − μ) / (C σ), which is 0 up to rounding (the centred values sum to 0)."""
    d = (x - mean[..., None]) / (np.float32(x.shape[-1]) * out[..., None])
    gx = g[..., None] * d
    return gx, -gx.sum(-1)


def ln_scale(x, mean, eps):
    centred = x - mean[..., None]
    return np.sqrt((centred * centred).mean(-1, dtype=np.float64) + eps).astype(np.float32)


LN_SCALE = Op(
    'ln_scale', 'σ = √(Σ (x − μ)² / C + ε)',
    "Standard deviation of each position's vector.",
    ln_scale, backward=ln_scale_backward)


def ln_normalize_backward(g, out, x, mean, scale):
    s = scale[..., None]
    gx = g / s
    return gx, -gx.sum(-1), -(g * (x - mean[..., None])).sum(-1) / (scale * scale)


def ln_normalize(x, mean, scale):
    return (x - mean[..., None]) / scale[..., None]


LN_NORMALIZE = Op(
    'ln_normalize', '(x − μ) / σ',
    'Centre and scale each vector to mean 0, variance 1.',
    ln_normalize, plain=(
        "mu = x.mean()  # x: one position's vector\n"
        'sigma = np.sqrt(((x - mu) ** 2).mean() + eps)\n'
        'x_hat = (x - mu) / sigma'), backward=ln_normalize_backward)


def ln_affine(normalized, w, b=None):
    out = normalized * w
    if b is not None:
        out += b
    return out


def ln_affine_backward(g, out, normalized, w, b=None):
    return g * w, unbroadcast(g * normalized, w.shape), None if b is None else unbroadcast(g, b.shape)


LN_AFFINE = Op('ln_affine', 'x̂ · γ + β', "Apply the layer norm's learned gain and bias.", ln_affine,
    plain='y = gamma * x_hat + beta  # one gain and one bias per number (RMSNorm: no beta)', backward=ln_affine_backward)


def rms_scale(x, eps):
    """In float64, then rounded, as ln_scale."""
    return np.sqrt((x.astype(np.float64) ** 2).mean(-1) + eps).astype(np.float32)


RMS_SCALE = Op(
    'rms_scale', 's = √(Σ x² / C + ε)',
    "Root mean square of each position's vector (RMSNorm does not subtract the mean).",
    rms_scale, backward=lambda g, out, x, eps: (g[..., None] * x / (np.float32(x.shape[-1]) * out[..., None]),))


def rms_normalize(x, scale):
    return x / scale[..., None]


RMS_NORMALIZE = Op(
    'rms_normalize', 'x / s', 'Scale each vector to a root mean square of 1.', rms_normalize, plain=(
        "s = np.sqrt((x ** 2).mean() + eps)  # x: one position's vector\n"
        'x_hat = x / s'), backward=lambda g, out, x, scale: (g / scale[..., None], -(g * x).sum(-1) / (scale * scale)))


# ---- The norms' tensors, as an architecture declares them ----

def layer_norm(s, name: str, x: str, title: str) -> str:
    """LayerNorm of x in its four visible steps, declared in the scope `s` under `name` (`ln1`, `ln_final`): μ, σ,
    (x − μ) / σ, then the gain γ and the bias β (none in a model without biases). Returns its output."""
    ln = s.sub(name)
    w = ln.weight("w", ["d_model"], f"{title} gain γ", label="γ")
    b = ln.bias("b", ["d_model"], f"{title} bias β", label="β")
    mean = ln.aggregate("hook_mean", ["pos"], "ln_mean", (x,), f"{title} mean μ", label="μ")
    scale = ln.aggregate("hook_scale", ["pos"], "ln_scale", (x, mean), f"{title} std σ", label="σ",
                         eps=s.config.layer_norm_eps)
    norm = ln.op("hook_normalized", ["pos", "d_model"], "ln_normalize", (x, mean, scale), f"{title} normalized", label="x̂")
    return ln.op("hook_out", ["pos", "d_model"], "ln_affine", (norm, w) if b is None else (norm, w, b), f"{title} output",
                 label="LN out")


def rms_norm(s, name: str, x: str, title: str) -> str:
    """RMSNorm of x in its visible steps, declared in the scope `s` under `name`: the root mean square s, x / s,
    then the gain γ. Returns its output."""
    ln = s.sub(name)
    w = ln.weight("w", ["d_model"], f"{title} gain γ", label="γ")
    scale = ln.aggregate("hook_scale", ["pos"], "rms_scale", (x,), f"{title} root mean square s", label="s (rms)",
                         eps=s.config.layer_norm_eps)
    norm = ln.op("hook_normalized", ["pos", "d_model"], "rms_normalize", (x, scale), f"{title} normalized", label="x / s")
    return ln.op("hook_out", ["pos", "d_model"], "ln_affine", (norm, w), f"{title} output", label="RMS out")
