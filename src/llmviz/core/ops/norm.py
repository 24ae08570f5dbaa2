"""Layer norm, in four steps that each show: the mean, the standard deviation, the normalised vector, and
the learned gain and bias. RMSNorm: the root mean square, the normalised vector, and the gain. Each norm's ops,
and how an architecture declares the norm's tensors in its graph (`layer_norm`, `rms_norm`)."""

from __future__ import annotations

import numpy as np

from .base import Op, at_cells, broadcast_cells, cells_along, fmt, local, paren, unbroadcast


def ln_mean(x):
    """Accumulated in float64, then rounded: a mean near zero is a sum that cancels, and float32
    accumulation would leave it off in the fourth digit from the value its formula shows."""
    return x.mean(-1, dtype=np.float64).astype(np.float32)


def _row_of(at):
    """The cell of a per-position aggregate (μ, σ, s) that a vector's number `at` feeds: its position."""
    return np.array([at[:-1]], np.int64)


LN_MEAN = Op('ln_mean', 'μ = Σ x / C', "Mean of each position's vector.", ln_mean,
             backward=lambda g, out, x: (np.broadcast_to(g[..., None] / np.float32(x.shape[-1]), x.shape),),
             chain=lambda k, at, g, out, x: local("g / C", _row_of(at), g[at[:-1]], 1 / x.shape[-1],
                                                  rows=[("C", x.shape[-1])]))


def ln_scale_backward(g, out, x, mean, eps):
    """∂σ/∂x = (x − μ) / (C σ); ∂σ/∂μ = −Σ (x − μ) / (C σ), which is 0 up to rounding (the centred values sum to 0)."""
    d = (x - mean[..., None]) / (np.float32(x.shape[-1]) * out[..., None])
    gx = g[..., None] * d
    return gx, -gx.sum(-1)


def ln_scale(x, mean, eps):
    centred = x - mean[..., None]
    return np.sqrt((centred * centred).mean(-1, dtype=np.float64) + eps).astype(np.float32)


def ln_scale_chain(k, at, g, out, x, mean, eps):
    """x's number: ∂σ/∂x = (x − μ) / (C σ); μ: ∂σ/∂μ = −Σ (x − μ) / (C σ) (0 but for rounding)."""
    row, C = at[:-1] if k == 0 else at, x.shape[-1]
    mu, sigma = np.float64(mean[row]), np.float64(out[row])
    if k == 0:
        return local("g · (x − μ) / (C σ)", np.array([row]), g[row], (np.float64(x[at]) - mu) / (C * sigma),
                     rows=[("x", x[at]), ("μ", mu), ("σ", sigma), ("C", C)])
    return local("−g · Σ (x − μ) / (C σ)", np.array([row]), g[row], -(x[row] - mu).sum(dtype=np.float64) / (C * sigma),
                 rows=[("σ", sigma), ("C", C)])


LN_SCALE = Op(
    'ln_scale', 'σ = √(Σ (x − μ)² / C + ε)',
    "Standard deviation of each position's vector.",
    ln_scale, backward=ln_scale_backward, chain=ln_scale_chain)


def ln_normalize_backward(g, out, x, mean, scale):
    s = scale[..., None]
    gx = g / s
    return gx, -gx.sum(-1), -(g * (x - mean[..., None])).sum(-1) / (scale * scale)


def ln_normalize(x, mean, scale):
    return (x - mean[..., None]) / scale[..., None]


def ln_normalize_chain(k, at, g, out, x, mean, scale):
    """x's number: ∂x̂/∂x = 1 / σ (μ and σ held); μ: every x̂ of the position moves by −1 / σ; σ: each by −x̂ / σ."""
    sigma = np.float64(scale[at[:-1] if k == 0 else at])
    if k == 0:
        return local("g / σ", np.array([at]), g[at], 1 / sigma, rows=[("σ", sigma)])
    cells = cells_along(out.shape, dict(enumerate(at)))
    if k == 1:
        return local("−Σ g / σ", cells, at_cells(g, cells), -1 / sigma, rows=[("σ", sigma)])
    return local("−Σ g · x̂ / σ", cells, at_cells(g, cells), -at_cells(out, cells).astype(np.float64) / sigma,
                 rows=[("σ", sigma)])


def ln_normalize_whole(at, g, out, x, mean, scale):
    """x's number through μ, σ and x̂ at once (LayerNorm's backward): (g − mean g − x̂ · mean(g · x̂)) / σ, g the
    loss's gradient at x̂; term by term, ∂x̂_j/∂x_i = (δ_ij − 1/C − x̂_i x̂_j / C) / σ."""
    cells = cells_along(out.shape, dict(enumerate(at[:-1])))
    return _norm_whole(at, g, out, scale, cells, centred=True)


