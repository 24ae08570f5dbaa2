"""The precision table: a model at each format (core/quant.py), side by side: the bytes its weights take as stored,
how far the stored weights moved, how far that moved the logits on one input, and the time of a pass.

    t = precision_table(load_model("shakespeare-char"), "To be, or not to be")
    t["formats"][-1]            # q4_0: {"bytes": ..., "weight_rms": ..., "logits_max": ..., "top_prob": ..., ...}

For each format:
- bytes: the weights as stored (each quantized weight's Stored.nbytes; the position embedding, biases and norms'
  gains stay float32, 4 bytes each; a tied weight counts once), and bits per weight over all of them;
- the weights' error, over every quantized cell: the RMS and the largest |stored − original|, and the RMS relative
  to the weights' own RMS;
- the logits' error on the input: the largest |Δ| against the float32 pass over every position, the probability the
  format gives the float32 pass's top token at the last position (and whether it is still the top one), and the share
  of positions whose top token is unchanged;
- the time of one forward pass, measured once (after one untimed float32 pass; `repeats`: the fastest of so many),
  not averaged: a rough guide.
  Every format computes in float32 on its weights read back, so fewer bits make llmviz's pass no faster; what they
  save is memory (llama.cpp computes on the blocks directly, which this does not imitate).
- fallback: each matrix stored otherwise than asked, and why (a row whose length is not a multiple of 32 cannot be
  cut into ggml's blocks: it is stored as f16).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..core.errors import LlmvizError
from ..core.model import Model
from ..core.quant import BLOCK, FORMATS, input_axes, quantized


def timing(repeats: int) -> str:
    """What a table's pass times are, in words."""
    how = "timed once" if repeats == 1 else f"the fastest of {repeats} passes"
    return (f"each format's pass {how}, after one untimed float32 pass: a rough guide, not a benchmark. Every format "
            "computes in float32 on its weights read back, so fewer bits save memory here, not time")


def fallbacks(q: Model) -> list[dict[str, str]]:
    """The matrices of a quantized model stored otherwise than its format asked, each with the reason a learner reads:
    [{"weight": "embed.W_E", "stored_as": "f16", "why": "its rows have 48 inputs (d_model), not a multiple of 32:
    ggml cannot cut them into q4_0's blocks of 32"}, ...], in the graph's order."""
    g = q.graph
    out = []
    for name, inputs in input_axes(g).items():
        s = q.stored.get(name)
        if s is None or s.fmt == q.precision:
            continue
        shape = dict(zip(g[name].axes, s.values.shape))
        n = math.prod(shape[a] for a in inputs)
        out.append({"weight": name, "stored_as": s.fmt,
                    "why": f"its rows have {n} inputs ({' × '.join(inputs)}), not a multiple of {BLOCK}: ggml cannot "
                           f"cut them into {q.precision}'s blocks of {BLOCK}"})
    return out


def weight_bytes(m: Model) -> tuple[int, int, int]:
    """(the weights' bytes as stored, of which float32, the number of weights), a tied weight once."""
    total = f32 = n = 0
    for name, w in m.require_weights().items():
        if m.graph[name].attrs.get("tied_to"):
            continue
        n += w.size
        if name in m.stored:
            total += m.stored[name].nbytes()
        else:
            total += 4 * w.size
            f32 += 4 * w.size
    return total, f32, n


def weight_error(q: Model) -> tuple[float, float, float]:
    """Over every quantized cell: (RMS of stored − original, the largest |stored − original|, the RMS relative to the
    original weights' RMS)."""
    sq = big = orig = 0.0
    n = 0
    for s in q.stored.values():
        if s.original is None:  # (a file's quantized weights: no float original to compare)
            continue
        e = (s.values - s.original).astype(np.float64)
        sq += float((e * e).sum())
        big = max(big, float(np.abs(e).max(initial=0)))
        orig += float((s.original.astype(np.float64) ** 2).sum())
        n += e.size
    if n == 0:
        return 0.0, 0.0, 0.0
    return math.sqrt(sq / n), big, math.sqrt(sq / orig) if orig else 0.0


def precision_table(model: Model, prompt, formats: Sequence[str] = FORMATS,
                    stored: Callable[[str], Model] | None = None, clock: Callable[[], float] = time.perf_counter,
                    stop: Callable[[], bool] | None = None, repeats: int = 1) -> dict:
    """The table for `model` (float32) on `prompt` at each of `formats` (see the module doc). stored(fmt): the model
    in that format (default: core.quant.quantized; a server passes the ones it keeps)."""
    if model.precision != "f32":
        raise LlmvizError(f"{model.name} is already stored as {model.precision}: the precision table compares the "
                          "float32 model with each format, so ask for the model itself")
    model.require_weights()
    if unknown := [f for f in formats if f not in FORMATS]:  # (refused before any work)
        raise LlmvizError(f"unknown format {unknown[0]!r}: llmviz stores weights as {', '.join(FORMATS)}")
    make = stored or (lambda fmt: quantized(model, fmt))
    ids = model.encode(prompt)
    keep = ("logits", "probs")
    ref = model.run(ids, keep=keep, stop=stop)  # (untimed: it warms the caches for the timed passes)
    ref_logits = np.atleast_2d(ref["logits"])
    ref_probs = np.atleast_2d(ref["probs"])
    top = int(ref_probs[-1].argmax())
    f32_bytes = weight_bytes(model)[0]
    rows = []
    for fmt in formats:
        q = model if fmt == "f32" else make(fmt)
        total, f32, n = weight_bytes(q)
        rms, big, rel = weight_error(q)
        row = {"format": fmt, "bytes": total, "float32_bytes": f32, "bits_per_weight": 8 * total / n,
               "size": total / f32_bytes, "weight_rms": rms, "weight_max": big, "weight_rel_rms": rel,
               "logits_max": None, "top_prob": None, "top_same": None, "agree": None, "pass_ms": None,
               "refused": None, "fallback": fallbacks(q) if fmt != "f32" else []}
        try:
            times = []
            for _ in range(repeats):
                start = clock()
                t = q.run(ids, keep=keep, stop=stop)
                times.append((clock() - start) * 1000)
            row["pass_ms"] = min(times)
        except LlmvizError as e:  # (a format whose numbers leave float32's range: said, not shown as NaN)
            row["refused"] = str(e)
            rows.append(row)
            continue
        logits, probs = np.atleast_2d(t["logits"]), np.atleast_2d(t["probs"])
        row.update(logits_max=float(np.abs(logits - ref_logits).max()), top_prob=float(probs[-1, top]),
                   top_same=bool(probs[-1].argmax() == top),
                   agree=float((probs.argmax(-1) == ref_probs.argmax(-1)).mean()))
        rows.append(row)
    return {"model": model.name, "input": model.decode(ids) if not model.config.classifier else str(prompt),
            "tokens": len(ids), "top_token": model.token_strs([top])[0], "formats": rows, "timing": timing(repeats)}
