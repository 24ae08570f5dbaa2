"""What the browser draws: the layout of every block plus the numbers in it, in one binary payload.

The payload is a safetensors file with one float16 tensor, `atlas`: every block's cells packed side
by side (one rectangle per head slab), and the scene description as JSON in its metadata. A block
whose grid is longer than the display cap along an axis is shown downsampled along that axis: each
displayed cell is the value of largest magnitude in a tile of the tensor, and the block says so. The cap
is MAX_DISPLAY cells, lowered for large models so that weights and computed tensors each stay within their
DISPLAY_BUDGET of displayed cells.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from typing import Any

import numpy as np

from ..core import weights as stored_weights
from ..core.backward import Gradients
from ..core.edits import Edit, info
from ..core.errors import LlmvizError
from ..core.graph import NAMED_BY, Graph
from ..core.model import Model, Trace, tie
from ..core.progress import report
from ..core.sampling import percent
from ..core.weights import streamed, widen
from ..io.safetensors_file import to_bytes as safetensors_bytes
from .embedmap import mapped
from .layout import Block, Layout, build_layout

MAX_DISPLAY = 512  # displayed cells per side of one block, at most
DISPLAY_BUDGET = {"weight": 2_000_000, "computed": 1_000_000}  # displayed cells, at most (GPT-2 small: 124 M weights)
MAX_ATLAS_WIDTH = 4096  # within every WebGL2 implementation's texture size limit
_weight_grids: weakref.WeakKeyDictionary[Model, dict] = weakref.WeakKeyDictionary()  # weights do not change
_weight_lock = threading.Lock()  # concurrent first scenes of a model make its weight grids once
F16_MAX = 65504.0


def slab_grid(values: np.ndarray, spec_axes: tuple[str, ...], b: Block) -> np.ndarray:
    """The tensor as [slab, rows (y axis), cols (x axis)]; an image's pixels as the image (rows of `wrap`)."""
    order = [a for a in (b.z_axis, b.y_axis, b.x_axis) if a]
    v = np.transpose(values, [spec_axes.index(a) for a in order])
    if b.z_axis is None:
        v = v[None]
    if b.y_axis is None and b.x_axis is None:  # a single number (an image classifier's softmax max)
        v = v.reshape(len(v), 1, 1)
    elif b.y_axis is None:
        v = v[:, None, :]
    elif b.x_axis is None:
        v = v[:, :, None]
    if b.wrap:  # an image: its pixels row by row, as the image
        v = v.reshape(len(v), b.rows, b.cols)
    return v


