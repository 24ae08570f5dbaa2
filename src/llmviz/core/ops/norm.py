"""Layer norm, in four steps that each show: the mean, the standard deviation, the normalised vector, and
the learned gain and bias. RMSNorm: the root mean square, the normalised vector, and the gain. Each norm's ops,
and how an architecture declares the norm's tensors in its graph (`layer_norm`, `rms_norm`)."""

from __future__ import annotations

import math

import numpy as np

from .base import Op, fmt, region


def ln_mean(x):
    """Accumulated in float64, then rounded: a mean near zero is a sum that cancels, and float32
    accumulation would leave it off in the fourth digit from the value its formula shows."""
    return x.mean(-1, dtype=np.float64).astype(np.float32)


def explain_ln_mean(trace, t, at, value):
    x_name = t.inputs[0]
    row = trace[x_name][at["pos"]].astype(np.float64)
    result = float(row.mean())
    return {"text": f"Σ x / {row.size} = {fmt(float(row.sum()))} / {row.size} = {fmt(result)}", "result": result,
            "rows": [], "sources": [region(trace, x_name, {"pos": at["pos"]}, "input")]}


LN_MEAN = Op('ln_mean', 'μ = Σ x / C', "Mean of each position's vector.", ln_mean, explain_ln_mean)


def ln_scale(x, mean, eps):
    centred = x - mean[..., None]
    return np.sqrt((centred * centred).mean(-1, dtype=np.float64) + eps).astype(np.float32)


def explain_ln_scale(trace, t, at, value):
    x_name, m_name = t.inputs
    row = trace[x_name][at["pos"]].astype(np.float64)
    mu, eps = float(trace[m_name][at["pos"]]), float(t.attrs["eps"])
    var = float(((row - mu) ** 2).mean())
    result = math.sqrt(var + eps)
    return {"text": f"√({fmt(var)} + {eps:g}) = {fmt(result)}", "result": result,
            "rows": [["μ", fmt(mu)], ["variance Σ(x − μ)²/C", fmt(var)], ["ε", f"{eps:g}"]],
            "sources": [region(trace, x_name, {"pos": at["pos"]}, "input"), region(trace, m_name, {"pos": at["pos"]}, "aggregate")]}


LN_SCALE = Op(
    'ln_scale', 'σ = √(Σ (x − μ)² / C + ε)',
    "Standard deviation of each position's vector.",
    ln_scale, explain_ln_scale)


def ln_normalize(x, mean, scale):
    return (x - mean[..., None]) / scale[..., None]


def explain_ln_normalize(trace, t, at, value):
    x_name, m_name, s_name = t.inputs
    x = float(trace[x_name][at["pos"], at["d_model"]])
    mu, sigma = float(trace[m_name][at["pos"]]), float(trace[s_name][at["pos"]])
    result = (x - mu) / sigma
    return {"text": f"({fmt(x)} − {fmt(mu)}) / {fmt(sigma)} = {fmt(result)}", "result": result,
            "rows": [["x", fmt(x)], ["μ", fmt(mu)], ["σ", fmt(sigma)]],
            "sources": [region(trace, x_name, dict(at), "input"), region(trace, m_name, {"pos": at["pos"]}, "aggregate"),
                        region(trace, s_name, {"pos": at["pos"]}, "aggregate")]}


LN_NORMALIZE = Op(
    'ln_normalize', '(x − μ) / σ',
    'Centre and scale each vector to mean 0, variance 1.',
    ln_normalize, explain_ln_normalize, plain=(
        "mu = x.mean()  # x: one position's vector\n"
        'sigma = np.sqrt(((x - mu) ** 2).mean() + eps)\n'
        'x_hat = (x - mu) / sigma'))


def ln_affine(normalized, w, b=None):
    out = normalized * w
    if b is not None:
        out += b
    return out


def explain_ln_affine(trace, t, at, value):
    n_name, w_name = t.inputs[:2]
    b_name = t.inputs[2] if len(t.inputs) > 2 else None
    graph = trace.graph
    n = float(trace[n_name][at["pos"], at["d_model"]])
    g = float(trace[w_name][at["d_model"]])
    b = float(trace[b_name][at["d_model"]]) if b_name else 0.0
    result = n * g + b
    sources = [region(trace, n_name, dict(at), "input"), region(trace, w_name, {"d_model": at["d_model"]}, "weight")]
    if b_name:
        sources.append(region(trace, b_name, {"d_model": at["d_model"]}, "bias"))
    stats = [float(trace[s][at["pos"]]) for s in graph[n_name].inputs[1:]]
    if len(stats) == 1:  # RMSNorm: x / s, and no bias
        return {"text": f"x / s · γ = {fmt(n)} × {fmt(g)} = {fmt(result)}", "result": result,
                "rows": [["x̂ = x / s", fmt(n)], ["s", fmt(stats[0])], ["γ", fmt(g)]], "sources": sources}
    mu, sigma = stats
    return {"text": f"(x − μ) / σ · γ + β = {fmt(n)} × {fmt(g)} + {fmt(b)} = {fmt(result)}", "result": result,
            "rows": [["x̂ = (x − μ) / σ", fmt(n)], ["μ", fmt(mu)], ["σ", fmt(sigma)], ["γ", fmt(g)], ["β", fmt(b)]],
            "sources": sources}


LN_AFFINE = Op('ln_affine', 'x̂ · γ + β', "Apply the layer norm's learned gain and bias.", ln_affine, explain_ln_affine,
    plain='y = gamma * x_hat + beta  # one gain and one bias per number (RMSNorm: no beta)')


def rms_scale(x, eps):
    """In float64, then rounded, as ln_scale."""
    return np.sqrt((x.astype(np.float64) ** 2).mean(-1) + eps).astype(np.float32)


def explain_rms_scale(trace, t, at, value):
    x_name = t.inputs[0]
    row = trace[x_name][at["pos"]].astype(np.float64)
    ms, eps = float((row ** 2).mean()), float(t.attrs["eps"])
    result = math.sqrt(ms + eps)
    return {"text": f"√(Σ x² / {row.size} + {eps:g}) = √({fmt(ms)} + {eps:g}) = {fmt(result)}", "result": result,
            "rows": [["mean square Σ x²/C", fmt(ms)], ["ε", f"{eps:g}"]],
            "sources": [region(trace, x_name, {"pos": at["pos"]}, "input")]}


RMS_SCALE = Op(
    'rms_scale', 's = √(Σ x² / C + ε)',
    "Root mean square of each position's vector (RMSNorm does not subtract the mean).",
    rms_scale, explain_rms_scale)


def rms_normalize(x, scale):
    return x / scale[..., None]


def explain_rms_normalize(trace, t, at, value):
    x_name, s_name = t.inputs
    x = float(trace[x_name][at["pos"], at["d_model"]])
    s = float(trace[s_name][at["pos"]])
    result = x / s
    return {"text": f"x / s = {fmt(x)} / {fmt(s)} = {fmt(result)}", "result": result,
            "rows": [["x", fmt(x)], ["s", fmt(s)]],
            "sources": [region(trace, x_name, dict(at), "input"), region(trace, s_name, {"pos": at["pos"]}, "aggregate")]}


RMS_NORMALIZE = Op(
    'rms_normalize', 'x / s', 'Scale each vector to a root mean square of 1.', rms_normalize, explain_rms_normalize, plain=(
        "s = np.sqrt((x ** 2).mean() + eps)  # x: one position's vector\n"
        'x_hat = x / s'))


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
