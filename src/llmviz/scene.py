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
import weakref

import numpy as np

from .layout import Block, Layout, build_layout, short_name
from .model import Model, Trace

MAX_DISPLAY = 512  # displayed cells per side of one block, at most
DISPLAY_BUDGET = {"weight": 2_000_000, "computed": 1_000_000}  # displayed cells, at most (GPT-2 small: 124 M weights)
MAX_ATLAS_WIDTH = 4096  # within every WebGL2 implementation's texture size limit
_weight_grids: "weakref.WeakKeyDictionary[Model, dict]" = weakref.WeakKeyDictionary()  # weights do not change
F16_MAX = 65504.0


def slab_grid(values: np.ndarray, spec_axes: tuple[str, ...], b: Block) -> np.ndarray:
    """The tensor as [slab, rows (y axis), cols (x axis)]."""
    order = [a for a in (b.z_axis, b.y_axis, b.x_axis) if a]
    v = np.transpose(values, [spec_axes.index(a) for a in order])
    if b.z_axis is None:
        v = v[None]
    if b.y_axis is None:
        v = v[:, None, :]
    elif b.x_axis is None:
        v = v[:, :, None]
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


def build_scene(model: Model, trace: Trace | None, n_pos: int) -> tuple[dict, np.ndarray]:
    """The scene description and the float16 atlas of every block's displayed cells."""
    graph = model.graph
    layout: Layout = build_layout(graph, n_pos)
    # Weights and computed tensors have budgets of their own: the weights' cap does not depend on the
    # input, so their displayed grids are computed once per model and kept.
    is_weight = {b.tensor: graph[b.tensor].kind == "weight" for b in layout.blocks}
    caps = {kind: display_cap([b for b in layout.blocks if is_weight[b.tensor] == (kind == "weight")], budget)
            for kind, budget in DISPLAY_BUDGET.items()}
    cache = _weight_grids.setdefault(model, {})
    index = {b.tensor: i for i, b in enumerate(layout.blocks)}
    grids: list[tuple[int, np.ndarray]] = []  # (block index, [slab, rows, cols] display grid)
    blocks = []
    sizes = graph.sizes(n_pos)
    for i, b in enumerate(layout.blocks):
        spec = graph[b.tensor]
        rec = {
            "tensor": b.tensor, "short": short_name(b.tensor), "title": spec.title, "kind": spec.kind,
            "op": spec.op, "group": spec.group, "layer": spec.layer,
            "axes": [b.x_axis, b.y_axis, b.z_axis], "cols": b.cols, "rows": b.rows, "depth": b.depth,
            "merged": b.merged, "residual": b.residual,
            "x": b.x, "y": b.y, "z": b.z, "z_step": b.z_step,
            "dims": [[a, n] for a, n in zip(spec.axes, spec.shape(sizes))],
            "tile": [1, 1], "scale": 0.0, "slabs": None,  # tile: tensor cells per displayed cell, across and down
        }
        if trace is not None:
            cap = caps["weight" if is_weight[b.tensor] else "computed"]
            fx, fy = math.ceil(b.cols / cap), math.ceil(b.rows / cap)
            key = (b.tensor, fx, fy)
            if spec.kind == "weight" and key in cache:
                grid, rec["scale"] = cache[key]
            else:
                grid = slab_grid(trace[b.tensor], spec.axes, b).astype(np.float32)
                if b.merged:
                    grid = grid[:1]  # one box for the stack: its front face shows head 0
                rec["scale"] = largest_magnitude(grid)
                if fx > 1 or fy > 1:
                    grid = tile_max_abs(grid, fy, fx)
                if spec.kind == "weight":
                    cache[key] = (grid, rec["scale"])
            rec["tile"] = [fx, fy]
            grids.append((i, grid))
        blocks.append(rec)

    area = sum(g.shape[0] * g.shape[1] * g.shape[2] for _, g in grids)
    widest = max((g.shape[2] for _, g in grids), default=1)
    packer = AtlasPacker(min(MAX_ATLAS_WIDTH, max(widest, 64 * math.ceil(1.1 * math.sqrt(area) / 64))))
    placed = []
    for i, grid in sorted(grids, key=lambda g: -g[1].shape[1]):  # tallest first packs shelves well
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
        "model": {"name": model.name, "n_params": cfg.n_params, "has_weights": model.has_weights,
                  "config": cfg.to_dict(), "description": cfg.description},
        "n_pos": n_pos,
        "axes": graph.axes_json(),
        "ops": graph.ops_json(),
        "blocks": blocks,
        "links": [[index[a], index[b]] for a, b in layout.links],
        "sections": layout.sections,
        "bounds": layout.bounds,
        "max_display": caps,
    }
    if trace is not None:
        scene.update(tokens=trace.tokens, token_strs=trace.token_strs, predicted=trace.predicted)
    return scene, atlas


def scene_bytes(model: Model, trace: Trace | None = None, n_pos: int | None = None) -> bytes:
    """The payload for POST /api/scene: the scene of a forward pass (`trace`), or for a model without
    weights the structure alone for `n_pos` positions."""
    from safetensors.numpy import save

    n = len(trace.tokens) if trace is not None else int(n_pos or min(8, model.config.n_ctx))
    scene, atlas = build_scene(model, trace, n)
    return save({"atlas": atlas}, metadata={"scene": json.dumps(scene, separators=(",", ":"))})