def tile_max_abs(grid: np.ndarray, fy: int, fx: int | None = None) -> np.ndarray:
    """[n, rows, cols] -> [n, ceil(rows/fy), ceil(cols/fx)]: each fy × fx tile's value of largest magnitude
    (−inf only where a whole tile is masked)."""
    fx = fy if fx is None else fx
    n, r, c = grid.shape
    R, C = -(-r // fy), -(-c // fx)
    if np.isfinite(grid).all():  # the usual case, done with two reductions and no copy but the padding
        g = grid if (r, c) == (R * fy, C * fx) else np.pad(grid, ((0, 0), (0, R * fy - r), (0, C * fx - c)))
        tiles = g.reshape(n, R, fy, C, fx)
        hi, lo = tiles.max(axis=(2, 4)), tiles.min(axis=(2, 4))
        return np.where(hi >= -lo, hi, lo).astype(np.float32)
    padded = np.full((n, R * fy, C * fx), np.nan, np.float32)
    padded[:, :r, :c] = grid
    tiles = padded.reshape(n, R, fy, C, fx).transpose(0, 1, 3, 2, 4).reshape(n, R, C, fy * fx)
    mag = np.where(np.isfinite(tiles), np.abs(tiles), -1.0)
    pick = np.take_along_axis(tiles, mag.argmax(-1)[..., None], -1)[..., 0]
    all_masked = (mag.max(-1) < 0) & np.isinf(tiles).any(-1)
    return np.where(all_masked, -np.inf, np.where(np.isnan(pick), 0.0, pick)).astype(np.float32)


def tile_max_abs_bits(bits: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """tile_max_abs of a weight stored in 16 bits (bfloat16 as uint16, or float16), on its bits, in that dtype: a
    16-bit float's magnitude grows with its 15 low bits, so one integer maximum of (magnitude, then + before −)
    picks each tile's number, with no float32 copy and no NaN (a checked weight has none)."""
    n, r, c = bits.shape
    R, C = -(-r // fy), -(-c // fx)
    u = bits.view(np.uint16)
    key = np.zeros((n, R * fy, C * fx), np.uint16)  # (the padding: 0, below every key)
    k = key[:, :r, :c]
    np.bitwise_and(u, 0x7FFF, out=k)
    k <<= 1
    k |= (u >> 15) ^ 1
    best = key.reshape(n, R, fy, C, fx).max(axis=(2, 4))
    return ((best >> 1) | ((best & 1 ^ 1) << 15)).astype(np.uint16).view(bits.dtype)


def largest_magnitude(a: np.ndarray) -> float:
    """max |value| over the finite values (masked scores are −inf), 0 if there are none."""
    hi, lo = float(a.max(initial=-np.inf)), float(a.min(initial=np.inf))
    if np.isfinite(hi) and np.isfinite(lo):
        return max(hi, -lo)
    finite = np.abs(a[np.isfinite(a)])
    return float(finite.max()) if finite.size else 0.0


class AtlasPacker:
    """Shelf packing of rectangles into rows of a fixed-width texture."""

    def __init__(self, width: int):
        self.width, self.x, self.y, self.shelf = width, 0, 0, 0

    def place(self, w: int, h: int) -> tuple[int, int]:
        if self.x + w > self.width:
            self.x, self.y, self.shelf = 0, self.y + self.shelf, 0
        pos = (self.x, self.y)
        self.x += w
        self.shelf = max(self.shelf, h)
        return pos

    @property
    def height(self) -> int:
        return self.y + self.shelf


def display_cap(blocks: list[Block], budget: int) -> int:
    """Cells per side a block may show so that these blocks fit in `budget` displayed cells."""
    def cost(cap):
        return sum(min(b.rows, cap) * min(b.cols, cap) * (1 if b.merged else b.depth) for b in blocks)
    lo, hi = 8, MAX_DISPLAY
    if cost(hi) <= budget:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= budget else (lo, mid - 1)
    return lo


class SceneBuilder:
    """The scene of one forward pass, built block by block: `add` reduces a tensor to its displayed grid
    (called while the pass runs, so no tensor has to outlive it), `finish` packs the atlas."""

    def __init__(self, model: Model, n_pos: int, heads: str = "side", graph=None, tower: bool = False):
        self.model, self.n_pos = model, n_pos
        self.graph = graph = graph or model.graph  # a generation step's graph, with a KV cache
        # tower: the layers in one column, each MLP below its attention (the scale view's models side by side)
        self.layout: Layout = build_layout(graph, n_pos, heads, (False, 1) if tower else None)
        self.index = {b.tensor: i for i, b in enumerate(self.layout.blocks)}
        # Weights and computed tensors have budgets of their own: the weights' cap does not depend on the
        # input, so their displayed grids are computed once per model and kept.
        self.is_weight = {b.tensor: graph[b.tensor].kind == "weight" for b in self.layout.blocks}
        self.caps = {kind: display_cap([b for b in self.layout.blocks if self.is_weight[b.tensor] == (kind == "weight")],
                                       budget) for kind, budget in DISPLAY_BUDGET.items()}
        self.grids: dict[str, tuple[np.ndarray, float, list[int]]] = {}  # tensor -> (grid, scale, tile)

    def add(self, name: str, values: np.ndarray) -> None:
        self.grids[name] = self.grid(name, values)

    def slabs(self, name: str, values: np.ndarray) -> tuple[np.ndarray, int, int]:
        """A tensor as its block lays it out, [slab, rows, cols] (a view), and the tile it is shown by (fx, fy)."""
        b = self.layout.blocks[self.index[name]]
        cap = self.caps["weight" if self.is_weight[name] else "computed"]
        v = slab_grid(values, self.graph[name].axes, b)
        return (v[:1] if b.merged else v), math.ceil(b.cols / cap), math.ceil(b.rows / cap)  # (a stack: head 0's face)

    def grid(self, name: str, values: np.ndarray) -> tuple[np.ndarray, float, list[int]]:
        """A tensor's displayed grid [slab, rows, cols], the largest |value| in it, and the tile it was reduced by."""
        grid, fx, fy = self.slabs(name, values)
        grid = grid.astype(np.float32, copy=False)
        scale = largest_magnitude(grid)
        if fx > 1 or fy > 1:
            grid = tile_max_abs(grid, fy, fx)
        return grid, scale, [fx, fy]

    def add_weights(self) -> None:
        """The weights' grids, from the model's cache (made once, under a lock, each reported as it is made: a large
        model's take seconds)."""
        with _weight_lock:
            cache = _weight_grids.setdefault(self.model, {})
            todo = [b.tensor for b in self.layout.blocks if self.is_weight[b.tensor] and b.tensor not in self.grids]
            weights = self.model.require_weights()
            for k, name in enumerate(todo):
                if name not in cache:
                    report(k, len(todo), "weights")
                    cache[name] = self.weight_grid(name, weights[name])
                self.grids[name] = cache[name]

    def weight_grid(self, name: str, stored: np.ndarray) -> tuple[np.ndarray, float, list[int]]:
        """`grid` of a weight as the model keeps it: a large one stored narrower than float32 (core/weights.py) is
        widened and reduced a band of whole tiles at a time, never whole."""
        if not streamed(stored):
            return self.grid(name, widen(stored))
        v, fx, fy = self.slabs(name, stored)
        # Bands of whole tiles along the display axis the file stores outermost: each band is one stretch of the file.
        axis = 1 if abs(v.strides[1]) >= abs(v.strides[2]) else 2
        f = fy if axis == 1 else fx
        band = f * max(1, stored_weights.BLOCK // max(1, f * v.size // v.shape[axis]))
        parts = []
        for at in range(0, v.shape[axis], band):
            part = v[:, at:at + band] if axis == 1 else v[:, :, at:at + band]
            if axis == 2:  # (reduced in the order its numbers lie in memory)
                parts.append(tile_max_abs_bits(part.transpose(0, 2, 1), fx, fy).transpose(0, 2, 1))
            else:
                parts.append(tile_max_abs_bits(part, fy, fx))
        grid = widen(np.concatenate(parts, axis=axis))
        return grid, largest_magnitude(grid), [fx, fy]  # (a tile keeps its largest magnitude: the block's)

    def finish(self, trace: Trace | None) -> tuple[dict, np.ndarray]:
        """The scene description and the float16 atlas. With a trace, every block not added yet is taken
        from it (recomputed, for a trace that did not keep it)."""
        model, graph, layout = self.model, self.graph, self.layout
        # An engine that returns part of the graph (the nnsight engine's trace: `fetched`): the rest, weights included,
        # is drawn as structure, marked not fetched, and never recomputed.
        fetched = trace.fetched if trace is not None else None
        if trace is not None:
            if fetched is None:
                self.add_weights()
            for b in layout.blocks:
                if b.tensor not in self.grids and (fetched is None or b.tensor in fetched):
                    self.add(b.tensor, trace[b.tensor])
        blocks = []
        sizes = graph.sizes(self.n_pos)
        # A step's cached keys and values are its inputs, but activations of the passes before: drawn as those,
        # in the palette of the keys and values they are (K cache beside K so far).
        cached = {name for pair in graph.kv_in for name in pair}
        maps = mapped(graph) if model.has_weights else {}  # the embedding tables: their rows have a map
        for b in layout.blocks:
            spec = graph[b.tensor]
            grid, scale, tile = self.grids.get(b.tensor, (None, 0.0, [1, 1]))
            blocks.append({
                "tensor": b.tensor, "short": spec.label, "title": spec.title,
                "kind": "activation" if b.tensor in cached else spec.kind,
                "op": spec.op, "group": spec.group, "layer": spec.layer,
                "axes": [b.x_axis, b.y_axis, b.z_axis], "cols": b.cols, "rows": b.rows, "depth": b.depth,
                "merged": b.merged, "residual": b.residual,
                "x": b.x, "y": b.y, "z": b.z, "z_step": b.z_step, "x_step": b.x_step,
                "causal": "pos" in spec.axes and "key_pos" in spec.axes,  # a key after its query is masked
                "dims": [[a, n] for a, n in zip(spec.axes, spec.shape(sizes))],
                "tile": tile, "scale": scale, "slabs": None,  # tile: tensor cells per displayed cell, across and down
                "map": maps.get(b.tensor), "wrap": b.wrap,
                "fetched": fetched is None or b.tensor in fetched,
            })
        grids = [(self.index[n], g) for n, (g, _, _) in self.grids.items()]
        area = sum(g.shape[0] * g.shape[1] * g.shape[2] for _, g in grids)
        widest = max((g.shape[2] for _, g in grids), default=1)
        packer = AtlasPacker(min(MAX_ATLAS_WIDTH, max(widest, 64 * math.ceil(1.1 * math.sqrt(area) / 64))))
        placed = []
        for i, grid in sorted(grids, key=lambda g: (-g[1].shape[1], g[0])):  # tallest first packs shelves well
            n, h, w = grid.shape
            slabs = []
            for s in range(n):
                x, y = packer.place(w, h)
                slabs.append([x, y, w, h])
                placed.append((x, y, grid[s]))
            blocks[i]["slabs"] = slabs
        atlas = np.zeros((max(packer.height, 1), packer.width if placed else 1), np.float16)
        for x, y, g in placed:
            atlas[y:y + g.shape[0], x:x + g.shape[1]] = np.clip(g, -F16_MAX, F16_MAX, where=np.isfinite(g), out=g.copy())

        cfg = model.config
        scene = {
            "model": {"name": model.name, "n_params": cfg.n_params, "param_parts": cfg.param_parts(),
                      "has_weights": model.has_weights, "config": cfg.to_dict(), "description": cfg.description,
                      "engine": model.engine},
            "not_fetched": None if fetched is None else [b["tensor"] for b in blocks if not b["fetched"]],
            "n_pos": self.n_pos,
            "past": graph.past,  # positions whose keys and values came from the KV cache
            "axes": graph.axes_json(),
            "ops": graph.ops_json(),
            "blocks": blocks,
            "links": [[self.index[a], self.index[b]] for a, b in layout.links],
            "sections": layout.sections,
            "bounds": layout.bounds,
            "bands": layout.bands,
            "max_display": self.caps,
        }
        if trace is not None:
            scene.update(tokens=trace.tokens, token_strs=trace.token_strs, predicted=trace.predicted,
                         axis_names=axis_names(trace, sizes), prediction=prediction(trace),
                         context=trace.past_tokens + trace.tokens,  # with a KV cache: the cached tokens first
                         text=trace.model.decode(trace.past_tokens + trace.tokens))  # the input as a person reads it
        return scene, atlas


MAX_NAMED = 256  # an axis longer than this (GPT-2's vocabulary) has no names in the scene


def axis_names(trace: Trace, sizes: dict[str, int]) -> dict[str, list[str]]:
    """What the indices of the named axes stand for: the input's tokens along positions, the token strings
    along a small vocabulary (labels for rows and columns)."""
    return {a: [trace.index_name(a, i) or str(i) for i in range(sizes[a])]
            for a in sizes if NAMED_BY.get(a) and 0 < sizes[a] <= MAX_NAMED}


def prediction(trace: Trace, top: int = 5) -> dict | None:
    """What the model says: the next token after the input with its probability and the runners-up, and for
    a model that answers in several tokens (nano-gpt's sorted six) its greedy answer: after an input with part of
    the answer already written (`written` tokens), the answer so far and its greedy rest."""
    if trace.next_probs is None:
        return None
    p, m = trace.next_probs, trace.model
    order = np.argsort(-p, kind="stable")[:top].tolist()
    out: dict[str, Any] = {"position": len(trace.tokens) - 1, "answer": None,
           "top": [{"id": i, "token": m.token_strs([i])[0], "prob": float(p[i]), "percent": percent(float(p[i]))}
                   for i in order]}
    cfg = m.config
    if cfg.answer_tokens and not trace.edits:  # (the rest of an edited pass's answer: edits are for this input's length)
        context = trace.past_tokens + trace.tokens  # a step's: its whole context
        # A task's input followed by part of its answer (what generation writes): the answer goes on from there.
        extra = len(context) - (cfg.task_tokens or len(context))
        written = extra if 0 < extra <= cfg.answer_tokens else 0
        g = m.generate(context, cfg.answer_tokens - written) if written < cfg.answer_tokens else None
        ids = context[len(context) - written:] + (g.tokens if g else [])
        out["answer"] = {"ids": ids, "tokens": m.token_strs(ids), "text": m.decode(ids), "probs": g.probs if g else [],
                         "written": written}
    return out


def step_scene(model: Model, ids: list[int], past: int, heads: str = "side", stop=None) -> bytes:
    """The scene of one generation step: the last len(ids) - past positions computed on a KV cache of the first
    `past` (cached keys and values are blocks of their own; attention has one row per new query)."""
    from ..core.model import KVCache

    cache = KVCache(model)
    if past:
        model.step(cache, ids[:past], keep=(), stop=stop)
    builder = SceneBuilder(model, len(ids) - past, heads, Graph(model.config, past=past) if past else None)
    trace = model.step(cache, ids[past:], visit=builder.add, stop=stop)
    return _payload(*builder.finish(trace))


def edited_scene(model: Model, clean: Trace, edits: list[Edit], heads: str = "side", stop=None) -> tuple[Trace, bytes]:
    """The scene of the pass with these edits (core/edits.py), and beside its `atlas` a second one, `change`, packed
    the same way: every displayed cell's edited − clean value (0 where nothing changed: upstream of the edits, and
    every weight; −inf where both passes mask a score). Each block's `change` is its largest |edited − clean|; the
    scene lists the edits (`edits`, with where each was made) and what the clean pass predicts."""
    n = len(clean.tokens)
    builder = SceneBuilder(model, n, heads)
    change: dict[str, np.ndarray] = {}

    def visit(name: str, a: np.ndarray) -> None:
        builder.add(name, a)
        before = clean[name]
        with np.errstate(invalid="ignore"):  # a score masked in both passes stays masked (-inf), not -inf - -inf
            d = np.where(a == before, np.where(np.isneginf(a), -np.inf, 0.0), a.astype(np.float64) - before)
        d = d.astype(np.float32)
        change[name] = builder.grid(name, d)[0]

    trace = model.run(clean.tokens, keep=model.graph.checkpoints(), visit=visit, stop=stop, edits=edits)
    scene, atlas = builder.finish(trace)
    delta = packed_like(scene, atlas, change, "change")
    scene.update(edits=[info(model.graph, e, n) for e in edits], clean_prediction=prediction(clean),
                 clean_predicted=clean.predicted)
    return trace, bytes(safetensors_bytes({"atlas": atlas, "change": delta},
                                          {"scene": json.dumps(scene, separators=(",", ":"))}))


def gradient_scene(model: Model, ids: list[int], heads: str = "side", stop=None, g: Gradients | None = None) -> bytes:
    """The scene of a pass and beside its `atlas` a second one, `grad`, packed the same way: the gradient of the
    next-token loss (Model.gradients: the mean cross-entropy over positions 0 … T−2, or `g`, its answer computed
    already) with respect to every displayed cell, weights and activations alike (0 for the input's tokens). Each
    block's `grad` is its largest |gradient|; the scene's `loss` is the loss."""
    if g is None or not g.weights:
        g = model.gradients(ids, stop=stop)
    graph, builder = model.graph, SceneBuilder(model, len(ids), heads)
    trace = model.run(ids, keep=graph.checkpoints(), visit=builder.add, stop=stop)
    scene, atlas = builder.finish(trace)
    grids = {}
    for b in scene["blocks"]:
        name, spec = b["tensor"], graph[b["tensor"]]
        source = spec.attrs.get("tied_to")
        if spec.kind == "weight":
            a = g.weights[name] if name in g.weights else tie(graph, name, g.weights[source]) if source else None
        else:
            a = g.activations.get(name)
        if a is not None:
            grids[name] = builder.grid(name, a)[0]
    grad = packed_like(scene, atlas, grids, "grad")
    scene.update(loss=g.loss)
    return bytes(safetensors_bytes({"atlas": atlas, "grad": grad}, {"scene": json.dumps(scene, separators=(",", ":"))}))


def error_scene(model: Model, ids: list[int], heads: str = "side", stop=None) -> bytes:
    """The scene of a quantized model's pass (core/quant.py) and beside its `atlas` a second one, `error`, packed the
    same way: each stored weight's displayed cells as stored − original (a tied weight's as the weight it names), every
    other block's as in `atlas` (its values). Each stored weight's block has its `error`, its largest |error| (null for
    every other block); the scene's `quant_error` is the largest over the weights."""
    if not model.stored:
        raise LlmvizError(f"{model.name} is in f32 (its weights as trained): it has no quantization error to show; "
                          "choose a format (nano-gpt:q4_0)")
    graph, builder = model.graph, SceneBuilder(model, len(ids), heads)
    trace = model.run(ids, keep=graph.checkpoints(), visit=builder.add, stop=stop)
    scene, atlas = builder.finish(trace)
    grids = {}
    for b in scene["blocks"]:
        name = b["tensor"]
        source = graph[name].attrs.get("tied_to")
        stored = model.stored.get(name if name in model.stored else source)
        if stored is None or (error_of := stored.error) is None:  # (a file's quantized weight: no original)
            continue
        grids[name] = builder.grid(name, error_of if name in model.stored else tie(graph, name, error_of))[0]
    error = packed_like(scene, atlas, grids, "error")  # (the other blocks: their values, below)
    for b in scene["blocks"]:
        if b["tensor"] not in grids:
            b["error"] = None
            for x, y, w, h in b["slabs"] or []:
                error[y:y + h, x:x + w] = atlas[y:y + h, x:x + w]
    scene.update(quant_error=max(b["error"] for b in scene["blocks"] if b["error"] is not None))
    return bytes(safetensors_bytes({"atlas": atlas, "error": error}, {"scene": json.dumps(scene, separators=(",", ":"))}))


def packed_like(scene: dict, atlas: np.ndarray, grids: dict[str, np.ndarray], field: str) -> np.ndarray:
    """A second atlas of the same layout as `atlas`: each block's grid of other numbers at its slabs (zeros for a
    block with none), and in each block's `field` their largest magnitude."""
    out = np.zeros_like(atlas)
    for b in scene["blocks"]:
        g = grids.get(b["tensor"])
        b[field] = 0.0 if g is None else largest_magnitude(g)
        for k, (x, y, w, h) in enumerate(b["slabs"] or []):
            if g is not None:
                out[y:y + h, x:x + w] = np.clip(g[k], -F16_MAX, F16_MAX, where=np.isfinite(g[k]), out=g[k].copy())
    return out


def build_scene(model: Model, trace: Trace | None, n_pos: int, heads: str = "side",
                tower: bool = False) -> tuple[dict, np.ndarray]:
    """The scene description and the float16 atlas of every block's displayed cells."""
    return SceneBuilder(model, n_pos, heads, tower=tower).finish(trace)


def run_scene(model: Model, ids: list[int], stop=None, heads: str = "side") -> tuple[Trace, bytes]:
    """Run the forward pass and build its scene on the way, keeping only the residual stream: the trace
    (which recomputes any other tensor when asked) and the payload."""
    builder = SceneBuilder(model, len(ids), heads)
    trace = model.run(ids, keep=model.graph.checkpoints(), visit=builder.add, stop=stop)
    return trace, _payload(*builder.finish(trace))


def scene_bytes(model: Model, trace: Trace | None = None, n_pos: int | None = None, heads: str = "side",
                tower: bool = False) -> bytes:
    """The payload for POST /api/scene: the scene of a forward pass (`trace`), or for a model without
    weights the structure alone for `n_pos` positions."""
    n = len(trace.tokens) if trace is not None else int(n_pos or min(8, model.config.n_ctx))
    return _payload(*build_scene(model, trace, n, heads, tower))


def _payload(scene: dict, atlas: np.ndarray) -> bytes:
    return bytes(safetensors_bytes({"atlas": atlas}, {"scene": json.dumps(scene, separators=(",", ":"))}))
