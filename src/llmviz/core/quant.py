"""Precision and quantization: a model's weights stored in fewer bits, as people run models today, and computed on in
float32 after they are read back (dequantized), as llama.cpp's reference path does.

    q = quantized(load_model("nano-gpt"), "q4_0")   # a Model named "nano-gpt:q4_0"
    q.stored["blocks.1.mlp.W_out"].codes             # the stored 4-bit numbers (0 … 15), in the weight's axes
    q.run("CBABBC")                                  # every number computed from the dequantized weights

The formats (FORMATS):
- `f16`, `bf16`: each weight rounded to the nearest 16-bit float (round half to even, as torch's casts);
- `int8`: per output channel, symmetric: scale = max |w| / 127, code = round(w / scale) in −127 … 127;
- `q8_0`, `q4_0`: ggml's block formats. Blocks of BLOCK (32) consecutive weights along the input dimension, one scale
  per block, stored as float16 (d). q8_0: d = max |w| / 127, code = round(w / d) in −127 … 127, w ≈ d · code.
  q4_0: d = (the block's weight of largest magnitude, with its sign) / −8, code = the integer part of w / d + 8.5,
  clipped to 0 … 15, w ≈ d · (code − 8).

What is quantized: every matrix a matrix product reads (its input axes are the ones the product sums over) and the
token embedding (its input axis: the channel), as llama.cpp quantizes a model's 2-D weights; a tied unembedding is the
embedding's numbers. The position embedding, the biases and the norms' gains stay float32. A matrix whose input
dimension is not a multiple of BLOCK cannot be cut into ggml's blocks: it is stored as f16 (`Stored.fmt` says so).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .errors import LlmvizError
from .graph import Graph

FORMATS = ("f32", "f16", "bf16", "int8", "q8_0", "q4_0")
BITS = {"f32": 32, "f16": 16, "bf16": 16, "int8": 8, "q8_0": 8, "q4_0": 4, "q4_1": 4}  # (q4_1: GGUF files')
BLOCK = 32  # ggml's block: weights per scale in q8_0 and q4_0
SEP = ":"  # a quantized model's name: "<model>:<format>"


@dataclass(frozen=True)
class Stored:
    """One weight as a format stores it, in the weight's own axes (the graph's)."""

    fmt: str  # the format it is stored in (a matrix that cannot be blocked: "f16")
    original: np.ndarray | None  # float32: the weight before (None: read from a file that stores it quantized)
    values: np.ndarray  # float32: the numbers the pass computes with (dequantized)
    codes: np.ndarray | None  # the stored integers (int8, q8_0: −127 … 127; q4_0, q4_1: 0 … 15); None for a float format
    scales: np.ndarray | None  # each cell's scale (its block's d, or its channel's), float32; None for a float format
    block: np.ndarray | None  # each cell's block (q8_0, q4_0) or output channel (int8), numbered row by row
    mins: np.ndarray | None = None  # q4_1's: each cell's block minimum m (w = d · code + m), float32

    @property
    def error(self) -> np.ndarray | None:
        """values − original, per cell (None without an original)."""
        return None if self.original is None else self.values - self.original

    def nbytes(self) -> int:
        """Its bytes as stored: a 16-bit float 2 per weight; int8 one per weight and a float32 scale per channel; q8_0
        34 per block of 32 (a float16 d and 32 bytes); q4_0 18 (a float16 d and 16 bytes)."""
        n = self.values.size
        if self.fmt in ("f16", "bf16"):
            return 2 * n
        if self.fmt == "int8":
            return n + 4 * int(self.block.max() + 1)  # type: ignore[union-attr]
        return (n // BLOCK) * (2 + (2 if self.mins is not None else 0) + BLOCK * BITS[self.fmt] // 8)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """C's roundf, which ggml uses: halves away from zero (numpy's round takes them to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(np.float32)


