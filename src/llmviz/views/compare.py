"""One input at two precisions (core/quant.py): the same model with its weights stored in two formats, run on the same
tokens, side by side. What moved, and by how much:

- each layer's residual stream (blocks.L.hook_resid_post, and the embedding's blocks.0.hook_resid_pre before the first
  layer): its relative error ‖Δ‖ / ‖reference‖ over the model dimension, at the last position and averaged over the
  positions, Δ = other − reference;
- both passes' answers (the next token with its probability, nano-gpt's greedy answer) and the positions whose most
  probable next token differs;
- the difference view: the scene of the other pass with, beside its atlas, a second one `change` of every displayed
  cell's other − reference value, weights too (a weight's difference is its storage's error), packed as an edited
  pass's is (views/scene.py), so the page draws it the same way.

    compare(ref.run(text), quantized(ref, "q4_0").run(text))
"""

from __future__ import annotations

import json

import numpy as np

from ..core.model import Model, Trace
from ..core.quant import BITS
from ..io.safetensors_file import to_bytes as safetensors_bytes
from .scene import SceneBuilder, packed_like, prediction


def residual_points(model: Model) -> list[tuple[str, int | None, str]]:
    """The residual stream's tensors the chart follows, each with its layer and a label: the embedding's sum (the
    first layer's input), then each layer's output. None for a model without a residual stream (the learning path's
    own architectures)."""
    g = model.graph
    out: list[tuple[str, int | None, str]] = []
    if "blocks.0.hook_resid_pre" in g:
        out.append(("blocks.0.hook_resid_pre", None, "embedding"))
    out += [(f"blocks.{i}.hook_resid_post", i, f"layer {i}") for i in range(model.config.n_layer)
            if f"blocks.{i}.hook_resid_post" in g]
    return out


def relative_error(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """‖other − ref‖ / ‖ref‖ over the last axis (the model dimension), per position (float64; 0 where both are 0)."""
    r, o = ref.astype(np.float64), other.astype(np.float64)
    d, n = np.linalg.norm(o - r, axis=-1), np.linalg.norm(r, axis=-1)
    return np.divide(d, n, out=np.zeros_like(d), where=n != 0)


def side(trace: Trace) -> dict:
    m = trace.model
    return {"model": m.name, "format": m.precision, "bits": BITS[m.precision], "prediction": prediction(trace),
            "predicted": trace.predicted}


def compare(ref: Trace, other: Trace) -> dict:
    """The comparison of two passes of one input (the same model at two precisions): Comparison's JSON."""
    layers = []
    for tensor, layer, label in residual_points(ref.model):
        e = relative_error(ref[tensor], other[tensor])
        layers.append({"tensor": tensor, "layer": layer, "label": label, "last": float(e[-1]), "mean": float(e.mean())})
    a, b = ref.predicted, other.predicted
    pr, po = ref.next_probs, other.next_probs
    top_r = int(np.argmax(pr)) if pr is not None else None
    top_o = int(np.argmax(po)) if po is not None else None
    return {
        "model": ref.model.name, "tokens": ref.tokens, "token_strs": ref.token_strs,
        "reference": side(ref), "other": side(other), "layers": layers,
        "same_answer": top_r == top_o,  # the most probable next token after the input
        "changed_positions": [i for i, (x, y) in enumerate(zip(a, b)) if x != y],
        "probs_tv": float(0.5 * np.abs(po.astype(np.float64) - pr).sum()) if pr is not None and po is not None else 0.0,
    }


def compare_scene(other: Model, ref: Trace, heads: str = "side", stop=None) -> tuple[Trace, bytes]:
    """The scene of `other`'s pass of ref's tokens and beside its `atlas` a second one, `change`: every displayed
    cell's other − reference value (weights: the stored minus the reference weight; −inf where both mask a score),
    each block's `change` its largest |difference|. The scene's `compare` is the comparison (compare), and its
    `clean_prediction` / `clean_predicted` the reference pass's, as an edited pass's scene has them."""
    n = len(ref.tokens)
    builder = SceneBuilder(other, n, heads)
    change: dict[str, np.ndarray] = {}

    def differ(name: str, a: np.ndarray) -> None:
        before = ref[name]
        with np.errstate(invalid="ignore"):  # a score masked in both passes stays masked (-inf), not -inf - -inf
            d = np.where(a == before, np.where(np.isneginf(a), -np.inf, 0.0), a.astype(np.float64) - before)
        change[name] = builder.grid(name, d.astype(np.float32))[0]

    def visit(name: str, a: np.ndarray) -> None:
        builder.add(name, a)
        differ(name, a)

    trace = other.run(ref.tokens, keep=other.graph.checkpoints(), visit=visit, stop=stop)
    scene, atlas = builder.finish(trace)
    for b in scene["blocks"]:  # the weights: what storing them changed
        if other.graph[b["tensor"]].kind == "weight":
            differ(b["tensor"], trace[b["tensor"]])
    delta = packed_like(scene, atlas, change, "change")
    scene.update(compare=compare(ref, trace), clean_prediction=prediction(ref), clean_predicted=ref.predicted)
    return trace, bytes(safetensors_bytes({"atlas": atlas, "change": delta},
                                          {"scene": json.dumps(scene, separators=(",", ":"))}))