def _norm_whole(at, g, out, scale, cells, centred: bool):
    """LayerNorm's (centred) or RMSNorm's whole backward for one number of x, from x̂ (`out`) and σ or s."""
    xh, gr = out[at[:-1]].astype(np.float64), g[at[:-1]].astype(np.float64)
    i, C, s = at[-1], out.shape[-1], np.float64(scale[at[:-1]])
    d = -xh[i] * xh / C - (1 / C if centred else 0)
    d[i] += 1
    mg, mgx = gr.mean(), (gr * xh).mean()
    name = "σ" if centred else "s"
    if centred:
        return local(f"(g − mean g − x̂ · mean(g · x̂)) / {name}", cells, gr, d / s,
                     rows=[("g", gr[i]), ("mean g", mg), ("x̂", xh[i]), ("mean g · x̂", mgx), (name, s)],
                     text=lambda v: f"({fmt(gr[i])} − {paren(mg)} − {paren(xh[i])} × {paren(mgx)}) / {fmt(s)} = {fmt(v)}")
    return local(f"(g − x̂ · mean(g · x̂)) / {name}", cells, gr, d / s,
                 rows=[("g", gr[i]), ("x̂", xh[i]), ("mean g · x̂", mgx), (name, s)],
                 text=lambda v: f"({fmt(gr[i])} − {paren(xh[i])} × {paren(mgx)}) / {fmt(s)} = {fmt(v)}")


LN_NORMALIZE = Op(
    'ln_normalize', '(x − μ) / σ',
    'Centre and scale each vector to mean 0, variance 1.',
    ln_normalize, plain=(
        "mu = x.mean()  # x: one position's vector\n"
        'sigma = np.sqrt(((x - mu) ** 2).mean() + eps)\n'
        'x_hat = (x - mu) / sigma'), backward=ln_normalize_backward, chain=ln_normalize_chain,
    chain_whole=ln_normalize_whole)


def ln_affine(normalized, w, b=None):
    out = normalized * w
    if b is not None:
        out += b
    return out


def ln_affine_backward(g, out, normalized, w, b=None):
    return g * w, unbroadcast(g * normalized, w.shape), None if b is None else unbroadcast(g, b.shape)


def ln_affine_chain(k, at, g, out, normalized, w, b=None):
    """x̂'s number: ∂out/∂x̂ = γ; γ's: Σ g · x̂ over the positions; β's: Σ g."""
    if k == 0:
        gamma = w[tuple(at[len(at) - w.ndim:])]  # (γ is broadcast along the leading axes)
        return local("g · γ", np.array([at]), g[at], gamma, rows=[("γ", gamma)])
    cells = broadcast_cells(out.shape, (w if k == 1 else b).shape, at)
    if k == 1:
        return local("Σ g · x̂", cells, at_cells(g, cells), at_cells(normalized, cells))
    return local("Σ g", cells, at_cells(g, cells), 1.0)


LN_AFFINE = Op('ln_affine', 'x̂ · γ + β', "Apply the layer norm's learned gain and bias.", ln_affine,
    plain='y = gamma * x_hat + beta  # one gain and one bias per number (RMSNorm: no beta)', backward=ln_affine_backward,
    chain=ln_affine_chain)


def rms_scale(x, eps):
    """In float64, then rounded, as ln_scale."""
    return np.sqrt((x.astype(np.float64) ** 2).mean(-1) + eps).astype(np.float32)


RMS_SCALE = Op(
    'rms_scale', 's = √(Σ x² / C + ε)',
    "Root mean square of each position's vector (RMSNorm does not subtract the mean).",
    rms_scale, backward=lambda g, out, x, eps: (g[..., None] * x / (np.float32(x.shape[-1]) * out[..., None]),),
    chain=lambda k, at, g, out, x, eps: local(
        "g · x / (C s)", _row_of(at), g[at[:-1]], np.float64(x[at]) / (x.shape[-1] * np.float64(out[at[:-1]])),
        rows=[("x", x[at]), ("s", out[at[:-1]]), ("C", x.shape[-1])]))


def rms_normalize(x, scale):
    return x / scale[..., None]


RMS_NORMALIZE = Op(
    'rms_normalize', 'x / s', 'Scale each vector to a root mean square of 1.', rms_normalize, plain=(
        "s = np.sqrt((x ** 2).mean() + eps)  # x: one position's vector\n"
        'x_hat = x / s'), backward=lambda g, out, x, scale: (g / scale[..., None], -(g * x).sum(-1) / (scale * scale)),
    chain=lambda k, at, g, out, x, scale: rms_normalize_chain(k, at, g, out, x, scale),
    chain_whole=lambda at, g, out, x, scale: _norm_whole(at, g, out, scale, cells_along(out.shape, dict(enumerate(at[:-1]))),
                                                         centred=False))


def rms_normalize_chain(k, at, g, out, x, scale):
    """x's number: ∂x̂/∂x = 1 / s (s held); s: every x̂ of the position moves by −x / s²."""
    s = np.float64(scale[at[:-1] if k == 0 else at])
    if k == 0:
        return local("g / s", np.array([at]), g[at], 1 / s, rows=[("s", s)])
    cells = cells_along(out.shape, dict(enumerate(at)))
    return local("−Σ g · x / s²", cells, at_cells(g, cells), -at_cells(x, cells).astype(np.float64) / (s * s),
                 rows=[("s", s)])


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