def bf16(x: np.ndarray) -> np.ndarray:
    """Rounded to the nearest bfloat16 (half to even), as torch's cast: the top 16 bits of the float32 kept."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    kept = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint32) << 16
    return np.where(np.isfinite(x), kept.view(np.float32), x).astype(np.float32)


def quantize_rows(m: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """A matrix [out, in] (each row one output's weights, as ggml lays a weight out) in `fmt`: (values, codes, each
    cell's scale, each cell's block or channel), the last three None for a float format."""
    m = m.astype(np.float32)
    if fmt == "f32":
        return m.copy(), None, None, None
    if fmt == "f16":
        return f16(m), None, None, None
    if fmt == "bf16":
        return bf16(m), None, None, None
    out, inp = m.shape
    if fmt == "int8":
        scale = np.abs(m).max(1, keepdims=True) / np.float32(127)
        inv = np.divide(1, scale, out=np.zeros_like(scale), where=scale != 0)
        codes = np.clip(round_half_away(m * inv), -127, 127).astype(np.int8)
        scales = np.broadcast_to(scale, m.shape).astype(np.float32)
        return codes * scales, codes, scales, np.broadcast_to(np.arange(out, dtype=np.int32)[:, None], m.shape).copy()
    blocks = m.reshape(out, inp // BLOCK, BLOCK)
    if fmt == "q8_0":
        d = np.abs(blocks).max(-1, keepdims=True) / np.float32(127)
        inv = np.divide(1, d, out=np.zeros_like(d), where=d != 0)
        codes = round_half_away(blocks * inv).astype(np.int8)
        centred = codes.astype(np.float32)
    elif fmt == "q4_0":
        at = np.abs(blocks).argmax(-1)[..., None]
        d = np.take_along_axis(blocks, at, -1) / np.float32(-8)
        inv = np.divide(1, d, out=np.zeros_like(d), where=d != 0)
        codes = np.clip(np.trunc(blocks * inv + np.float32(8.5)), 0, 15).astype(np.uint8)
        centred = codes.astype(np.float32) - 8
    else:
        raise LlmvizError(f"unknown format {fmt!r}: llmviz stores weights as {', '.join(FORMATS)}")
    d = f16(d)  # (ggml stores each block's scale as a float16)
    values = (centred * d).reshape(out, inp)
    scales = np.broadcast_to(d, blocks.shape).reshape(out, inp).astype(np.float32)
    block = np.arange(out * (inp // BLOCK), dtype=np.int32).reshape(out, inp // BLOCK, 1).repeat(BLOCK, -1).reshape(out, inp)
    return values, codes.reshape(out, inp), scales, block


def input_axes(graph: Graph) -> dict[str, tuple[str, ...]]:
    """The weights a format quantizes, each with its input axes: a matrix product's weight, the axes it sums over;
    the token embedding, its channel. (Not the position embedding, a bias or a norm's gain; a tied weight is the
    weight it names.)"""
    out: dict[str, tuple[str, ...]] = {}
    for t in graph:
        if t.op == "linear" and graph[t.inputs[1]].kind == "weight":
            w = graph[t.inputs[1]]
            if not w.attrs.get("tied_to"):
                out[w.name] = tuple(w.axes[d] for d in t.attrs["w_dims"])
        elif t.op == "embed":
            table = graph[t.inputs[0]]
            out[table.name] = tuple(a for a in table.axes if a != "vocab")
    return out


def stored_as(fmt: str, n_in: int) -> str:
    """The format a matrix whose rows hold n_in numbers is stored in: `fmt`, or f16 where ggml's blocks cannot cut
    its rows."""
    return fmt if fmt not in ("q8_0", "q4_0") or n_in % BLOCK == 0 else "f16"


def store(w: np.ndarray, axes: tuple[str, ...], inputs: tuple[str, ...], fmt: str) -> Stored:
    """A weight (in `axes`) in `fmt`: laid out as ggml lays it, [outputs, inputs] (each group of axes flattened in
    order), quantized row by row, and laid back in its own axes."""
    outs = [a for a in axes if a not in inputs]
    order = [axes.index(a) for a in (*outs, *inputs)]
    t = np.ascontiguousarray(np.asarray(w, np.float32).transpose(order))
    n_in = math.prod(t.shape[len(outs):])
    used = stored_as(fmt, n_in)
    values, codes, scales, block = quantize_rows(t.reshape(-1, n_in), used)
    back = np.argsort(order)

    def own(a):
        return None if a is None else np.ascontiguousarray(a.reshape(t.shape).transpose(back))

    return Stored(used, np.asarray(w, np.float32), own(values), own(codes), own(scales), own(block))


def precision_name(model: str, fmt: str) -> str:
    """A model's name in a format: itself in f32, "<model>:<fmt>" otherwise (what a server resolves)."""
    return model if fmt == "f32" else f"{model}{SEP}{fmt}"


def quantized(model, fmt: str, keep: bool = True):
    """The model with its weights stored in `fmt` and read back (a new Model named "<name>:<fmt>", its `stored` each
    quantized weight's Stored, unless not `keep`: then only the numbers read back, for a pass); "f32" is the model
    itself."""
    from .model import Model
    from .weights import widen

    if fmt not in FORMATS:
        raise LlmvizError(f"unknown format {fmt!r}: llmviz stores weights as {', '.join(FORMATS)}")
    if fmt == "f32":
        return model
    if getattr(model, "stored", None):
        raise LlmvizError(f"{model.name} is already quantized ({model.precision}): quantize the original instead")
    weights = model.require_weights()
    graph = model.graph
    stored, new = {}, {}
    quantize = input_axes(graph)
    for name, w in weights.items():
        if graph[name].attrs.get("tied_to"):
            continue
        if name not in quantize:
            new[name] = widen(w)
            continue
        s = store(widen(w), graph[name].axes, quantize[name], fmt)  # (one weight's codes and scales at a time)
        new[name] = s.values
        if keep:
            stored[name] = s
    config = dataclasses.replace(model.config, name=precision_name(model.name, fmt))
    q = Model(config, new, model.tokenizer, source=f"{model.source}, stored as {fmt}".lstrip(", "))
    q.stored, q.precision = stored, fmt
    return q
